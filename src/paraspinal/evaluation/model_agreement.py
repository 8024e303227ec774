"""Agreement between two models' label maps, with no reference: A against B at their common labels.

Two label maps (or two folders of them, or two ``paraspinal run`` output folders, paired by case id
as :mod:`.pairing` does) are each merged to the common granularity of their schemes
(:mod:`.granularity`: e.g. ``lpm4`` erector spinae + multifidus against ``total_mr`` autochthon, per
side) and compared with the overlap metrics of :mod:`.overlap`: Dice, IoU, HD95 and ASSD per
structure and side, and the volumes of A and B with their difference (A - B, and % of B). Neither
side is a reference; B only fixes the voxel grid and the denominator of the % difference.

A label map's scheme comes from, in order: the ``scheme_a``/``scheme_b`` argument, the JSON sidecar
``paraspinal segment`` writes next to it (``<stem>.json``, key ``scheme``), the case manifest of a
``paraspinal run`` folder (``<case>_manifest.json``, key ``label_scheme``), then ``fallback_scheme``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from paraspinal.anatomy import LabelScheme, load_scheme
from paraspinal.errors import InputError, ParaspinalError
from paraspinal.evaluation.evaluate import CaseRecord, EvaluationResult, case_levels, case_overlap
from paraspinal.evaluation.granularity import CommonGranularity, common_granularity
from paraspinal.evaluation.overlap import EMPTY_PRED, EMPTY_REF
from paraspinal.evaluation.pairing import case_id_from_path, pair_cases
from paraspinal.io import check_same_grid, read_label_map, strip_image_suffix

__all__ = ["MODEL_AGREEMENT", "compare_models", "label_map_scheme"]

MODEL_AGREEMENT = "model_agreement"
EMPTY_A, EMPTY_B = "empty in A", "empty in B"
_METRIC_NAMES = {"volume_pred": "volume_a", "volume_ref": "volume_b"}
_REASONS = {EMPTY_PRED: EMPTY_A, EMPTY_REF: EMPTY_B}
_MAX_NAMES = 8


def _read_json(path: Path) -> dict[str, object] | None:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return document if isinstance(document, dict) else None


def _recorded_scheme(label_map: Path) -> tuple[str, Path] | None:
    """(scheme key, file that records it) from a segment sidecar or a run's case manifest, or None."""
    sidecar = label_map.with_name(strip_image_suffix(label_map) + ".json")
    manifest = label_map.with_name(f"{case_id_from_path(label_map)}_manifest.json")
    for path, key in ((sidecar, "scheme"), (manifest, "label_scheme")):
        document = _read_json(path) if path.is_file() else None
        if document is not None and isinstance(document.get(key), str) and document[key]:
            return str(document[key]), path
    return None


def label_map_scheme(label_map: str | Path, *, explicit: str | None, fallback: str | None, option: str) -> LabelScheme:
    """The label scheme of ``label_map`` (see the module docstring for where it comes from).

    ``option`` names the command-line flag in the error raised when the scheme cannot be told.
    """
    if explicit is not None:
        return load_scheme(explicit)
    recorded = _recorded_scheme(Path(label_map))
    if recorded is not None:
        key, source = recorded
        try:
            return load_scheme(key)
        except ParaspinalError:
            raise InputError(
                f"records label scheme '{key}', which is not a bundled scheme; give {option} KEY|FILE", path=source
            ) from None
    if fallback is not None:
        return load_scheme(fallback)
    raise InputError(
        f"cannot tell the label scheme (no segment sidecar or run manifest beside it); give {option} KEY|FILE",
        path=label_map,
    )


def _unmatched_warning(common: CommonGranularity, side: str) -> str | None:
    scheme, other = (common.scheme_a, common.scheme_b) if side == "A" else (common.scheme_b, common.scheme_a)
    values = common.unmatched_a if side == "A" else common.unmatched_b
    if not values:
        return None
    names = [scheme.labels[v].name for v in values]
    shown = ", ".join(names[:_MAX_NAMES]) + (f", ... ({len(names)} labels)" if len(names) > _MAX_NAMES else "")
    return f"model {side} ({scheme.key}) labels with no counterpart in {other.key}, left out: {shown}"


