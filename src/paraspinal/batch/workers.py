"""Local worker processes that survive each other: one case per worker at a time, a dead worker replaced.

Each worker is a fresh interpreter (``spawn``) that runs the cases it is sent, one at a time, loading each
model the first time one of its cases needs it. When a worker dies (killed for memory, a crash in native code), only
the case it held is affected: it is retried on a fresh worker, at most ``attempts`` times in all, then
failed with the reason; the other workers go on. Workers ignore Ctrl-C (the driver handles it), die with
the driver (``PR_SET_PDEATHSIG`` on Linux, and a watchdog on the parent's pid everywhere), and are
terminated when the driver stops for any reason, so no worker is left writing after its driver.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing import get_context
from multiprocessing.connection import Connection, wait
from pathlib import Path

from paraspinal.backends.catalog import Models
from paraspinal.pipeline.case import Case
from paraspinal.pipeline.case_folder import remove_case_staging
from paraspinal.pipeline.options import RunOptions
from paraspinal.pipeline.results import CaseResult

__all__ = ["DEFAULT_ATTEMPTS", "run_in_workers"]

DEFAULT_ATTEMPTS = 3  # a case whose worker dies is tried this many times in all
_STOP_GRACE_S = 5.0


def _die_with_parent(parent: int) -> None:
    """Make this process end when ``parent`` does, however the parent ends (kill -9 included)."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(0.5)

    if os.getppid() != parent:  # the parent died before the death signal was armed
        os._exit(1)
    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _worker_main(conn: Connection, parent: int, models: Models) -> None:
    """A worker's life: run cases until told to stop, each model loaded the first time a case needs it."""
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the driver decides
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked at start (the driver's mask): now ignored
    from threadpoolctl import threadpool_limits

    from paraspinal.pipeline.case_run import run_case

    threadpool_limits(limits=1)  # one case per core: no oversubscription of BLAS/OpenMP threads
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        case, options, out = task
        conn.send(run_case(case, models=models, options=options, out_dir=out))


@dataclass
class _Worker:
    process: object  # multiprocessing.Process
    conn: Connection
    case: Case | None = None


def _death_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (often the system running out of memory)" if -exitcode == signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    return f"exited with code {exitcode}"


def run_in_workers(
    cases: Sequence[Case],
    *,
    options: RunOptions,
    out: Path,
    workers: int,
    models: Models,
    on_start: Callable[[Case], None],
    attempts: int = DEFAULT_ATTEMPTS,
) -> Iterator[CaseResult]:
    """Run ``cases`` on ``workers`` processes and yield each result as it comes (see the module docstring).

    ``on_start(case)`` is called each time a case is handed to a worker (a retry too). ``models`` must be
    picklable (factories, not loaded backends); each worker loads each model it needs once.
    """
    context = get_context("spawn")  # no fork: model runtimes and threads do not survive it
    queue = list(cases)
    tries: dict[str, int] = {}
    pool: list[_Worker] = []

    def spawn() -> _Worker:
        ours, theirs = context.Pipe()
        process = context.Process(target=_worker_main, args=(theirs, os.getpid(), models), daemon=True)
        # started with SIGINT ignored (inherited through exec, and Python keeps an ignored SIGINT ignored), so a
        # Ctrl-C that reaches the group while a worker is still starting up prints no traceback there; blocked
        # meanwhile in the driver, so that a Ctrl-C in this window waits for the driver's handler (Linux keeps a
        # blocked signal pending even while it is ignored) instead of being lost
        main = threading.current_thread() is threading.main_thread()  # signal.signal works there only
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if main else None
        try:
            process.start()
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a Ctrl-C that came meanwhile arrives now
        theirs.close()
        worker = _Worker(process, ours)
        pool.append(worker)
        return worker

    def hand_out(worker: _Worker) -> None:
        case = queue.pop(0)
        tries[case.case_id] = tries.get(case.case_id, 0) + 1
        worker.case = case
        on_start(case)
        worker.conn.send((case, options, str(out)))

    try:
        for _ in range(min(workers, len(queue))):
            hand_out(spawn())
        while any(w.case is not None for w in pool):
            busy = [w for w in pool if w.case is not None]
            ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy]))  # type: ignore[attr-defined]
            for worker in busy:
                case = worker.case
                assert case is not None
                result: CaseResult | None = None
                died = worker.process.sentinel in ready  # type: ignore[attr-defined]
                if worker.conn in ready:
                    try:
                        result = worker.conn.recv()
                    except (EOFError, OSError):
                        died = True
                if result is not None:
                    worker.case = None
                    yield result
                    if queue:
                        hand_out(worker)
                elif died:
                    worker.case = None
                    yield from _bury(worker, case, pool=pool, queue=queue, tried=tries[case.case_id], attempts=attempts)
                    remove_case_staging(out, case_id=case.case_id)  # what the dead worker was writing
                    if queue:
                        hand_out(spawn())
    finally:
        _stop(pool)


def _bury(
    worker: _Worker, case: Case, *, pool: list[_Worker], queue: list[Case], tried: int, attempts: int
) -> Iterator[CaseResult]:
    """A dead worker leaves the pool; its case goes back to the queue's front, or fails after ``attempts``."""
    worker.process.join()  # type: ignore[attr-defined]
    reason = _death_reason(worker.process.exitcode)  # type: ignore[attr-defined]
    pool.remove(worker)
    worker.conn.close()
    if tried < attempts:
        queue.insert(0, case)
        return
    yield CaseResult(
        case.case_id, "failed", error=f"worker process {reason} on each of {attempts} attempts at this case"
    )


def _stop(pool: Sequence[_Worker]) -> None:
    """Idle workers are told to stop, busy ones terminated; whatever still runs after a grace period is killed."""
    for worker in pool:
        if worker.case is None:
            with contextlib.suppress(OSError, ValueError):
                worker.conn.send(None)
        else:
            worker.process.terminate()  # type: ignore[attr-defined]
    deadline = time.monotonic() + _STOP_GRACE_S
    for worker in pool:
        process = worker.process
        process.join(max(0.0, deadline - time.monotonic()))  # type: ignore[attr-defined]
        if process.is_alive():  # type: ignore[attr-defined]
            process.kill()  # type: ignore[attr-defined]
            process.join()  # type: ignore[attr-defined]
        worker.conn.close()
