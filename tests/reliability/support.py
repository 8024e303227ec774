"""Run ``paraspinal`` as a real process, the way a user's shell does."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

PARASPINAL = [sys.executable, "-m", "paraspinal"]


def cli_env(**extra: str) -> dict[str, str]:
    """The test process's environment with the checkout's ``src`` first on the path (worktrees too)."""
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


def run_cli(
    args: Sequence[str | Path], *, timeout_s: float = 300, cwd: Path | None = None, **popen: object
) -> subprocess.CompletedProcess[str]:
    """``python -m paraspinal ARGS`` to completion; stdout and stderr captured as text."""
    return subprocess.run(
        [*PARASPINAL, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=cwd,
        env=cli_env(),
        **popen,  # type: ignore[arg-type]
    )


def start_cli(args: Sequence[str | Path], **popen: object) -> subprocess.Popen[str]:
    """``python -m paraspinal ARGS`` started in its own session (so a test can signal its whole group)."""
    return subprocess.Popen(
        [*PARASPINAL, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=cli_env(),
        **popen,  # type: ignore[arg-type]
    )


def one_error_line(stderr: str) -> str:
    """The single ``paraspinal: error:`` line of ``stderr``; fails when there is a traceback or several lines."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    errors = [line for line in lines if line.startswith("paraspinal: error:")]
    assert len(errors) == 1, stderr
    return errors[0]
