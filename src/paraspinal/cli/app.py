"""The Typer application every command adds itself to (commands live in the ``*_cmd`` modules)."""

from __future__ import annotations

import typer

from paraspinal import __version__

__all__ = ["app"]

app = typer.Typer(
    name="paraspinal",
    help="Quantitative lumbar spine MRI: paraspinal muscle area, volume and fat.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"paraspinal {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Quantitative lumbar spine MRI: paraspinal muscle area, volume and fat."""
