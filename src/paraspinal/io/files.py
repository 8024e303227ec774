"""File helpers: the SHA-256 of a file, output files and folders that follow the process umask, and file-system
errors that name the output.

:mod:`tempfile` creates its files 0600 and its folders 0700 whatever the umask, so results staged
under temporary names would stay private to their owner after the rename. Every writer creates
its temporary files and folders here instead: mode ``0666 & ~umask`` (files) and ``0777 & ~umask``
(folders), like any file the user's shell creates.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
import threading
from collections.abc import Collection, Iterator
from pathlib import Path

_UMASK_LOCK = threading.Lock()
_CHUNK = 1 << 20


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def current_umask() -> int:
    """The process umask, read from ``/proc/self/status`` where it can be (no change, thread-safe)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("Umask:"):
                return int(line.split(":", 1)[1].strip(), 8)
    with _UMASK_LOCK:  # no /proc (macOS, some containers): set and restore at once
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def file_mode() -> int:
    """Mode of a new output file: ``0666`` less the umask."""
    return 0o666 & ~current_umask()


def folder_mode() -> int:
    """Mode of a new output folder: ``0777`` less the umask."""
    return 0o777 & ~current_umask()


def ensure_folder(path: str | Path) -> Path:
    """``mkdir -p path``; a file in the way is ``<path>: Not a directory`` (not ``File exists``)."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(folder)) from None
    return folder


def temp_file_for(final: str | Path, *, suffix: str = ".part") -> Path:
    """An empty hidden file next to ``final`` (``.NAME.XXXX<suffix>``) with the umask's mode, to rename onto it.

    A failure (read-only folder, full disk, a parent that is a file) is an :class:`OSError` naming ``final``.
    """
    out = Path(final)
    with os_errors_name(out):
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=suffix, dir=out.parent)
        try:
            with contextlib.suppress(OSError):  # a file system without modes keeps its own
                os.fchmod(fd, file_mode())
        finally:
            os.close(fd)
    return Path(tmp)


def temp_folder_in(parent: str | Path, *, prefix: str) -> Path:
    """A new hidden folder in ``parent`` with the umask's mode (:func:`tempfile.mkdtemp` makes it 0700)."""
    where = Path(parent)
    with os_errors_name(where):
        folder = Path(tempfile.mkdtemp(prefix=prefix, dir=where))
        with contextlib.suppress(OSError):
            os.chmod(folder, folder_mode())
    return folder


@contextlib.contextmanager
def os_errors_name(path: str | Path, *, temporaries: Collection[str | Path] | None = None) -> Iterator[None]:
    """Re-raise a file-system error as an :class:`OSError` naming ``path`` with the plain reason, in one line.

    Libraries report a full disk without the file (pyarrow: ``[Errno 28] Error writing bytes to file``)
    or name a temporary file; the user needs the output that failed and why. With ``temporaries``, only
    errors naming no file or one of those are renamed (an error about an input keeps its name).
    """
    try:
        yield
    except OSError as exc:
        named = exc.filename is not None
        if temporaries is not None and named and str(exc.filename) not in {str(t) for t in temporaries}:
            raise
        code = exc.errno if exc.errno is not None else _errno_in(str(exc))
        reason = os.strerror(code) if code is not None else " ".join((exc.strerror or str(exc)).split())
        raise OSError(code if code is not None else errno.EIO, reason, str(path)) from None


def _errno_in(text: str) -> int | None:
    """The errno a wrapped error mentions (``[Errno 28]``, ``[errno 28]``), if any."""
    import re

    found = re.search(r"\[errno (\d+)\]", text, re.IGNORECASE)
    return int(found.group(1)) if found else None
