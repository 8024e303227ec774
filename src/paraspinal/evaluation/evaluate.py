"""Evaluate predicted label maps against references: one pair or two folders matched by case id.

Per case: overlap and surface-distance metrics (:mod:`.overlap`), and — measuring both masks with
:func:`paraspinal.measurement.measure_case` — paired measurements for agreement across cases
(:mod:`.measurement_agreement`). Bad cases never stop the run: unmatched case ids become warnings,
unreadable files or different grids become per-case errors, and the other cases go on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from paraspinal.anatomy import LabelScheme, load_registry, load_scheme
from paraspinal.errors import InputError, ParaspinalError
from paraspinal.evaluation.measurement_agreement import (
    DEFAULT_METRICS,
    GROUP_COLUMNS,
    agreement_table,
    classification_summary,
    fat_classification,
    fat_thresholds,
    pair_measurements,
)
from paraspinal.evaluation.overlap import ALL_LEVELS, FOREGROUND, overlap_table
from paraspinal.evaluation.pairing import CasePair, find_case_file, pair_cases
from paraspinal.evaluation.plots import BlandAltmanPanel, plot_bland_altman, plot_dice_boxplot, safe_filename
from paraspinal.evaluation.roi_values import pair_roi_values, read_manual_values
from paraspinal.io import Image, as_ct, axial_frame, check_same_grid, read_image, read_label_map
from paraspinal.io.label_map import LabelMap
from paraspinal.levels import LevelTable, read_levels_csv
from paraspinal.measurement import INFILTRATION_METHODS, measure_case
from paraspinal.measurement.ct import CtOptions
from paraspinal.safe_text import write_csv

__all__ = ["CaseRecord", "EvaluationResult", "case_levels", "case_overlap", "evaluate", "write_outputs"]

SUMMARY_METRICS = ("dice", "iou", "hd95", "assd", "volume_diff_pct")
CT_METRICS = ("hu_mean", "hu_median", "imat_share")
"""Metrics compared between the masks on a CT (with ``ct``), besides :data:`DEFAULT_METRICS`."""


@dataclass
class CaseRecord:
    """What happened to one case: ``status`` is ``ok``, ``partial`` (overlap done, measurement
    failed) or ``error`` (nothing evaluated)."""

    case_id: str
    pred: str
    ref: str
    status: str = "ok"
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class EvaluationResult:
    """All tables of one evaluation run (see :func:`write_outputs` for the files)."""

    overlap: pd.DataFrame
    measurements: pd.DataFrame
    pairs: pd.DataFrame
    agreement: pd.DataFrame
    classification: pd.DataFrame
    classification_pooled: pd.DataFrame
    cases: list[CaseRecord]
    warnings: list[str]
    options: dict[str, object]
    kind: str = "accuracy"  # or "model_agreement": two models, no reference (see .model_agreement)
    common_labels: list[dict[str, object]] = field(default_factory=list)

    @property
    def n_failed(self) -> int:
        return sum(c.status == "error" for c in self.cases)


def _label_names(
    scheme: LabelScheme | None, pred: np.ndarray, ref: np.ndarray, record: CaseRecord
) -> dict[int, tuple[str, str, str]]:
    """label value -> (name, structure, side): the scheme's labels plus any other value present."""
    present = {int(v) for v in np.union1d(np.unique(pred), np.unique(ref)) if v != 0}
    if scheme is None:
        return {v: (str(v), "", "") for v in sorted(present)}
    out: dict[int, tuple[str, str, str]] = {
        int(v): (e.name, e.structure, str(e.side)) for v, e in scheme.labels.items()
    }
    extra = sorted(present - set(out))
    if extra:
        record.warnings.append(f"label values not in the scheme, evaluated by number: {extra}")
        out.update({v: (f"label_{v}", "", "") for v in extra})
    return dict(sorted(out.items()))


