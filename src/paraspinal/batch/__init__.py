"""Cohort runs: resumable, case-isolated, on local worker processes or a Dask cluster."""

from paraspinal.batch.cohort import finished_cases
from paraspinal.batch.ledger import Ledger, LedgerCounts
from paraspinal.batch.lock import FolderBusyError
from paraspinal.batch.parts import select_part
from paraspinal.batch.runner import BatchOptions, BatchProgress, collect, run_batch

__all__ = [
    "BatchOptions",
    "BatchProgress",
    "FolderBusyError",
    "Ledger",
    "LedgerCounts",
    "collect",
    "finished_cases",
    "run_batch",
    "select_part",
]
