"""In-plane resampling on pixel-area-aligned grids (the field of view is kept; centres are not pinned)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def resize_inplane(array: np.ndarray, *, shape_xy: tuple[int, int], order: int) -> np.ndarray:
    """Resample the first two axes of ``array`` to ``shape_xy``, keeping the field of view.

    Pixel ``u`` of the output samples input position ``(u + 0.5) * n_in / n_out - 0.5`` (pixel
    areas aligned, as ``align_corners=False``); edges are extended. ``order`` 0 = nearest (labels),
    1 = linear (images, probabilities). Trailing axes (slices, channels) are left alone.
    Linear resampling is done one axis at a time (same values as ``ndimage.zoom`` with ``order=1``,
    which interpolates across the trailing axes too and is several times slower on 4-D arrays).
    """
    if tuple(array.shape[:2]) == tuple(shape_xy):
        return array
    if order == 1 and np.issubdtype(array.dtype, np.floating):
        return _linear_along(_linear_along(array, axis=0, n_out=shape_xy[0]), axis=1, n_out=shape_xy[1])
    zoom = [shape_xy[0] / array.shape[0], shape_xy[1] / array.shape[1]] + [1.0] * (array.ndim - 2)
    return ndimage.zoom(array, zoom, order=order, mode="nearest", grid_mode=True, prefilter=False)


def _linear_along(array: np.ndarray, *, axis: int, n_out: int) -> np.ndarray:
    """Linear resampling of one axis to ``n_out`` samples on the pixel-area-aligned grid (edges extended)."""
    n_in = array.shape[axis]
    if n_in == n_out:
        return array
    position = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0, n_in - 1)
    low = np.floor(position).astype(np.intp)
    high = np.minimum(low + 1, n_in - 1)
    shape = [1] * array.ndim
    shape[axis] = n_out
    weight = (position - low).astype(array.dtype).reshape(shape)
    below = np.take(array, low, axis=axis)
    return below + (np.take(array, high, axis=axis) - below) * weight


def inplane_shape_for_spacing(
    shape_xy: tuple[int, int], *, spacing_mm: tuple[float, float], target_spacing_mm: tuple[float, float]
) -> tuple[int, int]:
    """Grid size that covers the same field of view at (about) ``target_spacing_mm``."""
    return tuple(  # type: ignore[return-value]
        max(1, round(n * s / t)) for n, s, t in zip(shape_xy, spacing_mm, target_spacing_mm, strict=True)
    )
