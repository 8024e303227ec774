"""Stage 1 of ``calibrate_levels.py``: the bundled spine model on every spine and its shifted variants, cached.

Each prediction is written once to ``<cache>/<case>__<n>_<kind>.npz`` (the model's labels on the variant's grid,
its probability margin there (float16), its affine, the manual body centres in view, a description); an
existing file is not recomputed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from levels_variants import KINDS, in_view, make_variant, truth_from_bodies, truth_from_discs

from paraspinal.io import read_image, read_label_map
from paraspinal.io.image import Image

EXTRA_CONTRAST = 0.4  # share of geometric variants that also get an inverted or gamma contrast
EXTRA_RESAMPLE = 0.25  # ... and a resampling
# the views where the naming goes wrong most: the T11-L5 view of the issue once more on every Dixon spine, and
# twice plus an extended view on the five T2 spines (the scanner the failures came from is a T2 one)
HARD_DIXON = ("t11_l5",)
HARD_T2 = ("t11_l5", "t11_l5", "extend_top")


def _cached(path: Path) -> bool:
    """Whether ``path`` holds a prediction with its margin (files of older versions, without one, are redone)."""
    if not path.is_file():
        return False
    with np.load(path) as data:
        return "margin" in data


def spine_cases(data: Path, *, dixon: int | None = None) -> list[tuple[str, Path, Path, str]]:
    """``(case id, image, labels, truth kind)`` of the Dixon (bodies; the first ``dixon`` ids, all when None) and
    T2 (discs) spines."""
    cases = []
    for folder, kind in (("myosegmentum-vertebrae", "bodies"), ("ivd-t2", "discs")):
        images = sorted((data / folder).glob("*_img.nii.gz"))
        for img in images[:dixon] if kind == "bodies" else images:
            stem = img.name.removesuffix("_img.nii.gz")
            prefix = "t2-" if kind == "discs" else ""
            cases.append((prefix + stem, img, img.with_name(f"{stem}_seg.nii.gz"), kind))
    return cases


def variant_plan(case_id: str, *, n_variants: int, seed: int) -> list[str]:
    """The variant kinds of one case: the original, ``n_variants`` distinct kinds drawn per case (all for T2), then
    the hard views (:data:`HARD_DIXON`, :data:`HARD_T2`)."""
    if case_id.startswith("t2-"):  # only five T2 spines: every kind
        return ["orig", *KINDS, *HARD_T2]
    rng = np.random.default_rng([seed, sum(map(ord, case_id))])
    drawn = rng.choice(KINDS, size=min(n_variants, len(KINDS)), replace=False).tolist()
    return ["orig", *drawn, *HARD_DIXON]


def predict_all(
    data: Path,
    cache: Path,
    *,
    n_variants: int,
    seed: int,
    dixon: int | None = None,
    threads: int = 1,
    model: Path | None = None,
) -> list[Path]:
    """Run (or reuse) every prediction of ``model`` (a model folder; None: the bundled spine model); the cached
    files. One cache folder per model."""
    from paraspinal.backends import UNetOnnxBackend, bundled_model_dir, segment_on_grid

    cache.mkdir(parents=True, exist_ok=True)
    backend = None
    files = []
    started = time.time()
    for case_id, img_path, seg_path, truth_kind in spine_cases(data, dixon=dixon):
        plan = variant_plan(case_id, n_variants=n_variants, seed=seed)
        todo = [(n, k) for n, k in enumerate(plan) if not _cached(cache / f"{case_id}__{n}_{k}.npz")]
        files += [cache / f"{case_id}__{n}_{k}.npz" for n, k in enumerate(plan)]
        if not todo:
            continue
        image = read_image(img_path)
        labels = np.asarray(read_label_map(seg_path).array)
        truth = (truth_from_bodies if truth_kind == "bodies" else truth_from_discs)(labels, image.affine)
        if backend is None:
            folder = bundled_model_dir("spine") if model is None else model
            backend = UNetOnnxBackend(folder, threads=threads, test_time_flip=False)
        for n, kind in todo:
            rng = np.random.default_rng([seed, sum(map(ord, case_id)), n])
            variant, what = image, "original"
            if kind != "orig":
                variant, _, what = make_variant(image, labels, truth, kind=kind, rng=rng)
                if kind.startswith(("cut", "extend", "t11", "flip")):
                    if rng.random() < EXTRA_CONTRAST:
                        variant, _, more = make_variant(
                            variant, labels, truth, kind=str(rng.choice(["invert", "gamma"])), rng=rng
                        )
                        what += ", " + more
                    if rng.random() < EXTRA_RESAMPLE:
                        variant, _, more = make_variant(
                            variant, np.zeros(variant.shape, np.uint8), truth, kind="resample", rng=rng
                        )
                        what += ", " + more
            variant = Image(np.asarray(variant.array), variant.affine, source=f"{case_id} {kind}")
            segmented = segment_on_grid(backend, variant)
            predicted = np.asarray(segmented.labels.array).astype(np.uint8)
            margin = np.asarray(segmented.confidence["margin"].array).astype(np.float16)
            centres = in_view(truth, variant)
            np.savez_compressed(
                cache / f"{case_id}__{n}_{kind}.npz",
                labels=predicted,
                margin=margin,
                affine=variant.affine,
                meta=json.dumps(
                    {
                        "case": case_id,
                        "kind": kind,
                        "what": what,
                        "truth": {k: [float(x) for x in v] for k, v in centres.items()},
                    }
                ),
            )
            print(f"{time.time() - started:6.0f} s {case_id} {kind}: {what}", flush=True)
    return files
