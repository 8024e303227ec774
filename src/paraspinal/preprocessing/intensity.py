"""Intensity normalisation robust to contrast (water, fat, T1, T2) and the body's bounding box."""

from __future__ import annotations

import numpy as np


def percentile_scale(
    array: np.ndarray, *, lower_percentile: float = 0.5, upper_percentile: float = 99.5, clip: bool = True
) -> np.ndarray:
    """Map the volume's ``lower_percentile`` to 0 and ``upper_percentile`` to 1 (float32).

    Percentiles are taken over the whole volume, so the scaling depends on this image only (no
    dataset statistics). A constant image maps to zeros. ``clip`` limits the result to [0, 1].
    """
    if not 0.0 <= lower_percentile < upper_percentile <= 100.0:
        raise ValueError("need 0 <= lower_percentile < upper_percentile <= 100")
    values = np.asarray(array, dtype=np.float32)
    low, high = np.percentile(values, [lower_percentile, upper_percentile])
    if not high > low:
        return np.zeros(values.shape, dtype=np.float32)
    scaled = (values - np.float32(low)) * np.float32(1.0 / (high - low))
    if clip:
        np.clip(scaled, 0.0, 1.0, out=scaled)
    return scaled.astype(np.float32, copy=False)


def foreground_box(
    scaled: np.ndarray, *, threshold: float = 0.05, margin_px: int = 16, axes: tuple[int, int] = (0, 1)
) -> tuple[slice, slice]:
    """Bounding box (over all slices) of voxels above ``threshold`` in the two in-plane ``axes``.

    ``scaled`` is a volume normalised to [0, 1] (see :func:`percentile_scale`); MRI background is
    dark in every contrast, so the box holds the body. Widened by ``margin_px`` on each side and
    clipped to the grid; the whole plane when nothing passes the threshold.
    """
    other = tuple(a for a in range(scaled.ndim) if a not in axes)
    projection = np.max(scaled, axis=other) > threshold if other else scaled > threshold
    if axes[0] > axes[1]:
        projection = projection.T
    box: list[slice] = []
    for axis, size in zip((1, 0), (scaled.shape[axes[0]], scaled.shape[axes[1]]), strict=True):
        hits = np.flatnonzero(np.any(projection, axis=axis))
        if hits.size == 0:
            return slice(0, scaled.shape[axes[0]]), slice(0, scaled.shape[axes[1]])
        box.append(slice(max(int(hits[0]) - margin_px, 0), min(int(hits[-1]) + 1 + margin_px, size)))
    return box[0], box[1]
