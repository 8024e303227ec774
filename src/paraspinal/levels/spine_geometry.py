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
2. The facing *endplates* are fitted as planes: across ``d``, the body is cut into columns
   (:data:`ENDPLATE_COLUMN_MM` wide, at least one voxel); in each column within
   :data:`ENDPLATE_CENTRAL_SHARE` of the body's radius (rims and osteophytes left out) the voxel
   furthest along ``d`` (upper endplate) or against it (lower endplate) is a surface point (ties
   averaged), and a plane is fitted to those points by least squares (points further than
   :data:`ENDPLATE_OUTLIER_MADS` robust deviations dropped once). On a voxel staircase the fit is
   good to about 1 degree.
3. The disc normal is the normalised mean of the two endplates' normals: the mid-plane of a
   wedge-shaped lordotic disc. (A body's principal axes or ``d`` alone are several degrees off on
   real spines: ``d`` follows the curve of the column, not the endplates.)
4. Along the line through the midpoint of the centroids with that direction, the facing endplates
   are the 1st percentile (upper body) and 99th percentile (lower body) of the bodies' *central*
   voxels' positions along the normal (central: within half the body's RMS radius of that line).
   The disc centre is midway between them.

A body's own axis is the normalised mean of its two endplates' normals (the local spine axis from its
neighbours' centroids as ``d``). Below the lowest body the sacrum plays the lower body's part when it
is labelled (its upper surface is S1's endplate). When it is not and the lowest body is L5, the L5/S1
disc is **estimated**: its normal is L5's lower endplate's turned on by the L4/L5 disc's wedge angle
(:func:`estimated_l5_s1_normal`), its centre half the mean disc height seen above (centre-to-centre
of the facing endplate voxels) below L5's lower endplate; with no disc above,
:data:`DEFAULT_DISC_HEIGHT_MM` is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.spatial.transform import Rotation

ENDPLATE_COLUMN_MM = 2.0
ENDPLATE_CENTRAL_SHARE = 0.7
ENDPLATE_OUTLIER_MADS = 3.0
ENDPLATE_MAX_TILT_DEG = 45.0  # a fitted endplate further than this from the local spine axis is not trusted
_MIN_ENDPLATE_COLUMNS = 6
MAX_WEDGE_DEG = 25.0  # an L4/L5 wedge beyond this is a segmentation problem: not extrapolated to L5/S1
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
        axis: unit height axis pointing cranial: the mean of its two endplates' normals (see module
            docstring); the spine axis for the sacrum.
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


def endplate_normal(body: BodyVoxels, *, direction: np.ndarray, side: Literal["upper", "lower"]) -> np.ndarray:
    """Cranial unit normal of the body's ``side`` endplate, a plane fitted to its surface voxels (see
    the module docstring); ``direction`` (unit, cranial) when too few columns or the fit tilts more
    than :data:`ENDPLATE_MAX_TILT_DEG` from it."""
    e1, e2 = _across(direction)
    rel = body.points_mm - body.centroid
    t, u, w = rel @ direction, rel @ e1, rel @ e2
    radius = float(np.sqrt(2.0 * np.mean(u**2 + w**2)))  # a uniform disc's RMS radius is its radius / sqrt(2)
    central = np.hypot(u, w) <= ENDPLATE_CENTRAL_SHARE * radius
    t, u, w = t[central], u[central], w[central]
    width_u = max(ENDPLATE_COLUMN_MM, voxel_extent_mm(body.voxel_matrix, e1))
    width_w = max(ENDPLATE_COLUMN_MM, voxel_extent_mm(body.voxel_matrix, e2))
    iu = np.floor(u / width_u).astype(np.int64)
    iw = np.floor(w / width_w).astype(np.int64)
    iu -= iu.min(initial=0)
    iw -= iw.min(initial=0)
    _, column = np.unique(iu * (int(iw.max(initial=0)) + 1) + iw, return_inverse=True)
    column = column.ravel()
    n_columns = int(column.max()) + 1 if column.size else 0
    if n_columns < _MIN_ENDPLATE_COLUMNS:
        return direction
    # each column's surface: its extreme height, at the mean position of the voxels reaching it (a tie
    # broken towards one side would tilt the fit on a voxel staircase)
    heights = np.full(n_columns, -np.inf if side == "upper" else np.inf)
    (np.maximum if side == "upper" else np.minimum).at(heights, column, t)
    on = np.abs(t - heights[column]) <= 1e-6
    count = np.bincount(column[on], minlength=n_columns)
    design = np.column_stack(
        [
            np.bincount(column[on], weights=u[on], minlength=n_columns) / count,
            np.bincount(column[on], weights=w[on], minlength=n_columns) / count,
            np.ones(n_columns),
        ]
    )
    coef = np.linalg.lstsq(design, heights, rcond=None)[0]
    residual = heights - design @ coef
    spread = 1.4826 * float(np.median(np.abs(residual - np.median(residual))))
    keep = np.abs(residual) <= ENDPLATE_OUTLIER_MADS * spread if spread > 0 else np.ones(n_columns, dtype=bool)
    if int(keep.sum()) >= _MIN_ENDPLATE_COLUMNS:
        coef = np.linalg.lstsq(design[keep], heights[keep], rcond=None)[0]
    normal = unit(direction - coef[0] * e1 - coef[1] * e2)
    if float(normal @ direction) < np.cos(np.radians(ENDPLATE_MAX_TILT_DEG)):
        return direction
    return normal


def body_axis(body: BodyVoxels, spine_axis: np.ndarray) -> np.ndarray:
    """The body's height axis: the normalised mean of its upper and lower endplates' normals (cranial)."""
    return unit(
        endplate_normal(body, direction=spine_axis, side="upper")
        + endplate_normal(body, direction=spine_axis, side="lower")
    )


def _across(direction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors perpendicular to ``direction`` and to each other."""
    helper = np.array([1.0, 0.0, 0.0]) if abs(direction[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    first = unit(np.cross(direction, helper))
    return first, np.cross(direction, first)


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
    axes = [body_axis(b, spine_axes[i]) if kinds[i] == "body" else spine_axes[i] for i, b in enumerate(bodies)]
    discs: list[DiscGeometry] = []
    gaps: list[float] = []
    for i in range(n - 1):
        if next_name.get(names[i]) != names[i + 1]:
            continue
        upper, lower = bodies[i], bodies[i + 1]
        line = unit(centroids[i] - centroids[i + 1])
        normal = unit(
            endplate_normal(upper, direction=line, side="lower") + endplate_normal(lower, direction=line, side="upper")
        )
        # a sacrum's centroid lies wherever its labelled part ends: the disc is placed from the body above
        origin = centroids[i] if kinds[i + 1] == "sacrum" else (centroids[i] + centroids[i + 1]) / 2
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
        above = bodies[-2] if n > 1 and names[-2] == "L4" and kinds[-2] == "body" else None
        normal = estimated_l5_s1_normal(bodies[-1], above, spine_axis=spine_axes[-1])
        discs.append(_estimated_l5_s1(bodies[-1], normal, gaps, spine_axis=spine_axes[-1], confidence=confidences[-1]))
    return discs, axes


def estimated_l5_s1_normal(l5: BodyVoxels, l4: BodyVoxels | None, *, spine_axis: np.ndarray) -> np.ndarray:
    """Normal of an L5/S1 disc without a sacrum: L5's lower endplate turned on by the L4/L5 disc's wedge
    (the rotation from L4's lower to L5's upper endplate; at most :data:`MAX_WEDGE_DEG`): the L5/S1
    disc is the most wedge-shaped, so its mid-plane lies about that far beyond L5's lower endplate.
    Without L4, L5's lower endplate itself."""
    lower = endplate_normal(l5, direction=spine_axis, side="lower")
    if l4 is None:
        return lower
    line = unit(l4.centroid - l5.centroid)
    l4_lower = endplate_normal(l4, direction=line, side="lower")
    l5_upper = endplate_normal(l5, direction=line, side="upper")
    cross = np.cross(l4_lower, l5_upper)
    angle = float(np.arctan2(np.linalg.norm(cross), float(l4_lower @ l5_upper)))  # the wedge (radians)
    if angle > np.radians(MAX_WEDGE_DEG):
        return lower
    return unit(Rotation.from_rotvec(unit(cross) * angle).apply(lower))


def _estimated_l5_s1(
    l5: BodyVoxels, normal: np.ndarray, gaps: list[float], *, spine_axis: np.ndarray, confidence: float
) -> DiscGeometry:
    """The L5/S1 disc below an L5 without a sacrum: centre half a disc height below L5's lower endplate,
    along that endplate's normal; plane normal ``normal``."""
    origin = l5.centroid
    below = endplate_normal(l5, direction=spine_axis, side="lower")
    extent = voxel_extent_mm(l5.voxel_matrix, below)
    gap = float(np.mean(gaps)) if gaps else DEFAULT_DISC_HEIGHT_MM + extent
    bottom = lower_endplate(l5, origin=origin, normal=below)
    return DiscGeometry(
        name="L5/S1",
        centre_mm=_vec(origin + below * (bottom - gap / 2)),
        normal=_vec(normal),
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
