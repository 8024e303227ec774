"""Run cases on a Dask distributed cluster; each worker loads each model once, when a case first needs it.

Workers must see the same filesystem as the driver (the output folder is written by workers).
This module needs ``distributed`` (``pip install 'paraspinal[dask]'``); it is imported only for
``--scheduler`` runs.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from distributed.diagnostics.plugin import WorkerPlugin

from paraspinal.backends.catalog import Models
from paraspinal.pipeline.case import Case
from paraspinal.pipeline.case_run import run_case
from paraspinal.pipeline.options import RunOptions
from paraspinal.pipeline.results import CaseResult

_PLUGIN = "paraspinal-models"


class ModelsPlugin(WorkerPlugin):
    """A Dask worker plugin holding the run's :class:`Models` on each worker (each model loaded once there)."""

    def __init__(self, models: Models) -> None:
        self.models = models

    def teardown(self, worker: object) -> None:
        self.models = Models(muscle=None, spine=None)


def _work_on_worker(case: Case, options: RunOptions, out: str) -> CaseResult:
    from distributed import get_worker

    plugin = get_worker().plugins.get(_PLUGIN)
    models = plugin.models if isinstance(plugin, ModelsPlugin) else Models(muscle=None, spine=None)
    return run_case(case, models=models, options=options, out_dir=out)


def run_on_dask(
    cases: Sequence[Case],
    *,
    options: RunOptions,
    out: Path,
    address: str,
    models: Models,
    on_submit: Callable[[str], None],
) -> Iterator[CaseResult]:
    """Submit every case to the scheduler at ``address`` and yield results as they finish."""
    from distributed import Client, as_completed

    run = uuid.uuid4().hex[:8]
    with Client(address) as client:  # as_completed needs it as the current client
        client.register_plugin(ModelsPlugin(models), name=_PLUGIN)
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
