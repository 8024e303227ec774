"""Reporting: tidy tables on disk, summaries, (later) QC images and HTML reports."""

from paraspinal._lazy import lazy_exports

__all__ = ["AtomicOutputs", "summary_frame", "write_measurements"]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "AtomicOutputs": "paraspinal.reporting.files",
        "summary_frame": "paraspinal.reporting.summary",
        "write_measurements": "paraspinal.reporting.tables",
    },
)
