"""Geometry of a DICOM image stack: plane, slice order, spacing checks and the RAS+ affine.

Conventions
-----------
* Inputs are DICOM patient coordinates (LPS+, mm): ``ImagePositionPatient`` of each slice and the
  shared ``ImageOrientationPatient`` (row direction, then column direction).
* The voxel array of a stack is indexed ``(column, row, slice)``: ``i`` runs along the row direction
  (``PixelSpacing[1]`` apart), ``j`` along the column direction (``PixelSpacing[0]`` apart) and ``k``
  along the slice normal ``row x column``, slices sorted by increasing position along it (as ITK does).
* Affines returned here are RAS+ (x and y of LPS negated), like every :class:`~paraspinal.io.image.Image`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
OBLIQUE_ABOVE_DEG = 30.0
_PLANES = ("sagittal", "coronal", "axial")  # normal mostly along LPS x, y, z
_ORIENTATION_TOLERANCE = 1e-3  # direction cosines, as written with limited DS precision


@dataclass(frozen=True)
class StackGeometry:
    """Where the slices of one stack lie and whether they form a regular grid.

    Attributes:
        order: indices of the input slices, sorted along the slice normal.
        positions_mm: position of each sorted slice along the normal (mm).
        affine: RAS+ voxel-to-world affine of the regular grid (mean slice step); None when the stack
            has no usable geometry.
        plane: ``axial``, ``sagittal``, ``coronal``, ``oblique``, ``mixed`` (several orientations,
            e.g. a localizer) or ``unknown`` (no orientation stored).
        tilt_deg: angle between the slice normal and the nearest patient axis (degrees).
        slice_spacing_mm: median distance between neighbouring slices (mm); None for a single slice.
        problems: reasons the stack cannot be read as one volume (missing slices, duplicates, ...).
        uneven: description of uneven slice spacing (readable only after resampling), or None.
    """

    order: tuple[int, ...]
    positions_mm: np.ndarray
    affine: np.ndarray | None
    plane: str
    tilt_deg: float
    slice_spacing_mm: float | None
    problems: tuple[str, ...]
    uneven: str | None


def plane_of(orientation: np.ndarray, *, oblique_above_deg: float = OBLIQUE_ABOVE_DEG) -> tuple[str, float]:
    """Plane of a slice from its 6 direction cosines, and its tilt from that plane (degrees).

    The plane is the one whose normal (patient x: sagittal, y: coronal, z: axial) is closest to the
    slice normal; a slice tilted more than ``oblique_above_deg`` from every plane is ``oblique``.
    """
    normal = _unit(np.cross(orientation[:3], orientation[3:]))
    axis = int(np.argmax(np.abs(normal)))
    tilt = float(np.degrees(np.arccos(np.clip(abs(normal[axis]), 0.0, 1.0))))
    return ("oblique" if tilt > oblique_above_deg else _PLANES[axis]), tilt


def analyse_stack(
    *,
    positions: np.ndarray,
    orientations: np.ndarray,
    pixel_spacings: np.ndarray,
    sizes: np.ndarray,
    single_slice_mm: float | None = None,
    tolerance_fraction: float = 0.01,
    tolerance_floor_mm: float = 0.01,
) -> StackGeometry:
    """Sort slices along their normal and check they form a regular grid.

    Args:
        positions: ``(n, 3)`` ImagePositionPatient of each slice (LPS mm); NaN rows when missing.
        orientations: ``(n, 6)`` ImageOrientationPatient of each slice; NaN rows when missing.
        pixel_spacings: ``(n, 2)`` PixelSpacing (row spacing, column spacing) in mm.
        sizes: ``(n, 2)`` (Rows, Columns).
        single_slice_mm: slice step for a one-slice stack (SpacingBetweenSlices or SliceThickness).
        tolerance_fraction, tolerance_floor_mm: a gap differs from the median spacing when it is off
            by more than ``max(tolerance_floor_mm, tolerance_fraction * spacing)``.
    """
    n = len(positions)
    if not np.all(np.isfinite(orientations)) or not np.all(np.isfinite(positions)):
        return _unusable(n, "unknown", "no ImagePositionPatient/ImageOrientationPatient: not placed in patient space")
    if np.max(np.abs(orientations - orientations[0])) > _ORIENTATION_TOLERANCE:
        return _unusable(n, "mixed", "slices have different orientations (a localizer?)")
    problems: list[str] = []
    if np.any(sizes != sizes[0]):
        problems.append("slices differ in size (Rows x Columns)")
    if not np.all(np.isfinite(pixel_spacings)):
        return _unusable(n, plane_of(orientations[0])[0], "no PixelSpacing")
    if np.max(np.abs(pixel_spacings - pixel_spacings[0])) > 1e-4:
        problems.append("slices differ in pixel spacing")
    orientation = orientations[0]
    plane, tilt = plane_of(orientation)
    row, col = _unit(orientation[:3]), _unit(orientation[3:])
    normal = _unit(np.cross(row, col))
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    sorted_along = along[order]
    gaps = np.diff(sorted_along)
    spacing = float(np.median(gaps)) if n > 1 else None
    uneven = None
    if n > 1 and spacing is not None:
        tolerance = max(tolerance_floor_mm, tolerance_fraction * spacing)
        duplicates = int(np.count_nonzero(gaps <= tolerance))
        if spacing <= tolerance or duplicates:
            problems.append(
                f"{duplicates} slice position(s) hold more than one image (several echoes, image types "
                "or time points in one series?)"
            )
        else:
            missing, uneven = _gap_problems(gaps, sorted_along, spacing=spacing, tolerance=tolerance)
            problems.extend(missing)
    step = _slice_step(positions[order], normal, spacing=spacing, single_slice_mm=single_slice_mm)
    spacing_rc = pixel_spacings[0]
    lps = np.eye(4)
    lps[:3, 0] = row * spacing_rc[1]
    lps[:3, 1] = col * spacing_rc[0]
    lps[:3, 2] = step
    lps[:3, 3] = positions[order[0]]
    return StackGeometry(
        order=tuple(int(i) for i in order),
        positions_mm=sorted_along,
        affine=LPS_TO_RAS @ lps,
        plane=plane,
        tilt_deg=tilt,
        slice_spacing_mm=spacing,
        problems=tuple(problems),
        uneven=uneven,
    )


def resample_slices(
    volume: np.ndarray, geometry: StackGeometry, *, interpolation: str
) -> tuple[np.ndarray, np.ndarray, str]:
    """Resample an unevenly spaced stack onto regular slices at its median spacing.

    ``volume`` is indexed ``(i, j, k)`` with ``k`` in ``geometry.order``. ``interpolation`` is
    ``linear`` (images; float64 output) or ``nearest`` (label maps; dtype kept). Returns the new
    volume, its RAS+ affine and a one-line note saying what was done.
    """
    if geometry.slice_spacing_mm is None or geometry.affine is None:
        raise ValueError("a stack without slice spacing cannot be resampled")
    if interpolation not in ("linear", "nearest"):
        raise ValueError(f"interpolation must be 'linear' or 'nearest', not {interpolation!r}")
    along = geometry.positions_mm
    spacing = geometry.slice_spacing_mm
    n_out = round((along[-1] - along[0]) / spacing) + 1
    targets = along[0] + spacing * np.arange(n_out)
    upper = np.clip(np.searchsorted(along, targets, side="right"), 1, len(along) - 1)
    lower = upper - 1
    weight = np.clip((targets - along[lower]) / (along[upper] - along[lower]), 0.0, 1.0)
    if interpolation == "nearest":
        pick = np.where(weight < 0.5, lower, upper)
        out = volume[:, :, pick]
    else:
        low = volume[:, :, lower].astype(np.float64)
        high = volume[:, :, upper].astype(np.float64)
        out = low * (1.0 - weight) + high * weight
    affine = geometry.affine.copy()
    direction = affine[:3, 2] / np.linalg.norm(affine[:3, 2])
    normal = _unit(np.cross(affine[:3, 0], affine[:3, 1]))
    affine[:3, 2] = direction * spacing / abs(float(direction @ normal))
    gaps = np.diff(along)
    note = (
        f"uneven slice spacing (gaps {gaps.min():.4g} to {gaps.max():.4g} mm) resampled to {n_out} slices "
        f"{spacing:.4g} mm apart ({interpolation} interpolation)"
    )
    return np.ascontiguousarray(out), affine, note


def _gap_problems(
    gaps: np.ndarray, along: np.ndarray, *, spacing: float, tolerance: float
) -> tuple[list[str], str | None]:
    """Missing slices (gaps of whole multiples of the spacing) and uneven spacing (any other misfit)."""
    steps = np.rint(gaps / spacing).astype(int)
    whole = np.abs(gaps - steps * spacing) <= tolerance * np.maximum(steps, 1)
    missing_at = np.flatnonzero((steps >= 2) & whole)
    problems: list[str] = []
    if missing_at.size:
        total = int(np.sum(steps[missing_at] - 1))
        where = ", ".join(f"{gaps[i]:.4g} mm after slice {i + 1} at {along[i]:.4g} mm" for i in missing_at[:3]) + (
            ", ..." if missing_at.size > 3 else ""
        )
        problems.append(
            f"{total} missing slice(s) in a stack spaced {spacing:.4g} mm (gap of {where}); export the complete series"
        )
    off = np.abs(gaps - spacing) > tolerance
    off[missing_at] = False
    uneven = None
    if np.any(off):
        regular = np.delete(gaps, missing_at)
        uneven = f"uneven slice spacing: gaps {regular.min():.4g} to {regular.max():.4g} mm (median {spacing:.4g} mm)"
    return problems, uneven


def _slice_step(
    sorted_positions: np.ndarray, normal: np.ndarray, *, spacing: float | None, single_slice_mm: float | None
) -> np.ndarray:
    """Mean step between sorted slices (LPS mm); keeps any shear of the stack exactly."""
    if len(sorted_positions) > 1 and spacing:
        travel = sorted_positions[-1] - sorted_positions[0]
        return travel / max(round(float(travel @ normal) / spacing), 1)
    return normal * (single_slice_mm if single_slice_mm and single_slice_mm > 0 else 1.0)


def _unusable(n: int, plane: str, problem: str) -> StackGeometry:
    return StackGeometry(
        order=tuple(range(n)),
        positions_mm=np.full(n, np.nan),
        affine=None,
        plane=plane,
        tilt_deg=float("nan"),
        slice_spacing_mm=None,
        problems=(problem,),
        uneven=None,
    )


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector
