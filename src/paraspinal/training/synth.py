"""Contrasts synthesised from a case's channels (e.g. Dixon water and fat), so one model meets T1, T2,
in-phase and opposed-phase images it was never shown.

Two kinds, in the spirit of SynthSeg but without new labels:

- **mix**: ``|sum_c w_c x_c|`` with random weights in [-1, 1] (water + fat ~ in-phase, |water - fat| ~
  opposed-phase, mostly fat ~ T1, ...);
- **tissue**: each unsupervised tissue class (k-means on the channels, :func:`tissue_classes`) gets a random
  mean and spread, smoothed for partial volume and blended with a random mix to keep some texture.

Either way the manual labels are untouched (the anatomy is the same) and the result is rescaled to [0, 1]
by its 0.5/99.5 percentiles, as inference scales a volume. ``through_plane_weight`` blends a slice with
its two neighbours (a thicker slice's partial volume). Randomness comes from the caller's ``Generator``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from paraspinal.preprocessing.intensity import percentile_scale


@dataclass(frozen=True)
class SynthSource:
    """One case's prepared channels ``(C, nx, ny, n_slices)`` float32 and tissue classes ``(nx, ny, n_slices)``."""

    channels: np.ndarray
    tissue: np.ndarray

    @property
    def n_tissues(self) -> int:
        return int(self.tissue.max()) + 1


def tissue_classes(channels: np.ndarray, *, n_classes: int, seed: int, sample_voxels: int = 50_000) -> np.ndarray:
    """Unsupervised tissue classes ``(nx, ny, n_slices)`` uint8 of a ``(C, nx, ny, n_slices)`` stack:
    k-means on the voxels' channel values (fit on ``sample_voxels`` random voxels), classes sorted by
    their mean intensity over the channels so the numbering is stable."""
    from sklearn.cluster import KMeans

    values = channels.reshape(channels.shape[0], -1).T.astype(np.float32)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(values), size=min(sample_voxels, len(values)), replace=False)
    km = KMeans(n_clusters=n_classes, n_init=3, random_state=seed).fit(values[pick])
    order = np.argsort(np.argsort(km.cluster_centers_.mean(axis=1)))
    return order[km.predict(values)].astype(np.uint8).reshape(channels.shape[1:])


@dataclass(frozen=True)
class _Recipe:
    weights: np.ndarray  # (C,) channel mix
    means: np.ndarray | None  # (K,) tissue intensities, None = a plain mix
    spreads: np.ndarray | None
    texture: float
    smooth_px: float


def _recipe(n_channels: int, n_tissues: int, *, rng: np.random.Generator, mix_fraction: float) -> _Recipe:
    weights = rng.uniform(-1.0, 1.0, size=n_channels)
    if np.abs(weights).max() < 0.2:
        weights[int(rng.integers(n_channels))] = 1.0
    if rng.random() < mix_fraction:
        return _Recipe(weights, None, None, 1.0, 0.0)
    return _Recipe(
        weights,
        rng.uniform(0.0, 1.0, size=n_tissues),
        rng.uniform(0.0, 0.08, size=n_tissues),
        float(rng.uniform(0.0, 0.4)),
        float(rng.uniform(0.3, 1.2)),
    )


def _render(source: SynthSource, k: int, recipe: _Recipe, rng: np.random.Generator) -> np.ndarray:
    mix = np.abs(np.tensordot(recipe.weights, source.channels[:, :, :, k], axes=1))
    if recipe.means is None or recipe.spreads is None:
        return mix
    tissue = source.tissue[:, :, k]
    x = recipe.means[tissue] + recipe.spreads[tissue] * rng.standard_normal(tissue.shape)
    x = ndimage.gaussian_filter(x, sigma=recipe.smooth_px)
    scale = float(np.percentile(mix, 99.5)) or 1.0
    return (1.0 - recipe.texture) * x + recipe.texture * mix / scale


def synthesise_slice(
    source: SynthSource,
    k: int,
    *,
    rng: np.random.Generator,
    mix_fraction: float,
    through_plane_weight: float = 0.0,
) -> np.ndarray:
    """A synthesised contrast ``(nx, ny)`` of slice ``k``, in [0, 1] (see the module docstring)."""
    recipe = _recipe(source.channels.shape[0], source.n_tissues, rng=rng, mix_fraction=mix_fraction)
    x = _render(source, k, recipe, rng)
    if through_plane_weight > 0.0:
        n = source.tissue.shape[2]
        below, above = (_render(source, min(max(j, 0), n - 1), recipe, rng) for j in (k - 1, k + 1))
        x = through_plane_slice(np.stack([below, x, above], axis=2), 1, weight=through_plane_weight)
    return np.maximum(percentile_scale(x, clip=False), 0.0)


def through_plane_slice(volume: np.ndarray, k: int, *, weight: float) -> np.ndarray:
    """Slice ``k`` of ``(nx, ny, n_slices)`` blended with its neighbours (edge slices repeated): a thicker slice."""
    n = volume.shape[2]
    below, above = volume[:, :, max(k - 1, 0)], volume[:, :, min(k + 1, n - 1)]
    return ((1.0 - weight) * volume[:, :, k] + 0.5 * weight * (below + above)).astype(np.float32)
