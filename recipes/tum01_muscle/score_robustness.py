"""Compare muscle models on shifted TUM01 contrasts and on another site's image (issue 31).

    python recipes/tum01_muscle/score_robustness.py --model shipped=src/paraspinal/models/tum01_muscle \
        --model new=/tmp/tum01_muscle

Through the shipped inference path (ONNX Runtime, test-time flip, largest component):

* **Shifted contrasts**: 16 variants of TUM01 from ``recipes/quality/muscle_variants.py`` (T2-like, inverted,
  random mixes, noise, bias, thick slices, 0.45 / 1.2 mm pixels, a cut field of view). Every model scored here
  trained on TUM01's anatomy, so this measures robustness to contrast and geometry, not generalisation to a new
  person; the training synthesis resembles some variants (an optimistic test for a model trained with it).
* **Another site** (``../shared/data/musclemap-sample``): agreement with MuscleMap's model labels (not a manual
  mask), union (erector spinae + multifidus) Dice per side, multifidus Dice and its area against theirs.

Prints one markdown table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "recipes" / "quality"))

from calibrate_muscle import MUSCLEMAP_TO_LPM4, SIDES  # noqa: E402
from muscle_variants import tum01_variants  # noqa: E402

from paraspinal.backends import UNetOnnxBackend  # noqa: E402
from paraspinal.evaluation import dice, dice_per_label  # noqa: E402
from paraspinal.io import read_image  # noqa: E402
from paraspinal.postprocessing import keep_largest_component  # noqa: E402

VARIANTS = (
    "t2like",
    "inverted_water",
    "inverted_fat",
    "mix0.5",
    "random0",
    "random1",
    "random2",
    "random3",
    "t2like_noise0.2",
    "t2like_bias1.2",
    "water_thick",
    "fat_gamma2.5",
    "water_px0.45",
    "fat_px0.45",
    "fat_px1.2",
    "water_fovcut",
)
MUSCLEMAP = ROOT.parent / "shared" / "data" / "musclemap-sample"


def _segment(backend: UNetOnnxBackend, image) -> np.ndarray:
    return np.asarray(keep_largest_component(backend.segment(image).labels)[0].array)


def variant_scores(backend: UNetOnnxBackend) -> dict[str, float]:
    """Mean Dice of the four labels and the worst variant's mean Dice over the shifted TUM01 variants."""
    means = []
    for name, image, ref in tum01_variants(seed=0):
        if name not in VARIANTS:
            continue
        per = dice_per_label(_segment(backend, image), ref, (1, 2, 3, 4))
        means.append(float(np.mean([v for v in per.values() if np.isfinite(v)])))
    return {"variants_mean": float(np.mean(means)), "variants_worst": float(np.min(means)), "n": len(means)}


def musclemap_scores(backend: UNetOnnxBackend) -> dict[str, float]:
    """Agreement with MuscleMap's labels on its sample image (pooled over slices)."""
    image = read_image(MUSCLEMAP / "image.nii.gz")
    theirs = np.asarray(read_image(MUSCLEMAP / "labels.nii.gz").array)
    ref = np.zeros(theirs.shape, dtype=np.uint8)
    for a, b in MUSCLEMAP_TO_LPM4.items():
        ref[theirs == a] = b
    mine = _segment(backend, image)
    out = {f"union_{side}": dice(np.isin(mine, v), np.isin(ref, v)) for side, v in SIDES.items()}
    out["mf_dice"] = dice(np.isin(mine, (2, 3)), np.isin(ref, (2, 3)))
    out["es_dice"] = dice(np.isin(mine, (1, 4)), np.isin(ref, (1, 4)))
    out["mf_area_ratio"] = float(np.isin(mine, (2, 3)).sum() / max(np.isin(ref, (2, 3)).sum(), 1))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", required=True, help="NAME=MODEL_DIR (repeat)")
    args = ap.parse_args()
    print(
        "| model | shifted TUM01: mean Dice (16 variants) | worst variant | MuscleMap union Dice R / L "
        "| MF Dice | ES Dice | MF area / theirs |"
    )
    print("|---|---|---|---|---|---|---|")
    for item in args.model:
        name, _, folder = item.partition("=")
        backend = UNetOnnxBackend(folder, threads=1)
        v, m = variant_scores(backend), musclemap_scores(backend)
        print(
            f"| {name} | {v['variants_mean']:.3f} | {v['variants_worst']:.3f} | {m['union_right']:.3f} / "
            f"{m['union_left']:.3f} | {m['mf_dice']:.3f} | {m['es_dice']:.3f} | {m['mf_area_ratio']:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
