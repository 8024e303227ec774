"""Build real nnU-Net model folders for tests: nnU-Net's own planning, seeded random weights.

A tiny synthetic dataset (three 48x40x8 volumes, 0.8 x 0.8 x 4 mm, four labelled boxes) goes through
nnU-Net's own fingerprint extraction and experiment planning, run in a child process with the
``nnUNet_*`` (v2) or ``nnUNet_raw_data_base``/``RESULTS_FOLDER`` (v1) variables pointing into the
test's temporary folder (both libraries read them at import). The trained-model folder is then laid
out as nnU-Net's trainer writes it, with a network built from the plans by nnU-Net's trainer code,
seeded weights, and a final layer scaled so that several labels win somewhere.

Run as a script: ``python nnunet_support.py v2|v1 ROOT`` prints the model folder it made.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

SPACING_MM = (0.8, 0.8, 4.0)
SHAPE = (48, 40, 8)
LABELS_V2 = {"background": 0, "ES1": 1, "MF1": 2, "ES2": 3, "MF2": 4}
LABELS_V1 = {"0": "background", "1": "ES1", "2": "MF1", "3": "ES2", "4": "MF2"}
V2_ID, V2_NAME = 991, "Dataset991_Toy"
V1_TASK = "Task515_muscle"
V1_TRAINER = "nnUNetTrainerV2__nnUNetPlansv2.1"


def phantom(seed: int, shape: tuple[int, int, int] = SHAPE) -> tuple[np.ndarray, np.ndarray]:
    """(image float32, labels uint8) with four boxes of distinct brightness on a noisy body."""
    rng = np.random.default_rng(seed)
    image = rng.normal(100.0, 10.0, size=shape).astype(np.float32)
    labels = np.zeros(shape, dtype=np.uint8)
    shift = int(rng.integers(-2, 3))
    boxes = {
        1: (slice(4 + shift, 16 + shift), slice(18, 32)),
        2: (slice(16 + shift, 22 + shift), slice(20, 30)),
        3: (slice(26 + shift, 32 + shift), slice(20, 30)),
        4: (slice(32 + shift, 44 + shift), slice(18, 32)),
    }
    for value, (bx, by) in boxes.items():
        labels[bx, by, :] = value
        image[bx, by, :] += 40.0 * value
    image[:2] = 0.0  # a zero border, as nnU-Net crops to non-zero
    labels[:2] = 0
    return image, labels


def affine_ras(spacing_mm: tuple[float, float, float] = SPACING_MM) -> np.ndarray:
    """A diagonal affine (i, j, k along +x, +y, +z) with the phantom's spacing."""
    affine = np.diag([*spacing_mm, 1.0])
    affine[:3, 3] = (-20.0, -15.0, 10.0)
    return affine


def affine_lps(shape: tuple[int, int, int] = SHAPE, spacing_mm: tuple[float, float, float] = SPACING_MM) -> np.ndarray:
    """The same voxels stored LPS-style: i runs right-to-left and j anterior-to-posterior in RAS+ terms."""
    affine = np.diag([-spacing_mm[0], -spacing_mm[1], spacing_mm[2], 1.0])
    affine[:3, 3] = (20.0 + spacing_mm[0] * (shape[0] - 1), 15.0, 10.0)
    return affine


