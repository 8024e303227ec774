"""Tiny TotalSpineSeg weights for tests: both steps in its published layout, with a known output.

``make_results`` writes ``Dataset101_TotalSpineSeg_step1`` and ``Dataset102_TotalSpineSeg_step2``, each with
``nnUNetTrainer_DASegOrd0_NoMirroring__nnUNetPlans_small__3d_fullres/{dataset.json, plans.json,
fold_0/checkpoint_final.pth}`` (step 2 with two input channels, image and odd discs, as the real one). Every
weight is zero except the segmentation head's biases, so each model gives one class (``winner``) wherever
nnU-Net does not crop the image away (its non-zero bounding box): a known output, not random labels.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from tests.totalseg_support import _plans

TRAINER = "nnUNetTrainer_DASegOrd0_NoMirroring__nnUNetPlans_small__3d_fullres"
STEP1_LABELS = ["disc", "disc_C2_C3", "disc_C7_T1", "disc_T12_L1", "disc_L5_S", "sacrum", "C1", "canal", "cord"]
STEP2_LABELS = [
    *["disc", "disc_C2_C3", "disc_C7_T1", "disc_T12_L1", "disc_L5_S"],
    *["C1", "vertebrae_odd", "vertebrae_even", "sacrum", "canal", "cord"],
]


def _model(folder: Path, *, name: str, labels: list[str], channels: int, winner: int) -> None:
    import torch
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from paraspinal.backends.totalseg import find_trainer_class

    folder.mkdir(parents=True)
    plans = _plans(name, [1.0, 1.0, 1.0])
    plans["plans_name"] = "nnUNetPlans_small"
    plans["image_reader_writer"] = "SimpleITKIO"
    config = plans["configurations"]["3d_fullres"]
    config["normalization_schemes"] = ["ZScoreNormalization"] + ["NoNormalization"] * (channels - 1)
    config["use_mask_for_norm"] = [False] * channels
    stats = plans["foreground_intensity_properties_per_channel"]["0"]
    plans["foreground_intensity_properties_per_channel"] = {str(c): stats for c in range(channels)}
    dataset = {
        "channel_names": {str(c): n for c, n in enumerate(["MRI", "odd_discs"][:channels])},
        "labels": {"background": 0, **{label: i + 1 for i, label in enumerate(labels)}},
        "numTraining": 1,
        "file_ending": ".nii.gz",
    }
    (folder / "plans.json").write_text(json.dumps(plans, indent=2))
    (folder / "dataset.json").write_text(json.dumps(dataset, indent=2))
    manager = PlansManager(plans)
    network = find_trainer_class("nnUNetTrainer").build_network_architecture(
        manager, manager.get_configuration("3d_fullres"), channels, len(labels) + 1, enable_deep_supervision=False
    )
    state = {key: torch.zeros_like(value) for key, value in network.state_dict().items()}
    head_bias = [key for key in state if key.endswith("bias") and state[key].numel() == len(labels) + 1][-1]
    state[head_bias][winner] = 5.0
    checkpoint = {
        "network_weights": state,
        "trainer_name": TRAINER.split("__")[0],
        "init_args": {"configuration": "3d_fullres", "fold": 0},
        "inference_allowed_mirroring_axes": None,
    }
    (folder / "fold_0").mkdir()
    torch.save(checkpoint, folder / "fold_0" / "checkpoint_final.pth")


def make_results(root: Path, *, step1_winner: int = 5, step2_winner: int = 5) -> Path:
    """``root/nnUNet/results`` with both steps (default: every voxel the L5/S landmark disc); returns it."""
    results = root / "nnUNet" / "results"
    _model(
        results / "Dataset101_TotalSpineSeg_step1" / TRAINER,
        name="Dataset101_TotalSpineSeg_step1",
        labels=STEP1_LABELS,
        channels=1,
        winner=step1_winner,
    )
    _model(
        results / "Dataset102_TotalSpineSeg_step2" / TRAINER,
        name="Dataset102_TotalSpineSeg_step2",
        labels=STEP2_LABELS,
        channels=2,
        winner=step2_winner,
    )
    return results


def zip_dataset(folder: Path, archive: Path) -> Path:
    """``folder`` zipped with its own name as the root (as the release zips are)."""
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, Path(folder.name) / path.relative_to(folder))
    return archive
