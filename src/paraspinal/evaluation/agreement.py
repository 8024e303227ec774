"""Agreement of paired measurements (automatic vs manual) and of voxel classifications.

Conventions
-----------
* ``auto`` and ``manual`` are 1-D arrays of the same measurement on the same cases, in the
  measurement's own unit; differences are ``auto - manual``.
* Pairs with a NaN on either side are dropped before any statistic; a statistic that needs more
  pairs than remain (or is undefined, e.g. zero variance) is NaN, never an exception.
* ICCs follow Shrout & Fleiss (1979) from a two-way ANOVA on the ``n targets x k raters`` table:
  ICC(2,1) two-way random, absolute agreement; ICC(3,1) two-way mixed, consistency; ICC(1,1)
  one-way random. Confidence intervals are the F-based intervals of Shrout & Fleiss / McGraw & Wong
  (1996), ICC(2,1) with Satterthwaite's degrees of freedom.
* TOST is the paired two one-sided t-tests of :func:`statsmodels.stats.weightstats.ttost_paired`
  with bounds ``±margin`` on the mean difference (LPM_Segmentator uses margin = 5 % of the manual mean).
* Classification agreement (Xu et al. Table 3) counts voxels: positive = fat; kappa, recall,
  specificity, precision and F1 are the closed forms of the 2x2 table (checked against scikit-learn).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from scipy import stats

__all__ = [
    "BlandAltman",
    "ClassificationAgreement",
    "IccResult",
    "TostResult",
    "agreement_statistics",
    "bland_altman",
    "classification_agreement",
    "classification_agreement_from_counts",
    "correlations",
    "error_metrics",
    "icc",
    "tost_paired",
]

IccKind = Literal["1,1", "2,1", "3,1"]


def _paired(auto: np.ndarray, manual: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(auto, dtype=np.float64).ravel()
    m = np.asarray(manual, dtype=np.float64).ravel()
    if a.shape != m.shape:
        raise ValueError(f"auto and manual differ in length: {a.size} vs {m.size}")
    keep = np.isfinite(a) & np.isfinite(m)
    return a[keep], m[keep]


def error_metrics(auto: np.ndarray, manual: np.ndarray) -> dict[str, float]:
    """MAE, MSE, RMSE (measurement unit, squared for MSE) and MAPE (%).

    MAPE = 100/n Σ |auto - manual| / |manual| (Xu et al.), over pairs with manual ≠ 0.
    """
    a, m = _paired(auto, manual)
    nan = float("nan")
    if a.size == 0:
        return {"n": 0, "mae": nan, "mse": nan, "rmse": nan, "mape_pct": nan}
    err = a - m
    nonzero = m != 0
    mape = float(100.0 * np.mean(np.abs(err[nonzero]) / np.abs(m[nonzero]))) if nonzero.any() else nan
    mse = float(np.mean(err**2))
    return {
        "n": int(a.size),
        "mae": float(np.mean(np.abs(err))),
        "mse": mse,
        "rmse": float(np.sqrt(mse)),
        "mape_pct": mape,
    }


@dataclass(frozen=True)
class IccResult:
    """One intraclass correlation with its confidence interval and F test (H0: ICC = 0)."""

    kind: str
    value: float
    ci_low: float
    ci_high: float
    confidence: float
    f_value: float
    df1: float
    df2: float
    p_value: float
    n_targets: int
    n_raters: int


def _nan_icc(kind: str, confidence: float, n: int, k: int) -> IccResult:
    nan = float("nan")
    return IccResult(kind, nan, nan, nan, confidence, nan, nan, nan, nan, n, k)


def icc(ratings: np.ndarray, *, kind: IccKind = "2,1", confidence: float = 0.95) -> IccResult:
    """Single-rater intraclass correlation of an ``(n_targets, k_raters)`` table.

    Targets (rows) with any NaN are dropped. Needs at least 2 targets and 2 raters, and some
    variance in the table; otherwise every field is NaN.
    """
    if kind not in ("1,1", "2,1", "3,1"):
        raise ValueError(f"unknown ICC kind {kind!r}; use '1,1', '2,1' or '3,1'")
    x = np.asarray(ratings, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"ratings must be a 2-D (targets x raters) table, got shape {x.shape}")
    x = x[np.isfinite(x).all(axis=1)]
    n, k = x.shape
    if n < 2 or k < 2:
        return _nan_icc(kind, confidence, n, k)
    grand = x.mean()
    ss_rows = k * float(np.sum((x.mean(axis=1) - grand) ** 2))
    ss_cols = n * float(np.sum((x.mean(axis=0) - grand) ** 2))
    ss_total = float(np.sum((x - grand) ** 2))
    ss_err = ss_total - ss_rows - ss_cols
    df_r, df_c, df_e = n - 1, k - 1, (n - 1) * (k - 1)
    ss_err = max(ss_err, 0.0)  # rounding can leave a tiny negative residual
    msr, msc, mse = np.float64(ss_rows / df_r), np.float64(ss_cols / df_c), np.float64(ss_err / df_e)
    msw = np.float64((ss_cols + ss_err) / (n * (k - 1)))
    alpha = 1.0 - confidence
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "1,1":
            value = (msr - msw) / (msr + (k - 1) * msw)
            f_val, df2 = msr / msw, n * (k - 1)
            lo, hi = _f_interval(f_val, df_r, df2, k, alpha)
        elif kind == "3,1":
            value = (msr - mse) / (msr + (k - 1) * mse)
            f_val, df2 = msr / mse, df_e
            lo, hi = _f_interval(f_val, df_r, df2, k, alpha)
        else:
            value = (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)
            f_val, df2 = msr / mse, df_e
            lo, hi = _icc21_interval(value, msr, msc, mse, n, k, alpha)
    if not np.isfinite(value):
        return _nan_icc(kind, confidence, n, k)
    if (mse if kind != "1,1" else msw) == 0:
        lo = hi = 1.0  # no error variance at all: the interval degenerates to the point ICC = 1
    p = float(stats.f.sf(f_val, df_r, df2)) if np.isfinite(f_val) else (0.0 if f_val > 0 else float("nan"))
    return IccResult(
        kind, float(value), float(lo), float(hi), confidence, float(f_val), float(df_r), float(df2), p, n, k
    )


def _f_interval(f_val: float, df1: float, df2: float, k: int, alpha: float) -> tuple[float, float]:
    """CI of ICC(1,1)/ICC(3,1) from the F ratio (Shrout & Fleiss eqs. for cases 1 and 3)."""
    f_low = f_val / stats.f.ppf(1 - alpha / 2, df1, df2)
    f_high = f_val * stats.f.ppf(1 - alpha / 2, df2, df1)
    return (f_low - 1) / (f_low + k - 1), (f_high - 1) / (f_high + k - 1)


def _icc21_interval(
    rho: float, msr: float, msc: float, mse: float, n: int, k: int, alpha: float
) -> tuple[float, float]:
    """CI of ICC(2,1) with Satterthwaite's approximate degrees of freedom (Shrout & Fleiss 1979)."""
    a = k * rho / (n * (1 - rho))
    b = 1 + k * rho * (n - 1) / (n * (1 - rho))
    v = (a * msc + b * mse) ** 2 / ((a * msc) ** 2 / (k - 1) + (b * mse) ** 2 / ((n - 1) * (k - 1)))
    f_star = stats.f.ppf(1 - alpha / 2, n - 1, v)
    f_star2 = stats.f.ppf(1 - alpha / 2, v, n - 1)
    c = k * msc + (k * n - k - n) * mse
    low = n * (msr - f_star * mse) / (f_star * c + n * msr)
    high = n * (f_star2 * msr - mse) / (c + n * f_star2 * msr)
    return low, high


