"""Per-(region, slice) sums from which every additive measurement is derived.

Cross-sectional area, volume, both Dixon fat-fraction definitions and threshold fat shares are
all ratios of sums over voxels, so one pass builds ``(n_regions + 1, n_slices)`` matrices and every
slice, level, side-combined and whole-structure value is a sum over rows and columns of them.
Row 0 is unused (region indices start at 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SliceSums:
    """Sums per region (row) and axial slice (column).

    Attributes:
        voxels: labelled voxel counts.
        fat: sum of fat signal; ``None`` without Dixon images.
        fat_plus_water: sum of fat + water signal.
        ratio: sum over voxels of F/(F+W), for voxels with F+W > 0.
        ratio_voxels: number of voxels with F+W > 0.
    """

    voxels: np.ndarray
    fat: np.ndarray | None = None
    fat_plus_water: np.ndarray | None = None
    ratio: np.ndarray | None = None
    ratio_voxels: np.ndarray | None = None


def _grid_sum(key: np.ndarray, size: int, shape: tuple[int, int], weights: np.ndarray | None = None) -> np.ndarray:
    return np.bincount(key, weights=weights, minlength=size).reshape(shape)


def slice_sums(
    region: np.ndarray,
    slice_index: np.ndarray,
    *,
    n_regions: int,
    n_slices: int,
    fat: np.ndarray | None = None,
    water: np.ndarray | None = None,
) -> SliceSums:
    """Build :class:`SliceSums` from per-voxel region ids, slices and (optional) Dixon signals."""
    shape = (n_regions + 1, n_slices)
    size = shape[0] * shape[1]
    key = region * n_slices + slice_index
    voxels = _grid_sum(key, size, shape).astype(np.int64)
    if fat is None or water is None:
        return SliceSums(voxels=voxels)
    total = fat + water
    valid = total > 0
    ratio = np.zeros_like(total)
    np.divide(fat, total, out=ratio, where=valid)
    return SliceSums(
        voxels=voxels,
        fat=_grid_sum(key, size, shape, fat),
        fat_plus_water=_grid_sum(key, size, shape, total),
        ratio=_grid_sum(key, size, shape, ratio),
        ratio_voxels=_grid_sum(key, size, shape, valid.astype(np.float64)),
    )


def safe_ratio(numerator: np.ndarray | float, denominator: np.ndarray | float) -> np.ndarray:
    """numerator / denominator, NaN where the denominator is not positive."""
    num = np.asarray(numerator, dtype=np.float64)
    den = np.asarray(denominator, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out
