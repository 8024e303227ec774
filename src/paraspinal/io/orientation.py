"""Where the axial slices are, and which way the patient faces, read from the affine alone.

All functions take the RAS+ affine of an :class:`~paraspinal.io.image.Image`. The axial slice
axis is the voxel axis whose direction is closest to the patient's superior-inferior axis, so
measurements are identical for RAS, LPS, flipped or permuted storage orders.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from paraspinal.io.image import Image


@dataclass(frozen=True)
class AxialFrame:
    """The axial slicing of an image grid.

    Attributes:
        slice_axis: voxel axis (0, 1 or 2) that steps from slice to slice.
        n_slices: number of axial slices.
        pixel_area_mm2: area of one voxel's face in the slice plane (mm²), exact for oblique grids.
        slice_spacing_mm: distance between neighbouring slice planes (mm).
        tilt_deg: angle between the slice-plane normal and the patient's S axis (degrees).
        axis_codes: nibabel-style axis codes, e.g. ``("L", "P", "S")``: the direction each voxel axis runs to.
    """

    slice_axis: int
    n_slices: int
    pixel_area_mm2: float
    slice_spacing_mm: float
    tilt_deg: float
    axis_codes: tuple[str, str, str]


def axis_codes(affine: np.ndarray) -> tuple[str, str, str]:
    """Direction each voxel axis runs towards, as patient letters (R/L, A/P, S/I)."""
    import nibabel as nib

    return tuple(nib.aff2axcodes(affine))  # type: ignore[return-value]


def slice_axis(affine: np.ndarray) -> int:
    """The voxel axis best aligned with the patient's superior-inferior (world z) direction."""
    directions = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    return int(np.argmax(np.abs(directions[2])))


def axial_frame(image: Image) -> AxialFrame:
    """Describe the axial slicing of ``image``'s grid (see :class:`AxialFrame`)."""
    m = image.affine[:3, :3]
    axis = slice_axis(image.affine)
    in_plane = [a for a in range(3) if a != axis]
    normal = np.cross(m[:, in_plane[0]], m[:, in_plane[1]])
    pixel_area = float(np.linalg.norm(normal))
    spacing = float(abs(np.linalg.det(m)) / pixel_area)
    cos_tilt = abs(normal[2]) / pixel_area
    tilt = float(np.degrees(np.arccos(np.clip(cos_tilt, -1.0, 1.0))))
    return AxialFrame(
        slice_axis=axis,
        n_slices=image.shape[axis],
        pixel_area_mm2=pixel_area,
        slice_spacing_mm=spacing,
        tilt_deg=tilt,
        axis_codes=axis_codes(image.affine),
    )


def slice_positions_mm(image: Image, *, axis: int | None = None) -> np.ndarray:
    """World S coordinate (mm) of each axial slice's centre, in slice-index order."""
    axis = slice_axis(image.affine) if axis is None else axis
    n = image.shape[axis]
    centre = (np.asarray(image.shape, dtype=np.float64) - 1.0) / 2.0
    ijk = np.tile(centre, (n, 1))
    ijk[:, axis] = np.arange(n)
    return ijk @ image.affine[:3, :3].T[:, 2] + image.affine[2, 3]


def world_x_mm(image: Image, voxel_indices: np.ndarray) -> np.ndarray:
    """World x (RAS+: larger is further to the patient's right) of voxels given as (N, 3) indices."""
    return voxel_indices @ image.affine[0, :3] + image.affine[0, 3]
