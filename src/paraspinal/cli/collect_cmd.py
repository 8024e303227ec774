"""``paraspinal collect``: rebuild a run folder's cohort tables and report from every finished case on disk."""

from __future__ import annotations

from pathlib import Path

import typer

from paraspinal.cli.app import app
from paraspinal.cli.console import console


@app.command("collect")
def collect_command(
    out: Path = typer.Argument(..., help="A run's output folder (paraspinal run -o OUT)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
) -> None:
    """Rebuild cases.csv, summary.csv, measurements.csv/.parquet, report.html and manifest.json from every
    finished case folder (and the ledgers' failed and unfinished cases), e.g. after the parts of a split."""
    from paraspinal.batch import collect

    files = collect(out, command=["paraspinal", "collect", str(out)])
    console(quiet=quiet).print(f"rebuilt {', '.join(sorted(p.name for p in files.values()))} in {out}")