def _present_unknown(array: np.ndarray, scheme: LabelScheme) -> list[int]:
    return sorted(int(v) for v in np.unique(array) if v != 0 and int(v) not in scheme.labels)


def _as_agreement(table: pd.DataFrame) -> pd.DataFrame:
    """An overlap table with A/B wording: volume_a, volume_b; reasons 'empty in A/B'."""
    table = table.copy()
    table["metric"] = table["metric"].replace(_METRIC_NAMES)
    table["reason"] = table["reason"].replace(_REASONS)
    return table


def compare_models(
    a: str | Path,
    b: str | Path,
    *,
    scheme_a: str | None = None,
    scheme_b: str | None = None,
    fallback_scheme: str | None = None,
    levels_csv: str | Path | None = None,
    assume_aligned: bool = False,
    progress: Callable[[CaseRecord], None] | None = None,
) -> EvaluationResult:
    """Agreement of label maps ``a`` and ``b`` (files, folders or run folders) at their common labels.

    Returns an :class:`EvaluationResult` of kind ``model_agreement`` whose ``overlap`` table holds,
    per case, common label and level: dice, iou, hd95, assd (mm), volume_a, volume_b,
    volume_diff (A - B) in mm³ and volume_diff_pct (% of B). Raises InputError when the schemes
    share no structure.
    """
    pairing = pair_cases(a, b)
    single = Path(a).is_file()
    commons: dict[tuple[str, str], CommonGranularity] = {}
    warnings = list(pairing.warnings)
    warnings = [w.replace("predicted case(s) have no reference", "case(s) of A have no match in B") for w in warnings]
    warnings = [w.replace("reference case(s) have no prediction", "case(s) of B have no match in A") for w in warnings]
    tables, records = [], []
    for case in pairing.pairs:
        record = CaseRecord(case.case_id, str(case.pred), str(case.ref))
        records.append(record)
        try:
            sa = label_map_scheme(case.pred, explicit=scheme_a, fallback=fallback_scheme, option="--scheme-a")
            sb = label_map_scheme(case.ref, explicit=scheme_b, fallback=fallback_scheme, option="--scheme-b")
            pair_key = (sa.source, sb.source)
            if pair_key not in commons:
                commons[pair_key] = common_granularity(sa, sb)
                warnings += [w for w in (_unmatched_warning(commons[pair_key], s) for s in "AB") if w]
            common = commons[pair_key]
            img_b = read_label_map(case.ref)
            img_a = check_same_grid(img_b, read_label_map(case.pred), assume_aligned=assume_aligned)
            for side, img, scheme in (("A", img_a, sa), ("B", img_b, sb)):
                unknown = _present_unknown(img.array, scheme)
                if unknown:
                    record.warnings.append(f"{side}: label values not in scheme {scheme.key}, left out: {unknown}")
            merged_a = img_a.with_array(common.merge_a(img_a.array), source=f"A at common labels: {case.pred}")
            merged_b = img_b.with_array(common.merge_b(img_b.array), source=f"B at common labels: {case.ref}")
            levels = case_levels(levels_csv, case, img_b, record)
            table = case_overlap(case, merged_a, merged_b, scheme=common.scheme, levels=levels, record=record)
            table.insert(1, "scheme_a", sa.key)
            table.insert(2, "scheme_b", sb.key)
            tables.append(_as_agreement(table))
        except ParaspinalError as exc:
            record.status, record.errors = "error", [str(exc)]
            if single:
                raise
        if progress:
            progress(record)
    overlap = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    options: dict[str, object] = {
        "a": str(a),
        "b": str(b),
        "scheme_a": scheme_a,
        "scheme_b": scheme_b,
        "fallback_scheme": fallback_scheme,
        "levels_csv": None if levels_csv is None else str(levels_csv),
        "assume_aligned": assume_aligned,
    }
    empty = pd.DataFrame()
    return EvaluationResult(
        overlap,
        empty,
        empty,
        empty,
        empty,
        empty,
        records,
        warnings,
        options,
        kind=MODEL_AGREEMENT,
        common_labels=[row for common in commons.values() for row in common.table()],
    )
