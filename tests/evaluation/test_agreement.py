"""Agreement statistics against published and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from paraspinal.evaluation.agreement import (
    agreement_statistics,
    bland_altman,
    classification_agreement,
    classification_agreement_from_counts,
    correlations,
    error_metrics,
    icc,
    tost_paired,
)
from paraspinal.evaluation.measurement_agreement import agreement_table, pair_measurements

# Shrout & Fleiss (1979), Table 2: 6 targets rated by 4 judges.
SHROUT_FLEISS = np.array(
    [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]], dtype=float
)

AUTO = np.array([10.0, 12.0, 11.0, 13.0, 9.0])
MANUAL = np.array([10.5, 11.5, 11.0, 12.0, 9.5])  # differences -0.5, 0.5, 0, 1, -0.5


def test_icc_reproduces_shrout_fleiss_table() -> None:
    # Published (Shrout & Fleiss 1979, Table 4): ICC(1,1)=.17, ICC(2,1)=.29, ICC(3,1)=.71.
    assert round(icc(SHROUT_FLEISS, kind="1,1").value, 2) == 0.17
    res21 = icc(SHROUT_FLEISS, kind="2,1")
    res31 = icc(SHROUT_FLEISS, kind="3,1")
    assert round(res21.value, 2) == 0.29
    assert round(res31.value, 2) == 0.71
    # Their ANOVA: BMS 11.24, EMS 1.02 -> F = 11.03 on (5, 15) df
    assert res31.f_value == pytest.approx(11.027, abs=1e-3)
    assert (res31.df1, res31.df2) == (5.0, 15.0)
    assert res31.p_value == pytest.approx(stats.f.sf(res31.f_value, 5, 15))
    assert (res21.n_targets, res21.n_raters) == (6, 4)


def test_icc21_interval_matches_shrout_fleiss_closed_form() -> None:
    """The ICC(2,1) interval, recomputed here with Shrout & Fleiss' own form of the df formula."""
    x, n, k = SHROUT_FLEISS, 6, 4
    grand = x.mean()
    msr = k * np.sum((x.mean(axis=1) - grand) ** 2) / (n - 1)
    msc = n * np.sum((x.mean(axis=0) - grand) ** 2) / (k - 1)
    mse = (np.sum((x - grand) ** 2) - msr * (n - 1) - msc * (k - 1)) / ((n - 1) * (k - 1))
    rho = (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)
    fj = msc / mse
    v = (
        (n - 1)
        * (k - 1)
        * (k * rho * fj + n * (1 + (k - 1) * rho) - k * rho) ** 2
        / ((n - 1) * k**2 * rho**2 * fj**2 + (n * (1 + (k - 1) * rho) - k * rho) ** 2)
    )
    f1, f2 = stats.f.ppf(0.975, n - 1, v), stats.f.ppf(0.975, v, n - 1)
    low = n * (msr - f1 * mse) / (f1 * (k * msc + (k * n - k - n) * mse) + n * msr)
    high = n * (f2 * msr - mse) / (k * msc + (k * n - k - n) * mse + n * f2 * msr)
    res = icc(x, kind="2,1")
    assert res.value == pytest.approx(rho)
    assert (res.ci_low, res.ci_high) == pytest.approx((low, high))
    assert res.ci_low < res.value < res.ci_high


def test_icc31_interval_by_hand_and_confidence_level() -> None:
    f_val, df1, df2, k = 11.027247956403299, 5, 15, 4
    fl = f_val / stats.f.ppf(0.975, df1, df2)
    fu = f_val * stats.f.ppf(0.975, df2, df1)
    res = icc(SHROUT_FLEISS, kind="3,1")
    assert res.ci_low == pytest.approx((fl - 1) / (fl + k - 1))
    assert res.ci_high == pytest.approx((fu - 1) / (fu + k - 1))
    narrow = icc(SHROUT_FLEISS, kind="3,1", confidence=0.80)
    assert res.ci_low < narrow.ci_low < narrow.ci_high < res.ci_high


@pytest.mark.filterwarnings("ignore:The inplace keyword")
def test_icc_agrees_with_pingouin_when_installed() -> None:
    pg = pytest.importorskip("pingouin")
    long = pd.DataFrame(
        [(t, j, SHROUT_FLEISS[t, j]) for t in range(6) for j in range(4)], columns=["target", "judge", "score"]
    )
    table = pg.intraclass_corr(long, targets="target", raters="judge", ratings="score").set_index("Type")
    for kind, name in (("2,1", "ICC(A,1)"), ("3,1", "ICC(C,1)")):
        ours = icc(SHROUT_FLEISS, kind=kind)
        assert ours.value == pytest.approx(float(table.loc[name, "ICC"]))
        assert np.allclose([ours.ci_low, ours.ci_high], table.loc[name, "CI95"], atol=0.006)  # pingouin rounds