def case_overlap(
    case: CasePair,
    pred: Image,
    ref: Image,
    *,
    scheme: LabelScheme | None,
    levels: LevelTable | None,
    record: CaseRecord,
) -> pd.DataFrame:
    """Overlap table of one case (:func:`.overlap.overlap_table`) with ``structure`` and ``side`` columns."""
    names = _label_names(scheme, pred.array, ref.array, record)
    table = overlap_table(
        pred.array,
        ref.array,
        spacing_mm=ref.spacing_mm,
        voxel_volume_mm3=ref.voxel_volume_mm3,
        labels={v: n[0] for v, n in names.items()},
        levels={lv.name: (lv.slice_start, lv.slice_stop) for lv in levels or ()},
        slice_axis=axial_frame(ref).slice_axis,
        case_id=case.case_id,
    )
    by_value = {v: n[1:] for v, n in names.items()}
    table.insert(3, "structure", [FOREGROUND if pd.isna(v) else by_value[int(v)][0] for v in table["label"]])
    table.insert(4, "side", ["" if pd.isna(v) else by_value[int(v)][1] for v in table["label"]])
    return table


def _read_case_image(
    option: str, path: str | Path | None, case: CasePair, ref: Image, *, single: bool, assume_aligned: bool
) -> Image | None:
    if path is None:
        return None
    file = find_case_file(path, case.case_id, option=option, single_case=single)
    return check_same_grid(ref, read_image(file), assume_aligned=assume_aligned)


def case_levels(levels_csv: str | Path | None, case: CasePair, ref: Image, record: CaseRecord) -> LevelTable | None:
    """The case's levels from ``levels_csv`` (None without one; a warning on ``record`` if unreadable)."""
    if levels_csv is None:
        return None
    try:
        return read_levels_csv(levels_csv, n_slices=axial_frame(ref).n_slices, case_id=case.case_id)
    except ParaspinalError as exc:
        record.warnings.append(f"no levels, whole volume only: {exc}")
        return None


