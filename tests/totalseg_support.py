"""Tiny TotalSegmentator weights folders for tests (real nnU-Net v2 model files, random seeded weights).

:func:`make_weights_folder` lays a folder out exactly as TotalSegmentator keeps its downloads
(``<home>/nnunet/results/<dataset folder>/<trainer>__nnUNetPlans__3d_fullres/``) for the datasets of
the MR tasks, each with a small 3d_fullres plan (16³ patch, two stages, 2/4 features), the
``dataset.json`` labels TotalSegmentator's class maps expect, and a ``fold_0/checkpoint_final.pth``
whose weights come from a seeded generator. The last layer's biases are spread so that several
labels win somewhere on a smooth test image.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

PATCH = [16, 16, 16]


def _plans(dataset_name: str, spacing_zyx: list[float]) -> dict:
    arch = {
        "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
        "arch_kwargs": {
            "n_stages": 2,
            "features_per_stage": [2, 4],
            "conv_op": "torch.nn.modules.conv.Conv3d",
            "kernel_sizes": [[3, 3, 3], [3, 3, 3]],
            "strides": [[1, 1, 1], [2, 2, 2]],
            "n_conv_per_stage": [1, 1],
            "n_conv_per_stage_decoder": [1],
            "conv_bias": True,
            "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
            "norm_op_kwargs": {"eps": 1e-05, "affine": True},
            "dropout_op": None,
            "dropout_op_kwargs": None,
            "nonlin": "torch.nn.LeakyReLU",
            "nonlin_kwargs": {"inplace": True},
        },
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
    }
    return {
        "dataset_name": dataset_name,
        "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": spacing_zyx,
        "original_median_shape_after_transp": [32, 32, 32],
        "image_reader_writer": "NibabelIOWithReorient",
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "configurations": {
            "3d_fullres": {
                "data_identifier": "nnUNetPlans_3d_fullres",
                "preprocessor_name": "DefaultPreprocessor",
                "batch_size": 2,
                "patch_size": PATCH,
                "median_image_size_in_voxels": [32, 32, 32],
                "spacing": spacing_zyx,
                "normalization_schemes": ["ZScoreNormalization"],
                "use_mask_for_norm": [False],
                "resampling_fn_data": "resample_data_or_seg_to_shape",
                "resampling_fn_seg": "resample_data_or_seg_to_shape",
                "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
                "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
                "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
                "resampling_fn_probabilities_kwargs": {
                    "is_seg": False,
                    "order": 1,
                    "order_z": 0,
                    "force_separate_z": None,
                },
                "architecture": arch,
                "batch_dice": False,
            }
        },
        "experiment_planner_used": "ExperimentPlanner",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {
            "0": {
                "max": 1000.0,
                "mean": 100.0,
                "median": 100.0,
                "min": 0.0,
                "percentile_00_5": 0.0,
                "percentile_99_5": 900.0,
                "std": 50.0,
            }
        },
    }


def make_model_folder(
    folder: Path,
    *,
    dataset_name: str,
    trainer: str,
    class_names: dict[int, str],
    spacing_mm: float,
    seed: int,
    background_bias: float = 0.0,
) -> Path:
    """Write ``dataset.json``, ``plans.json`` and ``fold_0/checkpoint_final.pth`` into ``folder``.

    ``background_bias`` is added to the background logit's bias (so a later model of a multi-model
    task leaves some voxels to an earlier one).
    """
    import torch
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from paraspinal.backends.totalseg import find_trainer_class

    folder.mkdir(parents=True)
    plans = _plans(dataset_name, [spacing_mm] * 3)
    labels = {"background": 0, **{name: value for value, name in sorted(class_names.items())}}
    dataset = {"channel_names": {"0": "MRI"}, "labels": labels, "numTraining": 1, "file_ending": ".nii.gz"}
    (folder / "plans.json").write_text(json.dumps(plans, indent=2))
    (folder / "dataset.json").write_text(json.dumps(dataset, indent=2))

    manager = PlansManager(plans)
    config = manager.get_configuration("3d_fullres")
    trainer_class = find_trainer_class(trainer)
    n_out = manager.get_label_manager(dataset).num_segmentation_heads
    network = trainer_class.build_network_architecture(manager, config, 1, n_out, enable_deep_supervision=False)
    generator = torch.Generator().manual_seed(seed)
    state = network.state_dict()
    for key, value in state.items():
        if value.dtype.is_floating_point:
            state[key] = torch.randn(value.shape, generator=generator) * 0.5
    head_bias = [key for key in state if key.endswith("bias") and state[key].numel() == n_out][-1]
    state[head_bias] = torch.linspace(-1.0, 1.0, n_out)[torch.randperm(n_out, generator=generator)]
    state[head_bias][0] += background_bias
    checkpoint = {
        "network_weights": state,
        "trainer_name": trainer,
        "init_args": {"configuration": "3d_fullres", "fold": 0},
        "inference_allowed_mirroring_axes": None,
    }
    (folder / "fold_0").mkdir()
    torch.save(checkpoint, folder / "fold_0" / "checkpoint_final.pth")
    return folder


def make_weights_folder(home: Path, *, task: str, seed: int = 0) -> Path:
    """A TotalSegmentator home folder (``nnunet/results/...``) with tiny models for ``task``; returns ``home``."""
    from totalsegmentator.map_tasks_config import TASK_CONFIGS, TASK_ID_WEIGHTS_CONFIGS
    from totalsegmentator.map_to_binary import class_map

    from paraspinal.backends.totalseg import task_part_classes

    raw = TASK_CONFIGS[task]
    config = raw["sub_modes"]["default"] if "sub_modes" in raw else raw
    ids = config["task_id"] if isinstance(config["task_id"], list) else [config["task_id"]]
    results = home / "nnunet" / "results"
    for offset, dataset_id in enumerate(ids):
        name = TASK_ID_WEIGHTS_CONFIGS[dataset_id]["foldername"]
        classes = task_part_classes(dataset_id) if len(ids) > 1 else class_map[task]
        make_model_folder(
            results / name / f"{config['trainer']}__nnUNetPlans__3d_fullres",
            dataset_name=name,
            trainer=config["trainer"],
            class_names=classes,
            spacing_mm=float(config["resample"]),
            seed=seed + offset,
            background_bias=1.5 * offset,
        )
    return home


def write_config(home: Path) -> None:
    """TotalSegmentator's ``config.json`` with usage statistics off (so its API sends nothing)."""
    home.mkdir(parents=True, exist_ok=True)
    config = {
        "totalseg_id": "totalseg_TESTONLY",
        "send_usage_stats": False,
        "prediction_counter": 0,
        "statistics_disclaimer_shown": True,
    }
    (home / "config.json").write_text(json.dumps(config))