def test_icc_degenerate_tables_give_nan_or_one() -> None:
    assert math.isnan(icc(np.ones((5, 2))).value)  # no variance at all
    assert math.isnan(icc(np.array([[1.0, 2.0]])).value)  # one target
    perfect = icc(np.array([[1.0, 1.0], [2.0, 2.0], [4.0, 4.0]]))
    assert (perfect.value, perfect.ci_low, perfect.ci_high) == (1.0, 1.0, 1.0)
    with_nan = icc(np.vstack([SHROUT_FLEISS, [np.nan, 1, 2, 3]]), kind="3,1")
    assert with_nan.n_targets == 6 and with_nan.value == pytest.approx(icc(SHROUT_FLEISS, kind="3,1").value)
    with pytest.raises(ValueError, match="kind"):
        icc(SHROUT_FLEISS, kind="2,k")  # type: ignore[arg-type]


def test_error_metrics_by_hand() -> None:
    out = error_metrics(AUTO, MANUAL)
    assert out["n"] == 5
    assert out["mae"] == pytest.approx(2.5 / 5)
    assert out["mse"] == pytest.approx(1.75 / 5)
    assert out["rmse"] == pytest.approx(math.sqrt(0.35))
    assert out["mape_pct"] == pytest.approx(100 / 5 * (0.5 / 10.5 + 0.5 / 11.5 + 0 + 1 / 12 + 0.5 / 9.5))
    # manual zeros are left out of MAPE only; NaN pairs are dropped everywhere
    out = error_metrics([1.0, 2.0, np.nan], [0.0, 4.0, 3.0])
    assert out["n"] == 2 and out["mape_pct"] == pytest.approx(50.0) and out["mae"] == pytest.approx(1.5)


def test_bland_altman_by_hand() -> None:
    ba = bland_altman(AUTO, MANUAL)
    # bias 0.1; deviations -0.6, 0.4, -0.1, 0.9, -0.6 -> SD = sqrt(1.7 / 4)
    sd = math.sqrt(1.7 / 4)
    assert ba.n == 5
    assert ba.bias == pytest.approx(0.1)
    assert ba.sd == pytest.approx(sd)
    assert (ba.loa_low, ba.loa_high) == pytest.approx((0.1 - 1.96 * sd, 0.1 + 1.96 * sd))
    assert ba.means == pytest.approx([10.25, 11.75, 11.0, 12.5, 9.25])
    assert ba.differences == pytest.approx([-0.5, 0.5, 0.0, 1.0, -0.5])
    single = bland_altman([1.0], [2.0])
    assert single.bias == -1.0 and math.isnan(single.sd) and math.isnan(single.loa_high)


def test_tost_matches_hand_computed_t_tests() -> None:
    sd = math.sqrt(1.7 / 4)
    se = sd / math.sqrt(5)
    t_low, t_high = (0.1 + 1.0) / se, (0.1 - 1.0) / se
    p_low, p_high = stats.t.sf(t_low, 4), stats.t.cdf(t_high, 4)
    res = tost_paired(AUTO, MANUAL, margin=1.0)
    assert res.t_lower == pytest.approx(t_low) and res.t_upper == pytest.approx(t_high)
    assert res.p_lower == pytest.approx(p_low) and res.p_upper == pytest.approx(p_high)
    assert res.p_value == pytest.approx(max(p_low, p_high))
    assert res.equivalent  # p = 0.018 < 0.05
    narrow = tost_paired(AUTO, MANUAL, margin=0.5)
    assert not narrow.equivalent and narrow.p_value > 0.05
    # same data through statsmodels directly
    from statsmodels.stats.weightstats import ttost_paired

    assert res.p_value == pytest.approx(ttost_paired(AUTO, MANUAL, -1.0, 1.0)[0])


def test_tost_degenerate_inputs() -> None:
    same = tost_paired([1.0, 2.0, 3.0], [0.5, 1.5, 2.5], margin=1.0)  # constant difference 0.5
    assert same.equivalent and same.p_value == 0.0
    outside = tost_paired([1.0, 2.0, 3.0], [0.0, 1.0, 2.0], margin=0.5)
    assert not outside.equivalent and outside.p_value == 1.0
    assert math.isnan(tost_paired([1.0], [1.0], margin=1.0).p_value)
    assert math.isnan(tost_paired(AUTO, MANUAL, margin=0.0).p_value)