def _measure_both(
    case: CasePair,
    pred: Image,
    ref: Image,
    images: dict[str, Image | None],
    *,
    scheme: LabelScheme,
    levels: LevelTable | None,
    image_name: str,
    infiltration_methods: Sequence[str],
    record: CaseRecord,
    ct_options: CtOptions | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Measure both masks and classify fat voxels; returns (measurements, classification counts)."""
    tables = []
    for source, labels in (("auto", pred), ("manual", ref)):
        measured = measure_case(
            LabelMap.given(labels, scheme),
            case_id=case.case_id,
            water=images["water"],
            fat=images["fat"],
            image=images["image"],
            image_name=image_name,
            levels=levels,
            infiltration_methods=infiltration_methods if images["image"] is not None else (),
            ct=images.get("ct"),
            ct_options=ct_options,
        )
        record.warnings.extend(f"{source}: {w}" for w in measured.warnings)
        table = measured.table.copy()
        table.insert(0, "source", source)
        tables.append(table)
    classification = pd.DataFrame()
    if images["image"] is not None:
        classification = fat_classification(
            pred,
            ref,
            images["image"].array,
            auto_thresholds=fat_thresholds(tables[0]),
            manual_thresholds=fat_thresholds(tables[1]),
            scheme=scheme,
            registry=load_registry(),
            levels=levels,
            case_id=case.case_id,
        )
    return pd.concat(tables, ignore_index=True), classification


def evaluate(
    pred: str | Path,
    ref: str | Path,
    *,
    scheme: str | None = "lpm4",
    levels_csv: str | Path | None = None,
    water: str | Path | None = None,
    fat: str | Path | None = None,
    image: str | Path | None = None,
    ct: str | Path | None = None,
    ct_options: CtOptions | None = None,
    manual_values: str | Path | None = None,
    image_name: str = "image",
    infiltration_methods: Sequence[str] = INFILTRATION_METHODS,
    metrics: Sequence[str] | None = None,
    tost_margin_pct: float | None = 5.0,
    tost_margins: Mapping[str, float] | None = None,
    alpha: float = 0.05,
    confidence: float = 0.95,
    assume_aligned: bool = False,
    progress: Callable[[CaseRecord], None] | None = None,
) -> EvaluationResult:
    """Evaluate ``pred`` against ``ref`` (two label-map files, or two folders matched by case id).

    ``scheme`` names the label scheme (None: labels by number, no measurement agreement).
    ``water``/``fat`` (Dixon) and ``image`` (T1/T2, for fat infiltration and fat-voxel
    classification) are files for one case or folders holding ``<case_id>_*`` images. ``ct`` is a CT
    image (or folder) in HU on the masks' grid: both masks are measured in HU (``ct_options``; a
    NIfTI's contrast is ``ct_options.contrast``, else unknown) and :data:`CT_METRICS` join the compared
    metrics. Volume and
    CSA agreement need only the label maps. ``metrics`` None: the defaults for the images given.
    ``manual_values`` is a CSV of manual ROI values (:mod:`.roi_values`) paired with the automatic mask's
    values (``source`` ``manual ROI`` in the pairs, their own rows in the agreement table). ``progress`` is
    called after each case.
    """
    manual_rois = read_manual_values(manual_values) if manual_values is not None else None
    if metrics is None:
        metrics = (*DEFAULT_METRICS, *CT_METRICS) if ct is not None else DEFAULT_METRICS
    pairing = pair_cases(pred, ref)
    label_scheme = load_scheme(scheme) if scheme else None
    single = len(pairing.pairs) == 1 and Path(pred).is_file()
    for option, path in (("--water", water), ("--fat", fat), ("--image", image), ("--ct", ct)):
        if path is not None and not single and Path(path).is_file():
            raise InputError(f"{option} must be a folder when --pred and --ref are folders", path=path)
    overlaps, measurements, classifications, records = [], [], [], []
    for case in pairing.pairs:
        record = CaseRecord(case.case_id, str(case.pred), str(case.ref))
        records.append(record)
        try:
            ref_img = read_label_map(case.ref)
            pred_img = check_same_grid(ref_img, read_label_map(case.pred), assume_aligned=assume_aligned)
            levels = case_levels(levels_csv, case, ref_img, record)
            overlaps.append(case_overlap(case, pred_img, ref_img, scheme=label_scheme, levels=levels, record=record))
        except ParaspinalError as exc:
            record.status, record.errors = "error", [str(exc)]
            if progress:
                progress(record)
            continue
        if label_scheme is not None:
            try:
                images = {
                    name: _read_case_image(
                        f"--{name}", path, case, ref_img, single=single, assume_aligned=assume_aligned
                    )
                    for name, path in (("water", water), ("fat", fat), ("image", image), ("ct", ct))
                }
                if images["ct"] is not None and images["ct"].metadata.get("modality") != "CT":
                    contrast = (ct_options.contrast if ct_options is not None else None) or "unknown"
                    images["ct"] = as_ct(images["ct"], contrast=contrast)
                table, classes = _measure_both(
                    case,
                    pred_img,
                    ref_img,
                    images,
                    scheme=label_scheme,
                    levels=levels,
                    image_name=image_name,
                    infiltration_methods=infiltration_methods,
                    record=record,
                    ct_options=ct_options,
                )
                measurements.append(table)
                classifications.append(classes)
            except ParaspinalError as exc:
                record.status = "partial"
                record.errors.append(f"measurement agreement skipped: {exc}")
        if progress:
            progress(record)

    overlap = pd.concat(overlaps, ignore_index=True) if overlaps else pd.DataFrame()
    measured = pd.concat(measurements, ignore_index=True) if measurements else pd.DataFrame()
    roi_warnings: list[str] = []
    if measured.empty:
        pairs, agreement = pd.DataFrame(), pd.DataFrame()
    else:
        pairs = pair_measurements(
            measured[measured["source"] == "auto"], measured[measured["source"] == "manual"], metrics=metrics
        )
        pairs.insert(len(pairs.columns), "source", "manual mask")
        if manual_rois is not None:
            rois = pair_roi_values(measured[measured["source"] == "auto"], manual_rois)
            rois["method"] = "manual ROI vs " + rois["method"]  # its own agreement group
            pairs = pd.concat([pairs, rois.drop(columns=["note"])], ignore_index=True)
            roi_warnings = [
                f"manual value {r.case_id} {r.structure} ({r.side}) {r.metric}: {r.note}"
                for r in rois[rois["note"] != ""].itertuples()
            ]
        agreement = agreement_table(
            pairs, tost_margin_pct=tost_margin_pct, tost_margins=tost_margins, alpha=alpha, confidence=confidence
        )
    classes = [c for c in classifications if not c.empty]
    classification = pd.concat(classes, ignore_index=True) if classes else pd.DataFrame()
    paths = {
        "pred": pred,
        "ref": ref,
        "levels_csv": levels_csv,
        "water": water,
        "fat": fat,
        "image": image,
        "ct": ct,
        "manual_values": manual_values,
    }
    options: dict[str, object] = {
        **{k: None if v is None else str(v) for k, v in paths.items()},
        "scheme": scheme,
        "metrics": list(metrics),
        "tost_margin_pct": tost_margin_pct,
        "tost_margins": dict(tost_margins or {}),
        "alpha": alpha,
        "confidence": confidence,
        "assume_aligned": assume_aligned,
    }
    return EvaluationResult(
        overlap,
        measured,
        pairs,
        agreement,
        classification,
        classification_summary(classification) if not classification.empty else pd.DataFrame(),
        records,
        [*pairing.warnings, *roi_warnings],
        options,
    )


_ACCURACY_DEFINITIONS: dict[str, str] = {
    "dice_both_empty": "NaN, reason 'absent in both' (skipped in means)",
    "dice_one_empty": "0.0, reason names the empty side; hd95/assd NaN",
    "hd95": "max of the two directed 95th percentiles of surface distances (mm)",
    "assd": "mean over both directed surface-distance sets (mm)",
    "global_dice": "Dice of the binarised foreground (any label > 0), as LPM_Segmentator",
    "difference": "auto - manual",
    "loa": "bias ± 1.96 SD (ddof=1)",
    "mape_pct": "100 * mean(|auto - manual| / |manual|) over manual != 0 (Xu et al.)",
    "icc": "Shrout & Fleiss ICC(2,1) absolute agreement and ICC(3,1) consistency, F-based CIs",
    "tost": "paired TOST (statsmodels ttost_paired) on auto - manual within ± margin",
}
_AGREEMENT_DEFINITIONS: dict[str, str] = {
    "comparison": "agreement between two models' label maps (A = --a, B = --b); neither is a reference",
    "common_labels": "both maps merged to the nearest common structures of the anatomy registry, per side",
    "dice_both_empty": "NaN, reason 'absent in both' (skipped in means)",
    "dice_one_empty": "0.0, reason names the empty side (empty in A / empty in B); hd95/assd NaN",
    "hd95": "max of the two directed 95th percentiles of surface distances (mm), symmetric in A and B",
    "assd": "mean over both directed surface-distance sets (mm), symmetric in A and B",
    "global_dice": "Dice of the binarised common foreground (any common label > 0)",
    "volume_diff": "volume_a - volume_b (mm3); volume_diff_pct = 100 * (A - B) / B",
}


def _clean(value: object) -> object:
    """JSON-safe value: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _describe(values: pd.Series) -> dict[str, object]:
    v = values.dropna().to_numpy(dtype=float)
    if v.size == 0:
        return {"n": 0}
    return {
        "n": int(v.size),
        "mean": float(v.mean()),
        "sd": float(v.std(ddof=1)) if v.size > 1 else None,
        "median": float(np.median(v)),
        "min": float(v.min()),
        "max": float(v.max()),
    }


def _summary(result: EvaluationResult) -> dict[str, object]:
    overlap_summary: dict[str, dict[str, object]] = {}
    if not result.overlap.empty:
        for (level, name), group in result.overlap.groupby(["level", "name"], sort=False):
            entry: dict[str, object] = {m: _describe(group.loc[group["metric"] == m, "value"]) for m in SUMMARY_METRICS}
            reasons = group.loc[group["reason"] != "", "reason"].value_counts().to_dict()
            if reasons:
                entry["reasons"] = {k: int(v) for k, v in reasons.items()}
            overlap_summary.setdefault(str(level), {})[str(name)] = entry
    agreement = []
    if not result.agreement.empty:
        keep = [
            *GROUP_COLUMNS,
            "n",
            "mae",
            "mape_pct",
            "icc21",
            "icc21_ci_low",
            "icc21_ci_high",
            "icc31",
            "icc31_ci_low",
            "icc31_ci_high",
            "ba_bias",
            "ba_loa_low",
            "ba_loa_high",
            "tost_margin",
            "tost_p",
            "tost_equivalent",
        ]
        agreement = result.agreement.loc[result.agreement["scope"] == "structure", keep].to_dict("records")
    warnings = list(result.warnings) + [f"{c.case_id}: {w}" for c in result.cases for w in c.warnings]
    errors = [f"{c.case_id}: {e}" for c in result.cases for e in c.errors]
    definitions = _ACCURACY_DEFINITIONS if result.kind != "model_agreement" else _AGREEMENT_DEFINITIONS
    return _clean(
        {  # type: ignore[return-value]
            "kind": result.kind,
            "n_cases_matched": len(result.cases),
            "n_cases_evaluated": sum(c.status != "error" for c in result.cases),
            "n_cases_failed": result.n_failed,
            "warnings": warnings,
            "errors": errors,
            "cases": [vars(c) for c in result.cases],
            "global_dice": _describe(
                result.overlap.loc[
                    (result.overlap["name"] == FOREGROUND)
                    & (result.overlap["level"] == ALL_LEVELS)
                    & (result.overlap["metric"] == "dice"),
                    "value",
                ]
            )
            if not result.overlap.empty
            else {"n": 0},
            "overlap": overlap_summary,
            "agreement_structure_scope": agreement,
            "fat_classification_pooled": result.classification_pooled.to_dict("records"),
            "options": result.options,
            "common_labels": result.common_labels,
            "definitions": definitions,
        }
    )


def write_outputs(result: EvaluationResult, out_dir: str | Path, *, plots: bool = True) -> list[Path]:
    """Write the run's files into ``out_dir`` and return their paths.

    Files: ``overlap.csv`` (case x label x level x metric), ``measurements.csv`` (both masks'
    measure tables, column ``source`` = auto/manual), ``pairs.csv`` (paired values),
    ``agreement.csv`` (one row per measurement group), ``fat_classification.csv`` and
    ``fat_classification_pooled.csv`` (with a T1/T2 image), ``common_labels.csv`` (model agreement:
    how both schemes were merged), ``summary.json``, and PNG plots under
    ``plots/`` (Dice box plots per level, Bland-Altman per metric/method/scope).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, table in (
        ("overlap", result.overlap),
        ("measurements", result.measurements),
        ("pairs", result.pairs),
        ("agreement", result.agreement),
        ("fat_classification", result.classification),
        ("fat_classification_pooled", result.classification_pooled),
    ):
        always = ("overlap",) if result.kind == "model_agreement" else ("overlap", "agreement")
        if name in always or not table.empty:
            path = out / f"{name}.csv"
            write_csv(table, path)
            written.append(path)
    if result.common_labels:
        path = out / "common_labels.csv"
        rows = [
            {k: " ".join(map(str, v)) if isinstance(v, list) else v for k, v in row.items()}
            for row in result.common_labels
        ]
        write_csv(pd.DataFrame(rows), path)
        written.append(path)
    summary = out / "summary.json"
    summary.write_text(json.dumps(_summary(result), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    written.append(summary)
    if plots:
        written.extend(_write_plots(result, out / "plots"))
    return written


def _write_plots(result: EvaluationResult, folder: Path) -> list[Path]:
    written = []
    if not result.overlap.empty:
        for level in dict.fromkeys(result.overlap["level"]):
            name = "dice_by_label.png" if level == ALL_LEVELS else f"dice_by_label_{safe_filename(level)}.png"
            written.append(plot_dice_boxplot(result.overlap, path=folder / name, level=level))
    if result.pairs.empty:
        return written
    for (metric, method, scope, image, unit), group in result.pairs.groupby(
        ["metric", "method", "scope", "image", "unit"], sort=True
    ):
        panels = []
        sided = group["side"].isin(["right", "left"])
        if sided.any():  # one panel per side; the summed 'both' rows are in the CSVs
            group = group[group["side"] != "both"]
        for (structure, side, level), g in group.groupby(["structure", "side", "level"], sort=True):
            title = " ".join(str(t) for t in (structure, side, level) if t)
            panels.append(BlandAltmanPanel(title, g["auto"].to_numpy(float), g["manual"].to_numpy(float)))
        stem = "_".join(safe_filename(str(t)) for t in ("bland_altman", metric, method, image, scope) if t)
        written.append(
            plot_bland_altman(
                panels,
                path=folder / f"{stem}.png",
                unit=unit,
                title=f"{metric} ({method}{', ' + image if image else ''}), {scope}",
            )
        )
    return written
