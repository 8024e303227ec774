"""Published model layouts for store tests: the real folder structure and JSON files, placeholder weights.

Each builder writes the files a catalogue entry's layout names (``dataset.json``/``plans.json`` as nnU-Net exports
them, MuscleMap's config) with random bytes as weights, and :func:`zip_folder` packs a folder as the project's
download does. Nothing here can run; :mod:`tests.nnunet_support` builds models that do.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

PARASPINALSEG_LABELS = {
    "background": 0,
    "psoas": 1,
    "quadratus_lumborum": 2,
    "erector_spinae": 3,
    "multifidus": 4,
    "epifascial_fat": 5,
}
PARASPINALSEG_TRAINER = "Dataset004_Paraspinal/nnUNetTrainer__nnUNetPlans__2d"


def _weights(path: Path, *, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(seed).bytes(256))


def paraspinalseg_export(root: Path, *, labels: dict | None = None, folds: int = 5) -> Path:
    """ParaspinalSeg's zip content (nnU-Net v2 export): ``Dataset004_*/nnUNetTrainer__nnUNetPlans__2d/...``."""
    trainer = root / PARASPINALSEG_TRAINER
    trainer.mkdir(parents=True, exist_ok=True)
    dataset = {
        "channel_names": {"0": "T2"},
        "labels": labels or PARASPINALSEG_LABELS,
        "numTraining": 664,
        "file_ending": ".nii.gz",
    }
    (trainer / "dataset.json").write_text(json.dumps(dataset, indent=2), encoding="utf-8")
    (trainer / "plans.json").write_text(json.dumps({"plans_name": "nnUNetPlans"}), encoding="utf-8")
    for fold in range(folds):
        _weights(trainer / f"fold_{fold}" / "checkpoint_final.pth", seed=fold)
    return root


def musclemap_abdomen(folder: Path) -> Path:
    """MuscleMap's abdomen model folder: its config (labels 1-8) and a weights file."""
    folder.mkdir(parents=True, exist_ok=True)
    sides = ("right", "left")
    muscles = ("multifidus", "erector spinae", "psoas major", "quadratus lumborum")
    labels = [
        {"region": "abdomen", "anatomy": m, "side": s, "value": 2 * i + j + 1}
        for i, m in enumerate(muscles)
        for j, s in enumerate(sides)
    ]
    config = {"parameters": {"roi_size": [128, 128]}, "model": {"out_channels": 9}, "labels": labels}
    (folder / "contrast_agnostic_abdomen_model.json").write_text(json.dumps(config), encoding="utf-8")
    _weights(folder / "contrast_agnostic_abdomen_model.pth", seed=9)
    return folder


def zip_folder(folder: Path, archive: Path) -> Path:
    """``folder``'s content as ``archive`` (paths relative to ``folder``, as a release zip holds them)."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zipped.write(path, path.relative_to(folder).as_posix())
    return archive
