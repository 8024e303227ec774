"""Run nnU-Net v1 trainer folders (as LPM_Segmentator publishes them) through nnU-Net v1's own code.

The model folder is a v1 trainer folder, e.g. ``Task515_muscle/nnUNetTrainerV2_noMirroring__nnUNetPlansv2.1/``
with ``plans.pkl`` and ``fold_K/model_final_checkpoint.model`` + ``model_final_checkpoint.model.pkl``.
The trainer is restored from the ``.pkl`` with the ``nnunet`` 1.x package (``restore_model``), the
weights of every fold are loaded once, and ``segment`` repeats ``nnUNet_predict``'s steps in memory
with nnU-Net v1's functions: crop to non-zero, ``transpose_forward``, resample and normalise (the
trainer's preprocessor), sliding-window prediction per fold (mirroring as ``nnUNet_predict``),
softmax averaged, transposed back, resampled to the cropped shape, argmax, put back into the crop
box, and the folder's ``postprocessing.json`` (largest connected component) applied when present. The
image is seen as SimpleITK reads it from a NIfTI file (axes (k, j, i), orientation not used), so the
result equals ``nnUNet_predict``'s file for the image written as NIfTI, on the input grid.

Security: ``plans.pkl``, ``*.model.pkl`` and the ``.model`` checkpoints are Python pickles, which can
run code when loaded. They are loaded only from the model folder the user names; use only model
folders from sources you trust. Label names are not stored in v1 trainer folders: the scheme comes
from ``--scheme``, a ``dataset.json`` in the folder or its task folder, or a known task folder name
(``Task515_muscle`` -> ``lpm4``).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from paraspinal.anatomy import LabelScheme
from paraspinal.backends.base import compact_labels, model_provenance, segmentation
from paraspinal.backends.catalog import BackendOptions
from paraspinal.backends.model_files import load_failure, model_folder, needs_model, read_json_object
from paraspinal.backends.nnunet_common import nnunet_input, nnunet_options, quiet, restore_grid, v1_folds
from paraspinal.backends.nnunet_labels import KNOWN_V1_TASKS, dataset_scheme, resolve_scheme
from paraspinal.backends.torch_support import set_torch_threads, torch_device
from paraspinal.errors import InputError
from paraspinal.io.files import file_sha256
from paraspinal.io.image import Image
from paraspinal.io.label_map import LabelMap

DEFAULT_CHECKPOINT = "model_final_checkpoint"


def _load_pickle(path: Path, what: str) -> dict:
    try:
        with open(path, "rb") as handle:
            value = pickle.load(handle)
    except Exception as exc:  # noqa: BLE001 - unpickling raises anything
        raise InputError(f"cannot read {what} ({type(exc).__name__}: {str(exc)[:120]})", path=path) from None
    if not isinstance(value, dict):
        raise InputError(f"{what} does not hold an nnU-Net dictionary", path=path)
    return value


def _v1_scheme(folder: Path, plans: dict, override: str | None) -> LabelScheme:
    """Scheme from --scheme, a dataset.json next to or above the folder, or a known task folder name."""
    for candidate in (folder / "dataset.json", folder.parent / "dataset.json"):
        if candidate.is_file():
            return dataset_scheme(read_json_object(candidate, what="dataset.json"), override=override, path=candidate)
    classes = plans.get("all_classes") or list(range(1, int(plans.get("num_classes", 0)) + 1))
    labels = {int(c): f"class {int(c)}" for c in classes if int(c) > 0}
    if not labels:
        raise InputError("plans.pkl lists no classes", path=folder / "plans.pkl")
    return resolve_scheme(labels, override=override, path=folder, hint=KNOWN_V1_TASKS.get(folder.parent.name))


class NnUNetV1Backend:
    """Segment with an nnU-Net v1 trainer folder through the ``nnunet`` 1.x package (weights loaded once).

    Args:
        model_dir: the trainer folder (``plans.pkl``, ``fold_K/<checkpoint>.model`` and ``.model.pkl``).
            Its pickles are loaded: use only folders you trust.
        folds: fold names (``"0"``, ``"all"``); None: every ``fold_K`` folder.
        checkpoint: checkpoint base name (``model_final_checkpoint``; ``model_best`` also exists).
        device: ``cpu``, ``cuda`` or ``auto``; on CUDA, mixed precision as ``nnUNet_predict`` uses it.
        test_time_flip: mirroring as ``nnUNet_predict`` does it (off = ``--disable_tta``).
        threads: torch CPU threads (process-wide; None leaves torch's setting).
        scheme: label scheme key or file overriding detection.
    """

    name = "nnunet-v1"

    def __init__(
        self,
        model_dir: str | Path,
        *,
        folds: tuple[str, ...] | None = None,
        checkpoint: str | None = None,
        device: str = "cpu",
        test_time_flip: bool = True,
        threads: int | None = None,
        scheme: str | None = None,
    ) -> None:
        self.folder = folder = model_folder(model_dir)
        self.checkpoint = (checkpoint or DEFAULT_CHECKPOINT).removesuffix(".model")
        if not (folder / "plans.pkl").is_file():
            raise InputError("no plans.pkl in the model folder (not an nnU-Net v1 trainer folder?)", path=folder)
        self.folds = v1_folds(folder, folds, self.checkpoint)
        plans = _load_pickle(folder / "plans.pkl", "plans.pkl")
        if int(plans.get("num_modalities", 1)) != 1:
            raise InputError(
                f"the model takes {plans.get('num_modalities')} input channels; only 1 is supported", path=folder
            )
        self._scheme = _v1_scheme(folder, plans, scheme)
        self.weights_sha256 = {n: file_sha256(folder / n / f"{self.checkpoint}.model") for n in self.folds}
        self._device = torch_device(device)
        set_torch_threads(threads)
        self.test_time_flip = test_time_flip
        first = folder / self.folds[0]
        with quiet():
            import torch
            from nnunet.training.model_restore import restore_model

            try:
                trainer = restore_model(str(first / f"{self.checkpoint}.model.pkl"), fp16=self._device.type == "cuda")
                trainer.output_folder = str(first)
                trainer.output_folder_base = str(folder)
                trainer.initialize(False)
                self._params = [
                    torch.load(folder / n / f"{self.checkpoint}.model", map_location="cpu", weights_only=False)
                    for n in self.folds
                ]
            except Exception as exc:  # noqa: BLE001 - nnU-Net v1 raises asserts, pickling and torch errors
                raise load_failure("the nnU-Net v1 model", exc, path=folder) from None
        trainer.network.to(self._device)
        self._trainer = trainer
        self._postprocessing = None
        if (folder / "postprocessing.json").is_file():
            from nnunet.postprocessing.connected_components import load_postprocessing

            self._postprocessing = load_postprocessing(str(folder / "postprocessing.json"))

    @classmethod
    def from_options(cls, model: Path | None, options: BackendOptions) -> NnUNetV1Backend:
        """Catalog constructor; ``model`` is required."""
        folder = needs_model(model, backend=cls.name, what="an nnU-Net v1 trainer folder")
        return cls(folder, **nnunet_options(options))

    @property
    def scheme(self) -> LabelScheme:
        return self._scheme

    @property
    def provenance(self) -> dict[str, object]:
        fields = {
            "model_dir": str(self.folder),
            "folds": list(self.folds),
            "checkpoint": self.checkpoint,
            "weights_sha256": dict(self.weights_sha256),
            "trainer": type(self._trainer).__name__,
            "postprocessing": self._postprocessing is not None,
            "test_time_flip": self.test_time_flip,
            "device": self._device.type,
            "scheme": self._scheme.key,
        }
        return model_provenance(self.name, fields, libraries=("nnunet",))

    def segment(self, image: Image) -> LabelMap:
        """Label map of ``image`` on its own grid, in the model's label scheme."""
        with quiet():
            seg = self._predict_zyx(image)
        return segmentation(
            image,
            compact_labels(restore_grid(seg, None)),
            scheme=self._scheme,
            model=self.provenance,
            info=None,
            source=f"nnU-Net v1 segmentation of {image.source}",
        )

    def _predict_zyx(self, image: Image) -> np.ndarray:
        """nnUNet_predict's steps in memory; returns the (z, y, x) label array as its file would hold."""
        from nnunet.inference.segmentation_export import get_do_separate_z, get_lowres_axis
        from nnunet.preprocessing.cropping import ImageCropper
        from nnunet.preprocessing.preprocessing import resample_data_or_seg

        trainer = self._trainer
        data, spacing, _ = nnunet_input(image, "SimpleITKIO")
        spacing_zyx = np.array(spacing, dtype=np.float64)
        properties = {
            "original_size_of_raw_data": np.array(data.shape[1:]),
            "original_spacing": spacing_zyx,
            "list_of_data_files": [image.source],
            "seg_file": None,
        }
        data, seg, properties = ImageCropper.crop(data, properties, None)
        forward = [0, *[i + 1 for i in trainer.transpose_forward]]
        data, seg = data.transpose(forward), seg.transpose(forward)
        preprocessor = self._preprocessor()
        target = trainer.plans["plans_per_stage"][trainer.stage]["current_spacing"]
        data, _, properties = preprocessor.resample_and_normalize(data, target, properties, seg, force_separate_z=None)
        data = data.astype(np.float32)
        softmax = None
        for params in self._params:
            trainer.load_checkpoint_ram(params, False)
            trainer.network.to(self._device)
            part = trainer.predict_preprocessed_data_return_seg_and_softmax(
                data,
                do_mirroring=self.test_time_flip,
                mirror_axes=trainer.data_aug_params["mirror_axes"],
                use_sliding_window=True,
                step_size=0.5,
                use_gaussian=True,
                all_in_gpu=False,
                mixed_precision=self._device.type == "cuda",
            )[1]
            softmax = part if softmax is None else softmax + part
        if len(self._params) > 1:
            softmax /= len(self._params)
        if trainer.plans.get("transpose_forward") is not None:
            softmax = softmax.transpose([0, *[i + 1 for i in trainer.plans["transpose_backward"]]])
        export = trainer.plans.get("segmentation_export_params", {})
        force_separate_z = export.get("force_separate_z")
        order, order_z = export.get("interpolation_order", 1), export.get("interpolation_order_z", 0)
        after_crop = properties["size_after_cropping"]
        if any(int(a) != int(b) for a, b in zip(softmax.shape[1:], after_crop, strict=True)):
            if force_separate_z is None:
                if get_do_separate_z(properties["original_spacing"]):
                    separate, axis = True, get_lowres_axis(properties["original_spacing"])
                elif get_do_separate_z(properties["spacing_after_resampling"]):
                    separate, axis = True, get_lowres_axis(properties["spacing_after_resampling"])
                else:
                    separate, axis = False, None
            else:
                separate = force_separate_z
                axis = get_lowres_axis(properties["original_spacing"]) if separate else None
            if axis is not None and len(axis) != 1:
                separate = False
            softmax = resample_data_or_seg(
                softmax, after_crop, is_seg=False, axis=axis, order=order, do_separate_z=separate, order_z=order_z
            )
        regions = getattr(trainer, "regions_class_order", None)
        if regions is None:
            cropped = softmax.argmax(0)
        else:
            cropped = np.zeros(softmax.shape[1:])
            for index, value in enumerate(regions):
                cropped[softmax[index] > 0.5] = value
        full = np.zeros(properties["original_size_of_raw_data"], dtype=np.uint8)
        box = properties["crop_bbox"]
        ends = [min(box[c][0] + cropped.shape[c], full.shape[c]) for c in range(3)]
        full[box[0][0] : ends[0], box[1][0] : ends[1], box[2][0] : ends[2]] = cropped
        if self._postprocessing is not None:
            from nnunet.postprocessing.connected_components import remove_all_but_the_largest_connected_component

            classes, min_sizes = self._postprocessing
            full = remove_all_but_the_largest_connected_component(
                full, classes, float(np.prod(spacing_zyx)), min_sizes
            )[0]
        return full

    def _preprocessor(self):
        """The trainer's preprocessor, built as nnU-Net v1's ``preprocess_patient`` builds it."""
        import nnunet
        from nnunet.training.model_restore import recursive_find_python_class

        trainer = self._trainer
        name = trainer.plans.get("preprocessor_name") or (
            "GenericPreprocessor" if trainer.threeD else "PreprocessorFor2D"
        )
        cls = recursive_find_python_class(
            [str(Path(nnunet.__path__[0]) / "preprocessing")], name, current_module="nnunet.preprocessing"
        )
        if cls is None:
            raise InputError(f"nnU-Net v1 preprocessor {name} not found", path=self.folder)
        return cls(
            trainer.normalization_schemes,
            trainer.use_mask_for_norm,
            trainer.transpose_forward,
            trainer.intensity_properties,
        )
