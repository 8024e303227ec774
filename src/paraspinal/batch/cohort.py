"""A folder's cohort files, rebuilt from what is on disk: every finished case folder, every ledger.

Whichever process writes them (a whole run, each part of a split as it ends, a resumed run, or
``paraspinal collect``), the cohort tables and ``report.html`` hold every finished case in the folder,
read back from its own files, plus the failed and not yet finished cases the ledgers know. They are
rebuilt under ``cohort.lock``, so parts that end together take turns, and temporary ``.part`` files a
killed writer left behind are removed first.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Collection, Sequence
from pathlib import Path

from paraspinal.batch.ledger import Ledger, LedgerRecord
from paraspinal.batch.lock import RunLock, cohort_lock
from paraspinal.pipeline.case_folder import case_folder_problem, staging_case_id
from paraspinal.pipeline.results import CaseResult, finished_case_result
from paraspinal.pipeline.run_outputs import write_run_outputs

__all__ = ["clear_dead_staging", "cohort_results", "finished_cases", "ledger_paths", "rebuild_cohort"]

LEDGER_GLOB = "ledger*.sqlite"


def finished_cases(out: Path) -> set[str]:
    """Case ids whose folder in ``out`` is complete: its manifest names it and lists only files that exist."""
    if not out.is_dir():
        return set()
    return {
        p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith(".") and case_folder_problem(p) is None
    }


def ledger_paths(out: Path) -> list[Path]:
    """The ledgers in ``out``: ``ledger.sqlite`` of whole-folder runs and one per part of a split."""
    return sorted(out.glob(LEDGER_GLOB)) if out.is_dir() else []


def _latest_records(out: Path) -> dict[str, LedgerRecord]:
    latest: dict[str, LedgerRecord] = {}
    for path in ledger_paths(out):
        with Ledger(path) as ledger:
            for record in ledger.records():
                seen = latest.get(record.case_id)
                if seen is None or (record.finished or 0.0) >= (seen.finished or 0.0):
                    latest[record.case_id] = record
    return latest


def cohort_results(out: Path) -> list[CaseResult]:
    """Every case the folder knows, sorted by id: finished ones from their folders, the rest from the ledgers
    (failed with its error, or pending: not run yet, or running in another part)."""
    finished = finished_cases(out)
    results = [finished_case_result(out / case_id) for case_id in sorted(finished)]
    for case_id, record in sorted(_latest_records(out).items()):
        if case_id in finished:
            continue
        if record.status == "failed":
            results.append(CaseResult(case_id, "failed", error=record.error or "failed"))
        else:
            results.append(CaseResult(case_id, "pending"))
    return sorted(results, key=lambda r: r.case_id)


def clear_dead_staging(out: Path, *, lock: RunLock, cases: Collection[str]) -> int:
    """Remove staging folders whose writer is provably gone: every one when ``lock`` is a whole-folder run's
    (no other run can be writing), else only those of ``cases`` (the part's own, which no one else runs)."""
    removed = 0
    if not out.is_dir():
        return removed
    for path in out.iterdir():
        case_id = staging_case_id(path.name)
        if case_id is None or not path.is_dir() or not (lock.exclusive or case_id in cases):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed += 1
    return removed


def _clear_part_files(out: Path) -> int:
    """Remove ``.*.part`` files at the top of ``out``: temporary cohort files of a writer that was killed
    (only cohort writing, which holds ``cohort.lock``, puts them there)."""
    removed = 0
    for path in out.glob(".*.part"):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def clear_cohort_leftovers(out: Path) -> int:
    """Under ``cohort.lock``: remove what a killed cohort writer left (see :func:`_clear_part_files`)."""
    with cohort_lock(out):
        return _clear_part_files(out)


def rebuild_cohort(
    out: Path,
    *,
    options: object | None,
    command: Sequence[str] | None,
    started_at: str,
    start_s: float,
) -> dict[str, Path]:
    """Rewrite the cohort files of ``out`` from disk (see the module docstring); returns their paths by kind.

    ``options`` are the options of the run writing them (None for ``collect``); ``start_s`` is its
    ``time.perf_counter()`` at start.
    """
    with cohort_lock(out):
        _clear_part_files(out)
        results = cohort_results(out)
        return write_run_outputs(
            out,
            results=results,
            options=options,
            provenance=common_model(results),
            started_at=started_at,
            seconds=time.perf_counter() - start_s,
            command=command,
        )


def common_model(results: Sequence[CaseResult]) -> dict[str, object] | None:
    """The segmentation model of the cohort's segmented cases: their provenance when they share one model
    (same name and weights), a ``several models`` record listing each otherwise, None when none was segmented."""
    models: dict[tuple[str, str], dict[str, object]] = {}
    for result in results:
        if result.model:
            key = (str(result.model.get("model") or result.model.get("name")), str(result.model.get("weights_sha256")))
            models.setdefault(key, result.model)
    if not models:
        return None
    if len(models) == 1:
        return next(iter(models.values()))
    return {"name": "several models", "models": list(models.values())}
