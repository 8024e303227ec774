"""Display planes for QC images, oriented from the affine alone (radiological convention).

A :class:`PlaneView` cuts one voxel plane out of a 3-D array and turns it so that the patient is
shown the way radiologists read images, whatever the storage order (RAS, LPS, flipped, permuted):

* axial: anterior at the top, the patient's **right on the viewer's left**;
* coronal: superior at the top, the patient's right on the viewer's left;
* sagittal: superior at the top, anterior on the viewer's left.

Which way each voxel axis points comes from the RAS+ affine (``+x`` = patient right), never from
array indices. Display coordinates are millimetres from the top-left corner of the (cropped)
plane, so pixels keep their true aspect ratio.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from paraspinal.io.image import Image
from paraspinal.io.orientation import slice_axis

Plane = Literal["axial", "coronal", "sagittal"]

# world axis (0 = x, 1 = y, 2 = z) and the sign that display rows/columns advance along
# (e.g. axial columns run towards -x: from the patient's right to their left).
_LAYOUT: dict[str, tuple[tuple[int, int], tuple[int, int], tuple[str, str], tuple[str, str]]] = {
    # plane: ((row world axis, sign), (column world axis, sign), (top, bottom) letters, (left, right) letters)
    "axial": ((1, -1), (0, -1), ("A", "P"), ("R", "L")),
    "coronal": ((2, -1), (0, -1), ("S", "I"), ("R", "L")),
    "sagittal": ((2, -1), (1, -1), ("S", "I"), ("A", "P")),
}
_FIXED_WORLD_AXIS = {"axial": 2, "coronal": 1, "sagittal": 0}


@dataclass(frozen=True)
class PlaneView:
    """One displayed plane of a 3-D grid.

    Attributes:
        plane: ``axial``, ``coronal`` or ``sagittal``.
        fixed_axis: voxel axis held constant; ``index`` its value.
        row_axis, col_axis: voxel axes shown as display rows (top to bottom) and columns (left to right).
        flip_rows, flip_cols: whether those voxel axes run backwards on screen.
        row_spacing_mm, col_spacing_mm: pixel size on screen (mm).
        rows, cols: the voxel ranges shown (after flipping), as display index slices.
        edge_letters: patient directions at the (top, bottom, left, right) edges, e.g. ``("A", "P", "R", "L")``.
    """

    plane: Plane
    fixed_axis: int
    index: int
    row_axis: int
    col_axis: int
    flip_rows: bool
    flip_cols: bool
    row_spacing_mm: float
    col_spacing_mm: float
    rows: slice
    cols: slice
    edge_letters: tuple[str, str, str, str]
    row_voxels: int
    col_voxels: int

    def take(self, array: np.ndarray) -> np.ndarray:
        """The displayed 2-D plane of a 3-D array on this grid (rows top to bottom, columns left to right).

        Returns a view where possible: the plane is cut, turned and cropped by indexing alone.
        """
        index: list[int | slice] = [slice(None)] * 3
        index[self.fixed_axis] = self.index
        plane = array[tuple(index)]
        remaining = [a for a in range(3) if a != self.fixed_axis]
        if remaining.index(self.row_axis) != 0:
            plane = plane.T
        if self.flip_rows:
            plane = plane[::-1, :]
        if self.flip_cols:
            plane = plane[:, ::-1]
        return plane[self.rows, self.cols]

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows.stop - self.rows.start, self.cols.stop - self.cols.start)

    @property
    def extent_mm(self) -> tuple[float, float, float, float]:
        """``(left, right, bottom, top)`` for matplotlib's ``imshow(..., origin="upper")``."""
        n_rows, n_cols = self.shape
        return (0.0, n_cols * self.col_spacing_mm, n_rows * self.row_spacing_mm, 0.0)

    def row_mm(self, voxel_index: float) -> float:
        """Display row coordinate (mm from the top) of the centre of voxel ``voxel_index`` along ``row_axis``."""
        row = (self.row_voxels - 1 - voxel_index) if self.flip_rows else voxel_index
        return (row - self.rows.start + 0.5) * self.row_spacing_mm

    def col_mm(self, voxel_index: float) -> float:
        """Display column coordinate (mm from the left) of voxel ``voxel_index`` along ``col_axis``."""
        col = (self.col_voxels - 1 - voxel_index) if self.flip_cols else voxel_index
        return (col - self.cols.start + 0.5) * self.col_spacing_mm


def plane_axes(affine: np.ndarray) -> dict[str, int]:
    """The voxel axis held fixed for each plane: the axial one is the slice axis, then x, then y."""
    axial = slice_axis(affine)
    directions = np.abs(affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0))
    rest = [a for a in range(3) if a != axial]
    sagittal = max(rest, key=lambda a: directions[0, a])
    coronal = next(a for a in rest if a != sagittal)
    return {"axial": axial, "sagittal": sagittal, "coronal": coronal}


