"""Run any trained nnU-Net v2 model folder through nnU-Net's own predictor.

The model folder is a trainer folder as nnU-Net writes it (``.../DatasetXXX/Trainer__Plans__config``):
``dataset.json``, ``plans.json`` and ``fold_K/checkpoint_final.pth``. Weights are loaded once with
``nnUNetPredictor.initialize_from_trained_model_folder``; ``segment`` hands the image to
``predict_single_npy_array`` as the array and spacing nnU-Net's reader (``plans.json``
``image_reader_writer``) would produce for the image written as NIfTI, so the label map equals what
``nnUNetv2_predict`` writes for that file, voxel for voxel, and lies on the input grid:

* ``SimpleITKIO`` / ``NibabelIO`` (the usual case): the array as stored, axes reversed to (k, j, i),
  spacing reversed likewise; the orientation in the affine is not used (nnU-Net ignores it too).
* ``NibabelIOWithReorient``: first reoriented to the closest RAS+ axis order, then as above, and the
  result is reoriented back.

The checkpoints are PyTorch pickles (``torch.load(weights_only=False)`` inside nnU-Net): load only
model folders you trust. No ``nnUNet_*`` environment variables are needed.
"""

from __future__ import annotations

from pathlib import Path

from paraspinal.anatomy import LabelScheme
from paraspinal.backends.base import compact_labels, model_provenance, segmentation
from paraspinal.backends.catalog import BackendOptions
from paraspinal.backends.model_files import load_failure, model_folder, needs_model, read_json_object
from paraspinal.backends.nnunet_common import nnunet_input, nnunet_options, quiet, restore_grid, v2_folds
from paraspinal.backends.nnunet_labels import dataset_scheme
from paraspinal.backends.torch_support import set_torch_threads, torch_device
from paraspinal.errors import InputError
from paraspinal.io.files import file_sha256
from paraspinal.io.image import Image
from paraspinal.io.label_map import LabelMap

DEFAULT_CHECKPOINT = "checkpoint_final.pth"
#: nnU-Net v2 readers whose in-memory equivalent this backend reproduces.
READERS = ("SimpleITKIO", "NibabelIO", "NibabelIOWithReorient")
_NOT_V2 = "in the model folder (not an nnU-Net v2 trainer folder?)"


class NnUNetV2Backend:
    """Segment with a trained nnU-Net v2 model folder through ``nnUNetPredictor`` (weights loaded once).

    Args:
        model_dir: the trainer folder (``dataset.json``, ``plans.json``, ``fold_K/<checkpoint>``).
        folds: fold names to ensemble (``"0"``, ``"all"``); None: every ``fold_K`` holding the checkpoint.
        checkpoint: checkpoint file name in each fold folder.
        device: ``cpu``, ``cuda`` or ``auto``.
        test_time_flip: nnU-Net's mirroring test-time augmentation (its default; off = ``--disable_tta``).
        threads: torch CPU threads (process-wide; None leaves torch's setting).
        scheme: label scheme key or file overriding detection from dataset.json.
    """

    name = "nnunet"

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
        self.checkpoint = checkpoint or DEFAULT_CHECKPOINT
        dataset = read_json_object(folder / "dataset.json", what="dataset.json", missing=f"no dataset.json {_NOT_V2}")
        plans = read_json_object(folder / "plans.json", what="plans.json", missing=f"no plans.json {_NOT_V2}")
        self._scheme = dataset_scheme(dataset, override=scheme, path=folder / "dataset.json")
        self.reader = str(plans.get("image_reader_writer", "SimpleITKIO"))
        if self.reader not in READERS:
            raise InputError(
                f"plans.json image_reader_writer '{self.reader}' is not supported (supported: {', '.join(READERS)})",
                path=folder / "plans.json",
            )
        channels = dataset.get("channel_names", dataset.get("modality", {"0": ""}))
        if isinstance(channels, dict) and len(channels) != 1:
            raise InputError(f"the model takes {len(channels)} input channels; only 1 is supported", path=folder)
        self.folds = v2_folds(folder, folds, self.checkpoint)
        self.weights_sha256 = {f: file_sha256(folder / f"fold_{f}" / self.checkpoint) for f in self.folds}
        self._device = torch_device(device)
        set_torch_threads(threads)
        self.test_time_flip = test_time_flip
        with quiet():
            from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

            self._predictor = nnUNetPredictor(
                tile_step_size=0.5,
                use_gaussian=True,
                use_mirroring=test_time_flip,
                perform_everything_on_device=self._device.type == "cuda",
                device=self._device,
                verbose=False,
                verbose_preprocessing=False,
                allow_tqdm=False,
            )
            try:
                self._predictor.initialize_from_trained_model_folder(
                    str(folder),
                    use_folds=tuple(int(f) if f.isdigit() else f for f in self.folds),
                    checkpoint_name=self.checkpoint,
                )
            except (KeyError, RuntimeError, ValueError, TypeError, AttributeError, OSError) as exc:
                raise load_failure("the nnU-Net model", exc, path=folder) from None
        if self._predictor.configuration_manager.previous_stage_name is not None:
            raise InputError("cascade (3d_cascade_fullres) models are not supported", path=folder)

    @classmethod
    def from_options(cls, model: Path | None, options: BackendOptions) -> NnUNetV2Backend:
        """Catalog constructor; ``model`` is required."""
        folder = needs_model(model, backend=cls.name, what="an nnU-Net v2 trainer folder")
        return cls(folder, **nnunet_options(options))

    @property
    def scheme(self) -> LabelScheme:
        return self._scheme

    @property
    def provenance(self) -> dict[str, object]:
        manager = self._predictor.configuration_manager
        fields = {
            "model_dir": str(self.folder),
            "folds": list(self.folds),
            "checkpoint": self.checkpoint,
            "weights_sha256": dict(self.weights_sha256),
            "configuration": getattr(manager, "configuration_name", None),
            "trainer": self._predictor.trainer_name,
            "image_reader_writer": self.reader,
            "test_time_flip": self.test_time_flip,
            "device": self._device.type,
            "scheme": self._scheme.key,
        }
        return model_provenance(self.name, fields, libraries=("nnunetv2",))

    def segment(self, image: Image) -> LabelMap:
        """Label map of ``image`` on its own grid, in the model's label scheme."""
        data, spacing, back = nnunet_input(image, self.reader)
        with quiet():
            seg = self._predictor.predict_single_npy_array(data, {"spacing": spacing}, None, None, False)
        return segmentation(
            image,
            compact_labels(restore_grid(seg, back)),
            scheme=self._scheme,
            model=self.provenance,
            info=None,
            source=f"nnU-Net segmentation of {image.source}",
        )
