"""User-facing errors: each renders as one line naming the file and the problem.

Every layer raises these (never bare ``ValueError``) for bad input, so the CLI can print
``paraspinal: error: <file>: <problem>`` and exit non-zero without a traceback.
"""

from __future__ import annotations

from pathlib import Path


class ParaspinalError(Exception):
    """An error caused by the user's input or options, shown as one line."""

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        self.message = " ".join(str(message).split())  # always one line
        self.path = None if path is None else str(path)
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class InputError(ParaspinalError):
    """A file is missing, unreadable, corrupt, or holds data we cannot measure."""


class GeometryError(ParaspinalError):
    """Two images that must share a voxel grid do not."""


class LabelSchemeError(ParaspinalError):
    """A label scheme or anatomy file is invalid, or a label map does not fit its scheme."""


class LevelsError(ParaspinalError):
    """A level table (CSV, mapping or disc mask) is invalid for the image it is applied to."""
