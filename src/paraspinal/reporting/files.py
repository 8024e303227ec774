"""All-or-nothing output: files are written under temporary names and renamed together at the end."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from types import TracebackType

from paraspinal.io.files import ensure_folder, os_errors_name, temp_file_for


class AtomicOutputs:
    """Collect output files; on success rename them into place, on error delete them all.

    Use as a context manager: ``with AtomicOutputs(out_dir) as out: path = out.path("a.csv")`` then write
    to ``path``. Nothing appears under its final name unless the whole block succeeds. Files get the
    umask's mode; a file-system error while writing (full disk, read-only folder) is an :class:`OSError`
    naming the output (folder) instead of a temporary file, or none.
    """

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir).absolute()  # temp names and final names compare as absolute paths
        self._pending: list[tuple[Path, Path]] = []
        self._created_dir = False

    def __enter__(self) -> AtomicOutputs:
        if not self.out_dir.is_dir():
            self._created_dir = not self.out_dir.exists()
            ensure_folder(self.out_dir)
        return self

    def path(self, name: str) -> Path:
        """A temporary path to write; it becomes ``out_dir / name`` on success."""
        final = self.out_dir / name
        ensure_folder(final.parent)
        tmp = temp_file_for(final)
        self._pending.append((tmp, final))
        return tmp

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            try:
                for tmp, final in self._pending:
                    with os_errors_name(final):
                        os.replace(tmp, final)
                return
            except BaseException:
                self._discard()
                raise
        self._discard()
        if isinstance(exc, OSError):
            with os_errors_name(self.out_dir, temporaries=[tmp for tmp, _ in self._pending]):
                raise exc

    def _discard(self) -> None:
        for tmp, _ in self._pending:
            tmp.unlink(missing_ok=True)
        if self._created_dir:
            with contextlib.suppress(OSError):
                self.out_dir.rmdir()  # only if nothing else ended up there

    @property
    def final_paths(self) -> list[Path]:
        return [final for _, final in self._pending]
