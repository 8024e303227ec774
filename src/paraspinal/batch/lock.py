"""Who may write an output folder: one run at a time, or the parts of one split side by side.

Lock files live in ``<out>/.paraspinal/`` and are held with POSIX record locks (``fcntl.lockf``): the
kernel drops them when their holder dies, however it dies (``kill -9`` included), and NFS carries them
to other hosts, so a lock that can be taken proves that nobody holds it.

* ``run.lock``: a whole-folder run holds it exclusively; every part of a split holds it shared.
* ``part-K-of-N.lock``: part K of an N-part split holds it exclusively, so the same part cannot run
  twice; while one is held, parts of another split (another N, whose cases overlap) are refused.
* ``cohort.lock``: held while the cohort tables and report are rebuilt, so parts take turns.
* ``gate.lock``: held for an instant while a part takes its locks, so two starting parts cannot both
  pass the checks.

Each lock file holds its holder's host, pid, start time and command (JSON), for the refusal message.
A process holds each lock through one file descriptor only: POSIX locks are released when the process
closes *any* descriptor of the file, so lock files are never opened twice by their holder.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from paraspinal.errors import ParaspinalError

__all__ = ["FolderBusyError", "RunLock", "cohort_lock", "lock_dir", "run_lock"]

LOCK_DIR = ".paraspinal"


class FolderBusyError(ParaspinalError):
    """Another paraspinal run holds the output folder."""


def lock_dir(out: Path) -> Path:
    """``<out>/.paraspinal``, created if missing."""
    folder = out / LOCK_DIR
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _holder(command: Sequence[str] | None, part: tuple[int, int] | None) -> bytes:
    info = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": list(command or ()),
        "part": None if part is None else {"id": part[0], "of": part[1]},
    }
    return json.dumps(info).encode("utf-8")


def _describe(raw: bytes) -> str:
    """``host H, pid P, since T (part K+1 of N)`` from a lock file's holder JSON."""
    try:
        info = json.loads(raw.decode("utf-8"))
        text = f"host {info['host']}, pid {info['pid']}, since {info['since']}"
    except (ValueError, KeyError, TypeError):
        return "another process (no holder information)"
    part = info.get("part")
    return text + (f", part {part['id'] + 1} of {part['of']}" if part else "")


@dataclass
class _Held:
    path: Path
    fd: int


def _open(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)


def _try_lock(fd: int, *, shared: bool, wait: bool) -> bool:
    import fcntl

    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    try:
        fcntl.lockf(fd, mode if wait else mode | fcntl.LOCK_NB)
    except (BlockingIOError, PermissionError):
        return False
    return True


def _read(fd: int) -> bytes:
    return os.pread(fd, 4096, 0)


def _write_holder(fd: int, holder: bytes) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, holder, 0)


