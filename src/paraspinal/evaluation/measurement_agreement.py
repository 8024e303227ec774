"""Agreement of tidy measurement tables (auto vs manual masks) and fat-voxel classification.

Inputs are tables with the columns of :func:`paraspinal.measurement.measure_case` (``case_id,
structure, side, scope, level, slice, metric, method, image, value, unit``), one measured on the
predicted label map and one on the reference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from paraspinal.anatomy import AnatomyRegistry, LabelScheme
from paraspinal.evaluation.agreement import agreement_statistics, classification_agreement_from_counts
from paraspinal.io import Image, axial_frame
from paraspinal.levels import LevelTable
from paraspinal.measurement.regions import RegionVoxels, region_voxels

__all__ = [
    "DEFAULT_METRICS",
    "DEFAULT_SCOPES",
    "GROUP_COLUMNS",
    "agreement_table",
    "classification_summary",
    "fat_classification",
    "fat_thresholds",
    "pair_measurements",
]

DEFAULT_METRICS = ("csa", "volume", "fat_fraction", "fat_infiltration")
DEFAULT_SCOPES = ("structure", "level")
GROUP_COLUMNS = ["structure", "side", "scope", "level", "metric", "method", "image", "unit"]
# manual ROI pairs (``method`` "manual ROI vs ...") form their own groups beside the manual-mask ones
_JOIN = ["case_id", *GROUP_COLUMNS, "slice"]
_COUNTS = ["tp", "fp", "fn", "tn"]


def _normalised(table: pd.DataFrame) -> pd.DataFrame:
    out = table.loc[:, [c for c in _JOIN if c in table.columns] + ["value"]].copy()
    for column in _JOIN:
        if column not in out.columns:
            out[column] = pd.NA
    out["slice"] = out["slice"].astype("Int64").fillna(-1)
    for column in ("level", "image", "method", "unit"):
        out[column] = out[column].fillna("").astype(str)
    return out


def pair_measurements(
    auto: pd.DataFrame,
    manual: pd.DataFrame,
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    scopes: Sequence[str] = DEFAULT_SCOPES,
) -> pd.DataFrame:
    """One row per (case, structure, side, scope, level, slice, metric, method, image, unit) with
    the ``auto`` and ``manual`` values side by side (outer join: NaN where one side lacks the row)
    and ``difference`` = auto - manual. ``slice`` is ``<NA>`` where the measurement has none."""
    a = _normalised(auto[auto["metric"].isin(metrics) & auto["scope"].isin(scopes)])
    m = _normalised(manual[manual["metric"].isin(metrics) & manual["scope"].isin(scopes)])
    pairs = a.merge(m, on=_JOIN, how="outer", suffixes=("_auto", "_manual"))
    pairs = pairs.rename(columns={"value_auto": "auto", "value_manual": "manual"})
    pairs["difference"] = pairs["auto"] - pairs["manual"]
    pairs["slice"] = pairs["slice"].mask(pairs["slice"] < 0).astype("Int64")
    return pairs.sort_values(_JOIN, kind="stable").reset_index(drop=True)


def agreement_table(
    pairs: pd.DataFrame,
    *,
    tost_margin_pct: float | None = 5.0,
    tost_margins: Mapping[str, float] | None = None,
    alpha: float = 0.05,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Agreement statistics across cases, one row per measurement group (:data:`GROUP_COLUMNS`).

    TOST margin: ``tost_margins[metric]`` (absolute, in the metric's unit) when given, otherwise
    ``tost_margin_pct`` % of the group's mean manual value (LPM_Segmentator: 5 %); None skips TOST.
    Columns: the group columns, ``tost_margin_rule``, then :func:`agreement_statistics`' keys.
    """
    rows = []
    margins = dict(tost_margins or {})
    for key, group in pairs.groupby(GROUP_COLUMNS, sort=True, dropna=False):
        auto = group["auto"].to_numpy(dtype=float)
        manual = group["manual"].to_numpy(dtype=float)
        metric = key[GROUP_COLUMNS.index("metric")]
        if metric in margins:
            margin, rule = float(margins[metric]), f"±{margins[metric]:g} {key[GROUP_COLUMNS.index('unit')]}"
        elif tost_margin_pct is not None:
            ok = np.isfinite(auto) & np.isfinite(manual)
            mean_manual = float(np.mean(manual[ok])) if ok.any() else float("nan")
            margin, rule = abs(mean_manual) * tost_margin_pct / 100.0, f"±{tost_margin_pct:g}% of manual mean"
        else:
            margin, rule = None, ""
        stats = agreement_statistics(auto, manual, tost_margin=margin, alpha=alpha, confidence=confidence)
        rows.append({**dict(zip(GROUP_COLUMNS, key, strict=True)), "tost_margin_rule": rule, **stats})
    columns = [*GROUP_COLUMNS, "tost_margin_rule"]
    table = pd.DataFrame(rows)
    return table if rows else pd.DataFrame(columns=columns)


def fat_thresholds(measurements: pd.DataFrame) -> dict[tuple[str, str, str], float]:
    """``(structure, side, method) -> threshold`` from the ``fat_threshold`` rows of a measure table."""
    rows = measurements[(measurements["metric"] == "fat_threshold") & (measurements["scope"] == "structure")]
    return {(str(r.structure), str(r.side), str(r.method)): float(r.value) for r in rows.itertuples()}


