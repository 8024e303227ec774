"""Fat-infiltration thresholds on T1/T2-weighted intensities inside one muscle.

Intramuscular fat is bright on T1- and T2-weighted MRI. Each method picks an intensity threshold from
the voxels of one muscle; the fat share is the fraction of voxels with intensity strictly above it.

Conventions:

* Values are 1-D intensities (image units), handled as float64; NaN or infinite values are rejected
  with ``ValueError``.
* Fewer than :data:`MIN_VOXELS` voxels, or too few distinct values for the method, give a NaN
  threshold and a NaN share (no exception, no warning).
* k-means and Gaussian mixtures are fitted on at most :data:`MAX_FIT_SAMPLES` values drawn without
  replacement by ``np.random.default_rng(seed)``; the resulting threshold then classifies every voxel.
  Results are deterministic for a given ``seed``; no global random state is touched.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import cache
from typing import TypeVar

import numpy as np
from scipy.optimize import brentq
from skimage.filters import threshold_otsu
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from threadpoolctl import ThreadpoolController

from paraspinal.measurement.infiltration_methods import METHODS

__all__ = [
    "MAX_FIT_SAMPLES",
    "METHODS",
    "MIN_VOXELS",
    "Infiltration",
    "fat_share",
    "infiltration",
    "threshold",
    "xu_thresholds",
]

K = TypeVar("K", bound=Hashable)

MIN_VOXELS = 10
MAX_FIT_SAMPLES = 10_000
_KMEANS_N_INIT = 3
_GRID_POINTS = 2049


@dataclass(frozen=True)
class Infiltration:
    """Fat-infiltration result of one method on one muscle.

    ``threshold`` is in image intensity units; ``fat_share`` is the fraction in [0, 1] of the
    ``n_voxels`` voxels with intensity > ``threshold`` (both NaN when undefined). ``replaced`` is set
    only by ``otsu_xu`` when the muscle's Otsu threshold was replaced by the other muscles' mean.
    """

    method: str
    threshold: float
    fat_share: float
    n_voxels: int
    replaced: bool = False


@cache
def _threadpools() -> ThreadpoolController:
    return ThreadpoolController()


def _single_threaded() -> AbstractContextManager[object]:
    """One OpenMP/BLAS thread: the fits are too small to gain from threads, and lose 2x to their overhead."""
    return _threadpools().limit(limits=1)


def _check_method(method: str, valid: Sequence[str]) -> None:
    if method not in valid:
        raise ValueError(f"unknown fat-infiltration method {method!r}; valid methods: {', '.join(valid)}")


def _as_values(values: np.ndarray) -> np.ndarray:
    """Return ``values`` as a 1-D float64 array, rejecting NaN and infinite intensities."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"intensities must be a 1-D array, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("intensities contain NaN or infinite values")
    return arr


def _degenerate(values: np.ndarray) -> bool:
    return values.size < MIN_VOXELS or values.min() == values.max()


def _fit_sample(values: np.ndarray, seed: int) -> np.ndarray:
    """Deterministic subsample (without replacement) of at most MAX_FIT_SAMPLES values, as a column."""
    if values.size > MAX_FIT_SAMPLES:
        rng = np.random.default_rng(seed)
        values = values[rng.choice(values.size, MAX_FIT_SAMPLES, replace=False)]
    return values.reshape(-1, 1)


def _otsu(values: np.ndarray) -> float:
    return float(threshold_otsu(values))


def _kmeans(values: np.ndarray, k: int, seed: int) -> float:
    """Midpoint between the brightest k-means centre and the next brightest (the 1-D cluster boundary)."""
    sample = _fit_sample(values, seed)
    if np.unique(sample).size < k:
        return float("nan")
    km = KMeans(n_clusters=k, n_init=_KMEANS_N_INIT, random_state=seed).fit(sample)
    centres = np.sort(km.cluster_centers_[:, 0])
    return float((centres[-1] + centres[-2]) / 2.0)


def _gmm(values: np.ndarray, k: int, seed: int) -> float:
    """Lower edge of the uppermost intensity range where the highest-mean component is most probable.

    The weighted log-densities are compared on a grid over the data range and the crossing is refined
    by root finding. If the brightest component also wins in a disjoint low-intensity tail (possible
    when it is the widest), that tail is not counted as fat: the fat class is everything above the
    boundary, so the share is exactly the fraction of values > threshold.
    """
    sample = _fit_sample(values, seed)
    if np.unique(sample).size < k:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm = GaussianMixture(n_components=k, max_iter=200, random_state=seed).fit(sample)
    means = gm.means_[:, 0]
    variances = gm.covariances_.reshape(k)
    log_norm = np.log(gm.weights_) - 0.5 * np.log(2.0 * np.pi * variances)
    bright = int(np.argmax(means))
    others = np.arange(k) != bright

    def margin(x: np.ndarray | float) -> np.ndarray:
        logp = log_norm - (np.asarray(x, dtype=np.float64)[..., None] - means) ** 2 / (2.0 * variances)
        return logp[..., bright] - logp[..., others].max(axis=-1)

    lo, hi = float(values.min()), float(values.max())
    grid = np.linspace(lo, hi, _GRID_POINTS)
    wins = margin(grid) >= 0.0
    if not wins.any():
        return hi  # the brightest component is never the most probable: no fat
    last = int(np.flatnonzero(wins)[-1])
    losing_below = np.flatnonzero(~wins[:last])
    if losing_below.size == 0:
        return lo  # brightest wins from the data minimum upwards
    a, b = grid[losing_below[-1]], grid[losing_below[-1] + 1]
    return float(brentq(lambda x: float(margin(x)), a, b, xtol=1e-9 * max(hi - lo, 1.0)))


