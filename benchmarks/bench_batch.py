"""Benchmark: cohort throughput on 1 and 2 local workers, and a soak run with corrupt cases.

Cases are TUM01 with a small random smooth deformation (up to ~2 mm) and Rician-like noise, each a
Dixon water/fat pair plus its deformed manual mask (``--segment`` drops the masks so the bundled
model segments every case). Generation is not timed.

Run: ``python benchmarks/bench_batch.py --cases 200`` (throughput) and
``python benchmarks/bench_batch.py --soak 1000 --corrupt-share 0.05`` (soak). Prints tables.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from paraspinal.batch import BatchOptions, Ledger, finished_cases, run_batch
from paraspinal.pipeline.discovery import discover_cases
from paraspinal.pipeline.options import RunOptions
from paraspinal.sample import sample_case


def _deformation(shape: tuple[int, int, int], rng: np.random.Generator, *, max_mm: float, spacing_mm: float) -> list:
    """Smooth random in-plane displacement field (voxels), the same on every slice plus a small shift."""
    coarse = rng.normal(0, 1, size=(2, 6, 6))
    fields = []
    for c in coarse:
        field = ndimage.zoom(c, (shape[0] / 6, shape[1] / 6), order=3)[: shape[0], : shape[1]]
        field = field / (np.abs(field).max() + 1e-9) * (max_mm / spacing_mm)
        fields.append(np.repeat(field[:, :, None], shape[2], axis=2))
    grid = np.indices(shape, dtype=np.float32)
    return [grid[0] + fields[0], grid[1] + fields[1], grid[2]]


def make_cases(folder: Path, n: int, *, seed: int, with_masks: bool, corrupt: set[int], crop: bool = False) -> None:
    """Write ``n`` deformed, noisy copies of TUM01 (water, fat, mask) into ``folder``.

    ``crop`` keeps only a 200 x 120 in-plane box around the muscles (for the soak, where volume size
    does not matter and generating 1,000 full-size cases would dominate the run).
    """
    sample = sample_case()
    lab_img = nib.load(str(sample.labels))
    labels = np.asarray(lab_img.dataobj)
    water = np.asarray(nib.load(str(sample.water)).dataobj).astype(np.float32)
    fat = np.asarray(nib.load(str(sample.fat)).dataobj).astype(np.float32)
    affine = lab_img.affine
    if crop:
        box = (slice(100, 300), slice(150, 270), slice(None))
        labels, water, fat = labels[box], water[box], fat[box]
        affine = affine.copy()
        affine[:3, 3] += affine[:3, :3] @ np.array([100.0, 150.0, 0.0])
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        rng = np.random.default_rng(seed + i)
        coords = _deformation(labels.shape, rng, max_mm=2.0, spacing_mm=float(lab_img.header.get_zooms()[0]))
        noise = float(rng.uniform(2, 8))
        w = ndimage.map_coordinates(water, coords, order=1) + np.abs(rng.normal(0, noise, water.shape))
        f = ndimage.map_coordinates(fat, coords, order=1) + np.abs(rng.normal(0, noise, fat.shape))
        lab = ndimage.map_coordinates(labels, coords, order=0)
        cid = f"S{i:04d}"
        nib.save(nib.Nifti1Image(w.astype(np.float32), affine), str(folder / f"{cid}_water.nii.gz"))
        nib.save(nib.Nifti1Image(f.astype(np.float32), affine), str(folder / f"{cid}_fat.nii.gz"))
        if with_masks:
            nib.save(nib.Nifti1Image(lab.astype(np.uint8), affine), str(folder / f"{cid}_dseg.nii.gz"))
        if i in corrupt:
            path = folder / f"{cid}_fat.nii.gz"
            path.write_bytes(path.read_bytes()[:5000])  # truncated


def _peak_mb(workers: int) -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN if workers > 1 else resource.RUSAGE_SELF)
    return usage.ru_maxrss / 1024


def throughput(folder: Path, work: Path, *, workers: int, options: RunOptions) -> tuple[float, float, int]:
    cases = discover_cases([folder]).cases
    out = work / f"out-{workers}"
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    result = run_batch(cases, options=options, out_dir=out, batch=BatchOptions(workers=workers))
    seconds = time.perf_counter() - start
    return seconds, _peak_mb(workers), result.n_ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=200, help="cases for the throughput runs (0: skip)")
    parser.add_argument("--soak", type=int, default=0, help="cases for the soak run (0: skip)")
    parser.add_argument("--corrupt-share", type=float, default=0.05)
    parser.add_argument("--segment", action="store_true", help="segment with the bundled model (no masks given)")
    parser.add_argument("--no-qc", action="store_true", help="skip QC images and reports (tables only)")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="paraspinal-bench-"))
    options = RunOptions(assume_aligned=True, qc=not args.no_qc, report=not args.no_qc)
    if args.cases:
        folder = work / "cases"
        make_cases(folder, args.cases, seed=1, with_masks=not args.segment, corrupt=set())
        rows = [(w, *throughput(folder, work, workers=w, options=options)) for w in (1, 2)]
        base = rows[0][1]
        print(
            f"{args.cases} cases ({'segmented' if args.segment else 'given masks'}, "
            f"{'tables only' if args.no_qc else 'QC + reports'}), workdir {work}"
        )
        print(f"{'workers':>7} {'seconds':>9} {'cases/min':>10} {'speed-up':>9} {'peak MB/worker':>15} {'ok':>5}")
        for workers, seconds, peak, ok in rows:
            print(
                f"{workers:>7} {seconds:>9.1f} {ok / seconds * 60:>10.1f} {base / seconds:>9.2f} {peak:>15.0f} {ok:>5}"
            )
    if args.soak:
        rng = np.random.default_rng(7)
        bad = set(rng.choice(args.soak, size=round(args.soak * args.corrupt_share), replace=False).tolist())
        folder = work / "soak"
        make_cases(folder, args.soak, seed=1000, with_masks=not args.segment, corrupt=bad, crop=True)
        out = work / "soak-out"
        start = time.perf_counter()
        result = run_batch(discover_cases([folder]).cases, options=options, out_dir=out, batch=BatchOptions(workers=2))
        seconds = time.perf_counter() - start
        finished = finished_cases(out)
        with Ledger(out / "ledger.sqlite") as ledger:
            failures = ledger.failures()
        expected_bad = {f"S{i:04d}" for i in bad}
        print(f"soak: {args.soak} cases (TUM01 cropped to 200x120x29), {len(bad)} corrupt, 2 workers, {seconds:.0f} s")
        print(f"{'good cases finished':<34} {len(finished)} of {args.soak - len(bad)}")
        print(f"{'bad cases listed with an error':<34} {len(set(failures) & expected_bad)} of {len(bad)}")
        print(f"{'unexpected failures':<34} {len(set(failures) - expected_bad)}")
        print(f"{'cases lost (neither)':<34} {args.soak - len(finished) - len(failures)}")
        print(f"{'run result ok / failed':<34} {result.n_ok} / {result.n_failed}")


if __name__ == "__main__":
    main()
