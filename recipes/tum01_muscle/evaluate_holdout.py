"""Dice per label of a model on held-out TUM01 slices, through the shipped inference path.

    python recipes/tum01_muscle/evaluate_holdout.py MODEL_DIR --slices 0:8

Segments the whole water and fat volumes with the ONNX backend (test-time flip on, then the
largest-component clean-up, as ``paraspinal segment`` does) and scores only the held-out slices
against the manual labels. Slice indices run along the model's slice axis (0 = most inferior).
Besides Dice, per label: the volume error of the held-out slices (%, predicted against manual) and the error
of the mean Dixon fat fraction inside the predicted mask against inside the manual one (percentage points,
fat fraction = fat / (water + fat) from the sample's two images).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from paraspinal.backends import UNetOnnxBackend
from paraspinal.evaluation import dice_per_label
from paraspinal.io import Image, read_image, read_label_map
from paraspinal.postprocessing import keep_largest_component
from paraspinal.sample import sample_case


def evaluate(model_dir: str, *, start: int, stop: int, tta: bool = True) -> dict[str, dict[str, float]]:
    case = sample_case()
    truth = read_label_map(case.labels)
    backend = UNetOnnxBackend(model_dir, test_time_flip=tta)
    water = np.asarray(read_image(case.water).array, dtype=np.float64)[:, :, start:stop]
    fat = np.asarray(read_image(case.fat).array, dtype=np.float64)[:, :, start:stop]
    fraction = np.divide(fat, water + fat, out=np.zeros_like(fat), where=(water + fat) > 0)
    out: dict[str, dict[str, float]] = {}
    for name, path in (("water", case.water), ("fat", case.fat)):
        image = read_image(path)
        image = Image(image.array, truth.affine, source=str(path))  # same voxels as the labels (sample README)
        labels = keep_largest_component(backend.segment(image).labels)[0].array[:, :, start:stop]
        ref = truth.array[:, :, start:stop]  # TUM01 is stored LPS: array slice k = model slice k
        per_value = dice_per_label(labels, ref, backend.scheme.values)
        scores = {backend.scheme.entry(value).name: d for value, d in per_value.items()}
        scores["mean"] = float(np.mean(list(scores.values())))
        for value in backend.scheme.values:
            label = backend.scheme.entry(value).name
            mine, manual = labels == value, ref == value
            scores[f"volume_error_pct {label}"] = 100.0 * (mine.sum() / max(manual.sum(), 1) - 1.0)
            ff_mine = fraction[mine].mean() if mine.any() else np.nan
            scores[f"ff_error_pp {label}"] = 100.0 * (ff_mine - fraction[manual].mean())
        out[name] = {k: round(float(v), 4) for k, v in scores.items()}
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir")
    parser.add_argument("--slices", default="0:8", help="held-out slices START:STOP (half-open)")
    parser.add_argument("--no-tta", action="store_true")
    args = parser.parse_args()
    first, last = (int(v) for v in args.slices.split(":"))
    print(json.dumps(evaluate(args.model_dir, start=first, stop=last, tta=not args.no_tta), indent=2))
