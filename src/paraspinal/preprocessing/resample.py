"""In-plane resampling on pixel-area-aligned grids (the field of view is kept; centres are not pinned)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def resize_inplane(array: np.ndarray, *, shape_xy: tuple[int, int], order: int) -> np.ndarray:
    """Resample the first two axes of ``array`` to ``shape_xy``, keeping the field of view.

    Pixel ``u`` of the output samples input position ``(u + 0.5) * n_in / n_out - 0.5`` (pixel
    areas aligned, as ``align_corners=False``); edges are extended. ``order`` 0 = nearest (labels),
    1 = linear (images, probabilities). Trailing axes (slices, channels) are left alone.
    """
    if tuple(array.shape[:2]) == tuple(shape_xy):
        return array
    zoom = [shape_xy[0] / array.shape[0], shape_xy[1] / array.shape[1]] + [1.0] * (array.ndim - 2)
    return ndimage.zoom(array, zoom, order=order, mode="nearest", grid_mode=True, prefilter=False)


def inplane_shape_for_spacing(
    shape_xy: tuple[int, int], *, spacing_mm: tuple[float, float], target_spacing_mm: tuple[float, float]
) -> tuple[int, int]:
    """Grid size that covers the same field of view at (about) ``target_spacing_mm``."""
    return tuple(  # type: ignore[return-value]
        max(1, round(n * s / t)) for n, s, t in zip(shape_xy, spacing_mm, target_spacing_mm, strict=True)
    )
