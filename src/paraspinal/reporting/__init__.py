"""Reporting: tidy tables on disk, summaries, (later) QC images and HTML reports."""

from paraspinal.reporting.files import AtomicOutputs
from paraspinal.reporting.summary import summary_frame
from paraspinal.reporting.tables import write_measurements

__all__ = ["AtomicOutputs", "summary_frame", "write_measurements"]
