"""Score the one-class disc predictions of the T2 leave-one-out runs, per disc level.

    python recipes/lumbar_spine/score_discs.py ../shared/data/spine-sagittal/ivd-t2 /tmp/discs_cv

Each prediction (``fold_k/predictions/{case}_dseg.nii.gz``, every disc = 1) is split into connected
components; pieces under 20 % of the largest are dropped; the rest are sorted caudal to cranial along
world z and named from the bottom (L5/S1, L4/L5, ..., the T2 images all show the sacrum). Reported:
Dice of all discs together, and per level (manual values 1 = L5/S1 ... 5 = L1/L2) after that naming.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy import ndimage

from paraspinal.io import read_label_map

LEVELS = {1: "L5/S1", 2: "L4/L5", 3: "L3/L4", 4: "L2/L3", 5: "L1/L2"}


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum() + b.sum())
    return float("nan") if total == 0 else 2.0 * int(np.count_nonzero(a & b)) / total


def name_by_position(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Disc pieces valued 1, 2, ... from the most caudal one up (world z from ``affine``)."""
    pieces, n = ndimage.label(mask)
    if n == 0:
        return np.zeros(mask.shape, dtype=np.int16)
    sizes = np.bincount(pieces.ravel())[1:]
    keep = [i + 1 for i in range(n) if sizes[i] >= 0.2 * sizes.max()]
    centres = ndimage.center_of_mass(mask, pieces, keep)
    z = [float((affine[:3, :3] @ np.asarray(c) + affine[:3, 3])[2]) for c in centres]
    named = np.zeros(mask.shape, dtype=np.int16)
    for rank, index in enumerate(np.argsort(z), start=1):
        named[pieces == keep[index]] = rank
    return named


def score(source: Path, cv_dir: Path) -> dict[str, object]:
    cases: dict[str, dict[str, float]] = {}
    for pred_path in sorted(cv_dir.glob("fold_*/predictions/*_dseg.nii.gz")):
        case_id = pred_path.name[: -len("_dseg.nii.gz")]
        pred = read_label_map(pred_path)
        truth = np.asarray(read_label_map(source / f"{case_id}_seg.nii.gz").array)
        named = name_by_position(np.asarray(pred.array) > 0, pred.affine)
        row = {"all_discs": dice(named > 0, truth > 0)}
        row.update({LEVELS[v]: dice(named == v, truth == v) for v in LEVELS})
        cases[case_id] = row
    levels = {name: float(np.nanmean([c[name] for c in cases.values()])) for name in LEVELS.values()}
    return {
        "n_cases": len(cases),
        "all_discs_dice": float(np.mean([c["all_discs"] for c in cases.values()])),
        "dice_per_level": levels,
        "mean_dice_per_level": float(np.mean(list(levels.values()))),
        "cases": cases,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="folder with NN_img.nii.gz / NN_seg.nii.gz (the T2 disc data)")
    parser.add_argument("cv_dir", type=Path)
    args = parser.parse_args()
    result = score(args.source, args.cv_dir)
    (args.cv_dir / "disc_scores.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
