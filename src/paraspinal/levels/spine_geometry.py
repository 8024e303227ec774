"""Spine geometry in world millimetres: vertebral bodies, and the discs between them.

Conventions
-----------
* Positions are RAS+ world coordinates (mm) from the label map's affine, so any storage order
  (RAS, LPS, permuted, oblique) gives the same answer.
* Every direction is a unit vector pointing **cranial**: for a disc between two bodies, towards
  the upper body; for a disc known only from its own voxels, towards world +z (superior).

How a disc between two bodies is placed (documented choice)
-----------------------------------------------------------
1. The *local spine axis* ``d`` is the unit line from the lower body's centroid to the upper one's.
2. Each body's *height axis* is the principal axis of its voxels closest to ``d``. Vertebral bodies
   are lower than they are deep or wide, so that axis is normal to the endplates; it is used only
   when it is distinct (its variance at most :data:`AXIS_DISTINCT_RATIO` times the others') and
   within :data:`AXIS_MAX_ANGLE_DEG` of ``d``; otherwise ``d`` stands in for it.
3. The disc normal is the normalised mean of the two bodies' height axes (the bisector of the two
   endplates, which is what a wedge-shaped lordotic disc's mid-plane follows).
4. Along the line through the midpoint of the centroids with that direction, the facing endplates
   are the 1st percentile (upper body) and 99th percentile (lower body) of the bodies' *central*
   voxels' positions along the normal (central: within half the body's RMS radius of that line,
   which ignores the bodies' rims and osteophytes). The disc centre is midway between them.

Below the lowest body the sacrum plays the lower body's part when it is labelled. When it is not
and the lowest body is L5, the L5/S1 disc is **estimated**: its centre lies half the mean disc height
seen above (centre-to-centre of the facing endplate voxels) below L5's lower endplate, along L5's
height axis; with no disc above, :data:`DEFAULT_DISC_HEIGHT_MM` is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

AXIS_MAX_ANGLE_DEG = 35.0
AXIS_DISTINCT_RATIO = 0.85
DEFAULT_DISC_HEIGHT_MM = 10.0
ENDPLATE_PERCENTILE = 1.0
_MIN_CENTRAL_VOXELS = 10

Vector = tuple[float, float, float]


@dataclass(frozen=True)
class VertebralBody:
    """One named vertebral body (or the sacrum, ``name == "S1"``, ``kind == "sacrum"``).

    Attributes:
        name: vertebra name, e.g. ``"L3"``.
        centroid_mm: centre of mass of its voxels, RAS+ world (mm).
        axis: unit height axis pointing cranial (see module docstring), or the spine axis when the
            body's own axis is not distinct.
        volume_mm3: labelled volume (mm³).
        confidence: share of its voxels whose label names it (1 for a consistent manual mask).
        kind: ``"body"`` or ``"sacrum"``.
    """

    name: str
    centroid_mm: Vector
    axis: Vector
    volume_mm3: float
    confidence: float
    kind: Literal["body", "sacrum"] = "body"


@dataclass(frozen=True)
class DiscGeometry:
    """One intervertebral disc as a plane: centre and cranial unit normal in world mm.

    Attributes:
        name: level name, e.g. ``"L4/L5"``.
        centre_mm: disc centre, RAS+ world (mm).
        normal: unit normal of the disc plane, pointing cranial.
        confidence: naming confidence (the lower of its two bodies'; 1 for a labelled disc).
        estimated: True when no lower body or sacrum was labelled (L5/S1 placed from L5 alone).
        height_mm: gap between the facing endplates (mm), None for a labelled disc.
    """

    name: str
    centre_mm: Vector
    normal: Vector
    confidence: float
    estimated: bool = False
    height_mm: float | None = None


@dataclass(frozen=True)
class BodyVoxels:
    """World positions (mm, shape (N, 3)) of one body's voxels and its voxel extent along any axis."""

    points_mm: np.ndarray
    voxel_matrix: np.ndarray  # 3x3: affine columns (one voxel step per column, mm)

    @property
    def centroid(self) -> np.ndarray:
        return self.points_mm.mean(axis=0)


def unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def voxel_points_mm(ijk: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """World positions (mm) of voxel indices ``ijk`` (N, 3)."""
    return ijk @ affine[:3, :3].T + affine[:3, 3]


def height_axis(body: BodyVoxels, spine_axis: np.ndarray) -> np.ndarray:
    """The body's principal axis closest to ``spine_axis`` (signed like it), or ``spine_axis`` itself
    when that principal axis is not distinct or lies too far from it (see module docstring)."""
    points = body.points_mm
    if len(points) < 4:
        return spine_axis
    centred = points - points.mean(axis=0)
    values, vectors = np.linalg.eigh(centred.T @ centred / len(points))
    dots = np.abs(vectors.T @ spine_axis)
    best = int(np.argmax(dots))
    others = [values[i] for i in range(3) if i != best]
    distinct = values[best] <= AXIS_DISTINCT_RATIO * min(others)
    close = dots[best] >= np.cos(np.radians(AXIS_MAX_ANGLE_DEG))
    if not (distinct and close):
        return spine_axis
    axis = vectors[:, best]
    return axis if float(axis @ spine_axis) > 0 else -axis


def _central_positions(body: BodyVoxels, *, origin: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Positions along ``direction`` (mm from ``origin``) of the body's voxels near the line through
    ``origin`` (within half the body's RMS distance from its own parallel axis line)."""
    rel = body.points_mm - origin
    t = rel @ direction
    perpendicular = rel - np.outer(t, direction)
    distance = np.linalg.norm(perpendicular, axis=1)
    own = body.points_mm - body.centroid
    own_perp = own - np.outer(own @ direction, direction)
    radius = 0.5 * float(np.sqrt(np.mean(np.sum(own_perp**2, axis=1))))
    central = t[distance <= radius]
    return central if central.size >= _MIN_CENTRAL_VOXELS else t


def facing_endplates(
    upper: BodyVoxels, lower: BodyVoxels, *, origin: np.ndarray, normal: np.ndarray
) -> tuple[float, float]:
    """Positions (mm along ``normal`` from ``origin``) of the upper body's lower endplate and the lower
    body's upper endplate, from voxel centres (robust percentiles of the central voxels)."""
    upper_t = _central_positions(upper, origin=origin, direction=normal)
    lower_t = _central_positions(lower, origin=origin, direction=normal)
    return float(np.percentile(upper_t, ENDPLATE_PERCENTILE)), float(np.percentile(lower_t, 100 - ENDPLATE_PERCENTILE))


def lower_endplate(body: BodyVoxels, *, origin: np.ndarray, normal: np.ndarray) -> float:
    """Position (mm along ``normal`` from ``origin``) of the body's lower endplate (voxel centres)."""
    return float(np.percentile(_central_positions(body, origin=origin, direction=normal), ENDPLATE_PERCENTILE))


def voxel_extent_mm(voxel_matrix: np.ndarray, direction: np.ndarray) -> float:
    """Length of one voxel's projection onto ``direction`` (mm)."""
    return float(np.sum(np.abs(direction @ voxel_matrix)))


def discs_between(
    names: list[str],
    bodies: list[BodyVoxels],
    kinds: list[str],
    confidences: list[float],
    *,
    next_name: dict[str, str],
) -> tuple[list[DiscGeometry], list[np.ndarray]]:
    """Discs between consecutive named bodies (given cranial to caudal), plus each body's height axis.

    ``next_name`` maps a vertebra to the one below (``"L5" -> "S1"``); bodies whose names are not
    consecutive (a gap in the labels) get no disc between them. An L5 without a sacrum below gets an
    estimated L5/S1 disc.
    """
    n = len(bodies)
    centroids = [b.centroid for b in bodies]
    # spine axis at each body: from the neighbours' centroids (central difference), cranial
    spine_axes = []
    for i in range(n):
        above = centroids[i - 1] if i > 0 else centroids[i]
        below = centroids[i + 1] if i + 1 < n else centroids[i]
        axis = unit(above - below) if n > 1 else np.array([0.0, 0.0, 1.0])
        spine_axes.append(axis)
    axes = [height_axis(b, spine_axes[i]) if kinds[i] == "body" else spine_axes[i] for i, b in enumerate(bodies)]
    discs: list[DiscGeometry] = []
    gaps: list[float] = []
    for i in range(n - 1):
        if next_name.get(names[i]) != names[i + 1]:
            continue
        upper, lower = bodies[i], bodies[i + 1]
        line = unit(centroids[i] - centroids[i + 1])
        if kinds[i + 1] == "sacrum":
            normal = axes[i]
            origin = centroids[i]
        else:
            normal = unit(axes[i] + axes[i + 1])
            origin = (centroids[i] + centroids[i + 1]) / 2
        if float(normal @ line) <= 0:
            normal = line
        top, bottom = facing_endplates(upper, lower, origin=origin, normal=normal)
        gap = top - bottom
        gaps.append(gap)
        extent = voxel_extent_mm(upper.voxel_matrix, normal)
        discs.append(
            DiscGeometry(
                name=f"{names[i]}/{names[i + 1]}",
                centre_mm=_vec(origin + normal * (top + bottom) / 2),
                normal=_vec(normal),
                confidence=min(confidences[i], confidences[i + 1]),
                height_mm=max(gap - extent, 0.0),
            )
        )
    if n and names[-1] == "L5" and kinds[-1] == "body":
        discs.append(_estimated_l5_s1(bodies[-1], axes[-1], gaps, confidence=confidences[-1]))
    return discs, axes


def _estimated_l5_s1(l5: BodyVoxels, axis: np.ndarray, gaps: list[float], *, confidence: float) -> DiscGeometry:
    origin = l5.centroid
    extent = voxel_extent_mm(l5.voxel_matrix, axis)
    gap = float(np.mean(gaps)) if gaps else DEFAULT_DISC_HEIGHT_MM + extent
    bottom = lower_endplate(l5, origin=origin, normal=axis)
    return DiscGeometry(
        name="L5/S1",
        centre_mm=_vec(origin + axis * (bottom - gap / 2)),
        normal=_vec(axis),
        confidence=confidence,
        estimated=True,
        height_mm=max(gap - extent, 0.0),
    )


def disc_plane(points_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre (mm) and cranial unit normal of a disc from its voxels: the centroid, and the principal
    axis of least variance (a disc is flat), signed towards world +z (superior)."""
    centre = points_mm.mean(axis=0)
    centred = points_mm - centre
    _values, vectors = np.linalg.eigh(centred.T @ centred / max(len(points_mm), 1))
    normal = vectors[:, 0]
    return centre, (normal if normal[2] >= 0 else -normal)


def _vec(values: np.ndarray) -> Vector:
    return (float(values[0]), float(values[1]), float(values[2]))
