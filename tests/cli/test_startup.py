"""Start-up of the ``paraspinal`` command (issue 29): parsing arguments imports no heavy library.

What each process imports is checked, not how long it takes (timings live in ``benchmarks/bench_startup.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
NEVER_AT_START = {"sklearn", "matplotlib", "dask", "torch"}
NOT_FOR_HELP = NEVER_AT_START | {"pandas", "scipy", "nibabel", "onnxruntime", "jinja2", "skimage", "pydicom", "numpy"}
COMMANDS = (
    "backends",
    "collect",
    "demo",
    "evaluate",
    "labels",
    "levels",
    "measure",
    "run",
    "segment",
    "series",
    "train",
)
WATCHED = sorted(NOT_FOR_HELP)


def _python(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, encoding="utf-8", env=env, timeout=120
    )


def _imported(code: str) -> list[str]:
    """The watched top-level packages in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    found = "{m.split('.')[0] for m in sys.modules}"
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted({found} & set({WATCHED!r}))))"
    done = _python(probe)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_the_cli_imports_no_heavy_library() -> None:
    assert _imported("import paraspinal.cli.main") == []


def test_registering_every_command_imports_no_heavy_library() -> None:
    imported = _imported("from paraspinal.cli.main import _register_commands\n_register_commands()")
    assert set(imported) & NEVER_AT_START == set()
    assert imported == []  # not even numpy or pandas: the commands import their work when they run


def test_root_help_imports_no_heavy_library() -> None:
    code = (
        "import sys\nfrom paraspinal.cli.main import main\nsys.argv = ['paraspinal', '--help']\n"
        "import contextlib, io\nwith contextlib.redirect_stdout(io.StringIO()):\n    main(['--help'])"
    )
    assert _imported(code) == []


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help_works_as_a_process_and_imports_nothing_heavy(command: str) -> None:
    code = (
        "import contextlib, io\nfrom paraspinal.cli.main import main\nbuffer = io.StringIO()\n"
        f"with contextlib.redirect_stdout(buffer):\n    code = main([{command!r}, '--help'])\n"
        "assert code == 0, code\nassert 'Usage:' in buffer.getvalue(), buffer.getvalue()"
    )
    assert _imported(code) == []


def test_paraspinal_help_as_a_process_lists_every_command() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "paraspinal", "--help"],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    for command in COMMANDS:
        assert command in done.stdout


def test_package_reexports_still_resolve_lazily() -> None:
    done = _python(
        "import paraspinal.io as io, paraspinal.measurement as m, paraspinal.backends as b\n"
        "from paraspinal.io import Image, read_image\nfrom paraspinal.measurement import INFILTRATION_METHODS\n"
        "from paraspinal.measurement.infiltration import METHODS\n"
        "assert INFILTRATION_METHODS is METHODS\nassert Image.__module__ == 'paraspinal.io.image'\n"
        "assert 'read_image' in dir(io) and 'UNetOnnxBackend' in dir(b)\n"
        "try:\n    io.no_such_name\nexcept AttributeError as exc:\n    print(exc)"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "module 'paraspinal.io' has no attribute 'no_such_name'"


@pytest.mark.slow  # segments TUM01 (about 5-15 s)
def test_segment_imports_only_what_segmenting_needs(tmp_path: Path) -> None:
    water = SRC / "paraspinal" / "sample" / "TUM01_water.nii.gz"
    code = (
        "from paraspinal.cli.main import main\n"
        f"assert main(['segment', {str(water)!r}, '-o', {str(tmp_path)!r}, '-q']) == 0"
    )
    imported = _imported(code)
    assert (tmp_path / "TUM01_water_dseg.nii.gz").is_file()
    assert set(imported) & (NEVER_AT_START | {"pandas", "jinja2", "skimage"}) == set()
    assert {"numpy", "nibabel", "onnxruntime", "scipy"} <= set(imported)
