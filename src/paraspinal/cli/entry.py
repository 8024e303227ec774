"""The process entry point of ``paraspinal`` (and ``python -m paraspinal``): signals and exit codes.

Ctrl-C always ends the process with exit code 130 and SIGTERM with 143, whenever they arrive: while the
command's modules are still importing, in the middle of a run (whose ``finally`` blocks stop workers and
release locks), or on the way out. This module imports nothing heavy, so the handlers are in place within
milliseconds of start; the command itself is imported inside :func:`run`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable

__all__ = ["EXIT_INTERRUPTED", "EXIT_TERMINATED", "Terminated", "run"]

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C
EXIT_TERMINATED = 128 + signal.SIGTERM
_RAISE_AGAIN_AFTER_S = 0.01  # a swallowed signal's exception is raised again this long after


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that ``finally`` blocks (workers, locks) run as for Ctrl-C."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


def run(*, command: Callable[[], int] | None = None) -> None:
    """Run the command line (or ``command``, for tests); exit 130 after Ctrl-C and 143 after SIGTERM, always.

    Once the command has returned or raised, a signal no longer raises (no stray Python error output, however
    late or often it arrives) but still sets the exit code. The flag that says so is set by the first statement
    of each way out, before Python checks for pending signals again.
    """
    caught: list[int] = []
    exiting: list[bool] = []

    def interrupted(signum: int, frame: object) -> None:
        caught.append(EXIT_INTERRUPTED)  # recorded first: a KeyboardInterrupt raised inside a weakref
        if not exiting:  # callback or __del__ is swallowed by Python, the exit code is not
            raise KeyboardInterrupt

    def terminated(signum: int, frame: object) -> None:
        caught.append(EXIT_TERMINATED)
        if not exiting:
            _raise_terminated(signum, frame)

    def raise_again(signum: int, frame: object) -> None:
        """SIGALRM after a swallowed signal: raise the first signal's exception in ordinary code."""
        if exiting:
            return
        if caught and caught[0] == EXIT_TERMINATED:
            raise Terminated()
        raise KeyboardInterrupt

    rearm = hasattr(signal, "setitimer")  # not on Windows: there a swallowed signal only sets the exit code
    python_hook = sys.unraisablehook

    def raise_soon() -> None:
        if rearm and not exiting and signal.getitimer(signal.ITIMER_REAL)[0] == 0.0:  # one pending alarm at most
            signal.setitimer(signal.ITIMER_REAL, _RAISE_AGAIN_AFTER_S)

    def swallowed(unraisable: object) -> None:
        """A signal's exception raised where Python cannot propagate it (a weakref callback, ``__del__``):
        raise it again in the main thread once this hook has returned, instead of printing it.

        Re-raising from here (``interrupt_main``, ``raise_signal``) would run the handler inside this hook,
        where its exception is swallowed once more; a one-shot 10 ms timer raises it in ordinary code.
        """
        try:
            exc = getattr(unraisable, "exc_value", None)
            if not isinstance(exc, KeyboardInterrupt | Terminated):
                python_hook(unraisable)  # type: ignore[arg-type]
            else:
                raise_soon()
        except (KeyboardInterrupt, Terminated):  # the timer fired before this hook returned: once more
            raise_soon()

    code = 1
    try:  # entered before any handler is in place: a signal from the first one on lands in this try
        if rearm:
            signal.signal(signal.SIGALRM, raise_again)
        signal.signal(signal.SIGTERM, terminated)
        signal.signal(signal.SIGINT, interrupted)
        sys.unraisablehook = swallowed
        if command is None:
            from paraspinal.cli.main import main as command

        code = command()
    except KeyboardInterrupt:
        exiting.append(True)
        if not caught:
            caught.append(EXIT_INTERRUPTED)
    except Terminated:
        exiting.append(True)
        if not caught:
            caught.append(EXIT_TERMINATED)
    finally:
        exiting.append(True)  # from here on a signal only records itself: the exit code below is the last word
        if rearm:
            signal.setitimer(signal.ITIMER_REAL, 0)
    if code == EXIT_INTERRUPTED and not caught:  # typer turned a Ctrl-C into exit code 130 itself
        caught.append(EXIT_INTERRUPTED)
    if caught:
        message = "interrupted" if caught[0] == EXIT_INTERRUPTED else "terminated"
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write(f"paraspinal: {message}\n")
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(caught[0] if caught else code)
