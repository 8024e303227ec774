"""Score the cross-validation predictions written by ``cross_validate.py``, after the naming step.

    python recipes/lumbar_spine/score_cv.py /tmp/Dataset902_LumbarSpine /tmp/spine_cv

For every held-out case: the model's label map goes through the shipped naming step
(:func:`paraspinal.levels.naming.name_bodies`: bodies = connected components, names consecutive in
cranio-caudal order, the offset chosen by the voxels' level votes) and is rewritten with those names
(:func:`named_label_map`). Reported: per-level vertebral body Dice (3-D, 1 mm grid) raw and after
naming, the Dice of all bodies together (level ignored), and the naming accuracy: the share of manual
bodies whose best-overlapping named body carries the right level.

The 54 Dixon spines hold four exact duplicate pairs (18 = 19, 32 = 33, 51 = 53, 52 = 54: the same image and
mask under two ids). A held-out case whose twin was in its fold's training set is *leaked*: it is scored
(``cases``, ``leaked``) but left out of the headline numbers, which cover the cases without one.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from add_t2_bodies import T2_PREFIX

from paraspinal.anatomy import LabelScheme, load_registry
from paraspinal.backends.unet_onnx import read_model_card
from paraspinal.errors import LevelsError
from paraspinal.evaluation import dice, dice_per_label
from paraspinal.io import read_label_map
from paraspinal.io.image import Image
from paraspinal.levels.naming import name_bodies, named_label_map
from paraspinal.levels.spine import LOW_NAMING_CONFIDENCE
from paraspinal.training.dataset import identical_cases, read_dataset

LEVELS = range(1, 6)


def named_as_shipped(pred: Image, *, scheme: LabelScheme) -> tuple[np.ndarray, list[str], float]:
    """The model's label map (in the model's ``scheme``) rewritten with the naming step's names (all 0 when naming
    fails), the names (or the error) and the naming confidence."""
    registry = load_registry()
    try:
        named = name_bodies(pred, scheme=scheme, registry=registry)
    except LevelsError as exc:
        return np.zeros(pred.shape, dtype=np.asarray(pred.array).dtype), [str(exc)], 0.0
    renamed = np.asarray(named_label_map(pred, named, scheme=scheme, registry=registry).array)
    return renamed, named.names, named.naming_confidence


def count_named_correctly(renamed: np.ndarray, truth: np.ndarray, values: range) -> int:
    """Manual bodies (``values``) whose best-overlapping named body carries their level."""
    correct = 0
    for value in values:
        inside = renamed[truth == value]
        inside = inside[inside > 0]
        correct += int(inside.size > 0 and np.bincount(inside).argmax() == value)
    return correct


def score_case(pred_path: Path, truth_path: Path, *, scheme: LabelScheme) -> dict[str, object]:
    pred, truth = read_label_map(pred_path), read_label_map(truth_path)
    p, t = np.asarray(pred.array), np.asarray(truth.array)
    renamed, names, confidence = named_as_shipped(pred, scheme=scheme)
    correct = count_named_correctly(renamed, t, LEVELS)
    return {
        "raw": {f"L{v}": d for v, d in dice_per_label(p, t, LEVELS).items()},
        "named": {f"L{v}": d for v, d in dice_per_label(renamed, t, LEVELS).items()},
        "bodies": dice(np.isin(p, LEVELS), t > 0),  # L1-L5 only (not a sacrum class)
        "named_correct": correct,
        "names": names,
        "naming_confidence": confidence,
    }


def twins(dataset: Path) -> dict[str, set[str]]:
    """Case id -> the other ids of the dataset whose image and label files hold the same voxels."""
    info = read_dataset(dataset)
    return identical_cases(
        (case.case_id, [np.asarray(read_label_map(path).array) for path in (*case.images, case.labels)])
        for case in info.cases
    )


def leaked_cases(dataset: Path, cv_dir: Path) -> list[str]:
    """Held-out cases with a twin (same voxels, other id) that was not held out in the same fold."""
    twin_of = twins(dataset)
    leaked = []
    for scores_path in sorted(cv_dir.glob("fold_*/scores.json")):
        held_out = set(json.loads(scores_path.read_text(encoding="utf-8"))["held_out"])
        leaked += [case for case in sorted(held_out) if twin_of.get(case, set()) - held_out]
    return sorted(leaked)


def score(dataset: Path, cv_dir: Path) -> dict[str, object]:
    cases: dict[str, dict[str, object]] = {}
    for pred_path in sorted(cv_dir.glob("fold_*/predictions/*_dseg.nii.gz")):
        case_id = pred_path.name[: -len("_dseg.nii.gz")]
        if case_id.startswith(T2_PREFIX):
            continue  # T2 bodies named from discs (add_t2_bodies.py): scored by score_t2_levels.py
        scheme = read_model_card(pred_path.parents[1] / "model").scheme
        cases[case_id] = score_case(pred_path, dataset / "labelsTr" / f"{case_id}.nii.gz", scheme=scheme)
    leaked = leaked_cases(dataset, cv_dir)
    clean = {case: result for case, result in cases.items() if case not in leaked}
    return {
        **summarise(clean),
        "leaked": leaked,
        "with_leaked": {k: v for k, v in summarise(cases).items() if k != "cases"},
        "cases": cases,
    }


def summarise(cases: dict[str, dict[str, object]]) -> dict[str, object]:
    """Headline numbers over ``cases`` (see module docstring)."""
    per_level = {
        kind: {f"L{v}": float(np.nanmean([c[kind][f"L{v}"] for c in cases.values()])) for v in LEVELS}  # type: ignore[index]
        for kind in ("raw", "named")
    }
    confident = [c for c in cases.values() if float(c["naming_confidence"]) >= LOW_NAMING_CONFIDENCE]  # type: ignore[arg-type]
    misnamed = [c for c in cases.values() if int(c["named_correct"]) < 5]  # type: ignore[call-overload]
    flagged = [c for c in misnamed if float(c["naming_confidence"]) < LOW_NAMING_CONFIDENCE]  # type: ignore[arg-type]
    return {
        "n_cases": len(cases),
        "n_confident": len(confident),
        "naming_accuracy_confident": sum(int(c["named_correct"]) for c in confident) / max(5 * len(confident), 1),  # type: ignore[call-overload]
        "mean_dice_named_confident": float(
            np.nanmean([np.nanmean(list(c["named"].values())) for c in confident])  # type: ignore[union-attr]
        ),
        "n_cases_with_a_misnamed_body": len(misnamed),
        "of_which_flagged_uncertain": len(flagged),
        "dice_raw": per_level["raw"],
        "dice_named": per_level["named"],
        "mean_dice_raw": float(np.mean(list(per_level["raw"].values()))),
        "mean_dice_named": float(np.mean(list(per_level["named"].values()))),
        "bodies_dice": float(np.mean([c["bodies"] for c in cases.values()])),
        "naming_accuracy": sum(int(c["named_correct"]) for c in cases.values()) / (5 * len(cases)),  # type: ignore[call-overload]
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("cv_dir", type=Path)
    args = parser.parse_args()
    result = score(args.dataset, args.cv_dir)
    (args.cv_dir / "cv_scores.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k not in ("cases", "with_leaked")}, indent=2))
