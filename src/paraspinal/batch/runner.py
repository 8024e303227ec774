"""Cohort runs: many cases on local worker processes or a Dask cluster, resumable after any kill.

* Every case goes through :func:`paraspinal.pipeline.case_run.run_case`, which writes ``<out>/<case>/``
  atomically (staged under a hidden name, checked against its manifest, then renamed) and never raises
  for a bad case.
* A run holds the output folder's lock (:mod:`paraspinal.batch.lock`) from start to end: a second run on
  the same folder is refused (or waits, ``wait``), and the parts of one split run side by side.
  Holding it proves which staging folders are left by dead runs; only those are removed.
* Models come from the run's :class:`~paraspinal.backends.catalog.Models`: each process (the driver when it
  runs cases itself, each worker otherwise) loads each model the first time a case needs it, and only then;
  a driver whose workers segment loads none. A worker that dies costs only its own case, which is retried on
  a fresh worker (:mod:`paraspinal.batch.workers`).
* The driver alone writes the SQLite ledger; a case folder whose manifest lists only files that exist is
  the proof that the case finished, so after ``kill -9`` a restart skips exactly the finished cases.
* ``num_parts``/``part_id`` split the cohort for array jobs. Every run, every part when it ends, rebuilds
  the cohort tables and report from every finished case on disk (:mod:`paraspinal.batch.cohort`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from paraspinal.backends.catalog import BackendFactory, Models
from paraspinal.batch.cohort import (
    clear_cohort_leftovers,
    clear_dead_staging,
    common_model,
    finished_cases,
    rebuild_cohort,
)
from paraspinal.batch.ledger import Ledger
from paraspinal.batch.lock import run_lock
from paraspinal.batch.parts import select_part
from paraspinal.batch.workers import DEFAULT_ATTEMPTS, run_in_workers
from paraspinal.errors import InputError
from paraspinal.pipeline.case import Case
from paraspinal.pipeline.case_run import run_case
from paraspinal.pipeline.levels import check_levels_csv
from paraspinal.pipeline.manifest import utc_now
from paraspinal.pipeline.options import RunOptions
from paraspinal.pipeline.results import CaseResult, RunResult, finished_case_result

LEDGER_NAME = "ledger.sqlite"


@dataclass(frozen=True)
class BatchProgress:
    """Cohort progress after each finished case (rate in cases per minute, ETA in seconds)."""

    done: int
    failed: int
    skipped: int
    remaining: int
    total: int
    rate_per_min: float
    eta_s: float | None
    last: CaseResult | None = None


@dataclass(frozen=True)
class BatchOptions:
    """How a cohort is spread over workers, and what to do when the output folder is busy.

    ``attempts``: how many times in all a case is tried when its worker process dies under it.
    """

    workers: int = 1
    scheduler: str | None = None  # Dask scheduler address (tcp://host:port); None = local processes
    num_parts: int = 1
    part_id: int = 0
    resume: bool = True
    wait: bool = False  # wait for another run on the same folder to end, instead of refusing
    attempts: int = DEFAULT_ATTEMPTS


def run_batch(
    cases: Sequence[Case],
    *,
    options: RunOptions,
    out_dir: str | Path,
    batch: BatchOptions = BatchOptions(),
    models: Models | None = None,
    on_progress: Callable[[BatchProgress], None] | None = None,
    command: Sequence[str] | None = None,
    failed_inputs: Sequence[tuple[str, str]] = (),
    on_wait: Callable[[str], None] | None = None,
) -> RunResult:
    """Run a cohort (see module docstring); returns every case of this part, finished earlier or now.

    ``failed_inputs`` are ``(case_id, reason)`` pairs of inputs that make no case (a bad cases CSV row, an
    unmatched file): they are recorded and reported as failed cases. ``models`` (default: the bundled muscle
    and spine models) must be picklable when ``batch.workers`` > 1 or ``batch.scheduler`` is set: factories,
    module-level functions or classes, that workers call.
    """
    models = models if models is not None else Models()
    out = Path(out_dir).absolute()
    if out.exists() and not out.is_dir():
        raise InputError("output path exists and is not a folder", path=out)
    failed_inputs = [
        (case_id, reason) for case_id, reason in failed_inputs if case_id not in {c.case_id for c in cases}
    ]
    every = [c.case_id for c in cases] + [case_id for case_id, _ in failed_inputs]
    mine = set(select_part(every, num_parts=batch.num_parts, part_id=batch.part_id))
    part = [c for c in cases if c.case_id in mine]
    refused = [(case_id, reason) for case_id, reason in failed_inputs if case_id in mine]
    if len(cases) > 1 and options.levels_csv is not None:
        check_levels_csv(options.levels_csv, n_cases=len(cases))
    if any(c.needs_segmentation for c in part):
        models.check("muscle")  # a missing model or extra stops the run here, before any output, loading nothing
    out.mkdir(parents=True, exist_ok=True)
    started = utc_now()
    start = time.perf_counter()
    part_spec = (batch.num_parts, batch.part_id)
    with run_lock(
        out, num_parts=part_spec[0], part_id=part_spec[1], wait=batch.wait, command=command, on_wait=on_wait
    ) as lock:
        clear_dead_staging(out, lock=lock, cases=mine)
        clear_cohort_leftovers(out)
        with Ledger(out / _ledger_name(batch)) as ledger:
            ledger.forget_all_but(mine)
            ledger.register(sorted(mine))
            done_before = finished_cases(out) & {c.case_id for c in part} if batch.resume else set()
            ledger.reconcile(finished=done_before)
            todo = [c for c in part if c.case_id not in done_before]
            results = [finished_case_result(out / case_id) for case_id in sorted(done_before)]
            tracker = _Tracker(total=len(part) + len(refused), skipped=len(done_before), on_progress=on_progress)
            for case_id, reason in refused:
                ledger.mark_failed(case_id, error=reason, seconds=0.0)
                result = CaseResult(case_id, "failed", error=reason)
                results.append(result)
                tracker.update(result)
            for result in _execute(todo, options=options, out=out, batch=batch, models=models, ledger=ledger):
                if result.ok:
                    ledger.mark_done(result.case_id, seconds=sum(result.timings_s.values()))
                else:
                    ledger.mark_failed(
                        result.case_id, error=result.error or "failed", seconds=sum(result.timings_s.values())
                    )
                results.append(result)
                tracker.update(result)
        files = rebuild_cohort(out, options=options, command=command, started_at=started, start_s=start)
    order = {case_id: i for i, case_id in enumerate(every)}
    results.sort(key=lambda r: order.get(r.case_id, len(order)))
    return RunResult(out, tuple(results), files, common_model(results))


def collect(out_dir: str | Path, *, command: Sequence[str] | None = None) -> dict[str, Path]:
    """Rebuild the cohort files of ``out_dir`` from every finished case on disk (``paraspinal collect``)."""
    out = Path(out_dir).absolute()
    if not out.is_dir():
        raise InputError("output folder not found", path=out)
    if not finished_cases(out) and not any(out.glob("ledger*.sqlite")):
        raise InputError("holds no paraspinal case folders or ledger: not a run's output folder", path=out)
    return rebuild_cohort(out, options=None, command=command, started_at=utc_now(), start_s=time.perf_counter())


def _ledger_name(batch: BatchOptions) -> str:
    return LEDGER_NAME if batch.num_parts == 1 else f"ledger.part{batch.part_id}of{batch.num_parts}.sqlite"


class _Tracker:
    def __init__(self, *, total: int, skipped: int, on_progress: Callable[[BatchProgress], None] | None) -> None:
        self.total, self.skipped, self.on_progress = total, skipped, on_progress
        self.done = self.failed = 0
        self.start = time.perf_counter()

    def update(self, result: CaseResult) -> None:
        if result.ok:
            self.done += 1
        else:
            self.failed += 1
        finished = self.done + self.failed
        remaining = self.total - self.skipped - finished
        elapsed = time.perf_counter() - self.start
        rate = finished / elapsed * 60 if elapsed > 0 else 0.0
        eta = remaining / (finished / elapsed) if finished and elapsed > 0 else None
        if self.on_progress is not None:
            self.on_progress(
                BatchProgress(self.done, self.failed, self.skipped, remaining, self.total, rate, eta, result)
            )


# --- execution ------------------------------------------------------------------------------------


def worker_models(models: Models, *, workers: int, cpu_count: int) -> Models:
    """The models each local worker process loads: the CPU cores shared out between the workers.

    ONNX Runtime and PyTorch otherwise start one thread per core in every worker, so ``workers``
    processes on ``cpu_count`` cores would oversubscribe them ``workers``-fold. A catalog factory
    whose threads are unset gets ``cpu_count // workers`` (at least 1); anything else (a user's
    callable) is left alone.
    """
    threads = max(1, cpu_count // max(1, workers))

    def shared(source: object) -> object:
        if isinstance(source, BackendFactory) and source.options.threads is None:
            return replace(source, options=replace(source.options, threads=threads))
        return source

    return models.replace(muscle=shared(models.source("muscle")), spine=shared(models.source("spine")))  # type: ignore[arg-type]


def _execute(
    cases: Sequence[Case],
    *,
    options: RunOptions,
    out: Path,
    batch: BatchOptions,
    models: Models,
    ledger: Ledger,
) -> Iterator[CaseResult]:
    if not cases:
        return
    if batch.scheduler is not None:
        try:
            from paraspinal.batch.dask_runner import run_on_dask
        except ImportError:
            raise InputError("--scheduler needs Dask: pip install 'paraspinal[dask]'") from None

        yield from run_on_dask(
            cases,
            options=options,
            out=out,
            address=batch.scheduler,
            models=models,
            on_submit=lambda c: ledger.mark_running(c, worker="dask"),
        )
        return
    if batch.workers <= 1:
        for case in cases:
            ledger.mark_running(case.case_id, worker=f"pid{os.getpid()}")
            yield run_case(case, models=models, options=options, out_dir=out)
        return
    yield from run_in_workers(
        cases,
        options=options,
        out=out,
        workers=batch.workers,
        models=worker_models(models, workers=batch.workers, cpu_count=os.cpu_count() or 1),
        on_start=lambda case: ledger.mark_running(case.case_id, worker="pool"),
        attempts=batch.attempts,
    )
