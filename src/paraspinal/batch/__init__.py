"""Cohort runs: resumable, case-isolated, on local worker processes or a Dask cluster."""

from paraspinal._lazy import lazy_exports

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

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "finished_cases": "paraspinal.batch.cohort",
        "Ledger": "paraspinal.batch.ledger",
        "LedgerCounts": "paraspinal.batch.ledger",
        "FolderBusyError": "paraspinal.batch.lock",
        "select_part": "paraspinal.batch.parts",
        "BatchOptions": "paraspinal.batch.runner",
        "BatchProgress": "paraspinal.batch.runner",
        "collect": "paraspinal.batch.runner",
        "run_batch": "paraspinal.batch.runner",
    },
)
