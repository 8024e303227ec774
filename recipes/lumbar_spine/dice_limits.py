"""Where the vertebral body Dice is lost: the manual masks' own limit, and the errors of cross-validation predictions.

    python recipes/lumbar_spine/dice_limits.py /tmp/Dataset902_LumbarSpine --masks 01 05 10 20 30 40
    python recipes/lumbar_spine/dice_limits.py /tmp/Dataset902_LumbarSpine --cv /tmp/spine_cv

``--masks``: the manual masks hold one outline per run of identical slices across the left-right axis (the
volumes were resampled to 1 mm from thicker slices). Each listed case's bodies are rebuilt from those outlines
alone, interpolating signed distances linearly between the runs' centres, as a slice-by-slice model whose outlines
change smoothly from slice to slice would draw them; the Dice of that rebuild against the mask is how much a
perfect smooth model would lose to the staircase.

``--cv``: every Dixon prediction of ``cross_validate.py`` after the naming step (as ``score_cv.py``), all bodies
together against the manual bodies: false positives / negatives split by their distance (mm) to the manual surface
(<= 2, 2-5, > 5), and the Dice per sagittal slice by its distance from each body's left-right centre (mm, 1 mm slices).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from add_t2_bodies import T2_PREFIX
from scipy import ndimage
from score_cv import dice, named_as_shipped

from paraspinal.io import read_label_map

LEVELS = range(1, 6)
SLICE_AXIS = 2  # the datasets' arrays are (I, P, R): slices run across the left-right axis


def run_centres(labels: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Centres (slice index) of the runs of two or more identical slices, and each run's first slice."""
    n = labels.shape[SLICE_AXIS]
    centres, firsts, k = [], [], 0
    while k < n:
        j = k
        while j + 1 < n and np.array_equal(labels[:, :, j], labels[:, :, j + 1]):
            j += 1
        if j > k:
            centres.append((k + j) / 2.0)
            firsts.append(k)
        k = j + 1
    return np.asarray(centres), firsts


def signed_distance(mask: np.ndarray) -> np.ndarray:
    """Signed distance (voxels) to the outline of a 2-D mask: negative inside."""
    if not mask.any():
        return np.full(mask.shape, 1e3)
    return ndimage.distance_transform_edt(~mask) - ndimage.distance_transform_edt(mask)


def smooth_rebuild_dice(labels: np.ndarray) -> dict[str, float]:
    """Per level, the Dice of the mask against its rebuild from the runs' outlines (see module docstring)."""
    centres, firsts = run_centres(labels)
    if len(centres) < 2:
        raise ValueError("the mask has fewer than two runs of identical slices: no outlines to interpolate between")
    out = {}
    for value in LEVELS:
        mask = labels == value
        distances = np.stack([signed_distance(mask[:, :, i]) for i in firsts], axis=-1)
        rebuilt = mask.copy()  # outside the first and last run centre: the mask itself
        for z in range(int(np.ceil(centres[0])), int(np.floor(centres[-1])) + 1):
            j = min(int(np.searchsorted(centres, z, side="right")) - 1, len(centres) - 2)
            t = (z - centres[j]) / (centres[j + 1] - centres[j])
            rebuilt[:, :, z] = (1 - t) * distances[..., j] + t * distances[..., j + 1] < 0
        out[f"L{value}"] = dice(rebuilt, mask)
    return out


def prediction_errors(dataset: Path, cv_dir: Path) -> dict[str, object]:
    """Error split by distance to the manual surface and Dice by left-right offset (see module docstring)."""
    split = dict.fromkeys(["tp", "fp_le2", "fp_2to5", "fp_gt5", "fn_le2", "fn_2to5", "fn_gt5"], 0)
    by_offset: dict[int, np.ndarray] = {}  # mm from the body's centre -> (predicted, manual, overlap) voxels
    for pred_path in sorted(cv_dir.glob("fold_*/predictions/*_dseg.nii.gz")):
        case_id = pred_path.name[: -len("_dseg.nii.gz")]
        if case_id.startswith(T2_PREFIX):
            continue
        renamed, _, _ = named_as_shipped(read_label_map(pred_path))
        truth = np.asarray(read_label_map(dataset / "labelsTr" / f"{case_id}.nii.gz").array)
        a, b = renamed > 0, np.isin(truth, list(LEVELS))
        outside, inside = ndimage.distance_transform_edt(~b), ndimage.distance_transform_edt(b)
        split["tp"] += int(np.count_nonzero(a & b))
        for kind, wrong, depth in (("fp", a & ~b, outside), ("fn", b & ~a, inside)):
            split[f"{kind}_le2"] += int(np.count_nonzero(wrong & (depth <= 2)))
            split[f"{kind}_2to5"] += int(np.count_nonzero(wrong & (depth > 2) & (depth <= 5)))
            split[f"{kind}_gt5"] += int(np.count_nonzero(wrong & (depth > 5)))
        for value in LEVELS:
            p, t = renamed == value, truth == value
            slices = np.flatnonzero(t.any(axis=(0, 1)))
            if slices.size == 0:
                continue
            centre = (slices.min() + slices.max()) / 2.0
            for z in range(truth.shape[SLICE_AXIS]):
                row = by_offset.setdefault(round(abs(z - centre)), np.zeros(3))
                row += [p[:, :, z].sum(), t[:, :, z].sum(), (p[:, :, z] & t[:, :, z]).sum()]
    profile = {
        k: {"predicted": int(v[0]), "manual": int(v[1]), "dice": float(2 * v[2] / (v[0] + v[1]))}
        for k, v in sorted(by_offset.items())
        if v[0] + v[1] > 0
    }
    return {"voxels": split, "dice_by_offset_mm": profile}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--masks", nargs="*", default=[], help="case ids whose masks to rebuild from their outlines")
    parser.add_argument("--cv", type=Path, help="a cross_validate.py folder to analyse")
    args = parser.parse_args()
    if not args.masks and args.cv is None:
        parser.error("give --masks CASE ... and/or --cv FOLDER")
    result: dict[str, object] = {}
    if args.masks:
        rebuilt = {
            case: smooth_rebuild_dice(np.asarray(read_label_map(args.dataset / "labelsTr" / f"{case}.nii.gz").array))
            for case in args.masks
        }
        result["smooth_rebuild_dice"] = rebuilt
        result["smooth_rebuild_mean"] = float(np.mean([v for r in rebuilt.values() for v in r.values()]))
    if args.cv is not None:
        result["cv_errors"] = prediction_errors(args.dataset, args.cv)
    print(json.dumps(result, indent=2))
