"""Benchmark: measuring the bundled TUM01 case with all metrics (target: well under 2 s on 2 cores).

Run: ``python benchmarks/bench_measure.py [--repeats N]``. Prints a table of wall times per step
(median of N runs) and the process's peak resident memory.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

from paraspinal.anatomy import load_registry, load_scheme
from paraspinal.cli.main import main as cli
from paraspinal.io import check_same_grid, read_image, read_label_map
from paraspinal.io.label_map import LabelMap
from paraspinal.levels import read_levels_csv
from paraspinal.measurement import measure_case
from paraspinal.sample import sample_case


def _time(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    case = sample_case()
    load_registry(), load_scheme("lpm4")  # warm the bundled data once, as a long-running process would

    t_read, (labels, water, fat) = _time(
        lambda: (read_label_map(case.labels), read_image(case.water), read_image(case.fat)), args.repeats
    )
    water = check_same_grid(labels, water, assume_aligned=True)
    levels = read_levels_csv(case.levels, n_slices=labels.shape[2])
    scheme = load_scheme("lpm4")

    def measure(methods):
        return measure_case(
            LabelMap.given(labels, scheme),
            case_id="TUM01",
            water=water,
            fat=fat,
            image=fat,
            image_name="fat",
            levels=levels,
            infiltration_methods=methods,
        )

    t_basic, _ = _time(lambda: measure(()), args.repeats)
    t_all, result = _time(lambda: measure(("otsu", "otsu_xu", "kmeans2", "kmeans3", "gmm2", "gmm3")), args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        t_end, _ = _time(lambda: cli(["measure", "--sample", "-o", str(Path(tmp) / "out"), "-q"]), args.repeats)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = [
        ("read labels + water + fat (NIfTI)", t_read),
        ("measure: area, volume, FF, intensities", t_basic),
        ("measure: all metrics incl. 6 infiltration methods", t_all),
        ("end to end (read, check, measure, write CSV+Parquet)", t_end),
    ]
    print(f"TUM01 400x400x29, {len(result.table)} table rows, {os.cpu_count()} CPUs, median of {args.repeats}")
    print(f"{'step':<55} {'seconds':>8}")
    for name, seconds in rows:
        print(f"{name:<55} {seconds:>8.3f}")
    print(f"{'peak resident memory (MB)':<55} {peak_mb:>8.0f}")


if __name__ == "__main__":
    main()