def plane_view(
    image: Image,
    plane: Plane,
    index: int,
    *,
    crop: tuple[slice, slice] | None = None,
) -> PlaneView:
    """The view of ``plane`` through voxel ``index`` of its fixed axis (see module docstring).

    ``crop`` limits the displayed rows and columns (display index slices, as from :func:`crop_box`).
    """
    fixed = plane_axes(image.affine)[plane]
    n = image.shape[fixed]
    if not 0 <= index < n:
        raise ValueError(f"{plane} index {index} is outside 0..{n - 1}")
    (row_world, row_sign), (col_world, col_sign), (top, bottom), (left, right) = _LAYOUT[plane]
    m = image.affine[:3, :3]
    remaining = [a for a in range(3) if a != fixed]
    row_axis = max(remaining, key=lambda a: abs(m[row_world, a]) / np.linalg.norm(m[:, a]))
    col_axis = next(a for a in remaining if a != row_axis)
    spacing = image.spacing_mm
    flip_rows = bool(np.sign(m[row_world, row_axis]) != row_sign)
    flip_cols = bool(np.sign(m[col_world, col_axis]) != col_sign)
    full_rows, full_cols = slice(0, image.shape[row_axis]), slice(0, image.shape[col_axis])
    rows, cols = crop if crop is not None else (full_rows, full_cols)
    return PlaneView(
        plane=plane,
        fixed_axis=fixed,
        index=int(index),
        row_axis=row_axis,
        col_axis=col_axis,
        flip_rows=flip_rows,
        flip_cols=flip_cols,
        row_spacing_mm=spacing[row_axis],
        col_spacing_mm=spacing[col_axis],
        rows=_clip(rows, full_rows.stop),
        cols=_clip(cols, full_cols.stop),
        edge_letters=(top, bottom, left, right),
        row_voxels=full_rows.stop,
        col_voxels=full_cols.stop,
    )


def crop_box(labels: Image, plane: Plane, *, margin_mm: float = 35.0) -> tuple[slice, slice] | None:
    """Display rows/columns around all labelled voxels of ``plane`` views, with ``margin_mm`` around them.

    The box is the labels' extent projected onto the plane, so every slice of that plane shares it.
    Returns None when the label map is empty.
    """
    view = plane_view(labels, plane, 0)
    projected = np.any(labels.array > 0, axis=view.fixed_axis)
    if not projected.any():
        return None
    remaining = [a for a in range(3) if a != view.fixed_axis]
    if remaining.index(view.row_axis) != 0:
        projected = projected.T
    if view.flip_rows:
        projected = projected[::-1, :]
    if view.flip_cols:
        projected = projected[:, ::-1]
    rows_any, cols_any = np.flatnonzero(projected.any(axis=1)), np.flatnonzero(projected.any(axis=0))
    pad_rows = int(np.ceil(margin_mm / view.row_spacing_mm))
    pad_cols = int(np.ceil(margin_mm / view.col_spacing_mm))
    return (
        slice(max(int(rows_any[0]) - pad_rows, 0), min(int(rows_any[-1]) + 1 + pad_rows, projected.shape[0])),
        slice(max(int(cols_any[0]) - pad_cols, 0), min(int(cols_any[-1]) + 1 + pad_cols, projected.shape[1])),
    )


def can_contour(plane: np.ndarray) -> bool:
    """True when matplotlib can draw contours of ``plane``: it needs at least 2 rows and 2 columns (a
    sagittal reformat of a single-slice stack is 1 voxel tall)."""
    return plane.ndim == 2 and min(plane.shape) >= 2


def display_window(values: np.ndarray, *, low_pct: float = 1.0, high_pct: float = 99.5) -> tuple[float, float]:
    """Grey-level window (image units) from percentiles of the non-zero voxels (robust to a few hot pixels).

    Large images are subsampled regularly (at most about 250 000 voxels), which gives the same window.
    """
    flat = np.ravel(values)
    step = max(flat.size // 250_000, 1)
    sample = flat[::step].astype(np.float64, copy=False)
    sample = sample[np.isfinite(sample)]
    nonzero = sample[sample != 0]
    sample = nonzero if nonzero.size else sample
    if sample.size == 0:
        return 0.0, 1.0
    low, high = (float(v) for v in np.percentile(sample, [low_pct, high_pct]))
    return (low, high) if high > low else (low, low + 1.0)


def _clip(index: slice, n: int) -> slice:
    start = 0 if index.start is None else max(int(index.start), 0)
    stop = n if index.stop is None else min(int(index.stop), n)
    return slice(start, max(stop, start + 1))
