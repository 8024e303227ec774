"""The catalog's entries: every segmentation backend paraspinal knows, what it needs, and the options all
backends share. Nothing here imports numpy or a model runtime (the CLI builds its help from it); building a
backend is :mod:`paraspinal.backends.catalog`'s.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

__all__ = ["BACKENDS", "BackendOptions", "BackendSpec", "install_command", "missing_requirements"]


@dataclass(frozen=True)
class BackendOptions:
    """Options shared by all backends; a backend ignores what does not apply to it.

    Attributes:
        device: ``cpu``, ``cuda`` or ``auto``.
        threads: CPU threads for inference (None: the library's default).
        test_time_flip: average with the left-right mirrored image where the backend supports it.
        folds: model folds to ensemble (nnU-Net), None for the backend's default.
        checkpoint: checkpoint file name inside each fold folder (nnU-Net), None for the default.
        task: task name for multi-task backends (TotalSegmentator ``total_mr``, ``vertebrae_mr``).
        scheme: label scheme key or file for the model's native labels, overriding detection.
    """

    device: str = "cpu"
    threads: int | None = None
    test_time_flip: bool = True
    folds: tuple[str, ...] | None = None
    checkpoint: str | None = None
    task: str | None = None
    scheme: str | None = None


@dataclass(frozen=True)
class BackendSpec:
    """A backend's entry in the catalog.

    Attributes:
        name: what ``--backend`` takes.
        description: one line for ``paraspinal backends``.
        target: ``module:Class`` with a ``from_options(model, options)`` class method.
        extra: the pip extra that installs its libraries (None: core install).
        requires: importable top-level modules it needs.
        needs_model: whether ``--model`` is required (False: a bundled model is the default).
        model_hint: what to download and where to put it, for the missing-weights error.
    """

    name: str
    description: str
    target: str
    extra: str | None
    requires: tuple[str, ...]
    needs_model: bool
    model_hint: str


BACKENDS: tuple[BackendSpec, ...] = (
    BackendSpec(
        name="unet_onnx",
        description="paraspinal 2-D U-Net through ONNX Runtime (default: the bundled tum01_muscle model)",
        target="paraspinal.backends.unet_onnx:UNetOnnxBackend",
        extra=None,
        requires=("onnxruntime",),
        needs_model=False,
        model_hint="a folder made by `paraspinal train` (model.json + model.onnx)",
    ),
    BackendSpec(
        name="nnunet",
        description="any trained nnU-Net v2 model folder, through nnU-Net's own predictor",
        target="paraspinal.backends.nnunet_v2:NnUNetV2Backend",
        extra="nnunet",
        requires=("nnunetv2", "torch"),
        needs_model=True,
        model_hint="an nnU-Net v2 results folder (dataset.json, plans.json, fold_K/checkpoint_final.pth)",
    ),
    BackendSpec(
        name="nnunet-v1",
        description="nnU-Net v1 model folders as LPM_Segmentator publishes them (Task515_muscle)",
        target="paraspinal.backends.nnunet_v1:NnUNetV1Backend",
        extra="nnunet",
        requires=("nnunet", "torch"),
        needs_model=True,
        model_hint=(
            "an nnU-Net v1 trainer folder (plans.pkl, fold_K/model_final_checkpoint.model + .pkl); its .pkl files "
            "are Python pickles, loaded only from the folder you name: use only models from sources you trust"
        ),
    ),
    BackendSpec(
        name="totalsegmentator",
        description="TotalSegmentator MR tasks (total_mr, vertebrae_mr) from a local weights folder",
        target="paraspinal.backends.totalseg:TotalSegmentatorBackend",
        extra="totalsegmentator",
        requires=("totalsegmentator", "nnunetv2", "torch"),
        needs_model=True,
        model_hint="TotalSegmentator's weights folder (the one holding nnunet/results/Dataset.../)",
    ),
    BackendSpec(
        name="musclemap",
        description="MuscleMap's published models (architecture + config JSON + weights)",
        target="paraspinal.backends.musclemap:MuscleMapBackend",
        extra="musclemap",
        requires=("monai", "torch"),
        needs_model=True,
        model_hint="a MuscleMap model folder (its config .json and .pth weights)",
    ),
    BackendSpec(
        name="totalspineseg",
        description="TotalSpineSeg's two nnU-Net v2 steps (spine: vertebrae and discs with level names, canal, cord)",
        target="paraspinal.backends.totalspineseg:TotalSpineSegBackend",
        extra="nnunet",
        requires=("nnunetv2", "torch"),
        needs_model=True,
        model_hint="TotalSpineSeg's weights (Dataset101_TotalSpineSeg_step1 and Dataset102_TotalSpineSeg_step2)",
    ),
    BackendSpec(
        name="spineps",
        description="SPINEPS (spine: sagittal T2w vertebrae with T13/L6, discs); needs the spineps package",
        target="paraspinal.backends.spineps:SpinepsBackend",
        extra="spineps",
        requires=("spineps",),
        needs_model=True,
        model_hint="SPINEPS's semantic and instance model folders (each with inference_config.json)",
    ),
)


def missing_requirements(spec: BackendSpec) -> tuple[str, ...]:
    """Modules ``spec`` needs that cannot be imported here (nothing is imported)."""
    missing = []
    for module in spec.requires:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a broken parent package, or a module without a spec
            found = False
        if not found:
            missing.append(module)
    return tuple(missing)


def install_command(spec: BackendSpec) -> str:
    """The pip command that installs ``spec``'s libraries."""
    return f'pip install "paraspinal[{spec.extra}]"' if spec.extra else "pip install paraspinal"
