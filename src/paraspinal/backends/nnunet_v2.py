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

import contextlib
import io
import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from paraspinal import __version__
from paraspinal.anatomy import LabelScheme
from paraspinal.backends.base import segmentation
from paraspinal.backends.catalog import BackendOptions
from paraspinal.backends.nnunet_labels import dataset_labels, resolve_scheme
from paraspinal.errors import InputError, ParaspinalError
from paraspinal.io.files import file_sha256
from paraspinal.io.image import Image
from paraspinal.io.label_map import LabelMap
from paraspinal.io.writers import label_dtype

DEFAULT_CHECKPOINT = "checkpoint_final.pth"
DEVICES = ("cpu", "cuda", "auto")
#: nnU-Net v2 readers whose in-memory equivalent this backend reproduces.
READERS = ("SimpleITKIO", "NibabelIO", "NibabelIOWithReorient")


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Swallow nnU-Net's prints (progress, unset-path notices) and its library warnings."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def torch_device(device: str):
    """``torch.device`` for ``cpu``/``cuda``/``auto``; a one-line error for unknown or unavailable devices."""
    import torch

    if device not in DEVICES:
        raise ParaspinalError(f"unknown device '{device}' (choose from {', '.join(DEVICES)})")
    has_cuda = torch.cuda.is_available()
    if device == "cuda" and not has_cuda:
        raise ParaspinalError("device 'cuda' requested but torch sees no CUDA GPU here; use --device cpu")
    return torch.device("cuda" if device == "cuda" or (device == "auto" and has_cuda) else "cpu")


def select_folds(folder: Path, folds: tuple[str, ...] | None, checkpoint: str) -> list[str]:
    """Fold names (``"0"``, ``"all"``) to ensemble: the requested ones, or every fold holding the checkpoint."""
    if folds:
        for fold in folds:
            fold_dir = folder / f"fold_{fold}"
            if not fold_dir.is_dir():
                raise InputError(f"fold folder fold_{fold} not found", path=folder)
            if not (fold_dir / checkpoint).is_file():
                raise InputError(f"checkpoint {checkpoint} not found", path=fold_dir)
        return [str(f) for f in folds]
    found = sorted(
        (p.name.removeprefix("fold_") for p in folder.glob("fold_*") if (p / checkpoint).is_file()),
        key=lambda f: (not f.isdigit(), int(f) if f.isdigit() else 0, f),
    )
    numbered = [f for f in found if f.isdigit()]
    chosen = numbered or found  # like nnU-Net: fold_all only when it is the only one
    if not chosen:
        raise InputError(f"no fold_K folder holds {checkpoint} (not a trained nnU-Net model folder?)", path=folder)
    return chosen


def nnunet_input(image: Image, reader: str) -> tuple[np.ndarray, list[float], tuple | None]:
    """What nnU-Net's ``reader`` makes of ``image``: array (1, z, y, x) float32, spacing (z, y, x) mm, undo."""
    array, affine = image.array, image.affine
    back = None
    if reader == "NibabelIOWithReorient":
        from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, io_orientation, ornt_transform

        ornt = io_orientation(affine)
        affine = affine @ inv_ornt_aff(ornt, array.shape)
        array = apply_orientation(array, ornt)
        back = ornt_transform(axcodes2ornt("RAS"), ornt)
    spacing = [float(s) for s in np.linalg.norm(affine[:3, :3], axis=0)[::-1]]
    data = np.ascontiguousarray(np.asarray(array, dtype=np.float32).transpose(2, 1, 0)[None])
    return data, spacing, back


def restore_grid(seg_zyx: np.ndarray, back: object) -> np.ndarray:
    """Undo :func:`nnunet_input`'s axis reversal (and reorientation) on a (z, y, x) label array."""
    seg = np.asarray(seg_zyx).transpose(2, 1, 0)
    if back is not None:
        from nibabel.orientations import apply_orientation

        seg = apply_orientation(seg, back)
    return np.ascontiguousarray(seg)


