"""Score automatic disc levels on the sagittal T2 spines against their manual disc masks, per cross-validation fold.

    python recipes/lumbar_spine/score_t2_levels.py ../shared/data/spine-sagittal/ivd-t2 /tmp/spine_cv_t2

Fold k's model (``fold_k/model``, trained without T2 subject ``sorted(ids)[k]``) finds the levels of that
subject's T2 image through the shipped path (:func:`paraspinal.pipeline.sagittal_levels`: segmentation,
naming, discs between the bodies). Each manual disc (1 = L5/S1 ... 5 = L1/L2) is compared with the found
disc of the same name: it counts as named correctly when that disc's centre lies within half the gap
from this manual disc's centroid to its nearest manual neighbour's (about 17 mm; a disc named one level
off lies about one gap away). Also reported: the distance between the two centres (mm) and the angle
between the two disc planes (degrees; the manual plane is its voxels' least-variance plane). Writes
``t2_levels.json`` in the CV folder. With ``--model DIR`` one model scores every subject.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from paraspinal.anatomy import load_scheme
from paraspinal.backends import UNetOnnxBackend
from paraspinal.errors import ParaspinalError
from paraspinal.io import read_image, read_label_map
from paraspinal.io.label_map import LabelMap
from paraspinal.levels.spine import spine_levels_from_labels
from paraspinal.pipeline.sagittal import sagittal_levels

N_FOLDS = 5


def manual_discs(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """World centre (mm) and unit normal of each manual disc (scheme ``ivd_t2``), as paraspinal reads a disc mask."""
    spine = spine_levels_from_labels(LabelMap.given(read_label_map(path), load_scheme("ivd_t2")))
    return {d.name: (np.asarray(d.centre_mm, dtype=float), np.asarray(d.normal, dtype=float)) for d in spine.discs}


def angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Angle (degrees, 0-90) between two planes given by their unit normals."""
    return float(np.degrees(np.arccos(min(abs(float(a @ b)), 1.0))))


def score_subject(image_path: Path, seg_path: Path, model: Path) -> dict[str, object]:
    truth = manual_discs(seg_path)
    try:
        found = sagittal_levels(read_image(image_path), backend=UNetOnnxBackend(model)).spine
        planes = {
            d.name: (np.asarray(d.centre_mm, dtype=float), np.asarray(d.normal, dtype=float)) for d in found.discs
        }
        notes = list(found.warnings)
    except ParaspinalError as exc:
        planes, notes = {}, [str(exc)]
    discs = {}
    for name, (centre, normal) in truth.items():
        if name not in planes:
            discs[name] = {"found": False, "correct": False, "distance_mm": None, "angle_deg": None}
            continue
        distance = float(np.linalg.norm(planes[name][0] - centre))
        gap = min(float(np.linalg.norm(centre - c)) for other, (c, _) in truth.items() if other != name)
        discs[name] = {
            "found": True,
            "correct": distance <= gap / 2,
            "distance_mm": round(distance, 1),
            "angle_deg": round(angle_deg(planes[name][1], normal), 1),
        }
    return {"discs": discs, "notes": notes}


def main(data: Path, cv: Path | None, *, model: Path | None) -> dict[str, object]:
    subjects = sorted(p.name[: -len("_img.nii.gz")] for p in data.glob("*_img.nii.gz"))
    results = {}
    for index, subject in enumerate(subjects):
        model_dir = model if model is not None else cv / f"fold_{index % N_FOLDS}" / "model"  # type: ignore[operator]
        if not (model_dir / "model.json").is_file():
            print(subject, f"skipped: no trained model in {model_dir}", flush=True)  # a fold still training
            continue
        results[subject] = score_subject(data / f"{subject}_img.nii.gz", data / f"{subject}_seg.nii.gz", model_dir)
        row = results[subject]["discs"]
        print(
            subject,
            " ".join(
                f"{n}:{'ok' if d['correct'] else 'WRONG'}({d['distance_mm']} mm, {d['angle_deg']} deg)"
                for n, d in row.items()
            ),
            flush=True,
        )
    flat = [d for r in results.values() for d in r["discs"].values()]  # type: ignore[union-attr]
    correct = sum(d["correct"] for d in flat)
    subjects_all = sum(all(d["correct"] for d in r["discs"].values()) for r in results.values())  # type: ignore[union-attr]
    distances = [d["distance_mm"] for d in flat if d["correct"]]
    between = [d["angle_deg"] for n, d in _named(results) if d["correct"] and n != "L5/S1"]
    lowest = [d["angle_deg"] for n, d in _named(results) if d["correct"] and n == "L5/S1"]
    summary = {
        "discs_named_correctly": f"{correct}/{len(flat)}",
        "subjects_all_correct": f"{subjects_all}/{len(results)}",
        "median_distance_mm_when_correct": float(np.median(distances)) if distances else None,
        "plane_angle_deg_between_bodies_mean_max": [round(float(np.mean(between)), 1), float(max(between))]
        if between
        else None,
        "plane_angle_deg_l5_s1_mean_max": [round(float(np.mean(lowest)), 1), float(max(lowest))] if lowest else None,
    }
    print(json.dumps(summary), flush=True)
    return {"summary": summary, "subjects": results}


def _named(results: dict[str, dict[str, object]]) -> list[tuple[str, dict[str, object]]]:
    return [(name, disc) for r in results.values() for name, disc in r["discs"].items()]  # type: ignore[union-attr]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="folder of NN_img / NN_seg sagittal T2 files with disc masks")
    parser.add_argument("cv", type=Path, nargs="?", help="cross-validation folder (fold_k/model)")
    parser.add_argument("--model", type=Path, help="score every subject with this model instead")
    parser.add_argument("-o", "--out", type=Path, help="where to write the JSON (default: CV folder/t2_levels.json)")
    args = parser.parse_args()
    if (args.cv is None) == (args.model is None):
        parser.error("give a CV folder or --model")
    report = main(args.data, args.cv, model=args.model)
    out = args.out or (args.cv / "t2_levels.json")
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
