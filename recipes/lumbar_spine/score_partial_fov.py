"""Level naming when the sagittal field of view starts part-way down the lumbar spine.

    python recipes/lumbar_spine/score_partial_fov.py /tmp/Dataset902_LumbarSpine /tmp/spine_cv
    python recipes/lumbar_spine/score_partial_fov.py /tmp/Dataset902_LumbarSpine \
        --model src/paraspinal/models/lumbar_spine --out /tmp/partial_fov_shipped.json

Each Dixon spine is cut just above one of its manual bodies (``--margin-mm``, default 8 mm above the top of
L1, L2, L3 or L4: the disc above and at most the lower endplate of the body above stay in view; the sacrum
stays in view below) and goes through the shipped path (ONNX Runtime segmentation, then
:func:`paraspinal.levels.naming.name_bodies`). A manual body counts as named correctly when its best-overlapping
named body carries its level; per cut, the share of the bodies in view (L_k..L5) named correctly and the number
of spines with all of them right. With a cross-validation folder: each fold's model on its held-out cases (cases
with a twin in training left out, as in ``score_cv.py``); with ``--model``: one model on every case (its own
training cases, for a model trained on all of them). Writes ``partial_fov.json`` in the CV folder (``--out``
with ``--model``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from score_cv import count_named_correctly, leaked_cases, named_as_shipped

from paraspinal.backends import UNetOnnxBackend
from paraspinal.io import read_image, read_label_map
from paraspinal.io.image import Image


def cut_above(image: Image, labels: np.ndarray, *, level: int, margin_mm: float) -> tuple[Image, np.ndarray]:
    """``image`` and ``labels`` without everything more than ``margin_mm`` above the top of body ``level``
    (superior from the affine), with the affine moved so the kept voxels keep their world positions."""
    world_s = image.affine[2, :3]
    axis = int(np.argmax(np.abs(world_s)))
    up = world_s[axis] > 0  # index increases towards superior
    spacing = float(np.linalg.norm(image.affine[:3, axis]))
    rows = np.flatnonzero(np.moveaxis(labels == level, axis, 0).any(axis=(1, 2)))
    margin = round(margin_mm / spacing)
    n = labels.shape[axis]
    keep = slice(0, min(int(rows.max()) + 1 + margin, n)) if up else slice(max(int(rows.min()) - margin, 0), n)
    index = [slice(None)] * 3
    index[axis] = keep
    affine = image.affine.copy()
    start = np.zeros(3)
    start[axis] = keep.start
    affine[:3, 3] = image.affine[:3, :3] @ start + image.affine[:3, 3]
    cut = Image(np.asarray(image.array)[tuple(index)], affine, source=f"{image.source} from L{level}")
    return cut, labels[tuple(index)]


def score_cut(backend: UNetOnnxBackend, image: Image, truth: np.ndarray, *, level: int) -> dict[str, object]:
    renamed, names, confidence = named_as_shipped(backend.segment(image).labels, scheme=backend.scheme)
    correct = count_named_correctly(renamed, truth, range(level, 6))
    return {"in_view": 6 - level, "correct": correct, "names": names, "naming_confidence": round(confidence, 3)}


def score(dataset: Path, jobs: list[tuple[Path, list[str]]], *, margin_mm: float) -> dict[str, object]:
    cases: dict[str, dict[str, object]] = {}
    for model, case_ids in jobs:
        backend = UNetOnnxBackend(model, threads=1)
        for case_id in case_ids:
            image = read_image(dataset / "imagesTr" / f"{case_id}_0000.nii.gz")
            truth = np.asarray(read_label_map(dataset / "labelsTr" / f"{case_id}.nii.gz").array)
            cases[case_id] = {}
            for level in (1, 2, 3, 4):
                cut, cut_truth = cut_above(image, truth, level=level, margin_mm=margin_mm)
                cases[case_id][f"from_L{level}"] = score_cut(backend, cut, cut_truth, level=level)
            print(case_id, {k: f"{v['correct']}/{v['in_view']}" for k, v in cases[case_id].items()}, flush=True)
    summary = {}
    for level in (1, 2, 3, 4):
        rows = [c[f"from_L{level}"] for c in cases.values()]
        summary[f"from_L{level}"] = {
            "bodies_named_correctly": sum(int(r["correct"]) for r in rows)
            / max(sum(int(r["in_view"]) for r in rows), 1),
            "spines_all_right": sum(int(r["correct"] == r["in_view"]) for r in rows),
            "spines": len(rows),
        }
    return {"margin_mm": margin_mm, "summary": summary, "cases": cases}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path, help="the Dixon dataset written by make_dataset.py")
    parser.add_argument("cv_dir", type=Path, nargs="?", help="cross_validate.py output folder")
    parser.add_argument("--model", type=Path, help="score this one model on every case instead")
    parser.add_argument("--margin-mm", type=float, default=8.0)
    parser.add_argument("--out", type=Path, default=Path("partial_fov.json"), help="with --model: result file")
    args = parser.parse_args()
    if (args.cv_dir is None) == (args.model is None):
        parser.error("give either a cross-validation folder or --model")
    if args.model is not None:
        ids = sorted(p.name[: -len(".nii.gz")] for p in (args.dataset / "labelsTr").glob("*.nii.gz"))
        jobs, out = [(args.model, ids)], args.out
    else:
        leaked = set(leaked_cases(args.dataset, args.cv_dir))
        jobs = []
        for scores in sorted(args.cv_dir.glob("fold_*/scores.json")):
            held = [c for c in json.loads(scores.read_text(encoding="utf-8"))["dice"] if c not in leaked]
            jobs.append((scores.parent / "model", held))
        out = args.cv_dir / "partial_fov.json"
    result = score(args.dataset, jobs, margin_mm=args.margin_mm)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result["summary"], indent=2))
