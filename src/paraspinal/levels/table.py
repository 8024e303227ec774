"""The level table: which axial slices belong to which spinal level.

Slice ranges are half-open, ``[slice_start, slice_stop)``, counted along the image's axial
axis (see :func:`paraspinal.io.axial_frame`), exactly as LPM_Segmentator's slice CSV and Python
slicing. ``disc_slice`` is the single axial slice nearest the disc centre, when known.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from paraspinal.errors import LevelsError
from paraspinal.safe_text import identifier_problem

_SPINE_ORDER = (
    [f"C{i}" for i in range(1, 8)] + [f"T{i}" for i in range(1, 13)] + [f"L{i}" for i in range(1, 6)] + ["S1"]
)
# two vertebrae, apart by at most one of / _ - or spaces (never a tab or newline: those names are refused)
_PAIR = re.compile(r"^\s*([CTLS]\d{1,2}) *[/_\- ]? *([CTLS]\d{1,2})\s*$", re.IGNORECASE)


def normalise_level_name(name: str) -> str:
    """Canonical level name: adjacent vertebrae become a disc level (``l4-l5`` -> ``L4/L5``).

    Other names (``L2-L5`` ranges, free text) are returned stripped, otherwise unchanged.
    """
    text = str(name).strip()
    match = _PAIR.match(text)
    if match:
        upper, lower = match.group(1).upper(), match.group(2).upper()
        known = upper in _SPINE_ORDER and lower in _SPINE_ORDER
        if known and _SPINE_ORDER.index(lower) - _SPINE_ORDER.index(upper) == 1:
            return f"{upper}/{lower}"
    return text


def level_sort_key(name: str) -> tuple[int, str]:
    """Cranial-to-caudal order for disc level names; unknown names sort last, alphabetically."""
    upper = name.split("/")[0].split("-")[0].strip().upper()
    return (_SPINE_ORDER.index(upper) if upper in _SPINE_ORDER else len(_SPINE_ORDER), name)


@dataclass(frozen=True)
class Level:
    """One level: a named slice range, optionally with the disc's own slice.

    Attributes:
        name: level name, e.g. ``"L4/L5"`` or ``"L2-L5"``.
        slice_start: first axial slice (inclusive).
        slice_stop: end of the range (exclusive).
        disc_slice: axial slice nearest the disc centre, or None.
        distance_mm: distance from the disc centre to that slice's plane (mm), when derived from a disc.
        source: where the level came from (file path, ``"mapping"``, ``"disc mask"``).
        angle_deg: angle between the disc plane and the axial slice plane (degrees, 0-90), when the
            disc's orientation is known (levels from a sagittal image).
    """

    name: str
    slice_start: int
    slice_stop: int
    disc_slice: int | None = None
    distance_mm: float | None = None
    source: str = ""
    angle_deg: float | None = None

    @property
    def slices(self) -> range:
        return range(self.slice_start, self.slice_stop)


@dataclass(frozen=True)
class LevelTable:
    """An ordered collection of levels for one image."""

    levels: tuple[Level, ...]

    def __iter__(self):
        return iter(self.levels)

    def __len__(self) -> int:
        return len(self.levels)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(level.name for level in self.levels)

    def to_frame(self) -> pd.DataFrame:
        """One row per level (name, slice range, disc slice, distance, angle, source)."""
        return pd.DataFrame(
            {
                "level": [lv.name for lv in self.levels],
                "slice_start": [lv.slice_start for lv in self.levels],
                "slice_stop": [lv.slice_stop for lv in self.levels],
                "disc_slice": pd.array([lv.disc_slice for lv in self.levels], dtype="Int64"),
                "distance_mm": [lv.distance_mm for lv in self.levels],
                "angle_deg": [lv.angle_deg for lv in self.levels],
                "source": [lv.source for lv in self.levels],
            }
        )

    def validated(self, *, n_slices: int, path: str | Path | None = None) -> LevelTable:
        """Check every range lies within ``n_slices`` axial slices and every name is safe in a table (no
        leading ``= + - @``, no control characters; :mod:`paraspinal.safe_text`); raise LevelsError naming
        the file."""
        last = n_slices - 1
        seen: set[str] = set()
        for lv in self.levels:
            problem = identifier_problem(lv.name)
            if problem is not None:
                raise LevelsError(f"level name {lv.name!r} {problem}; rename the level", path=path)
            if lv.name in seen:
                raise LevelsError(f"level {lv.name} is listed twice", path=path)
            seen.add(lv.name)
            if lv.slice_start >= lv.slice_stop:
                raise LevelsError(
                    f"level {lv.name}: slice_start {lv.slice_start} must be below slice_stop {lv.slice_stop} "
                    "(ranges are half-open)",
                    path=path,
                )
            if lv.slice_start < 0 or lv.slice_stop > n_slices:
                raise LevelsError(
                    f"level {lv.name}: slices {lv.slice_start}..{lv.slice_stop - 1} are outside the image's "
                    f"{n_slices} axial slices (0..{last})",
                    path=path,
                )
            if lv.disc_slice is not None and not 0 <= lv.disc_slice <= last:
                raise LevelsError(
                    f"level {lv.name}: disc slice {lv.disc_slice} is outside the image's {n_slices} axial "
                    f"slices (0..{last})",
                    path=path,
                )
        return self
