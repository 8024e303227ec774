"""Benchmark: automatic disc levels for one sagittal volume (the ``paraspinal levels`` path).

Run: ``python benchmarks/bench_levels.py [SAGITTAL ...] [--threads 2] [--repeats 3] [--model DIR]``.

Default input: the first sagittal MyoSegmenTUM spine of ``../shared/data/spine-sagittal`` when that
folder sits beside the checkout (training data, never shipped), else a synthetic 224x224x77 volume.
Each row is the median of ``--repeats`` runs in this process after one warm-up:

* ``load model``: the bundled ``lumbar_spine`` model, or ``--model DIR`` (a candidate from ``paraspinal train``),
  as the levels path runs it (ONNX Runtime session, no mirrored pass) - once per process;
* ``read``: reading the volume;
* ``segment``: the model on every sagittal slice;
* ``levels``: naming the bodies, placing the discs (centre, normal) and rewriting the label map;
* ``match axial``: nearest slice, distance and angle on a synthetic axial stack covering the spine;
* ``total``: read + segment + levels + match (target: <= 5 s on 2 CPU cores).

Peak RSS of the process is printed last.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from pathlib import Path

import numpy as np

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "spine-sagittal" / "myosegmentum-vertebrae"


def _axial_stack(sagittal, *, n_slices: int = 40, spacing_mm: float = 4.0):
    """An axial stack (RAS, 1 x 1 mm pixels) centred on the sagittal volume's centre."""
    from paraspinal.io import Image

    centre = sagittal.affine[:3, :3] @ (np.asarray(sagittal.shape) / 2.0) + sagittal.affine[:3, 3]
    affine = np.diag([1.0, 1.0, spacing_mm, 1.0])
    affine[:3, 3] = centre - np.array([128.0, 128.0, spacing_mm * n_slices / 2.0])
    return Image(np.zeros((256, 256, n_slices), dtype=np.float32), affine, source="synthetic axial stack")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="*", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", type=Path, default=None, help="a model folder instead of the bundled one")
    args = parser.parse_args()

    from paraspinal.anatomy import load_registry
    from paraspinal.backends import UNetOnnxBackend
    from paraspinal.backends.catalog import BackendFactory, BackendOptions
    from paraspinal.io import Image, read_image
    from paraspinal.levels import match_axial, spine_levels_from_labels
    from paraspinal.levels.naming import named_label_map

    images = args.images or sorted(DEFAULT.glob("*_img.nii.gz"))[:1]
    start = time.perf_counter()
    if args.model is None:
        backend = BackendFactory(role="spine", options=BackendOptions(threads=args.threads))()
    else:
        backend = UNetOnnxBackend(args.model, test_time_flip=False, threads=args.threads)
    load_s = time.perf_counter() - start
    registry = load_registry()
    rows: dict[str, list[float]] = {"read": [], "segment": [], "levels": [], "match axial": [], "total": []}
    for path in images or [None]:
        for repeat in range(args.repeats + 1):
            t0 = time.perf_counter()
            if path is None:
                rng = np.random.default_rng(0)
                sagittal = Image(rng.random((224, 224, 77)).astype(np.float32), np.eye(4), source="synthetic")
            else:
                sagittal = read_image(path)
            t1 = time.perf_counter()
            result = backend.segment(sagittal)
            t2 = time.perf_counter()
            try:
                spine = spine_levels_from_labels(result, registry=registry)
                named_label_map(result.labels, spine.named, scheme=result.scheme, registry=registry)
            except Exception as exc:  # noqa: BLE001 - a synthetic volume has no spine: time what ran
                spine = None
                print(f"{sagittal.source}: no levels ({exc})")
            t3 = time.perf_counter()
            if spine is not None:
                match_axial(spine, _axial_stack(sagittal), sagittal=sagittal)
            t4 = time.perf_counter()
            if repeat == 0:
                continue  # warm-up
            for key, value in zip(rows, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0), strict=True):
                rows[key].append(value)
    print(f"{'step':<14}{'median s':>10}")
    print(f"{'load model':<14}{load_s:>10.3f}")
    for key, values in rows.items():
        print(f"{key:<14}{statistics.median(values):>10.3f}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB, threads {args.threads}")


if __name__ == "__main__":
    main()
