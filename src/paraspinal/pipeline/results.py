"""What a run reports: one :class:`CaseResult` per case, a :class:`RunResult`, progress :class:`RunEvent`s."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd

from paraspinal.pipeline.case_folder import read_case_manifest, read_case_summary
from paraspinal.reporting.qc_checks import Check

__all__ = ["CaseResult", "RunEvent", "RunResult", "finished_case_result"]


@dataclass(frozen=True)
class CaseResult:
    """What happened to one case. ``files`` are final paths; ``summary`` is its summary table; ``model`` the
    provenance of the model that segmented it (None for a given label map); ``quality`` its quality as the
    case manifest keeps it (status, score, reasons, thumbnail; None when not assessed). ``pending`` appears only in
    cohort listings: a case of another part of a split that has not finished yet."""

    case_id: str
    status: Literal["ok", "failed", "pending"]
    out_dir: Path | None = None
    files: dict[str, Path] = field(default_factory=dict)
    error: str | None = None
    detail: str | None = None  # traceback of an unexpected error
    warnings: tuple[str, ...] = ()
    checks: tuple[Check, ...] = ()
    timings_s: dict[str, float] = field(default_factory=dict)
    summary: pd.DataFrame | None = None
    segmented: bool = False
    inputs: dict[str, dict[str, object]] = field(default_factory=dict)
    model: dict[str, object] | None = None
    quality: Mapping[str, object] | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class RunResult:
    out_dir: Path
    cases: tuple[CaseResult, ...]
    files: dict[str, Path]
    backend: dict[str, object] | None

    @property
    def n_failed(self) -> int:
        return sum(not c.ok for c in self.cases)

    @property
    def n_ok(self) -> int:
        return sum(c.ok for c in self.cases)


@dataclass(frozen=True)
class RunEvent:
    """Progress: ``case_start`` / ``step`` (``step`` set) / ``case_end`` (``result`` set)."""

    kind: Literal["case_start", "step", "case_end"]
    case_id: str
    index: int
    total: int
    step: str | None = None
    result: CaseResult | None = None


def finished_case_result(folder: Path) -> CaseResult:
    """The :class:`CaseResult` of a finished case folder, read back from its manifest and summary table,
    so cohort tables are the same whichever process (a part, a resumed run, ``collect``) writes them."""
    case_id = folder.name
    manifest = read_case_manifest(folder) or {}
    outputs = [str(o) for o in manifest.get("outputs", []) or []]  # type: ignore[union-attr]
    kinds = {
        f"{case_id}_measurements.parquet": "parquet",
        f"{case_id}_report.html": "report",
        f"{case_id}_manifest.json": "manifest",
        f"{case_id}_dseg.nii.gz": "dseg",
        f"{case_id}_quality.json": "quality",
    }
    files = {kinds[o]: folder / o for o in outputs if o in kinds}
    checks = tuple(
        Check(str(c["name"]), str(c["title"]), c["status"], str(c["message"]))  # type: ignore[arg-type]
        for c in manifest.get("checks", []) or []  # type: ignore[union-attr]
        if isinstance(c, dict) and {"name", "title", "status", "message"} <= set(c)
    )
    segmentation = manifest.get("segmentation") or {}
    segmented = isinstance(segmentation, dict) and segmentation.get("source") == "backend"
    model = segmentation.get("backend") if segmented else None  # type: ignore[union-attr]
    return CaseResult(
        case_id,
        "ok",
        out_dir=folder,
        files=files,
        warnings=tuple(str(w) for w in manifest.get("warnings", []) or []),  # type: ignore[union-attr]
        checks=checks,
        timings_s={str(k): float(v) for k, v in (manifest.get("timings_s") or {}).items()},  # type: ignore[union-attr]
        summary=read_case_summary(folder),
        segmented=segmented,
        inputs=dict(manifest.get("inputs") or {}),  # type: ignore[arg-type]
        model=dict(model) if isinstance(model, dict) else None,
        quality=dict(quality) if isinstance(quality := manifest.get("quality"), dict) else None,
    )