def write_nifti(array: np.ndarray, affine: np.ndarray, path: Path) -> Path:
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(array, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    nib.save(img, str(path))
    return path


def _raw_cases(images_dir: Path, labels_dir: Path, n_cases: int = 3) -> list[str]:
    names = []
    for case in range(n_cases):
        image, labels = phantom(seed=case)
        name = f"toy_{case:03d}"
        write_nifti(image, affine_ras(), images_dir / f"{name}_0000.nii.gz")
        write_nifti(labels, affine_ras(), labels_dir / f"{name}.nii.gz")
        names.append(name)
    return names


def _scale_last_layer(state: dict, *, key_suffix: str, factor: float, seed: int) -> dict:
    """Spread the segmentation head: scaled weights and seeded biases so several classes win."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    weight_keys = [k for k in state if k.endswith(key_suffix + ".weight")]
    for key in weight_keys:
        state[key] = state[key] * factor
        bias_key = key[: -len("weight")] + "bias"
        if bias_key in state:
            state[bias_key] = torch.randn(state[bias_key].shape, generator=generator) * 0.5
    return state


# --------------------------------------------------------------------------------------- nnU-Net v2


def _build_v2(root: Path, *, labels: dict | None = None, dataset: str = V2_NAME) -> Path:
    """Child-process body: raw dataset -> nnU-Net v2 fingerprint + plans -> trainer folder (2d).

    ``labels`` (dataset.json's, default :data:`LABELS_V2`) and ``dataset`` (``DatasetNNN_Name``) make other
    published layouts (the phantom's boxes still carry values 1-4)."""
    labels = labels if labels is not None else LABELS_V2
    dataset_id = int(dataset.split("_")[0].removeprefix("Dataset"))
    import torch
    from nnunetv2.experiment_planning.plan_and_preprocess_api import extract_fingerprints, plan_experiments
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    raw = root / "raw" / dataset
    names = _raw_cases(raw / "imagesTr", raw / "labelsTr")
    dataset_name = dataset
    dataset = {
        "channel_names": {"0": "MRI"},
        "labels": labels,
        "numTraining": len(names),
        "file_ending": ".nii.gz",
    }
    (raw / "dataset.json").write_text(json.dumps(dataset, indent=2))
    extract_fingerprints(
        [dataset_id], num_processes=1, check_dataset_integrity=False, clean=True, verbose=False, show_progress_bar=False
    )
    plans_identifier = plan_experiments([dataset_id])
    pre = root / "preprocessed" / dataset_name
    plans = json.loads((pre / f"{plans_identifier}.json").read_text(encoding="utf-8"))
    model = root / "results" / dataset_name / f"nnUNetTrainer__{plans_identifier}__2d"
    (model / "fold_0").mkdir(parents=True, exist_ok=True)
    shutil.copy(pre / f"{plans_identifier}.json", model / "plans.json")
    shutil.copy(raw / "dataset.json", model / "dataset.json")
    shutil.copy(pre / "dataset_fingerprint.json", model / "dataset_fingerprint.json")

    manager = PlansManager(plans)
    configuration = manager.get_configuration("2d")
    torch.manual_seed(0)
    network = nnUNetTrainer.build_network_architecture(
        manager,
        configuration,
        determine_num_input_channels(manager, configuration, dataset),
        manager.get_label_manager(dataset).num_segmentation_heads,
        enable_deep_supervision=False,
    )
    state = _scale_last_layer(
        network.state_dict(), key_suffix=f"seg_layers.{len(network.decoder.seg_layers) - 1}", factor=8.0, seed=1
    )
    checkpoint = {
        "network_weights": state,
        "optimizer_state": None,
        "grad_scaler_state": None,
        "logging": {},
        "_best_ema": None,
        "current_epoch": 1,
        "init_args": {
            "plans": plans,
            "configuration": "2d",
            "fold": 0,
            "dataset_json": dataset,
            "device": torch.device("cpu"),
        },
        "trainer_name": "nnUNetTrainer",
        "inference_allowed_mirroring_axes": (0, 1),
    }
    torch.save(checkpoint, model / "fold_0" / "checkpoint_final.pth")
    return model


# --------------------------------------------------------------------------------------- nnU-Net v1


def _build_v1(root: Path) -> Path:
    """Child-process body: raw Task -> nnU-Net v1 cropping, analysis, 2D planning -> trainer folder.

    The planning folders are deleted afterwards, so the folder works like a downloaded model whose
    pickled trainer arguments name paths that do not exist here.
    """
    import pickle

    import torch
    from nnunet.experiment_planning.DatasetAnalyzer import DatasetAnalyzer
    from nnunet.experiment_planning.experiment_planner_baseline_2DUNet_v21 import ExperimentPlanner2D_v21
    from nnunet.experiment_planning.utils import crop
    from nnunet.training.network_training.nnUNetTrainerV2 import nnUNetTrainerV2

    raw = root / "raw_v1" / "nnUNet_raw_data" / V1_TASK
    names = _raw_cases(raw / "imagesTr", raw / "labelsTr")
    dataset = {
        "name": "muscle",
        "tensorImageSize": "3D",
        "modality": {"0": "T2WI"},
        "labels": LABELS_V1,
        "numTraining": len(names),
        "numTest": 0,
        "training": [{"image": f"./imagesTr/{n}.nii.gz", "label": f"./labelsTr/{n}.nii.gz"} for n in names],
        "test": [],
    }
    (raw / "dataset.json").write_text(json.dumps(dataset, indent=2))
    crop(V1_TASK, override=True, num_threads=1)
    cropped = root / "raw_v1" / "nnUNet_cropped_data" / V1_TASK
    DatasetAnalyzer(str(cropped), overwrite=True, num_processes=1).analyze_dataset(False)
    pre = root / "preprocessed_v1" / V1_TASK
    pre.mkdir(parents=True, exist_ok=True)
    shutil.copy(cropped / "dataset_properties.pkl", pre)
    shutil.copy(raw / "dataset.json", pre)
    planner = ExperimentPlanner2D_v21(str(cropped), str(pre))
    planner.plan_experiment()
    plans_file = Path(planner.plans_fname)

    model = root / "results_v1" / "nnUNet" / "2d" / V1_TASK / V1_TRAINER
    trainer = nnUNetTrainerV2(str(plans_file), 0, str(model), str(pre), True, 0, False, False, False)
    torch.manual_seed(0)
    trainer.initialize(False)
    net = trainer.network
    state = _scale_last_layer(
        net.state_dict(), key_suffix=f"seg_outputs.{len(net.seg_outputs) - 1}", factor=8.0, seed=1
    )
    net.load_state_dict(state)
    trainer.save_checkpoint(str(model / "fold_0" / "model_final_checkpoint.model"))
    with open(plans_file, "rb") as handle:
        plans = pickle.load(handle)
    with open(model / "plans.pkl", "wb") as handle:
        pickle.dump(plans, handle)
    shutil.rmtree(root / "preprocessed_v1")
    shutil.rmtree(root / "raw_v1" / "nnUNet_cropped_data")
    return model


# --------------------------------------------------------------------------------------- driver


def _child_env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        nnUNet_raw=str(root / "raw"),
        nnUNet_preprocessed=str(root / "preprocessed"),
        nnUNet_results=str(root / "results"),
        nnUNet_raw_data_base=str(root / "raw_v1"),
        RESULTS_FOLDER=str(root / "results_v1"),
        nnUNet_def_n_proc="1",
        OMP_NUM_THREADS="1",
    )
    return env


def build_model(kind: str, root: Path, *, labels: dict | None = None, dataset: str | None = None) -> Path:
    """Make a model folder of ``kind`` (``v2`` or ``v1``) under ``root`` in a child process; its path.

    ``labels`` and ``dataset`` (v2 only) choose dataset.json's labels and the dataset folder's name."""
    root.mkdir(parents=True, exist_ok=True)
    extra = [json.dumps({"labels": labels, "dataset": dataset or V2_NAME})] if kind == "v2" else []
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), kind, str(root), *extra],
        env=_child_env(root),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"building the {kind} model failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)
    kind, target = sys.argv[1], Path(sys.argv[2])
    settings = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    print(_build_v2(target, **settings) if kind == "v2" else _build_v1(target))
