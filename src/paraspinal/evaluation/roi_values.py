"""Manual ROI values (a reader's HU in a liver ROI, a muscle's mean attenuation) against the automatic ones.

A manual-values CSV has one row per value: ``case_id, structure, side, metric, value`` and optionally
``level`` (a level row; empty: the whole structure), ``method`` (which automatic method to compare with)
and ``unit`` (checked against the automatic row's). Each row is paired with the automatic measurement of
the same case, structure, side, metric and level: the one whose method is given, else the organ's
parenchyma selection (``parenchyma:...``) when there is one, else the whole mask (``mask``). A row with no
automatic counterpart stays in the pairs with ``auto`` NaN and says why in ``note``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from paraspinal.errors import InputError
from paraspinal.evaluation.measurement_agreement import GROUP_COLUMNS

__all__ = ["MANUAL_VALUE_COLUMNS", "pair_roi_values", "read_manual_values"]

MANUAL_VALUE_COLUMNS = ("case_id", "structure", "side", "metric", "value")
_OPTIONAL = ("level", "method", "unit")


def read_manual_values(path: str | Path) -> pd.DataFrame:
    """The manual-values CSV at ``path``, checked (missing columns, non-numeric values: one-line errors)."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise InputError(f"cannot read the manual values CSV ({exc})", path=path) from exc
    missing = [c for c in MANUAL_VALUE_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"manual values CSV lacks column(s) {', '.join(missing)}", path=path)
    for column in _OPTIONAL:
        if column not in table.columns:
            table[column] = ""
    values = pd.to_numeric(table["value"].str.strip(), errors="coerce")
    bad = table.index[values.isna()].tolist()
    if bad:
        raise InputError(
            f"manual values CSV row {bad[0] + 2}: value {table['value'].iloc[bad[0]]!r} is not a number", path=path
        )
    table["value"] = values.astype(float)
    for column in ("case_id", "structure", "side", "metric", *_OPTIONAL):
        table[column] = table[column].str.strip()
    return table.loc[:, [*MANUAL_VALUE_COLUMNS, *_OPTIONAL]]


def _pick(candidates: pd.DataFrame, method: str) -> tuple[pd.Series | None, str]:
    if method:
        hit = candidates[candidates["method"] == method]
        return (hit.iloc[0], "") if len(hit) else (None, f"no automatic {method} value")
    for prefer in (candidates["method"].str.startswith("parenchyma:"), candidates["method"] == "mask"):
        hit = candidates[prefer]
        if len(hit):
            return hit.iloc[0], ""
    if len(candidates) == 1:
        return candidates.iloc[0], ""
    if candidates.empty:
        return None, "no automatic value for this structure, side, metric and level"
    return None, f"several automatic methods ({', '.join(candidates['method'])}): name one in the method column"


def pair_roi_values(auto: pd.DataFrame, manual: pd.DataFrame) -> pd.DataFrame:
    """Pairs in :func:`~paraspinal.evaluation.measurement_agreement.pair_measurements`' shape (the group columns,
    ``case_id``, ``slice``, ``auto``, ``manual``, ``difference``) plus ``source`` (``manual ROI``) and ``note``."""
    rows = []
    for row in manual.itertuples(index=False):
        scope = "level" if row.level else "structure"
        candidates = auto[
            (auto["case_id"].astype(str) == row.case_id)
            & (auto["structure"] == row.structure)
            & (auto["side"] == row.side)
            & (auto["metric"] == row.metric)
            & (auto["scope"] == scope)
            & (auto["level"].fillna("").astype(str) == row.level)
        ]
        found, note = _pick(candidates, row.method)
        unit = str(found["unit"]) if found is not None else row.unit
        if found is not None and row.unit and row.unit != unit:
            found, note = None, f"unit {row.unit} differs from the automatic value's {unit}"
        auto_value = float(found["value"]) if found is not None else float("nan")
        rows.append(
            {
                "case_id": row.case_id,
                "structure": row.structure,
                "side": row.side,
                "scope": scope,
                "level": row.level,
                "slice": pd.NA,
                "metric": row.metric,
                "method": str(found["method"]) if found is not None else row.method,
                "image": str(found["image"]) if found is not None else "",
                "unit": unit,
                "auto": auto_value,
                "manual": float(row.value),
                "difference": auto_value - float(row.value),
                "source": "manual ROI",
                "note": note,
            }
        )
    columns = ["case_id", *GROUP_COLUMNS, "slice", "auto", "manual", "difference", "source", "note"]
    return pd.DataFrame(rows, columns=columns)
