"""Benchmark: how fast the ``paraspinal`` command starts, against importing the libraries it cannot do without.

Run: ``python benchmarks/bench_startup.py [--repeats 7]``.

Each command runs as a whole process (``python -m paraspinal ...``, what the ``paraspinal`` script runs, without
a launcher shim in front), ``--repeats`` times, interleaved round-robin with its reference command so that both
see the same machine load; the table gives the median wall time of each and their ratio. Rows (issue 29):

* ``paraspinal --help`` against ``python -c "import numpy"``: target ratio <= 3.
* ``paraspinal segment`` on the bundled TUM01 water image (into a temporary folder; bundled model, default
  options) against ``python -c "import numpy, nibabel, onnxruntime, scipy.ndimage"``: target ratio <= 4.

Rows without a target show ``--help`` of single commands for reference. A ratio is only as good as the
machine is quiet: on a loaded machine the model's inference slows down more than imports do.

Bytecode: the libraries of the reference were compiled to ``.pyc`` when they were installed; paraspinal is
given the same (the untimed warm-up run writes its ``__pycache__``, ``PYTHONDONTWRITEBYTECODE`` is dropped from
the environment of the timed commands). ``--no-bytecode-cache`` keeps it, so every paraspinal module is
compiled from source at each start, as in an environment that sets that variable for an editable install.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

NUMPY = "import numpy"
SEGMENT_LIBRARIES = "import numpy, nibabel, onnxruntime, scipy.ndimage"


@dataclass(frozen=True)
class Row:
    name: str
    command: tuple[str, ...]
    reference_name: str
    reference: tuple[str, ...]
    target_ratio: float | None


def rows(out_dir: Path) -> list[Row]:
    """The commands timed, each with its reference command."""
    python = sys.executable
    water = Path(__file__).resolve().parents[1] / "src" / "paraspinal" / "sample" / "TUM01_water.nii.gz"
    numpy_ref = ("python -c 'import numpy'", (python, "-c", NUMPY))
    segment_ref = ("python -c 'import numpy, nibabel, onnxruntime, scipy.ndimage'", (python, "-c", SEGMENT_LIBRARIES))
    cli = (python, "-m", "paraspinal")
    return [
        Row("paraspinal --help", (*cli, "--help"), *numpy_ref, 3.0),
        Row("paraspinal segment --help", (*cli, "segment", "--help"), *numpy_ref, None),
        Row("paraspinal run --help", (*cli, "run", "--help"), *numpy_ref, None),
        Row(
            "paraspinal segment TUM01_water",
            (*cli, "segment", str(water), "-o", str(out_dir)),
            *segment_ref,
            4.0,
        ),
    ]


def wall_s(command: tuple[str, ...], *, env: dict[str, str]) -> float:
    """Seconds one run of ``command`` takes, start to exit (it must succeed)."""
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="Runs of each command (median reported).")
    parser.add_argument(
        "--no-bytecode-cache", action="store_true", help="Keep PYTHONDONTWRITEBYTECODE (compile at every start)."
    )
    args = parser.parse_args()
    env = dict(os.environ)
    if not args.no_bytecode_cache:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    with tempfile.TemporaryDirectory() as tmp:
        table = rows(Path(tmp))
        for row in table:  # warm the file cache once, untimed
            wall_s(row.reference, env=env)
            wall_s(row.command, env=env)
        times: dict[tuple[str, ...], list[float]] = {}
        for _ in range(args.repeats):
            for row in table:  # interleaved: a command and its reference see the same load
                for command in (row.reference, row.command):
                    times.setdefault(command, []).append(wall_s(command, env=env))
    cache = "compiled at every start" if "PYTHONDONTWRITEBYTECODE" in env else "bytecode cached"
    print(f"median wall time of {args.repeats} whole-process runs each ({sys.executable}; {cache})")
    header = f"{'command':34} {'median s':>9}  {'reference':62} {'median s':>9} {'ratio':>6} {'target':>7}  result"
    print(header)
    print("-" * len(header))
    for row in table:
        cmd_s = statistics.median(times[row.command])
        ref_s = statistics.median(times[row.reference])
        ratio = cmd_s / ref_s
        target = "" if row.target_ratio is None else f"<= {row.target_ratio:g}"
        verdict = "" if row.target_ratio is None else ("pass" if ratio <= row.target_ratio else "FAIL")
        print(f"{row.name:34} {cmd_s:9.3f}  {row.reference_name:62} {ref_s:9.3f} {ratio:6.2f} {target:>7}  {verdict}")


if __name__ == "__main__":
    main()