def test_correlations_against_scipy() -> None:
    out = correlations(AUTO, MANUAL)
    assert out["pearson_r"] == pytest.approx(stats.pearsonr(AUTO, MANUAL).statistic)
    assert out["spearman_rho"] == pytest.approx(1.0)  # same ranks
    assert math.isnan(correlations([1.0, 2.0], [1.0, 3.0])["pearson_r"])  # fewer than 3 pairs
    assert math.isnan(correlations([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])["spearman_rho"])  # no variance


def test_kappa_and_rates_from_a_hand_2x2_table() -> None:
    # ref+ / ref-: pred+ 20 (TP) 5 (FP); pred- 10 (FN) 15 (TN)
    res = classification_agreement_from_counts(tp=20, fp=5, fn=10, tn=15)
    # p_o = 35/50 = .7; p_e = (25*30 + 25*20)/50^2 = .5; kappa = (.7 - .5)/(1 - .5) = .4
    assert res.kappa == pytest.approx(0.4)
    assert res.recall == pytest.approx(20 / 30)
    assert res.specificity == pytest.approx(15 / 20)
    assert res.precision == pytest.approx(20 / 25)
    assert res.f1 == pytest.approx(2 * 20 / (2 * 20 + 5 + 10))
    assert res.accuracy == pytest.approx(0.7)


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_classification_on_arrays_matches_sklearn(seed: int) -> None:
    from sklearn.metrics import cohen_kappa_score, precision_recall_fscore_support, recall_score

    rng = np.random.default_rng(seed)
    ref = rng.random((6, 7, 5)) > rng.uniform(0.3, 0.8)
    pred = ref ^ (rng.random(ref.shape) > rng.uniform(0.7, 0.95))
    res = classification_agreement(pred, ref)
    r, p = ref.ravel(), pred.ravel()
    precision, recall, f1, _ = precision_recall_fscore_support(r, p, average="binary")
    assert res.kappa == pytest.approx(cohen_kappa_score(r, p))
    assert (res.precision, res.recall, res.f1) == pytest.approx((precision, recall, f1))
    assert res.specificity == pytest.approx(recall_score(r, p, pos_label=False))
    assert res.tp + res.fp + res.fn + res.tn == ref.size


def test_classification_degenerate_tables() -> None:
    all_negative = classification_agreement_from_counts(tp=0, fp=0, fn=0, tn=15)
    assert math.isnan(all_negative.kappa) and math.isnan(all_negative.recall)
    assert all_negative.specificity == 1.0
    assert math.isnan(classification_agreement_from_counts(tp=0, fp=0, fn=0, tn=0).accuracy)
    with pytest.raises(ValueError):
        classification_agreement_from_counts(tp=-1, fp=0, fn=0, tn=0)


def test_agreement_statistics_flat_row_and_few_cases() -> None:
    row = agreement_statistics(AUTO, MANUAL, tost_margin=1.0)
    assert row["ba_bias"] == pytest.approx(0.1) and row["tost_equivalent"] == 1.0
    assert row["icc31"] == pytest.approx(icc(np.column_stack([AUTO, MANUAL]), kind="3,1").value)
    one = agreement_statistics([1.0], [2.0], tost_margin=None)
    assert one["n"] == 1 and math.isnan(one["icc21"]) and math.isnan(one["tost_p"])


def _measure_rows(values: dict[str, float], *, metric: str = "volume", unit: str = "mL") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "case_id": list(values),
            "structure": "erector_spinae",
            "side": "right",
            "scope": "structure",
            "level": None,
            "slice": pd.array([pd.NA] * len(values), dtype="Int64"),
            "metric": metric,
            "method": "voxel_count",
            "image": "",
            "value": list(values.values()),
            "unit": unit,
        }
    )


def test_pair_measurements_and_agreement_table() -> None:
    auto = _measure_rows(dict(zip("abcde", AUTO, strict=True)))
    manual = _measure_rows(dict(zip("abcdf", MANUAL, strict=True)))  # e only auto, f only manual
    pairs = pair_measurements(auto, manual)
    assert len(pairs) == 6
    assert pairs.loc[pairs["case_id"] == "e", "manual"].isna().all()
    table = agreement_table(pairs, tost_margin_pct=10.0, tost_margins={"csa": 3.0})
    assert len(table) == 1
    row = table.iloc[0]
    assert row["n"] == 4  # the pairs with both values
    expected_margin = 0.10 * np.mean(MANUAL[:4])
    assert row["tost_margin"] == pytest.approx(expected_margin)
    assert row["tost_margin_rule"] == "±10% of manual mean"
    assert row["ba_bias"] == pytest.approx(np.mean(AUTO[:4] - MANUAL[:4]))
    absolute = agreement_table(pairs, tost_margins={"volume": 0.75})
    assert absolute.iloc[0]["tost_margin"] == 0.75 and absolute.iloc[0]["tost_margin_rule"] == "±0.75 mL"
