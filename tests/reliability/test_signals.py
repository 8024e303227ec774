"""A signal whose exception Python swallows (raised in a ``__del__`` or weakref callback) still ends the
process with its exit code and no stray traceback: deterministic versions of what a Ctrl-C during garbage
collection does to ``paraspinal run``."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.reliability.support import cli_env

# A command whose object's __del__ receives the signal (the handler runs inside __del__, so its exception is
# "ignored"); the command then keeps working for up to 10 s, as a run would, unless the signal is raised again.
SCRIPT = textwrap.dedent(
    """
    import signal, time
    from paraspinal.cli import entry

    class Doomed:
        def __del__(self):
            signal.raise_signal(signal.{name})

    def command():
        Doomed()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            sum(range(1000))
        print("the command ran to the end")
        return 0

    entry.run(command=command)
    """
)


@pytest.mark.parametrize(("name", "code", "message"), [("SIGINT", 130, "interrupted"), ("SIGTERM", 143, "terminated")])
def test_a_signal_swallowed_in_a_finaliser_still_stops_the_command(name: str, code: int, message: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(name=name)],
        capture_output=True,
        text=True,
        timeout=60,
        env=cli_env(),
    )
    assert proc.returncode == code, proc.stderr
    assert "ran to the end" not in proc.stdout
    assert proc.stderr == f"paraspinal: {message}\n"


def test_an_ordinary_error_in_a_finaliser_is_still_reported_by_python() -> None:
    script = SCRIPT.replace("signal.raise_signal(signal.{name})", "raise ValueError('broken finaliser')")
    script = script.replace("time.monotonic() + 10", "time.monotonic() + 0.1")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=cli_env())
    assert proc.returncode == 0, proc.stderr
    assert "ran to the end" in proc.stdout
    assert "ValueError: broken finaliser" in proc.stderr


BARRAGE = textwrap.dedent(
    """
    import os, signal, threading, time
    from paraspinal.cli import entry

    def barrage():
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            os.kill(os.getpid(), signal.{name})

    def command():
        threading.Thread(target=barrage, daemon=True).start()
        time.sleep(10)
        return 0

    entry.run(command=command)
    """
)


@pytest.mark.parametrize(("name", "code", "message"), [("SIGINT", 130, "interrupted"), ("SIGTERM", 143, "terminated")])
def test_a_barrage_of_signals_on_the_way_out_only_sets_the_exit_code(name: str, code: int, message: str) -> None:
    # what a held-down Ctrl-C or a killpg of many processes does: signals keep coming while the run unwinds
    for _ in range(5):
        proc = subprocess.run(
            [sys.executable, "-c", BARRAGE.format(name=name)], capture_output=True, text=True, timeout=60, env=cli_env()
        )
        assert (proc.returncode, proc.stderr) == (code, f"paraspinal: {message}\n")
