"""What a case page shows of a case's quality: the verdict at the top, a ``qc`` per table row, reasons per
structure and per flagged slice (plain values; :mod:`paraspinal.reporting.html_tables` turns them into cells); and
the cohort page's order of cases, worst first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from paraspinal.quality import CaseQuality, worst_status

__all__ = ["QualitySummary", "row_qc", "slice_notes", "structure_reasons", "summarise", "worst_first"]


@dataclass(frozen=True)
class QualitySummary:
    """The case page's quality section: the case's verdict and each part that is not ``ok``."""

    status: str
    score: float
    reasons: tuple[str, ...]
    parts: tuple[tuple[str, str, float], ...]  # (what, status, score) of every assessed part
    laterality: str


def summarise(quality: CaseQuality) -> QualitySummary:
    """The quality section of a case page from ``quality``."""
    parts = [(f"{s.structure} ({s.side})", s.assessment.status, s.assessment.score) for s in quality.structures]
    if quality.levels is not None:
        parts.append(("levels", quality.levels.status, quality.levels.score))
    laterality = quality.laterality.result if quality.laterality is not None else "not checked"
    if quality.laterality is not None and quality.laterality.reasons:
        laterality += ": " + "; ".join(quality.laterality.reasons)
    return QualitySummary(quality.status, quality.score, quality.assessment.reasons, tuple(parts), laterality)


def row_qc(rows: pd.DataFrame, keys: Sequence[str]) -> dict[tuple[object, ...], str]:
    """The worst ``qc`` of ``rows`` per value of ``keys`` (empty when the table has no ``qc`` column)."""
    if "qc" not in rows.columns or rows.empty:
        return {}
    found: dict[tuple[object, ...], str] = {}
    for key, group in rows.groupby(list(keys), sort=False, dropna=False):
        found[key if isinstance(key, tuple) else (key,)] = worst_status(str(q) for q in group["qc"].dropna())
    return found


def structure_reasons(quality: CaseQuality | None) -> dict[tuple[str, str], str]:
    """``(structure, side)`` -> its reasons, for the structures that are not ``ok``."""
    if quality is None:
        return {}
    return {
        (s.structure, s.side): "; ".join(s.assessment.reasons)
        for s in quality.structures
        if s.assessment.status != "ok"
    }


def slice_notes(quality: CaseQuality | None) -> dict[int, tuple[str, tuple[str, ...]]]:
    """Slice index -> (status, reasons) for every slice that is not ``ok``."""
    if quality is None:
        return {}
    return {k: (a.status, a.reasons) for k, a in quality.slices().items() if a.status != "ok"}


_STATUS_RANK = {"failed": 0, "pending": 2}
_QUALITY_RANK = {"fail": 0, "review": 1, "ok": 2}


def worst_first(cases: pd.DataFrame) -> pd.DataFrame:
    """``cases`` (columns ``case_id``, ``status``, ``quality``, ``quality_score``) with a reviewer's worst first:
    failed runs, then quality ``fail``, ``review``, ``ok`` (lowest score first within each), then cases not
    assessed, then pending ones; ties by case id. A table without a ``quality`` column is returned as given."""
    if "quality" not in cases.columns or cases.empty:
        return cases
    run = cases["status"].map(_STATUS_RANK).fillna(1)
    quality = cases["quality"].map(_QUALITY_RANK).fillna(3)
    score = pd.to_numeric(cases["quality_score"], errors="coerce").fillna(2.0)
    order = cases.assign(_r=run, _q=quality, _s=score).sort_values(["_r", "_q", "_s", "case_id"], kind="stable")
    return order.drop(columns=["_r", "_q", "_s"]).reset_index(drop=True)
