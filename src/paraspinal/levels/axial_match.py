"""Put disc planes found on a sagittal image onto an axial stack: nearest slice, distance, angle.

Both images must share scanner coordinates. DICOM series carry a FrameOfReferenceUID
(``metadata["frame_of_reference_uid"]``); when both images have one and they differ, the match is
refused. NIfTI/NRRD/MHA files carry no such identity, so the two are *assumed* to share scanner
coordinates (true for series of one session exported with their headers); the assumption is
checked: a disc centre more than ``tolerance_mm`` outside the axial stack (beyond its first/last
slice plane, or outside its in-plane field of view) is left out with a note, and when no disc lies
inside, the match is refused with a message saying so.

Geometry (all from the axial stack's affine, so RAS/LPS storage and any slice order agree):
the slice normal ``n`` is the cross product of the two in-plane voxel axes, signed towards
increasing slice index; disc centre ``c`` has the continuous slice coordinate
``u = (c - origin) . n / spacing``; the nearest slice is ``round(u)`` (clipped to the stack);
``signed_distance_mm`` is the centre's distance from that slice's plane, positive when the centre
lies superior (cranial) of it; ``angle_deg`` is the angle between the disc plane and the slice
plane (between their normals, 0-90 degrees).

Slice ranges: each axial slice belongs to the level whose disc is nearest along ``n``, but at most
half the way to the neighbouring disc on either side (the last disc at an end of the spine extends
as far as on its other side; a lone disc :data:`LONE_DISC_HALF_RANGE_MM` each way). Ranges are
half-open ``[slice_start, slice_stop)`` like every level table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from paraspinal.errors import LevelsError
from paraspinal.io.image import Image
from paraspinal.io.orientation import slice_axis
from paraspinal.levels.defaults import DEFAULT_TOLERANCE_MM
from paraspinal.levels.spine import SpineLevels
from paraspinal.levels.spine_geometry import DiscGeometry
from paraspinal.levels.table import Level, LevelTable

LONE_DISC_HALF_RANGE_MM = 17.5
FRAME_KEY = "frame_of_reference_uid"


@dataclass(frozen=True)
class AxialLevel:
    """One disc placed on the axial stack (the extra per-level record beside the :class:`Level`)."""

    name: str
    disc_slice: int
    distance_mm: float
    signed_distance_mm: float
    angle_deg: float
    slice_start: int
    slice_stop: int
    disc: DiscGeometry


@dataclass(frozen=True)
class AxialLevels:
    """The level table of an axial stack from sagittal disc planes, with the per-level records."""

    table: LevelTable
    records: tuple[AxialLevel, ...]
    warnings: tuple[str, ...] = ()

    def to_frame(self) -> pd.DataFrame:
        """One row per level: disc geometry, nearest slice, distances, angle and slice range."""
        rows = []
        for r in self.records:
            d = r.disc
            rows.append(
                {
                    "level": r.name,
                    **{f"centre_{a}_mm": d.centre_mm[i] for i, a in enumerate("xyz")},
                    **{f"normal_{a}": d.normal[i] for i, a in enumerate("xyz")},
                    "confidence": d.confidence,
                    "estimated": d.estimated,
                    "disc_slice": r.disc_slice,
                    "distance_mm": r.distance_mm,
                    "signed_distance_mm": r.signed_distance_mm,
                    "angle_deg": r.angle_deg,
                    "slice_start": r.slice_start,
                    "slice_stop": r.slice_stop,
                }
            )
        return pd.DataFrame(rows)


def check_frames_of_reference(sagittal: Image, axial: Image) -> None:
    """Refuse two DICOM-derived images whose FrameOfReferenceUIDs differ (one-line LevelsError)."""
    a, b = sagittal.metadata.get(FRAME_KEY), axial.metadata.get(FRAME_KEY)
    if a and b and str(a) != str(b):
        raise LevelsError(
            f"different frames of reference: the sagittal image ({sagittal.source}) and the axial stack were "
            "not acquired in one scanner coordinate system",
            path=axial.source,
        )


def match_axial(
    spine: SpineLevels,
    axial: Image,
    *,
    sagittal: Image | None = None,
    tolerance_mm: float = DEFAULT_TOLERANCE_MM,
    source: str = "sagittal",
) -> AxialLevels:
    """The axial stack's level table from ``spine``'s disc planes (see module docstring).

    ``sagittal`` (the image the discs came from) is used only for the frame-of-reference check.
    ``source`` becomes each :class:`Level`'s ``source``.
    """
    if sagittal is not None:
        check_frames_of_reference(sagittal, axial)
    if not spine.discs:
        raise LevelsError("no discs to place on the axial stack", path=spine.source)
    m = axial.affine[:3, :3]
    axis = slice_axis(axial.affine)
    in_plane = [a for a in range(3) if a != axis]
    normal = np.cross(m[:, in_plane[0]], m[:, in_plane[1]])
    normal /= np.linalg.norm(normal)
    if float(normal @ m[:, axis]) < 0:
        normal = -normal
    spacing = float(normal @ m[:, axis])
    n_slices = axial.shape[axis]
    centres = np.array([d.centre_mm for d in spine.discs], dtype=np.float64)
    normals = np.array([d.normal for d in spine.discs], dtype=np.float64)
    ijk = (centres - axial.affine[:3, 3]) @ np.linalg.inv(m).T  # continuous voxel coordinates
    u = ijk[:, axis]
    inside = _inside(ijk, axial.shape, axial.spacing_mm, axis=axis, tolerance_mm=tolerance_mm)
    warnings = [
        f"{d.name} disc centre lies outside the axial stack (by more than {tolerance_mm:g} mm); level left out"
        for d, ok in zip(spine.discs, inside, strict=True)
        if not ok
    ]
    if not inside.any():
        raise LevelsError(
            f"none of the {len(spine.discs)} disc centres found on the sagittal image lies within {tolerance_mm:g} mm "
            f"of the axial stack ({n_slices} slices); the two images do not seem to share scanner coordinates "
            "(NIfTI inputs are assumed to: export both series from one session with their original headers)",
            path=axial.source,
        )
    nearest = np.clip(np.rint(u), 0, n_slices - 1).astype(int)
    superior = normal if normal[2] >= 0 else -normal
    signed = (u - nearest) * spacing * float(normal @ superior)
    cos = np.clip(np.abs(normals @ normal), 0.0, 1.0)
    angles = np.degrees(np.arccos(cos))
    ranges = _slice_ranges(u, n_slices=n_slices, spacing_mm=spacing)
    levels, records = [], []
    for i, disc in enumerate(spine.discs):
        start, stop = ranges[i]
        if not inside[i]:
            continue
        if start >= stop:
            warnings.append(f"{disc.name}: no axial slice lies nearer its disc than a neighbouring one; left out")
            continue
        record = AxialLevel(
            name=disc.name,
            disc_slice=int(nearest[i]),
            distance_mm=float(abs(signed[i])),
            signed_distance_mm=float(signed[i]),
            angle_deg=float(angles[i]),
            slice_start=start,
            slice_stop=stop,
            disc=disc,
        )
        records.append(record)
        levels.append(
            Level(
                name=disc.name,
                slice_start=start,
                slice_stop=stop,
                disc_slice=record.disc_slice,
                distance_mm=record.distance_mm,
                source=source,
                angle_deg=record.angle_deg,
            )
        )
    table = LevelTable(tuple(levels)).validated(n_slices=n_slices, path=axial.source)
    return AxialLevels(table=table, records=tuple(records), warnings=tuple(warnings))


def _inside(
    ijk: np.ndarray,
    shape: tuple[int, int, int],
    spacing_mm: tuple[float, float, float],
    *,
    axis: int,
    tolerance_mm: float,
) -> np.ndarray:
    """Whether each continuous voxel position lies within the stack's extent grown by ``tolerance_mm``."""
    low = -0.5 - tolerance_mm / np.asarray(spacing_mm)
    high = np.asarray(shape) - 0.5 + tolerance_mm / np.asarray(spacing_mm)
    return np.all((ijk >= low) & (ijk <= high), axis=1)