def smooth_volume(shape: tuple[int, int, int], *, seed: int) -> np.ndarray:
    """A smooth positive test volume (blurred noise plus a gradient), float32."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    noise = gaussian_filter(rng.normal(size=shape), sigma=2.0)
    ramp = np.linspace(0.0, 1.0, shape[0])[:, None, None]
    return (200.0 + 400.0 * noise / noise.std() + 150.0 * ramp).astype(np.float32)


REFERENCE_TRAINERS = {
    "nnUNetTrainer_2000epochs_NoMirroring": (
        "nnunetv2.training.nnUNetTrainer.variants.training_length.nnUNetTrainer_Xepochs_NoMirroring"
    ),
    "nnUNetTrainer_DASegOrd0_NoMirroring": (
        "nnunetv2.training.nnUNetTrainer.variants.data_augmentation.nnUNetTrainerDAOrd0"
    ),
    # named so nnU-Net's recursive trainer search (which imports torchvision through timm) is not needed
    "nnUNetTrainerNoMirroring": "nnunetv2.training.nnUNetTrainer.variants.data_augmentation.nnUNetTrainerNoMirroring",
}


def run_reference(jobs: list[tuple[str, str, str]]) -> None:
    """Run TotalSegmentator's own python API for (input, output, task) jobs (TOTALSEG_HOME_DIR set by caller).

    Run as a script in a subprocess: its API sets nnU-Net environment variables and patches nnU-Net
    at import. The trainers are registered through TotalSegmentator's own ``custom_trainers`` table:
    nnU-Net's name search imports every trainer module and stops at the Primus ones, which need
    torchvision (absent from this CPU-only test environment).
    """
    import importlib

    import totalsegmentator.nnunet as ts_nnunet
    from totalsegmentator.python_api import totalsegmentator

    for name, module in REFERENCE_TRAINERS.items():
        ts_nnunet.custom_trainers[name] = getattr(importlib.import_module(module), name)
    for source, target, task in jobs:
        totalsegmentator(source, target, ml=True, task=task, device="cpu", quiet=True, nr_thr_saving=1)


if __name__ == "__main__":
    import sys

    run_reference([tuple(job) for job in json.loads(sys.argv[1])])