def _region_flat(voxels: RegionVoxels) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """(structure, side) -> (sorted flat voxel indices, their axial slice) for muscle regions."""
    out = {}
    for region in voxels.regions:
        if region.category not in ("muscle", "muscle_group"):
            continue
        sel = voxels.region == region.index
        order = np.argsort(voxels.flat_index[sel], kind="stable")
        out[(region.structure, region.side)] = (voxels.flat_index[sel][order], voxels.slice_index[sel][order])
    return out


def fat_classification(
    auto_labels: Image,
    manual_labels: Image,
    intensities: np.ndarray,
    *,
    auto_thresholds: Mapping[tuple[str, str, str], float],
    manual_thresholds: Mapping[tuple[str, str, str], float],
    scheme: LabelScheme,
    registry: AnatomyRegistry,
    levels: LevelTable | None = None,
    case_id: str = "",
) -> pd.DataFrame:
    """Voxel-wise fat classification counts of one case (Xu et al. Table 3), per muscle region and method.

    A voxel is fat on a side when it lies in that side's muscle region and its intensity is above
    that side's threshold for the method (each mask uses its own threshold, as measured). Voxels
    are compared over the union of the two regions (a voxel outside one mask is not fat there, so a
    region missing from one mask counts all the other's fat voxels as misses).
    Returns rows ``case_id, structure, side, scope, level, method, tp, fp, fn, tn`` for scope
    ``structure`` and, with ``levels``, ``level``; side ``both`` sums right and left.
    """
    values = np.asarray(intensities, dtype=np.float64).ravel()
    auto_regions = _region_flat(
        region_voxels(auto_labels, scheme=scheme, registry=registry, frame=axial_frame(auto_labels))
    )
    manual_regions = _region_flat(
        region_voxels(manual_labels, scheme=scheme, registry=registry, frame=axial_frame(manual_labels))
    )
    methods = sorted({k[2] for k in auto_thresholds} | {k[2] for k in manual_thresholds})
    scopes: list[tuple[str, str, int | None, int | None]] = [("structure", "", None, None)]
    scopes += [("level", lv.name, lv.slice_start, lv.slice_stop) for lv in (levels or ())]
    rows = []
    for structure, side in sorted(set(auto_regions) | set(manual_regions)):
        empty = (np.zeros(0, np.int64), np.zeros(0, np.int64))
        a_idx, a_sl = auto_regions.get((structure, side), empty)
        m_idx, m_sl = manual_regions.get((structure, side), empty)
        for method in methods:
            # a region missing from one mask has no fat voxels there; an undefined threshold on a
            # present region (too few voxels) leaves the classification undefined: skipped
            thr_a = auto_thresholds.get((structure, side, method), np.nan) if a_idx.size else np.inf
            thr_m = manual_thresholds.get((structure, side, method), np.nan) if m_idx.size else np.inf
            if np.isnan(thr_a) or np.isnan(thr_m):
                continue
            for scope, level, start, stop in scopes:
                ka = np.ones(a_idx.size, bool) if start is None else (a_sl >= start) & (a_sl < stop)
                km = np.ones(m_idx.size, bool) if start is None else (m_sl >= start) & (m_sl < stop)
                ia, im = a_idx[ka], m_idx[km]
                fat_a, fat_m = ia[values[ia] > thr_a], im[values[im] > thr_m]
                union = np.union1d(ia, im).size
                tp = np.intersect1d(fat_a, fat_m, assume_unique=True).size
                fp, fn = fat_a.size - tp, fat_m.size - tp
                rows.append((case_id, structure, side, scope, level, method, tp, fp, fn, union - tp - fp - fn))
    table = pd.DataFrame(rows, columns=["case_id", "structure", "side", "scope", "level", "method", *_COUNTS])
    both = table[table["side"].isin(["right", "left"])]
    if not both.empty:
        summed = both.groupby(["case_id", "structure", "scope", "level", "method"], as_index=False)[_COUNTS].sum()
        counts = both.groupby(["case_id", "structure", "scope", "level", "method"]).size().to_numpy()
        summed = summed[counts == 2]
        summed.insert(2, "side", "both")
        table = pd.concat([table, summed[table.columns]], ignore_index=True)
    return _with_scores(table)


def _with_scores(table: pd.DataFrame) -> pd.DataFrame:
    scores = [
        classification_agreement_from_counts(tp=int(r.tp), fp=int(r.fp), fn=int(r.fn), tn=int(r.tn))
        for r in table.itertuples()
    ]
    for name in ("kappa", "recall", "specificity", "precision", "f1", "accuracy"):
        table[name] = [getattr(s, name) for s in scores]
    return table


def classification_summary(per_case: pd.DataFrame) -> pd.DataFrame:
    """Pooled classification agreement across cases: counts summed per (structure, side, scope,
    level, method), plus the number of cases and the mean and SD of the per-case kappa."""
    keys = ["structure", "side", "scope", "level", "method"]
    if per_case.empty:
        return pd.DataFrame(columns=[*keys, "n_cases", *_COUNTS])
    grouped = per_case.groupby(keys, sort=True)
    pooled = grouped[_COUNTS].sum().reset_index()
    pooled.insert(len(keys), "n_cases", grouped.size().to_numpy())
    pooled = _with_scores(pooled)
    pooled["kappa_case_mean"] = grouped["kappa"].mean().to_numpy()
    pooled["kappa_case_sd"] = grouped["kappa"].std(ddof=1).to_numpy()
    return pooled