def _slice_ranges(u: np.ndarray, *, n_slices: int, spacing_mm: float) -> list[tuple[int, int]]:
    """Half-open slice range of each disc (continuous slice coordinates ``u``), see module docstring."""
    order = np.argsort(u)
    sorted_u = u[order]
    m = len(u)
    gaps = np.diff(sorted_u)
    lone = LONE_DISC_HALF_RANGE_MM / spacing_mm
    low_half = np.empty(m)
    high_half = np.empty(m)
    for j in range(m):
        below = gaps[j - 1] / 2 if j > 0 else None
        above = gaps[j] / 2 if j < m - 1 else None
        low_half[j] = below if below is not None else (above if above is not None else lone)
        high_half[j] = above if above is not None else (below if below is not None else lone)
    s = np.arange(n_slices, dtype=np.float64)
    offsets = s[:, None] - sorted_u[None, :]  # (n_slices, m)
    within = (offsets >= -low_half[None, :]) & (offsets <= high_half[None, :])
    distance = np.where(within, np.abs(offsets), np.inf)
    owner = np.argmin(distance, axis=1)
    owned = np.isfinite(distance[np.arange(n_slices), owner])
    ranges: list[tuple[int, int]] = [(0, 0)] * m
    for j in range(m):
        hits = np.flatnonzero(owned & (owner == j))
        ranges[int(order[j])] = (int(hits[0]), int(hits[-1]) + 1) if hits.size else (0, 0)
    return ranges
