"""Run ``paraspinal`` as a real process, the way a user's shell does."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

PARASPINAL = [sys.executable, "-m", "paraspinal"]


REPO = Path(__file__).resolve().parents[2]


def cli_env(**extra: str) -> dict[str, str]:
    """The test process's environment with the checkout's ``src`` (and the checkout, for ``tests.*`` test
    doubles that worker processes unpickle) first on the path, worktrees too."""
    env = dict(os.environ)
    paths = (str(REPO / "src"), str(REPO), env.get("PYTHONPATH", ""))
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    env.update(extra)
    return env


def run_cli(
    args: Sequence[str | Path], *, timeout_s: float = 300, cwd: Path | None = None, **popen: object
) -> subprocess.CompletedProcess[str]:
    """``python -m paraspinal ARGS`` to completion; stdout and stderr captured as text."""
    return subprocess.run(
        [*PARASPINAL, *map(str, args)],
        capture_output=True,
        encoding="utf-8",  # whatever the CI locale says: the CLI's tables are UTF-8
        errors="replace",
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
        encoding="utf-8",
        errors="replace",
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


def children(pid: int) -> list[int]:
    """Pids of the live child processes of ``pid`` (Linux ``/proc``)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text(encoding="utf-8").rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


BATCH_DRIVER = """
import json, sys
from paraspinal.batch import BatchOptions, run_batch
from paraspinal.backends.catalog import Models
from paraspinal.pipeline.discovery import discover_cases
from paraspinal.pipeline.options import RunOptions
from tests.batch_support import *  # noqa: F403 - the test double named on the command line
factory = eval(sys.argv[3])
result = run_batch(discover_cases([sys.argv[1]]).cases, options=RunOptions(qc=False, report=False),
                   out_dir=sys.argv[2], batch=BatchOptions(workers=int(sys.argv[4])), models=Models(muscle=factory))
print(json.dumps({r.case_id: [r.status, r.error] for r in result.cases}))
"""


def start_batch_driver(cases: Path, out: Path, *, factory: str, workers: int) -> subprocess.Popen[str]:
    """A real driver process running :func:`paraspinal.batch.run_batch` with a test-double backend factory
    (``factory``: a Python expression over ``tests.batch_support``, e.g. ``"SlowFactory(1.0)"``)."""
    return subprocess.Popen(
        [sys.executable, "-c", BATCH_DRIVER, str(cases), str(out), factory, str(workers)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        encoding="utf-8",
        errors="replace",
        start_new_session=True,
        env=cli_env(),
    )