def read_json(path: Path, what: str) -> dict:
    """A JSON object from ``path``; one-line errors when missing or malformed."""
    if not path.is_file():
        raise InputError(f"no {what} in the model folder (not an nnU-Net v2 trainer folder?)", path=path.parent)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{what} is not valid JSON ({exc})", path=path) from None
    if not isinstance(document, dict):
        raise InputError(f"{what} must hold a JSON object", path=path)
    return document


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
        folder = Path(model_dir)
        if not folder.is_dir():
            raise InputError("model folder not found", path=folder)
        self.folder = folder
        self.checkpoint = checkpoint or DEFAULT_CHECKPOINT
        dataset = read_json(folder / "dataset.json", "dataset.json")
        plans = read_json(folder / "plans.json", "plans.json")
        self._scheme = resolve_scheme(
            dataset_labels(dataset, path=folder / "dataset.json"), override=scheme, path=folder / "dataset.json"
        )
        self.reader = str(plans.get("image_reader_writer", "SimpleITKIO"))
        if self.reader not in READERS:
            raise InputError(
                f"plans.json image_reader_writer '{self.reader}' is not supported (supported: {', '.join(READERS)})",
                path=folder / "plans.json",
            )
        channels = dataset.get("channel_names", dataset.get("modality", {"0": ""}))
        if isinstance(channels, dict) and len(channels) != 1:
            raise InputError(f"the model takes {len(channels)} input channels; only 1 is supported", path=folder)
        self.folds = select_folds(folder, folds, self.checkpoint)
        self.weights_sha256 = {f: file_sha256(folder / f"fold_{f}" / self.checkpoint) for f in self.folds}
        import torch

        self._device = torch_device(device)
        if threads is not None:
            torch.set_num_threads(max(1, int(threads)))
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
                text = " ".join(str(exc).split())[:160] or type(exc).__name__
                raise InputError(f"cannot load the nnU-Net model ({type(exc).__name__}: {text})", path=folder) from None
        if self._predictor.configuration_manager.previous_stage_name is not None:
            raise InputError("cascade (3d_cascade_fullres) models are not supported", path=folder)

    @classmethod
    def from_options(cls, model: Path | None, options: BackendOptions) -> NnUNetV2Backend:
        """Catalog constructor; ``model`` is required."""
        if model is None:
            raise InputError("backend 'nnunet' needs --model: an nnU-Net v2 trainer folder")
        return cls(
            model,
            folds=options.folds,
            checkpoint=options.checkpoint,
            device=options.device,
            test_time_flip=options.test_time_flip,
            threads=options.threads,
            scheme=options.scheme,
        )

    @property
    def scheme(self) -> LabelScheme:
        return self._scheme

    @property
    def provenance(self) -> dict[str, object]:
        from importlib.metadata import version

        import nnunetv2  # noqa: F401 - version lookup below

        return {
            "backend": self.name,
            "model_dir": str(self.folder),
            "folds": list(self.folds),
            "checkpoint": self.checkpoint,
            "weights_sha256": dict(self.weights_sha256),
            "configuration": self._predictor.configuration_manager.configuration_name
            if hasattr(self._predictor.configuration_manager, "configuration_name")
            else None,
            "trainer": self._predictor.trainer_name,
            "image_reader_writer": self.reader,
            "test_time_flip": self.test_time_flip,
            "nnunetv2_version": version("nnunetv2"),
            "device": self._device.type,
            "scheme": self._scheme.key,
            "paraspinal_version": __version__,
        }

    def segment(self, image: Image) -> LabelMap:
        """Label map of ``image`` on its own grid, in the model's label scheme."""
        data, spacing, back = nnunet_input(image, self.reader)
        with quiet():
            seg = self._predictor.predict_single_npy_array(data, {"spacing": spacing}, None, None, False)
        labels = restore_grid(seg, back)
        max_label = int(labels.max()) if labels.size else 0
        labels = labels.astype(label_dtype(max(max_label, 1)), copy=False)
        return segmentation(
            image,
            labels,
            scheme=self._scheme,
            model=self.provenance,
            info=None,
            source=f"nnU-Net segmentation of {image.source}",
        )
