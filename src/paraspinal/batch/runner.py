"""Cohort runs: many cases on local worker processes or a Dask cluster, resumable after any kill.

* Every case goes through :func:`paraspinal.pipeline.run.run_case`, which writes ``<out>/<case>/``
  atomically (staged under a hidden name, then renamed) and never raises for a bad case.
* Each worker builds the segmentation backend once (``backend_factory()``) and reuses it.
* The driver alone writes the SQLite ledger (``<out>/ledger.sqlite``); a case folder holding its
  ``<case>_manifest.json`` is the proof that the case finished, so after ``kill -9`` a restart
  skips exactly the finished cases and clears half-written staging folders.
* ``num_parts``/``part_id`` split the cohort for array jobs; every part resumes independently.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path

import pandas as pd

from paraspinal.backends import SegmentationBackend
from paraspinal.backends.catalog import BackendFactory as CatalogFactory
from paraspinal.backends.catalog import BackendOptions
from paraspinal.batch.ledger import Ledger
from paraspinal.batch.parts import select_part
from paraspinal.errors import InputError
from paraspinal.pipeline.cases import Case
from paraspinal.pipeline.run import CaseResult, RunOptions, RunResult, default_backend, run_case, write_run_outputs

BackendFactory = Callable[[], SegmentationBackend]
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
    """How a cohort is spread over workers."""

    workers: int = 1
    scheduler: str | None = None  # Dask scheduler address (tcp://host:port); None = local processes
    num_parts: int = 1
    part_id: int = 0
    resume: bool = True


def finished_cases(out_dir: Path) -> set[str]:
    """Case ids whose output folder is complete (it holds the case manifest, written last)."""
    if not out_dir.is_dir():
        return set()
    return {p.name for p in out_dir.iterdir() if p.is_dir() and (p / f"{p.name}_manifest.json").is_file()}


def clear_partial_outputs(out_dir: Path) -> int:
    """Remove staging folders left by a killed run (``.<case>.partial-*``, ``.<case>.old-*``)."""
    removed = 0
    if out_dir.is_dir():
        for p in out_dir.iterdir():
            if p.is_dir() and p.name.startswith(".") and (".partial-" in p.name or ".old-" in p.name):
                shutil.rmtree(p, ignore_errors=True)
                removed += 1
    return removed


def run_batch(
    cases: Sequence[Case],
    *,
    options: RunOptions,
    out_dir: str | Path,
    batch: BatchOptions = BatchOptions(),
    backend_factory: BackendFactory | None = None,
    on_progress: Callable[[BatchProgress], None] | None = None,
    command: Sequence[str] | None = None,
) -> RunResult:
    """Run a cohort (see module docstring); returns every case of this part, finished earlier or now.

    ``backend_factory`` must be picklable (a module-level function or class) because workers call it;
    the default builds the bundled model.
    """
    out = Path(out_dir).absolute()
    if out.exists() and not out.is_dir():
        raise InputError("output path exists and is not a folder", path=out)
    mine = set(select_part([c.case_id for c in cases], num_parts=batch.num_parts, part_id=batch.part_id))
    part = [c for c in cases if c.case_id in mine]
    out.mkdir(parents=True, exist_ok=True)
    clear_partial_outputs(out)
    factory = backend_factory or default_backend
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    start = time.perf_counter()
    with Ledger(out / _ledger_name(batch)) as ledger:
        ledger.register(c.case_id for c in part)
        done_before = finished_cases(out) & mine if batch.resume else set()
        ledger.reconcile(finished=done_before)
        todo = [c for c in part if c.case_id not in done_before]
        results = list(_previous_results(out, sorted(done_before)))
        tracker = _Tracker(total=len(part), skipped=len(done_before), on_progress=on_progress)
        needs_model = any(c.needs_segmentation for c in todo)
        # build the model once here too: a missing model stops the run before any work, and the
        # run manifest records exactly which model the workers use
        driver_backend = factory() if needs_model else None
        provenance = dict(driver_backend.provenance) if driver_backend is not None else None
        for result in _execute(
            todo,
            options=options,
            out=out,
            batch=batch,
            factory=factory if needs_model else None,
            local_backend=driver_backend,
            ledger=ledger,
        ):
            if result.ok:
                ledger.mark_done(result.case_id, seconds=sum(result.timings_s.values()))
            else:
                ledger.mark_failed(
                    result.case_id, error=result.error or "failed", seconds=sum(result.timings_s.values())
                )
            results.append(result)
            tracker.update(result)
    order = {c.case_id: i for i, c in enumerate(part)}
    results.sort(key=lambda r: order.get(r.case_id, len(order)))
    files = write_run_outputs(
        out,
        results=results,
        options=options,
        provenance=provenance,
        started_at=started,
        seconds=time.perf_counter() - start,
        command=command,
    )
    return RunResult(out, tuple(results), files, provenance)


def _ledger_name(batch: BatchOptions) -> str:
    return LEDGER_NAME if batch.num_parts == 1 else f"ledger.part{batch.part_id}of{batch.num_parts}.sqlite"


def _previous_results(out: Path, case_ids: Sequence[str]) -> Iterator[CaseResult]:
    """CaseResults for cases finished by an earlier run, rebuilt from their folders."""
    for case_id in case_ids:
        folder = out / case_id
        files = {
            "parquet": folder / f"{case_id}_measurements.parquet",
            "report": folder / f"{case_id}_report.html",
            "manifest": folder / f"{case_id}_manifest.json",
        }
        summary_path = folder / f"{case_id}_summary.csv"
        summary = pd.read_csv(summary_path) if summary_path.is_file() else None
        yield CaseResult(
            case_id, "ok", out_dir=folder, files={k: v for k, v in files.items() if v.exists()}, summary=summary
        )


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

_WORKER_BACKEND: list[SegmentationBackend | None] = [None]  # one per worker process, set by its initializer


def worker_backend_factory(factory: BackendFactory | None, *, workers: int, cpu_count: int) -> BackendFactory | None:
    """The factory each local worker process calls: the CPU cores shared out between the workers.

    ONNX Runtime and PyTorch otherwise start one thread per core in every worker, so ``workers``
    processes on ``cpu_count`` cores would oversubscribe them ``workers``-fold. A catalog factory
    whose threads are unset gets ``cpu_count // workers`` (at least 1); the built-in default becomes
    such a factory; anything else (a user's callable) is left alone.
    """
    if factory is None:
        return None
    threads = max(1, cpu_count // max(1, workers))
    if factory is default_backend:
        return CatalogFactory(options=BackendOptions(threads=threads))
    if isinstance(factory, CatalogFactory) and factory.options.threads is None:
        return replace(factory, options=replace(factory.options, threads=threads))
    return factory


def _init_worker(factory: BackendFactory | None) -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)  # one case per core: no oversubscription of BLAS/OpenMP threads
    _WORKER_BACKEND[0] = factory() if factory is not None else None


def _work(case: Case, options: RunOptions, out: str) -> CaseResult:
    return run_case(case, backend=_WORKER_BACKEND[0], options=options, out_dir=out)


def _execute(
    cases: Sequence[Case],
    *,
    options: RunOptions,
    out: Path,
    batch: BatchOptions,
    factory: BackendFactory | None,
    local_backend: SegmentationBackend | None,
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
            factory=factory,
            on_submit=lambda c: ledger.mark_running(c, worker="dask"),
        )
        return
    if batch.workers <= 1:
        for case in cases:
            ledger.mark_running(case.case_id, worker=f"pid{os.getpid()}")
            yield run_case(case, backend=local_backend, options=options, out_dir=out)
        return
    context = get_context("spawn")  # no fork: model runtimes and threads do not survive it
    worker_factory = worker_backend_factory(factory, workers=batch.workers, cpu_count=os.cpu_count() or 1)
    with ProcessPoolExecutor(
        max_workers=batch.workers, mp_context=context, initializer=_init_worker, initargs=(worker_factory,)
    ) as pool:
        queue = list(cases)
        running: dict[Future[CaseResult], Case] = {}
        while queue or running:
            while queue and len(running) < 2 * batch.workers:  # a short queue keeps the ledger truthful
                case = queue.pop(0)
                ledger.mark_running(case.case_id, worker="pool")
                running[pool.submit(_work, case, options, str(out))] = case
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                case = running.pop(future)
                try:
                    yield future.result()
                except Exception as exc:  # noqa: BLE001 - a worker died (e.g. out of memory): record, go on
                    yield CaseResult(case.case_id, "failed", error=f"worker failed: {type(exc).__name__}: {exc}")
