"""Score the shipped muscle assessment (:func:`paraspinal.quality.muscle.assess_muscles`, as ``run`` calls it)
on the TUM01 variants of ``calibrate_muscle.py``, from its cached model outputs.

A side-slice (one side of one slice with the side's muscles in the manual mask) is bad when its union Dice
(erector spinae + multifidus) is below 0.75, and flagged when either of the side's structures is ``review``
or ``fail`` on that slice. Unlike the calibration's out-of-fold table this uses the weights fit on all
variants (in-sample) and includes the absence rules (a side never found, slices with no label at all).

    PYTHONPATH=src python3 recipes/quality/score_muscle.py   # after calibrate_muscle.py filled --cache
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from calibrate_muscle import BAD_DICE, SIDES, auroc, segment_cached
from muscle_variants import tum01_variants

from paraspinal.backends.bundled import bundled_model_dir
from paraspinal.backends.unet_onnx import UNetOnnxBackend
from paraspinal.evaluation import dice
from paraspinal.quality.muscle import assess_muscles


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=Path("/tmp/paraspinal_muscle_quality_cache"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    backend = UNetOnnxBackend(bundled_model_dir("muscle"), threads=1)
    truth, flagged, scores = [], [], []
    for name, image, ref in tum01_variants(seed=args.seed):
        lm = segment_cached(backend, image, name, args.cache)
        by_side: dict[str, list] = {}
        for q in assess_muscles(label_map=lm, image=image):
            by_side.setdefault(q.side, []).append(q)
        for side, values in SIDES.items():
            p, r = np.isin(lm.array, values), np.isin(ref, values)
            for k in range(lm.shape[2]):
                d = dice(p[:, :, k], r[:, :, k])
                if not np.isfinite(d) or not r[:, :, k].any():
                    continue
                slice_q = [q.slices[k] for q in by_side.get(side, []) if k in q.slices]
                truth.append(d < BAD_DICE)
                flagged.append(any(a.status != "ok" for a in slice_q))
                scores.append(min((a.score for a in slice_q), default=1.0))
    bad, flag, low = np.array(truth), np.array(flagged), np.array(scores)
    print("| side-slices | bad | AUROC | bad flagged | good flagged |")
    print("|---|---|---|---|---|")
    print(f"| {len(bad)} | {bad.sum()} | {auroc(bad, low):.3f} | {flag[bad].mean():.0%} | {flag[~bad].mean():.0%} |")


if __name__ == "__main__":
    main()
