"""The quality of one result, in one shape: a status, a score and the reasons.

``status`` is ``ok`` (nothing found that predicts an error), ``review`` (look before you use it) or ``fail``
(very likely wrong; still written, the user decides). ``score`` is in [0, 1], 1 = trustworthy; a score turns
into a status through :class:`Thresholds` calibrated on data (see ``recipes/quality``). Reasons are one-line,
human-readable, and name what was measured (with units).

A :class:`CaseQuality` gathers a case's structures (each with its flagged slices), its levels and its
laterality check; :meth:`CaseQuality.to_json` is the ``<case>_quality.json`` document. The case's status is
the worst of its parts, its score the lowest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "NOT_CHECKED",
    "Assessment",
    "CaseQuality",
    "LateralityCheck",
    "StructureQuality",
    "Thresholds",
    "combine",
    "status_of",
    "worst_status",
]

Status = Literal["ok", "review", "fail"]
_RANK: dict[str, int] = {"ok": 0, "review": 1, "fail": 2}
NOT_CHECKED = "not checked"


@dataclass(frozen=True)
class Thresholds:
    """Scores at or above ``ok`` are ``ok``; at or above ``fail`` (and below ``ok``) ``review``; below ``fail``
    ``fail``."""

    ok: float
    fail: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.fail <= self.ok <= 1.0:
            raise ValueError(f"quality thresholds need 0 <= fail <= ok <= 1, got fail={self.fail}, ok={self.ok}")


def status_of(score: float, thresholds: Thresholds) -> Status:
    """The status a ``score`` in [0, 1] earns under ``thresholds``."""
    if score >= thresholds.ok:
        return "ok"
    return "review" if score >= thresholds.fail else "fail"


def worst_status(statuses: Iterable[str]) -> Status:
    """The worst of ``statuses`` (``ok`` when there are none)."""
    worst = max(statuses, key=_RANK.__getitem__, default="ok")
    return worst  # type: ignore[return-value]


@dataclass(frozen=True)
class Assessment:
    """One judged result: its status, score in [0, 1] (1 = trustworthy) and the reasons behind them."""

    status: Status
    score: float
    reasons: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.status not in _RANK:
            raise ValueError(f"unknown quality status {self.status!r}; use ok, review or fail")
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"quality score {self.score} outside [0, 1]")

    def to_json(self) -> dict[str, object]:
        return {"status": self.status, "score": round(float(self.score), 4), "reasons": list(self.reasons)}


@dataclass(frozen=True)
class StructureQuality:
    """One structure on one side (``left``/``right``/``both``): its assessment over the whole image and those
    of its slices (index along the image's third axis; every slice that has the structure or should have it)."""

    structure: str
    side: str
    assessment: Assessment
    slices: Mapping[int, Assessment] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        flagged = {str(k): a.to_json() for k, a in sorted(self.slices.items()) if a.status != "ok"}
        return {"structure": self.structure, "side": self.side, **self.assessment.to_json(), "slices": flagged}


@dataclass(frozen=True)
class LateralityCheck:
    """Whether the header's patient right agrees with anatomy: ``agrees``, ``contradicted`` or ``not checked``
    (nothing in view can tell), with the evidence in ``reasons``."""

    result: Literal["agrees", "contradicted", "not checked"]
    reasons: tuple[str, ...] = ()
    evidence: Mapping[str, object] = field(default_factory=dict)

    @property
    def assessment(self) -> Assessment:
        """A contradiction fails the case (every sided number is swapped); the other results do not count."""
        if self.result == "contradicted":
            return Assessment("fail", 0.0, self.reasons)
        return Assessment("ok", 1.0, self.reasons)

    def to_json(self) -> dict[str, object]:
        return {"result": self.result, "reasons": list(self.reasons), "evidence": dict(self.evidence)}


@dataclass(frozen=True)
class CaseQuality:
    """A case's quality: the worst of its structures, levels and laterality (see the module docstring)."""

    assessment: Assessment
    structures: tuple[StructureQuality, ...] = ()
    levels: Assessment | None = None
    laterality: LateralityCheck | None = None

    @property
    def status(self) -> Status:
        return self.assessment.status

    @property
    def score(self) -> float:
        return self.assessment.score

    def structure(self, structure: str, side: str) -> StructureQuality | None:
        return next((s for s in self.structures if s.structure == structure and s.side == side), None)

    def row_status(self, *, structure: str, side: str, slice_index: int | None = None, level: bool = False) -> Status:
        """The ``qc`` of one measurement row. A slice row (``slice_index``) takes its slice's status where the
        slice was assessed (a structure failed on two slices does not fail its other slices), else its
        structure's; other rows their structure's, made worse by the levels' status on a per-level row. A
        contradicted laterality fails every sided row. A structure not assessed by itself (``both`` sums) takes
        the worst of its sides."""
        found = [self.structure(structure, side)] if side not in ("both", "none") else []
        assessed = [s for s in found if s is not None] or [s for s in self.structures if s.structure == structure]
        parts: list[str] = []
        for s in assessed:
            if slice_index is not None and slice_index in s.slices:
                parts.append(s.slices[slice_index].status)
            else:
                parts.append(s.assessment.status)
        if level and self.levels is not None:
            parts.append(self.levels.status)
        if self.laterality is not None and self.laterality.result == "contradicted" and side in ("left", "right"):
            parts.append("fail")
        return worst_status(parts)

    def slices(self) -> dict[int, Assessment]:
        """Per slice index, over the structures assessed on it: the worst status, the lowest score and the
        reasons of the structures not ``ok`` there (prefixed with the structure and side)."""
        found: dict[int, list[tuple[str, Assessment]]] = {}
        for s in self.structures:
            for index, a in s.slices.items():
                found.setdefault(int(index), []).append((f"{s.structure} ({s.side})", a))
        return {
            index: Assessment(
                worst_status(a.status for _, a in parts),
                min(a.score for _, a in parts),
                tuple(f"{name}: {r}" for name, a in parts if a.status != "ok" for r in a.reasons),
            )
            for index, parts in sorted(found.items())
        }

    def to_json(self) -> dict[str, object]:
        """The ``<case>_quality.json`` document (``slices``: every assessed slice, see :meth:`slices`)."""
        return {
            **self.assessment.to_json(),
            "structures": [s.to_json() for s in self.structures],
            "levels": self.levels.to_json() if self.levels is not None else None,
            "laterality": self.laterality.to_json() if self.laterality is not None else None,
            "slices": {str(k): a.to_json() for k, a in self.slices().items()},
        }


def combine(
    *,
    structures: Sequence[StructureQuality] = (),
    levels: Assessment | None = None,
    laterality: LateralityCheck | None = None,
    extra_reasons: Sequence[str] = (),
) -> CaseQuality:
    """A case's quality from its parts: the worst status, the lowest score, and the reasons of every part that
    is not ``ok`` (prefixed with what they are about), then ``extra_reasons``."""
    parts: list[tuple[str, Assessment]] = [(f"{s.structure} ({s.side})", s.assessment) for s in structures]
    if levels is not None:
        parts.append(("levels", levels))
    if laterality is not None:
        parts.append(("laterality", laterality.assessment))
    status = worst_status(a.status for _, a in parts)
    score = min((a.score for _, a in parts), default=1.0)
    reasons = [f"{name}: {r}" for name, a in parts if a.status != "ok" for r in a.reasons]
    return CaseQuality(
        Assessment(status, score, (*reasons, *extra_reasons)),
        tuple(structures),
        levels,
        laterality,
    )


def from_json(document: Mapping[str, object]) -> Assessment:
    """An :class:`Assessment` from its JSON form (``{"status", "score", "reasons"}``)."""
    reasons = document.get("reasons", ())
    return Assessment(
        str(document["status"]),  # type: ignore[arg-type]
        float(document["score"]),  # type: ignore[arg-type]
        tuple(str(r) for r in reasons),  # type: ignore[union-attr]
    )
