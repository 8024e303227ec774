"""Printing for the CLI: rich tables for summaries, plain text when quiet."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    import pandas as pd


def console(*, quiet: bool = False) -> Console:
    """A console on stdout; ``quiet`` silences everything but errors (which go to stderr elsewhere)."""
    wide = Console().width
    return Console(quiet=quiet, highlight=False, soft_wrap=True, width=max(wide, 160))


def print_frame(out: Console, frame: pd.DataFrame, *, title: str) -> None:
    """Print a small DataFrame as a rich table (floats to 4 significant digits)."""
    table = Table(title=title, title_justify="left")
    for column in frame.columns:
        table.add_column(str(column), justify="right" if frame[column].dtype.kind in "fiu" else "left")
    for row in frame.itertuples(index=False):
        table.add_row(*(_cell(v) for v in row))
    out.print(table)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
