"""``paraspinal backends``: every segmentation backend, whether it is installed, and what it needs."""

from __future__ import annotations

import json

import typer

from paraspinal.cli.app import app
from paraspinal.cli.console import console


@app.command("backends")
def backends_command(
    as_json: bool = typer.Option(
        False,
        "--json",
        help="Print a JSON list (keys: name, description, installed, missing, extra, needs_model, model_hint).",
    ),
) -> None:
    """List the segmentation backends: installed or not, the pip extra that installs what is missing,
    and the model folder each needs (``--backend NAME --model FOLDER`` on segment and run)."""
    from rich.table import Table
    from rich.text import Text

    from paraspinal.backends.catalog import list_backends

    infos = list_backends()
    if as_json:
        typer.echo(json.dumps([info.as_dict() for info in infos], indent=2))
        return
    table = Table(title="Segmentation backends", title_justify="left")
    for column in ("backend", "installed", "install", "model", "description"):
        table.add_column(column, no_wrap=column in ("backend", "installed", "install"))
    for info in infos:
        installed = "yes" if info.installed else f"no (missing {', '.join(info.missing)})"
        model = f"--model: {info.model_hint}" if info.needs_model else f"optional: {info.model_hint}"
        cells = (info.name, installed, info.install_command, model, info.description)
        table.add_row(*(Text(cell) for cell in cells))  # plain text: "[extra]" is not rich markup
    console().print(table)
