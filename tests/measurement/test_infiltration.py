"""Fat-infiltration thresholds recover known fat shares on synthetic muscles."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture

from paraspinal.measurement.infiltration import (
    MAX_FIT_SAMPLES,
    METHODS,
    Infiltration,
    fat_share,
    infiltration,
    threshold,
    xu_thresholds,
)

SINGLE = ("otsu", "kmeans2", "kmeans3", "gmm2", "gmm3")


def mixture(parts: list[tuple[int, float, float]], seed: int) -> np.ndarray:
    """Shuffled concatenation of normal samples ``(count, mean, sd)``."""
    rng = np.random.default_rng(seed)
    values = np.concatenate([rng.normal(mu, sd, n) for n, mu, sd in parts])
    return rng.permutation(values)


@pytest.fixture(scope="module")
def bimodal() -> np.ndarray:
    """70% lean N(200, 15) + 30% fat N(600, 30); more voxels than MAX_FIT_SAMPLES, so fits subsample."""
    n = 2 * MAX_FIT_SAMPLES
    return mixture([(int(0.7 * n), 200.0, 15.0), (int(0.3 * n), 600.0, 30.0)], seed=1)


@pytest.fixture(scope="module")
def trimodal() -> np.ndarray:
    """50% lean N(200, 15), 30% partial N(420, 20), 20% fat N(700, 30)."""
    return mixture([(10_000, 200.0, 15.0), (6_000, 420.0, 20.0), (4_000, 700.0, 30.0)], seed=2)


@pytest.mark.parametrize("method", ["otsu", "kmeans2", "gmm2"])
def test_two_class_methods_recover_fat_share(bimodal: np.ndarray, method: str) -> None:
    t = threshold(bimodal, method=method)
    assert 200.0 < t < 600.0
    assert fat_share(bimodal, threshold=t) == pytest.approx(0.30, abs=0.01)


@pytest.mark.parametrize("method", ["kmeans3", "gmm3"])
def test_three_class_methods_isolate_brightest_class(trimodal: np.ndarray, method: str) -> None:
    t = threshold(trimodal, method=method)
    assert 420.0 < t < 700.0
    assert fat_share(trimodal, threshold=t) == pytest.approx(0.20, abs=0.01)


@pytest.mark.parametrize("method", ["kmeans2", "gmm2"])
def test_two_class_methods_lump_partial_with_fat(trimodal: np.ndarray, method: str) -> None:
    # With only two classes the partial-volume class must go to one side: the share is 0.2 or 0.5.
    share = fat_share(trimodal, threshold=threshold(trimodal, method=method))
    assert min(abs(share - 0.2), abs(share - 0.5)) < 0.02


def test_infiltration_share_is_fraction_above_threshold(bimodal: np.ndarray, trimodal: np.ndarray) -> None:
    result = infiltration({"bi": bimodal, "tri": trimodal})
    assert list(result) == [(g, m) for g in ("bi", "tri") for m in METHODS]
    for (group, method), r in result.items():
        values = bimodal if group == "bi" else trimodal
        assert isinstance(r, Infiltration) and r.method == method
        assert r.n_voxels == values.size
        assert r.fat_share == np.mean(values > r.threshold)
        assert not r.replaced


@pytest.mark.parametrize("k", [2, 3])
def test_gmm_threshold_matches_component_assignment(trimodal: np.ndarray, k: int) -> None:
    # Below MAX_FIT_SAMPLES the fit sees all voxels, so sklearn's own assignment is comparable.
    values = trimodal[:5_000]
    t = threshold(values, method=f"gmm{k}")
    gm = GaussianMixture(n_components=k, max_iter=200, random_state=0).fit(values.reshape(-1, 1))
    labels = gm.predict(values.reshape(-1, 1))
    predicted = np.mean(labels == np.argmax(gm.means_[:, 0]))
    assert abs(fat_share(values, threshold=t) - predicted) <= 1.0 / values.size


def test_xu_rule_replaces_only_the_outlier() -> None:
    otsu = {("ES", i): t for i, t in enumerate([398.0, 401.0, 399.0, 402.0, 400.0, 397.0, 403.0])}
    otsu[("MF", "L")] = 900.0
    otsu[("PS", "R")] = float("nan")  # too small to threshold: passed through, ignored by the statistics
    out = xu_thresholds(otsu)
    assert out[("MF", "L")] == (pytest.approx(400.0), True)
    assert math.isnan(out[("PS", "R")][0]) and not out[("PS", "R")][1]
    for key, t in otsu.items():
        if key[0] == "ES":
            assert out[key] == (t, False)


def test_xu_rule_cannot_trigger_with_five_muscles() -> None:
    # One outlier among n has |z| <= (n - 1) / sqrt(n) = 1.79 < 1.96 for n = 5.
    out = xu_thresholds(dict(enumerate([400.0, 400.0, 400.0, 400.0, 900.0])))
    assert not any(replaced for _, replaced in out.values())


def test_otsu_xu_rescues_a_muscle_without_fat() -> None:
    # Seven fatty muscles and one lean-only muscle whose Otsu threshold splits the lean peak. The
    # Otsu criterion is flat across the empty gap between modes and skimage takes its low end, so
    # the fatty muscles' thresholds sit just above the lean tail, not at the midpoint 400.
    groups = {i: mixture([(4_000, 200.0, 20.0), (4_000, 600.0, 20.0)], seed=10 + i) for i in range(7)}
    groups["lean"] = mixture([(8_000, 200.0, 20.0)], seed=99)
    result = infiltration(groups, methods=("otsu", "otsu_xu"))
    others = [result[(i, "otsu")].threshold for i in range(7)]
    assert all(250.0 < t < 400.0 for t in others)
    assert abs(result[("lean", "otsu")].threshold - 200.0) < 10.0

    lean_otsu, lean_xu = result[("lean", "otsu")], result[("lean", "otsu_xu")]
    assert lean_otsu.fat_share > 0.3  # plain Otsu calls a big part of a lean muscle fat
    assert lean_xu.replaced
    assert lean_xu.threshold == pytest.approx(np.mean(others), rel=1e-12)
    assert lean_xu.fat_share < 0.001
    for i in range(7):
        assert result[(i, "otsu_xu")] == Infiltration("otsu_xu", others[i], result[(i, "otsu")].fat_share, 8_000, False)


def test_deterministic_given_seed(bimodal: np.ndarray, trimodal: np.ndarray) -> None:
    groups = {("ES", "L"): bimodal, ("ES", "R"): trimodal}
    assert infiltration(groups, seed=3) == infiltration(groups, seed=3)
    for method in SINGLE:
        assert threshold(trimodal, method=method, seed=5) == threshold(trimodal, method=method, seed=5)


def test_integer_input_is_not_truncated() -> None:
    values = np.array([100] * 30 + [201] * 20)
    assert threshold(values, method="kmeans2") == 150.5
    assert fat_share(values, threshold=150.5) == 0.4


@pytest.mark.parametrize(
    "values",
    [np.array([]), np.array([1.0, 2.0, 900.0, 5.0]), np.full(500, 321.0)],
    ids=["empty", "tiny", "constant"],
)
def test_degenerate_input_gives_nan_quietly(values: np.ndarray) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for method in SINGLE:
            assert math.isnan(threshold(values, method=method))
        result = infiltration({"m": values})
    for r in result.values():
        assert math.isnan(r.threshold) and math.isnan(r.fat_share)
        assert r.n_voxels == values.size and not r.replaced


def test_too_few_distinct_values_for_three_classes() -> None:
    values = np.repeat([100.0, 300.0], 50)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(threshold(values, method="kmeans3"))
        assert math.isnan(threshold(values, method="gmm3"))
        assert threshold(values, method="kmeans2") == 200.0


def test_nan_input_rejected() -> None:
    values = np.r_[np.linspace(0.0, 1.0, 50), np.nan]
    with pytest.raises(ValueError, match="NaN"):
        threshold(values, method="otsu")
    with pytest.raises(ValueError, match="NaN"):
        fat_share(values, threshold=0.5)
    with pytest.raises(ValueError, match="NaN"):
        infiltration({"m": values})


def test_unknown_method_rejected() -> None:
    values = np.linspace(0.0, 1.0, 50)
    with pytest.raises(ValueError, match="valid methods: otsu, kmeans2"):
        threshold(values, method="triangle")
    with pytest.raises(ValueError, match="valid methods: otsu, otsu_xu, kmeans2"):
        infiltration({"m": values}, methods=("otsu", "kmeans4"))
    with pytest.raises(ValueError, match="xu_thresholds"):
        threshold(values, method="otsu_xu")
