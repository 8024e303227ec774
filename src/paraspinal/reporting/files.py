"""All-or-nothing output: files are written under temporary names and renamed together at the end."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from types import TracebackType


class AtomicOutputs:
    """Collect output files; on success rename them into place, on error delete them all.

    Use as a context manager: ``with AtomicOutputs(out_dir) as out: path = out.path("a.csv")`` then write
    to ``path``. Nothing appears under its final name unless the whole block succeeds.
    """

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir).absolute()  # temp names and final names compare as absolute paths
        self._pending: list[tuple[Path, Path]] = []
        self._created_dir = False

    def __enter__(self) -> AtomicOutputs:
        if not self.out_dir.exists():
            self.out_dir.mkdir(parents=True)
            self._created_dir = True
        return self

    def path(self, name: str) -> Path:
        """A temporary path to write; it becomes ``out_dir / name`` on success."""
        final = self.out_dir / name
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent)
        os.close(fd)
        self._pending.append((Path(tmp), final))
        return Path(tmp)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            for tmp, final in self._pending:
                os.replace(tmp, final)
            return
        for tmp, _ in self._pending:
            tmp.unlink(missing_ok=True)
        if self._created_dir:
            with contextlib.suppress(OSError):
                self.out_dir.rmdir()  # only if nothing else ended up there

    @property
    def final_paths(self) -> list[Path]:
        return [final for _, final in self._pending]