def correlations(auto: np.ndarray, manual: np.ndarray) -> dict[str, float]:
    """Pearson r and Spearman rho with two-sided p-values (scipy); NaN for < 3 pairs or no variance."""
    a, m = _paired(auto, manual)
    nan = float("nan")
    out = {"pearson_r": nan, "pearson_p": nan, "spearman_rho": nan, "spearman_p": nan}
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(m) == 0:
        return out
    pr = stats.pearsonr(a, m)
    sr = stats.spearmanr(a, m)
    out.update(
        pearson_r=float(pr.statistic),
        pearson_p=float(pr.pvalue),
        spearman_rho=float(sr.statistic),
        spearman_p=float(sr.pvalue),
    )
    return out


@dataclass(frozen=True)
class BlandAltman:
    """Bland-Altman agreement: bias = mean(auto - manual), limits = bias ± z·SD (SD with ddof=1)."""

    n: int
    bias: float
    sd: float
    loa_low: float
    loa_high: float
    means: np.ndarray
    differences: np.ndarray


def bland_altman(auto: np.ndarray, manual: np.ndarray, *, loa_z: float = 1.96) -> BlandAltman:
    """Bland-Altman statistics (measurement unit); SD and limits are NaN for fewer than 2 pairs."""
    a, m = _paired(auto, manual)
    diff, mean = a - m, (a + m) / 2.0
    bias = float(diff.mean()) if diff.size else float("nan")
    sd = float(diff.std(ddof=1)) if diff.size >= 2 else float("nan")
    return BlandAltman(int(diff.size), bias, sd, bias - loa_z * sd, bias + loa_z * sd, mean, diff)


@dataclass(frozen=True)
class TostResult:
    """Paired TOST: equivalent when both one-sided tests reject at ``alpha`` (p_value < alpha)."""

    margin: float
    p_value: float
    p_lower: float
    p_upper: float
    t_lower: float
    t_upper: float
    equivalent: bool


