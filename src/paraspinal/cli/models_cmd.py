"""``paraspinal models``: the published models paraspinal knows, installing a download, re-checking the store."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from paraspinal.cli.app import app
from paraspinal.cli.console import console
from paraspinal.errors import InputError

models_app = typer.Typer(
    help="Published segmentation models: list them, install a download into the model store, verify the store.",
    no_args_is_help=False,
)
app.add_typer(models_app, name="models")


def _store_option() -> Path | None:
    return typer.Option(None, "--store", help="Model store folder (default: ~/.local/share/paraspinal/models).")


def _catalogue_option() -> Path | None:
    return typer.Option(None, "--catalogue", help="A model catalogue TOML of your own instead of the bundled one.")


@models_app.callback(invoke_without_command=True)
def models_command(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print the catalogue as a JSON list, with install state."),
    store: Path | None = _store_option(),
    catalogue: Path | None = _catalogue_option(),
) -> None:
    """List the published models paraspinal knows: what each segments, its backend, licence, where to get it,
    and whether it is installed (``paraspinal models install FILE`` installs a download)."""
    if ctx.invoked_subcommand is not None:
        return
    from paraspinal.backends.model_catalogue import load_catalogue
    from paraspinal.backends.model_store import default_store, read_installed

    entries = load_catalogue(catalogue).entries
    rows = []
    for entry in entries:
        item = read_installed(entry.key, store=store)
        rows.append(
            {**entry.as_dict(), "installed": item is not None, "folder": None if item is None else str(item.folder)}
        )
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    where = store if store is not None else default_store()
    table = Table(title=f"Published models (store: {where})", title_justify="left")
    for column in ("key", "installed", "backend", "segments", "contrast / plane", "licence", "get it from"):
        table.add_column(column, no_wrap=column in ("key", "installed"))
    for row in rows:
        cells = (
            row["key"],
            "yes" if row["installed"] else "no",
            row["backend"] or "none yet (--labels)",
            ", ".join(row["structures"][:8]) + (" ..." if len(row["structures"]) > 8 else ""),
            f"{row['modality']} {row['contrast']} / {row['plane']}",
            row["licence"],
            row["project_page"],
        )
        table.add_row(*(Text(str(cell)) for cell in cells))
    console().print(table)


@models_app.command("install")
def install_command(
    paths: list[Path] = typer.Argument(
        ..., help="The downloaded zip file or its unpacked folder (several where a model comes in parts)."
    ),
    key: str | None = typer.Option(None, "--key", "-k", help="The catalogue entry it is (default: recognised)."),
    store: Path | None = _store_option(),
    catalogue: Path | None = _catalogue_option(),
) -> None:
    """Recognise a downloaded model (layout, label values, published checksum), verify it and copy it into the
    model store, so that ``--model KEY`` runs it."""
    from paraspinal.backends.model_catalogue import load_catalogue
    from paraspinal.backends.model_store import install_model

    item = install_model(paths, key=key, store=store, catalogue=load_catalogue(catalogue))
    files = item.record["files"]
    count = len(files) if isinstance(files, dict) else 0
    typer.echo(f"installed {item.key} ({count} files; checksum: {item.record['checksum']}) in {item.folder.parent}")


@models_app.command("verify")
def verify_command(
    store: Path | None = _store_option(),
    catalogue: Path | None = _catalogue_option(),
) -> None:
    """Re-hash every installed model's files against what was recorded at install (exit 1 if any differ)."""
    from paraspinal.backends.model_catalogue import load_catalogue
    from paraspinal.backends.model_store import installed_models, verify_installed

    results = [verify_installed(item) for item in installed_models(store=store, catalogue=load_catalogue(catalogue))]
    if not results:
        typer.echo("no models installed")
        return
    for result in results:
        state = "ok" if result.ok else "; ".join(result.problems)
        typer.echo(f"{result.key}: {state}")
    bad = [r.key for r in results if not r.ok]
    if bad:
        raise InputError(f"{len(bad)} installed model(s) differ from their install: {', '.join(bad)} (install again)")
