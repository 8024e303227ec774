"""Cohort runs: resumable, case-isolated, on local worker processes or a Dask cluster."""

from paraspinal.batch.ledger import Ledger, LedgerCounts
from paraspinal.batch.parts import select_part
from paraspinal.batch.runner import BatchOptions, BatchProgress, clear_partial_outputs, finished_cases, run_batch

__all__ = [
    "BatchOptions",
    "BatchProgress",
    "Ledger",
    "LedgerCounts",
    "clear_partial_outputs",
    "finished_cases",
    "run_batch",
    "select_part",
]
