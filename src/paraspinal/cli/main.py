"""The ``paraspinal`` command: a Typer app whose sub-commands live in sibling modules.

Exit codes: 0 ok, 1 error (one line on stderr, no traceback), 2 usage error.
"""

from __future__ import annotations

import sys

import typer

from paraspinal import __version__
from paraspinal.errors import ParaspinalError

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


def _register_commands() -> None:
    # Imported for their side effect of adding commands to ``app``.
    from paraspinal.cli import (  # noqa: F401
        backends_cmd,
        demo_cmd,
        evaluate_cmd,
        labels_cmd,
        levels_cmd,
        measure_cmd,
        run_cmd,
        segment_cmd,
        series_cmd,
        train_cmd,
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code (also used in-process by tests)."""
    _register_commands()
    try:
        result = app(args=argv, prog_name="paraspinal", standalone_mode=False)
    except ParaspinalError as exc:
        typer.echo(f"paraspinal: error: {exc}", err=True)
        return 1
    except (typer.Exit, typer.Abort) as exc:
        return int(getattr(exc, "exit_code", 1))
    except Exception as exc:
        # click's exceptions (vendored inside newer typer releases): usage errors show themselves
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            return int(exc.exit_code)
        raise
    return int(result) if isinstance(result, int) else 0


def run() -> None:
    sys.exit(main())
