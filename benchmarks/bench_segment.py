"""Benchmark: segmenting TUM01 (400x400x29) with the bundled model, side by side with nnU-Net v2's predictor.

Run: ``python benchmarks/bench_segment.py [--device cpu|cuda] [--threads 2] [--repeats 3] [--no-nnunet]``.

Each row runs in a fresh process, so "load" is a cold model load and "peak RSS" is that process's
peak resident memory (baseline after imports in brackets). Rows:

* ``paraspinal`` (ONNX Runtime): model load + segmentation + largest-component clean-up ("total";
  reading the file is shown apart), with and without the test-time left-right flip (the default is
  with). Target: <= 5 s on 2 CPU cores.
* ``nnU-Net v2`` (only when ``nnunetv2`` is installed; skipped otherwise): ``nnUNetPredictor`` on the
  CPU with the 2d configuration its own planner picks for this image (fingerprint and plans made
  in a temporary folder beforehand, not timed), an untrained network of that default size, and
  its default inference settings (Gaussian sliding window, step 0.5, mirroring). Timing only.

``--device cuda`` times the ONNX Runtime CUDA provider (and nnU-Net on the GPU); without a GPU the
rows say "no GPU".
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_paraspinal(device: str, tta: bool, threads: int) -> dict[str, object]:
    from paraspinal.backends import UNetOnnxBackend, bundled_model_dir
    from paraspinal.io import read_image
    from paraspinal.postprocessing import keep_largest_component
    from paraspinal.sample import sample_case

    baseline = _rss_mb()
    start = time.perf_counter()
    image = read_image(sample_case().water)
    read_s = time.perf_counter() - start
    start = time.perf_counter()
    backend = UNetOnnxBackend(bundled_model_dir(), device=device, test_time_flip=tta, threads=threads)
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    keep_largest_component(backend.segment(image).labels)
    segment_s = time.perf_counter() - start
    return {
        "read_s": read_s,
        "load_s": load_s,
        "segment_s": segment_s,
        "total_s": load_s + segment_s,
        "baseline_mb": baseline,
        "peak_mb": _peak_mb(),
        "device": backend.device,
    }


def worker_nnunet(device: str, threads: int) -> dict[str, object]:
    root = Path(tempfile.mkdtemp(prefix="bench_nnunet_"))
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        os.environ[name] = str(root / name)  # nnU-Net reads its folders from the environment (this process only)
    import numpy as np

    from paraspinal.io import Image, read_image, read_label_map, write_label_map, write_nifti
    from paraspinal.sample import sample_case

    case = sample_case()
    raw = root / "nnUNet_raw" / "Dataset901_TUM01"
    labels = read_label_map(case.labels)
    water = read_image(case.water)
    write_nifti(Image(water.array.astype(np.float32), labels.affine), raw / "imagesTr" / "TUM01_0000.nii.gz")
    write_label_map(labels, raw / "labelsTr" / "TUM01.nii.gz")
    meta = {"channel_names": {"0": "MRI"}, "labels": {"background": 0, "a": 1, "b": 2, "c": 3, "d": 4}}
    (raw / "dataset.json").write_text(json.dumps({**meta, "numTraining": 1, "file_ending": ".nii.gz"}))

    import contextlib
    import io

    import torch
    from nnunetv2.experiment_planning.plan_and_preprocess_api import extract_fingerprints, plan_experiments
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    torch.set_num_threads(threads)
    with contextlib.redirect_stdout(io.StringIO()):
        extract_fingerprints([901], num_processes=1, show_progress_bar=False, verbose=False)
        plans_id = plan_experiments([901])
    plans = json.loads((root / "nnUNet_preprocessed" / "Dataset901_TUM01" / f"{plans_id}.json").read_text())
    baseline = _rss_mb()
    start = time.perf_counter()
    manager = PlansManager(plans)
    config = manager.get_configuration("2d")
    network = get_network_from_plans(
        config.network_arch_class_name,
        config.network_arch_init_kwargs,
        config.network_arch_init_kwargs_req_import,
        1,
        5,
        allow_init=True,
        deep_supervision=False,
    )
    torch_device = torch.device("cuda" if device == "cuda" else "cpu")
    predictor = nnUNetPredictor(device=torch_device, allow_tqdm=False, verbose=False)
    with contextlib.redirect_stdout(io.StringIO()):
        predictor.manual_initialization(
            network,
            manager,
            config,
            [network.state_dict()],
            json.loads((raw / "dataset.json").read_text()),
            "nnUNetTrainer",
            (0, 1),
        )
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    data, props = SimpleITKIO().read_images([str(raw / "imagesTr" / "TUM01_0000.nii.gz")])
    read_s = time.perf_counter() - start
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        predictor.predict_single_npy_array(data, props)
    segment_s = time.perf_counter() - start
    n_params = sum(p.numel() for p in network.parameters())
    return {
        "read_s": read_s,
        "load_s": load_s,
        "segment_s": segment_s,
        "total_s": load_s + segment_s,
        "baseline_mb": baseline,
        "peak_mb": _peak_mb(),
        "device": device,
        "patch_size": list(config.patch_size),
        "features": list(config.network_arch_init_kwargs.get("features_per_stage", [])),
        "parameters_m": round(n_params / 1e6, 1),
    }


def _run_worker(args: list[str]) -> dict[str, object] | str:
    proc = subprocess.run([sys.executable, __file__, "--worker", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = [line for line in (proc.stderr or proc.stdout).strip().splitlines() if line.strip()]
        return lines[-1] if lines else f"exit {proc.returncode}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _cuda_available() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="runs per paraspinal row (median reported)")
    parser.add_argument("--no-nnunet", action="store_true", help="skip the nnU-Net v2 row")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, device, *rest = args.worker
        if kind == "paraspinal":
            result = worker_paraspinal(device, rest[0] == "tta", int(rest[1]))
        else:
            result = worker_nnunet(device, int(rest[0]))
        print(json.dumps(result))
        return

    rows: list[tuple[str, str, dict[str, object] | str]] = []
    if args.device == "cuda" and not _cuda_available():
        rows.append(("paraspinal (ONNX Runtime)", "cuda", "no GPU (ONNX Runtime has no CUDA provider here)"))
    else:
        for tta in ("tta", "no-tta"):
            runs = [_run_worker(["paraspinal", args.device, tta, str(args.threads)]) for _ in range(args.repeats)]
            good = [r for r in runs if isinstance(r, dict)]
            if not good:
                rows.append((f"paraspinal, {tta}", args.device, runs[0]))
                continue
            best = sorted(good, key=lambda r: float(r["total_s"]))[len(good) // 2]  # median run
            rows.append((f"paraspinal (ONNX Runtime), {tta}", args.device, best))
    if args.no_nnunet:
        rows.append(("nnU-Net v2 predictor, 2d", args.device, "skipped (--no-nnunet)"))
    else:
        try:
            import nnunetv2  # noqa: F401

            has_nnunet = True
        except ImportError:
            has_nnunet = False
        if not has_nnunet:
            rows.append(("nnU-Net v2 predictor, 2d", args.device, "skipped: nnunetv2 is not installed"))
        elif args.device == "cuda" and not _cuda_available():
            rows.append(("nnU-Net v2 predictor, 2d", "cuda", "no GPU"))
        else:
            rows.append(
                (
                    "nnU-Net v2 predictor, 2d (untrained, default size)",
                    args.device,
                    _run_worker(["nnunet", args.device, str(args.threads)]),
                )
            )

    print(f"TUM01 water 400x400x29, {args.threads} threads, {os.cpu_count()} CPUs visible")
    header = (
        f"| {'method':<52} | {'device':<6} | {'read s':>6} | {'load s':>7} | {'segment s':>9} | {'total s':>7} "
        f"| {'peak RSS MB (baseline)':>22} | notes"
    )
    print(header)
    print("|" + "|".join("-" * (len(part)) for part in header.split("|")[1:]))
    for name, device, result in rows:
        if isinstance(result, str):
            print(f"| {name:<52} | {device:<6} | {'':>6} | {'':>7} | {'':>9} | {'':>7} | {'':>22} | {result}")
            continue
        notes = ""
        if "patch_size" in result:
            notes = f"patch {result['patch_size']}, {result['parameters_m']} M params"
        memory = f"{result['peak_mb']:.0f} ({result['baseline_mb']:.0f})"
        print(
            f"| {name:<52} | {result['device']!s:<6} | {float(result['read_s']):>6.2f} "
            f"| {result['load_s']:>7.2f} | {result['segment_s']:>9.2f} "
            f"| {result['total_s']:>7.2f} | {memory:>22} | {notes}"
        )
    ours = [r for n, _, r in rows if n.startswith("paraspinal") and "tta" in n and "no-tta" not in n]
    theirs = [r for n, _, r in rows if n.startswith("nnU-Net")]
    if ours and theirs and isinstance(ours[0], dict) and isinstance(theirs[0], dict):
        ratio = float(theirs[0]["total_s"]) / float(ours[0]["total_s"])
        print(f"nnU-Net v2 / paraspinal (with flip) time ratio: {ratio:.1f}x (goal >= 10x)")


if __name__ == "__main__":
    main()
