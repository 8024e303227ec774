"""Run cases on a Dask distributed cluster; each worker builds the segmentation backend once.

Workers must see the same filesystem as the driver (the output folder is written by workers).
This module needs ``distributed`` (``pip install 'paraspinal[dask]'``); it is imported only for
``--scheduler`` runs.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from distributed.diagnostics.plugin import WorkerPlugin

from paraspinal.backends import SegmentationBackend
from paraspinal.pipeline.cases import Case
from paraspinal.pipeline.run import CaseResult, RunOptions, run_case

_PLUGIN = "paraspinal-backend"


class BackendPlugin(WorkerPlugin):
    """A Dask worker plugin holding one backend per worker, built when the worker joins."""

    def __init__(self, factory: Callable[[], SegmentationBackend] | None) -> None:
        self.factory = factory
        self.backend: SegmentationBackend | None = None

    def setup(self, worker: object) -> None:
        self.backend = self.factory() if self.factory is not None else None

    def teardown(self, worker: object) -> None:
        self.backend = None


def _work_on_worker(case: Case, options: RunOptions, out: str) -> CaseResult:
    from distributed import get_worker

    plugin = get_worker().plugins.get(_PLUGIN)
    backend = plugin.backend if isinstance(plugin, BackendPlugin) else None
    return run_case(case, backend=backend, options=options, out_dir=out)


def run_on_dask(
    cases: Sequence[Case],
    *,
    options: RunOptions,
    out: Path,
    address: str,
    factory: Callable[[], SegmentationBackend] | None,
    on_submit: Callable[[str], None],
) -> Iterator[CaseResult]:
    """Submit every case to the scheduler at ``address`` and yield results as they finish."""
    from distributed import Client, as_completed

    run = uuid.uuid4().hex[:8]
    with Client(address) as client:  # as_completed needs it as the current client
        client.register_plugin(BackendPlugin(factory), name=_PLUGIN)
        futures = {}
        for case in cases:
            on_submit(case.case_id)
            future = client.submit(
                _work_on_worker, case, options, str(out), key=f"paraspinal-{run}-{case.case_id}", pure=False
            )
            futures[future] = case
        for future in as_completed(list(futures)):
            case = futures[future]
            try:
                yield future.result()
            except Exception as exc:  # noqa: BLE001 - a lost worker fails its case, not the cohort
                yield CaseResult(case.case_id, "failed", error=f"dask worker failed: {type(exc).__name__}: {exc}")