_SINGLE = {
    "otsu": lambda v, seed: _otsu(v),
    "kmeans2": lambda v, seed: _kmeans(v, 2, seed),
    "kmeans3": lambda v, seed: _kmeans(v, 3, seed),
    "gmm2": lambda v, seed: _gmm(v, 2, seed),
    "gmm3": lambda v, seed: _gmm(v, 3, seed),
}


def threshold(values: np.ndarray, *, method: str, seed: int = 0) -> float:
    """Fat threshold of one muscle by a single-muscle method (every method except ``otsu_xu``).

    Returns NaN for fewer than MIN_VOXELS voxels, constant intensities, or fewer distinct values than
    the method's classes. ``seed`` drives the k-means/GMM subsample and initialisation.
    """
    if method == "otsu_xu":
        raise ValueError("'otsu_xu' needs all muscles of a case; use xu_thresholds() or infiltration()")
    _check_method(method, tuple(_SINGLE))
    arr = _as_values(values)
    if _degenerate(arr):
        return float("nan")
    with _single_threaded():
        return _SINGLE[method](arr, seed)


def fat_share(values: np.ndarray, *, threshold: float) -> float:
    """Fraction of voxels with intensity strictly above ``threshold``; NaN if it is NaN or no voxels."""
    arr = _as_values(values)
    if arr.size == 0 or np.isnan(threshold):
        return float("nan")
    return float(np.count_nonzero(arr > threshold) / arr.size)


def xu_thresholds(otsu_by_group: Mapping[K, float], *, n_sd: float = 1.96) -> dict[K, tuple[float, bool]]:
    """Xu et al.'s rule: replace outlying per-muscle Otsu thresholds by the others' mean.

    Mean and SD (sample SD, ddof=1) are taken over the finite thresholds of all groups. A threshold
    outside mean ± ``n_sd``·SD is replaced by the mean of the OTHER groups' finite thresholds (itself
    excluded). Returns ``{group: (threshold, replaced)}``; NaN thresholds stay NaN, unreplaced.

    With n thresholds, one outlier's z-score is at most (n-1)/sqrt(n), so at n_sd = 1.96 the rule can
    only trigger for n >= 6 groups.
    """
    finite = {g: float(t) for g, t in otsu_by_group.items() if np.isfinite(t)}
    result = {g: (float(t), False) for g, t in otsu_by_group.items()}
    if len(finite) < 3:
        return result
    vals = np.fromiter(finite.values(), dtype=np.float64)
    mean, sd = float(vals.mean()), float(vals.std(ddof=1))
    total, n = float(vals.sum()), vals.size
    for g, t in finite.items():
        if abs(t - mean) > n_sd * sd:
            result[g] = ((total - t) / (n - 1), True)
    return result


def infiltration(
    values_by_group: Mapping[K, np.ndarray], *, methods: Sequence[str] = METHODS, seed: int = 0
) -> dict[tuple[K, str], Infiltration]:
    """Fat infiltration of every group (muscle) by every method, keyed ``(group, method)``.

    ``otsu_xu`` applies :func:`xu_thresholds` across all groups given here. Insertion order is groups
    outer, methods inner.
    """
    for m in methods:
        _check_method(m, METHODS)
    arrays = {g: _as_values(v) for g, v in values_by_group.items()}
    ok = {g: not _degenerate(v) for g, v in arrays.items()}
    otsu: dict[K, float] = {}
    if "otsu" in methods or "otsu_xu" in methods:
        otsu = {g: _otsu(v) if ok[g] else float("nan") for g, v in arrays.items()}
    xu = xu_thresholds(otsu) if "otsu_xu" in methods else {}

    out: dict[tuple[K, str], Infiltration] = {}
    with _single_threaded():
        for g, v in arrays.items():
            for m in dict.fromkeys(methods):
                replaced = False
                if m == "otsu":
                    t = otsu[g]
                elif m == "otsu_xu":
                    t, replaced = xu[g]
                else:
                    t = _SINGLE[m](v, seed) if ok[g] else float("nan")
                share = fat_share(v, threshold=t) if ok[g] else float("nan")
                out[(g, m)] = Infiltration(m, t, share, int(v.size), replaced)
    return out
