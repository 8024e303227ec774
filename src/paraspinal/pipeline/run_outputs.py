"""The run's cohort files (tables, report, ``manifest.json``) from its case results."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from paraspinal.pipeline.manifest import jsonable, run_manifest, write_json
from paraspinal.reporting import AtomicOutputs
from paraspinal.reporting.html import describe_model
from paraspinal.reporting.qc_cohort import write_cohort_outputs

if TYPE_CHECKING:
    from paraspinal.pipeline.options import RunOptions
    from paraspinal.pipeline.results import CaseResult


def write_run_outputs(
    out: Path,
    *,
    results: Sequence[CaseResult],
    options: RunOptions | None,
    provenance: dict[str, object] | None,
    started_at: str,
    seconds: float,
    command: Sequence[str] | None,
) -> dict[str, Path]:
    """The run's cohort files and ``manifest.json``, all renamed into place together.

    ``options`` are those of the run writing them (None when ``paraspinal collect`` rebuilds them: then the
    report is written and the options are the cases' own, in their manifests). ``cases.csv`` lists the cases
    by id, the report worst first (:func:`~paraspinal.reporting.qc_cohort.worst_first`)."""
    cases = pd.DataFrame(
        [
            {
                "case_id": r.case_id,
                "status": r.status,
                **_quality_columns(r, out),
                "segmented": "yes" if r.segmented else ("no" if r.ok else ""),
                "checks_warned": ", ".join(c.name for c in r.checks if c.status == "warning"),
                "n_warnings": len(r.warnings),
                "time_s": round(sum(r.timings_s.values()), 3),
                "error": r.error or "",
                "report": r.files["report"].relative_to(out).as_posix() if "report" in r.files else "",
            }
            for r in results
        ],
        columns=["case_id", "status", *_QUALITY_COLUMNS, *_OTHER_COLUMNS],
    )
    segmentation = describe_model(provenance) if provenance is not None else "none (label maps given)"
    info = [("Output folder", str(out)), ("Started (UTC)", started_at), ("Time (s)", f"{seconds:.1f}")]
    if options is not None:
        info += [("Options", ", ".join(f"{k}={v}" for k, v in jsonable(options).items()))]
    else:
        info += [("Options", "rebuilt from the case folders by paraspinal collect (each case's options: its manifest)")]
    info += [(f"Model {k}", str(v)) for k, v in (provenance or {}).items() if isinstance(v, str | int | float)]
    ok = [r for r in results if r.ok]
    with AtomicOutputs(out) as outputs:
        files = write_cohort_outputs(
            outputs,
            cases=cases,
            summaries=[r.summary for r in ok if r.summary is not None],
            tables=[r.files["parquet"] for r in ok if "parquet" in r.files],
            report=True if options is None else options.report,
            segmentation=segmentation,
            info=info,
        )
        manifest = run_manifest(
            started_at=started_at,
            seconds=seconds,
            command=command,
            options=options,
            provenance=provenance,
            cases=[
                {
                    "case_id": r.case_id,
                    "status": r.status,
                    "error": r.error,
                    "detail": r.detail,
                    "folder": r.out_dir.name if r.out_dir is not None else None,
                    "inputs": r.inputs,
                    "warnings": list(r.warnings),
                    "timings_s": r.timings_s,
                }
                for r in results
            ],
            outputs=[p.name for p in files.values()],
        )
        write_json(manifest, outputs.path("manifest.json"))
        files["manifest"] = out / "manifest.json"
    return files


_QUALITY_COLUMNS = ("quality", "quality_score", "quality_reasons", "thumbnail")
_OTHER_COLUMNS = ("segmented", "checks_warned", "n_warnings", "time_s", "error", "report")
_MAX_REASONS = 3


def _quality_columns(result: CaseResult, out: Path) -> dict[str, object]:
    """A case's quality in the cases table: status, score, its first reasons, and its thumbnail (relative to
    ``out``); empty for a case not assessed (failed, pending, or written before quality existed)."""
    quality = result.quality or {}
    reasons = [str(r) for r in quality.get("reasons", []) or []]  # type: ignore[union-attr]
    more = f"; and {len(reasons) - _MAX_REASONS} more" if len(reasons) > _MAX_REASONS else ""
    thumb = quality.get("thumbnail")
    folder = result.out_dir
    return {
        "quality": str(quality.get("status", "")),
        "quality_score": float(quality["score"]) if "score" in quality else float("nan"),  # type: ignore[arg-type]
        "quality_reasons": "; ".join(reasons[:_MAX_REASONS]) + more,
        "thumbnail": (folder / str(thumb)).relative_to(out).as_posix() if thumb and folder is not None else "",
    }
