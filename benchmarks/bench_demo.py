"""Benchmark: ``paraspinal demo`` end to end on the bundled TUM01 sample (target: <= 15 s on 2 cores).

Run: ``python benchmarks/bench_demo.py [--repeats N] [--manual-labels]``. Each repeat runs the demo in a
fresh Python process (so start-up and imports count, as for a user) and prints the wall time, then the
median per-step timings from the case manifest. Without the bundled model installed the demo cannot
segment; ``--manual-labels`` (chosen automatically then, and said so) times everything else.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_SCRIPT = "import sys; from paraspinal.cli.main import main; raise SystemExit(main(['demo', '-q', *sys.argv[1:]]))"


def _model_installed() -> tuple[bool, str]:
    from paraspinal.backends.catalog import BackendFactory
    from paraspinal.errors import ParaspinalError
    from paraspinal.reporting.html import describe_model

    try:
        backend = BackendFactory()()
    except ParaspinalError as exc:
        return False, str(exc)
    return True, describe_model({"name": backend.name, **dict(backend.provenance or {})})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--manual-labels", action="store_true", help="Do not segment: measure the manual labels.")
    args = parser.parse_args()
    installed, model = _model_installed()
    manual = args.manual_labels or not installed
    if manual and not args.manual_labels:
        print(f"bundled model not available ({model}): timing `paraspinal demo --manual-labels` instead")
    load_before = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    walls: list[float] = []
    steps: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            out = Path(tmp) / f"run{i}"
            command = [sys.executable, "-c", _SCRIPT, "-o", str(out)] + (["--manual-labels"] if manual else [])
            start = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            walls.append(time.perf_counter() - start)
            if done.returncode != 0:
                raise SystemExit(f"demo failed (exit {done.returncode}): {done.stderr.strip()}")
            manifest = json.loads((out / "TUM01" / "TUM01_manifest.json").read_text(encoding="utf-8"))
            for step, seconds in manifest["timings_s"].items():
                steps.setdefault(step, []).append(seconds)
    what = "manual labels (no segmentation)" if manual else f"segmented by {model}"
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"paraspinal demo on TUM01 400x400x29, {what}; {os.cpu_count()} CPUs, {args.repeats} runs")
    print(f"load average before/after: {load_before} / {load} (other work on the machine slows every step)")
    print(f"{'step':<40} {'median s':>9}")
    for step, values in steps.items():
        print(f"{'  ' + step:<40} {statistics.median(values):>9.2f}")
    print(f"{'wall time, fresh process (median)':<40} {statistics.median(walls):>9.2f}")
    print(f"{'wall time, fresh process (max)':<40} {max(walls):>9.2f}")
    print(f"target <= 15 s: {'met' if max(walls) <= 15.0 else 'NOT met'}")


if __name__ == "__main__":
    main()
