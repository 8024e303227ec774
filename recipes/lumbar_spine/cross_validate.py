"""5-fold cross-validation of the lumbar spine recipe on the 54 sagittal MyoSegmenTUM spines.

    python recipes/lumbar_spine/cross_validate.py /tmp/Dataset902_LumbarSpine /tmp/spine_cv \
        -c recipes/lumbar_spine/config.toml [--folds 0,1,2,3,4] [--device cuda]

Fold k holds out cases ``sorted(ids)[k::5]``, trains ``paraspinal train``'s trainer on the rest with
the recipe's config (a fold whose model exists is not retrained; one stopped part-way continues from its
checkpoint), then segments each held-out volume through the shipped inference path (ONNX
Runtime) and writes ``fold_k/predictions/{case}_dseg.nii.gz`` and ``fold_k/scores.json``: per-level
vertebral body Dice (3-D, at the data's 1 mm grid) of the raw model output. Level naming accuracy and
the Dice after the naming step are computed by ``score_cv.py`` from these predictions.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
from add_t2_bodies import T2_PREFIX, subject_of

from paraspinal.backends import UNetOnnxBackend
from paraspinal.evaluation import dice_per_label
from paraspinal.io import read_image, read_label_map, write_label_map
from paraspinal.training.config import load_config
from paraspinal.training.dataset import read_dataset
from paraspinal.training.trainer import train

N_FOLDS = 5


def fold_cases(case_ids: list[str], fold: int) -> list[str]:
    """The held-out cases of ``fold``: every fifth subject of the sorted ids, starting at ``fold``, counted
    separately for the Dixon subjects and the T2 subjects (``t2-`` ids), with all repeats of a subject."""
    subjects = sorted({subject_of(c) for c in case_ids})
    held = set()
    for source in (False, True):
        held |= set([s for s in subjects if s.startswith(T2_PREFIX) == source][fold::N_FOLDS])
    return sorted(c for c in case_ids if subject_of(c) in held)


def run_fold(dataset: Path, out: Path, *, config_path: Path, fold: int, device: str | None = None) -> dict[str, object]:
    info = read_dataset(dataset)
    held_out = fold_cases([c.case_id for c in info.cases], fold)
    config = replace(load_config(config_path, device=device), validation_cases=tuple(held_out))
    fold_dir = out / f"fold_{fold}"
    model_dir = fold_dir / "model"
    if not (model_dir / "model.json").is_file():
        train(dataset, model_dir, config=config, show_progress=False, resume=True)  # continues a stopped fold
    backend = UNetOnnxBackend(model_dir)
    scores: dict[str, dict[str, float]] = {}
    for case in info.cases:
        if case.case_id not in held_out or subject_of(case.case_id) != case.case_id.removesuffix("-r1"):
            continue
        image = read_image(case.images[0])
        truth = read_label_map(case.labels)
        labels = backend.segment(image).labels
        write_label_map(labels, fold_dir / "predictions" / f"{case.case_id}_dseg.nii.gz")
        if case.case_id.startswith(T2_PREFIX):
            continue  # body labels made from the discs (add_t2_bodies.py): scored by score_t2_levels.py instead
        dice = dice_per_label(labels.array, truth.array, range(1, 6))
        scores[case.case_id] = {f"L{v}": round(d, 4) for v, d in dice.items()}
    result = {"fold": fold, "held_out": held_out, "dice": scores}
    (fold_dir / "scores.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("-c", "--config", type=Path, required=True)
    parser.add_argument("--folds", default="0,1,2,3,4")
    parser.add_argument("--device", default=None, help="train on cpu, cuda or cuda:N (default: the config's)")
    args = parser.parse_args()
    for k in (int(v) for v in args.folds.split(",")):
        result = run_fold(args.dataset, args.out, config_path=args.config, fold=k, device=args.device)
        values = [d for case in result["dice"].values() for d in case.values()]  # type: ignore[union-attr]
        print(f"fold {k}: mean body Dice {np.nanmean(values):.4f} over {len(result['dice'])} cases", flush=True)
