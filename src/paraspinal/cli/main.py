"""The ``paraspinal`` command: a Typer app whose sub-commands live in sibling modules.

Exit codes: 0 ok, 1 error (one line on stderr, no traceback), 2 usage error, 130 interrupted (Ctrl-C),
143 terminated (SIGTERM). A file-system error (read-only folder, full disk, a path through a file) is
one line naming the path, like every other input error.
"""

from __future__ import annotations

import contextlib
import os
import signal
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


EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C
EXIT_TERMINATED = 128 + signal.SIGTERM


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that ``finally`` blocks (workers, locks) run as for Ctrl-C."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


def run() -> None:
    """The console entry point: :func:`main` with Ctrl-C -> exit 130 and SIGTERM -> exit 143, always.

    A signal that arrives while the process is already on its way out no longer raises (no stray
    Python error output) but still sets the exit code.
    """
    caught: list[int] = []
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        code = main()
    except KeyboardInterrupt:
        caught.append(EXIT_INTERRUPTED)
    except Terminated:
        caught.append(EXIT_TERMINATED)
    finally:
        # from here on a signal only records itself: the exit code below is the last word
        signal.signal(signal.SIGINT, lambda *_: caught.append(EXIT_INTERRUPTED))
        signal.signal(signal.SIGTERM, lambda *_: caught.append(EXIT_TERMINATED))
    if caught and caught[0] == EXIT_INTERRUPTED:
        typer.echo("paraspinal: interrupted", err=True)
    elif caught:
        typer.echo("paraspinal: terminated", err=True)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(caught[0] if caught else code)