def tost_paired(auto: np.ndarray, manual: np.ndarray, *, margin: float, alpha: float = 0.05) -> TostResult:
    """Paired two one-sided t-tests of ``-margin < mean(auto - manual) < margin`` (statsmodels).

    ``margin`` is in the measurement's unit. Needs 2 pairs; with zero spread of the differences
    the decision is exact (p = 0 inside the margin, 1 outside).
    """
    from statsmodels.stats.weightstats import ttost_paired

    a, m = _paired(auto, manual)
    nan = float("nan")
    if a.size < 2 or not np.isfinite(margin) or margin <= 0:
        return TostResult(float(margin), nan, nan, nan, nan, nan, False)
    diff = a - m
    if np.ptp(diff) == 0:
        inside = bool(abs(float(diff[0])) < margin)
        p = 0.0 if inside else 1.0
        return TostResult(float(margin), p, p, p, nan, nan, inside)
    p, (t_lo, p_lo, _), (t_hi, p_hi, _) = ttost_paired(a, m, -margin, margin)
    return TostResult(float(margin), float(p), float(p_lo), float(p_hi), float(t_lo), float(t_hi), bool(p < alpha))


@dataclass(frozen=True)
class ClassificationAgreement:
    """Voxel classification agreement (positive = fat), from the 2x2 table of counts."""

    tp: int
    fp: int
    fn: int
    tn: int
    kappa: float
    recall: float
    specificity: float
    precision: float
    f1: float
    accuracy: float

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def classification_agreement_from_counts(*, tp: int, fp: int, fn: int, tn: int) -> ClassificationAgreement:
    """Cohen's kappa, recall (sensitivity), specificity, precision, F1 and accuracy from counts.

    ``fp`` = positive in prediction only, ``fn`` = positive in reference only. Undefined ratios
    (a zero denominator; kappa when both raters use one class only) are NaN. Closed forms of the
    2x2 table, identical to scikit-learn's ``cohen_kappa_score`` / ``precision_recall_fscore_support``
    (tested) but without their per-call overhead, which dominates when thousands of tables are scored.
    """
    counts = np.array([tp, fp, fn, tn], dtype=np.float64)
    if (counts < 0).any():
        raise ValueError(f"counts must be >= 0, got tp={tp} fp={fp} fn={fn} tn={tn}")
    total = float(counts.sum())

    def ratio(num: float, den: float) -> float:
        return num / den if den > 0 else float("nan")

    p_observed = ratio(tp + tn, total)
    p_chance = ratio((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn), total * total)
    kappa = ratio(p_observed - p_chance, 1.0 - p_chance) if p_chance < 1.0 else float("nan")
    return ClassificationAgreement(
        int(tp),
        int(fp),
        int(fn),
        int(tn),
        kappa,
        ratio(tp, tp + fn),
        ratio(tn, tn + fp),
        ratio(tp, tp + fp),
        ratio(2 * tp, 2 * tp + fp + fn),
        p_observed,
    )


def classification_agreement(pred: np.ndarray, ref: np.ndarray) -> ClassificationAgreement:
    """Classification agreement of two boolean arrays (True = positive, e.g. a fat voxel)."""
    p = np.asarray(pred, dtype=bool).ravel()
    r = np.asarray(ref, dtype=bool).ravel()
    if p.shape != r.shape:
        raise ValueError(f"classification arrays differ in size: {p.size} vs {r.size}")
    tp = int(np.count_nonzero(p & r))
    fp = int(np.count_nonzero(p & ~r))
    fn = int(np.count_nonzero(~p & r))
    return classification_agreement_from_counts(tp=tp, fp=fp, fn=fn, tn=int(p.size) - tp - fp - fn)


def agreement_statistics(
    auto: np.ndarray,
    manual: np.ndarray,
    *,
    tost_margin: float | None = None,
    alpha: float = 0.05,
    confidence: float = 0.95,
    loa_z: float = 1.96,
) -> dict[str, float]:
    """Every agreement statistic of one measurement as a flat dict (one row of the agreement table).

    ``tost_margin`` is absolute (measurement unit); None skips TOST (NaN columns).
    """
    a, m = _paired(auto, manual)
    out: dict[str, float] = {
        "mean_auto": float(a.mean()) if a.size else float("nan"),
        "mean_manual": float(m.mean()) if m.size else float("nan"),
    }
    out.update(error_metrics(a, m))
    table = np.column_stack([a, m])
    for kind in ("2,1", "3,1"):
        res = icc(table, kind=kind, confidence=confidence)  # type: ignore[arg-type]
        tag = "icc" + kind.replace(",", "")
        out.update(
            {tag: res.value, f"{tag}_ci_low": res.ci_low, f"{tag}_ci_high": res.ci_high, f"{tag}_p": res.p_value}
        )
    out.update(correlations(a, m))
    ba = bland_altman(a, m, loa_z=loa_z)
    out.update(ba_bias=ba.bias, ba_sd=ba.sd, ba_loa_low=ba.loa_low, ba_loa_high=ba.loa_high)
    if tost_margin is None:
        nan = float("nan")
        out.update(tost_margin=nan, tost_p=nan, tost_equivalent=nan)
    else:
        t = tost_paired(a, m, margin=tost_margin, alpha=alpha)
        out.update(
            tost_margin=t.margin,
            tost_p=t.p_value,
            tost_equivalent=float(t.equivalent) if np.isfinite(t.p_value) else float("nan"),
        )
    return out
