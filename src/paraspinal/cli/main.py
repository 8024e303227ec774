"""The ``paraspinal`` command: a Typer app whose sub-commands live in sibling modules.

Exit codes: 0 ok, 1 error (one line on stderr, no traceback), 2 usage error; 130 (Ctrl-C) and 143
(SIGTERM) come from the process entry point, :mod:`paraspinal.cli.entry`. A file-system error (read-only
folder, full disk, a path through a file) is one line naming the path, like every other input error.
"""

from __future__ import annotations

import typer

from paraspinal.cli.app import app
from paraspinal.errors import ParaspinalError


def _register_commands() -> None:
    # Imported for their side effect of adding commands to ``app``.
    from paraspinal.cli import (  # noqa: F401
        backends_cmd,
        collect_cmd,
        demo_cmd,
        evaluate_cmd,
        labels_cmd,
        levels_cmd,
        measure_cmd,
        models_cmd,
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
    except OSError as exc:
        typer.echo(f"paraspinal: error: {os_error_line(exc)}", err=True)
        return 1
    except typer.Abort as exc:
        if isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt):
            raise KeyboardInterrupt from None  # click turns Ctrl-C into Abort: exit 130, not 1
        return 1
    except typer.Exit as exc:
        return int(getattr(exc, "exit_code", 1))
    except Exception as exc:
        # click's exceptions (vendored inside newer typer releases): usage errors show themselves
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            return int(exc.exit_code)
        raise
    return int(result) if isinstance(result, int) else 0


def os_error_line(exc: OSError) -> str:
    """``<path>: <reason>`` for a file-system error (no traceback, one line)."""
    reason = exc.strerror or type(exc).__name__
    where = exc.filename if exc.filename is not None else ""
    if exc.filename2 is not None:
        where = f"{where} -> {exc.filename2}"
    return " ".join(f"{where}: {reason}".split()) if where else " ".join(str(exc).split())