def _probe(path: Path) -> bytes | None:
    """The holder info of ``path`` when someone holds it, None when it is free (never call on your own locks)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        if _try_lock(fd, shared=False, wait=False):
            return None
        return _read(fd)
    finally:
        os.close(fd)  # also drops the probe's own lock when it got one


@dataclass
class RunLock:
    """The locks one run holds on its output folder; release them with :meth:`release` (or ``with``)."""

    out: Path
    part: tuple[int, int] | None
    held: list[_Held] = field(default_factory=list)

    @property
    def exclusive(self) -> bool:
        """True for a whole-folder run: no other paraspinal run is writing this folder."""
        return self.part is None

    def release(self) -> None:
        while self.held:
            os.close(self.held.pop().fd)

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _busy(out: Path, who: str, *, hint: str | None = None) -> FolderBusyError:
    hint = hint or "wait for it to finish, or pass --wait"
    return FolderBusyError(f"output folder is in use by a paraspinal run ({who}); {hint}", path=out)


def _part_holders(folder: Path, *, skip: Path | None = None) -> list[tuple[Path, bytes]]:
    return [
        (path, raw)
        for path in sorted(folder.glob("part-*-of-*.lock"))
        if path != skip and (raw := _probe(path)) is not None
    ]


def run_lock(
    out: Path,
    *,
    num_parts: int = 1,
    part_id: int = 0,
    wait: bool = False,
    command: Sequence[str] | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> RunLock:
    """Take the locks a run needs on ``out`` (see the module docstring).

    Without ``wait`` a busy folder is a one-line :class:`FolderBusyError` naming the holder's host and pid;
    with ``wait`` the call blocks until the holder is done (``on_wait(message)`` is told first).
    """
    folder = lock_dir(out)
    part = None if num_parts == 1 else (part_id, num_parts)
    lock = RunLock(out, part)
    holder = _holder(command, part)
    try:
        fd = _take(lock, folder / "run.lock", shared=part is not None, wait=wait, on_wait=on_wait)
        assert fd is not None
        if part is None:
            _write_holder(fd, holder)
            return lock
        own = folder / f"part-{part_id}-of-{num_parts}.lock"
        with _gate(folder):  # taking the part lock and checking the other splits is one step
            part_fd = _take(lock, own, shared=False, wait=False, on_wait=None, busy_ok=True)
            if part_fd is not None:
                _check_one_split(lock, folder, own=own, num_parts=num_parts)
        if part_fd is None:  # the same part is running: refuse, or wait for it outside the gate
            part_fd = _take(lock, own, shared=False, wait=wait, on_wait=on_wait)
            with _gate(folder):
                _check_one_split(lock, folder, own=own, num_parts=num_parts)
        _write_holder(part_fd, holder)
        return lock
    except BaseException:
        lock.release()
        raise


def _check_one_split(lock: RunLock, folder: Path, *, own: Path, num_parts: int) -> None:
    """Refuse (releasing every lock first, inside the gate) when parts of another split are running."""
    ending = f"-of-{num_parts}.lock"
    other = [(p, raw) for p, raw in _part_holders(folder, skip=own) if not p.name.endswith(ending)]
    if other:
        lock.release()
        who = "; ".join(_describe(raw) for _, raw in other)
        raise _busy(lock.out, who, hint="its cases are split into another number of parts: use the same --num-parts")


def _take(
    lock: RunLock,
    path: Path,
    *,
    shared: bool,
    wait: bool,
    on_wait: Callable[[str], None] | None,
    busy_ok: bool = False,
) -> int | None:
    """Lock ``path`` for ``lock`` (its descriptor stays open in ``lock.held``); busy: refuse, wait, or
    (``busy_ok``) return None."""
    held = next((h for h in lock.held if h.path == path), None)
    fd = held.fd if held is not None else _open(path)
    if held is None:
        lock.held.append(_Held(path, fd))
    if _try_lock(fd, shared=shared, wait=False):
        return fd
    if busy_ok:
        return None
    if path.name == "run.lock" and not shared:
        parts = _part_holders(path.parent)  # parts hold run.lock shared and describe themselves in their own files
        who = "; ".join(_describe(raw) for _, raw in parts) if parts else _describe(_read(fd))
    else:
        who = _describe(_read(fd))
    if not wait:
        raise _busy(lock.out, who, hint="this part is already running" if path.name.startswith("part-") else None)
    if on_wait is not None:
        on_wait(f"waiting for the paraspinal run holding {lock.out} ({who})")
    _try_lock(fd, shared=shared, wait=True)
    return fd


@contextlib.contextmanager
def _gate(folder: Path) -> Iterator[None]:
    fd = _open(folder / "gate.lock")
    try:
        _try_lock(fd, shared=False, wait=True)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def cohort_lock(out: Path) -> Iterator[None]:
    """Held while the cohort files of ``out`` are rebuilt (blocks while another process rebuilds them)."""
    fd = _open(lock_dir(out) / "cohort.lock")
    try:
        _try_lock(fd, shared=False, wait=True)
        yield
    finally:
        os.close(fd)
