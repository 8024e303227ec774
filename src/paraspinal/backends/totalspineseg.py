"""TotalSpineSeg (neuropoly/totalspineseg) from installed weights, run through nnunetv2 directly.

What its ``totalspineseg/inference.py`` does, and what this backend does of it
----------------------------------------------------------------------------
1. The image is reoriented to LPI and resampled to 1 x 1 x 1 mm. Here: the same grid (the input's closest
   LPI axis order, 1 mm spacing, voxel 0 kept in place), sampled with linear interpolation (TotalSpineSeg
   uses its own resampling; values may differ slightly at edges). 4-D averaging is not needed (images are
   3-D here).
2. Step 1 (``Dataset101_TotalSpineSeg_step1``, fold 0, ``checkpoint_final.pth`` or else
   ``checkpoint_best.pth``, the trainer folder found under the dataset as it finds it) labels discs, four
   landmark discs, sacrum, C1, canal and cord. Its largest connected structure is kept and the discs are
   numbered from the landmarks (:mod:`paraspinal.backends.totalspineseg_labels`; TotalSpineSeg's iterative
   algorithm is simplified to ordering disc components superior to inferior). Its canal filling, soft
   canal/cord outputs and level extraction are not reproduced (levels use discs and vertebrae).
3. Step 2 (``Dataset102_TotalSpineSeg_step2``) takes two channels: the image cropped to step 1's bounding box
   plus 10 voxels, and a binary mask of every other disc of step 1 (its ``extract_alternate``). Its output is
   labelled likewise (vertebrae named from the discs next to them) into the ``totalspineseg`` scheme's values,
   with L6 (46) and the L5/L6 disc (96) when five lumbar discs lie between T12/L1 and L5/S.
4. The result is taken back to the input grid by nearest neighbour.

Localizer-based labelling (``--loc``) is not offered. Predictors are built once (Gaussian weighting, no
mirroring: the published trainer is ``..._NoMirroring``), with explicit folders: no ``nnUNet_*`` or
``TOTALSPINESEG_DATA`` variables, nothing downloaded, and TotalSpineSeg's trainer file is not copied into
nnunetv2 (a checkpoint whose trainer this nnunetv2 lacks is built with ``nnUNetTrainer``'s network builder,
which TotalSpineSeg's data-augmentation trainer does not change). The checkpoints are PyTorch pickles: install
only weights from the project's release.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from paraspinal.anatomy import LabelScheme, load_scheme
from paraspinal.backends.base import compact_labels, model_provenance, segmentation
from paraspinal.backends.catalog import BackendOptions
from paraspinal.backends.model_files import needs_model
from paraspinal.backends.nnunet_common import quiet
from paraspinal.backends.torch_support import set_torch_threads, torch_device
from paraspinal.backends.totalspineseg_labels import label_step1, label_step2, odd_discs
from paraspinal.errors import InputError
from paraspinal.io.files import file_sha256
from paraspinal.io.image import Image
from paraspinal.io.label_map import LabelMap

DATASETS = ("Dataset101_TotalSpineSeg_step1", "Dataset102_TotalSpineSeg_step2")
SPACING_MM = 1.0
CROP_MARGIN_VOXELS = 10
SUPERIOR_AXIS, SUPERIOR_SIGN = 2, -1  # on the LPI grid, k runs inferior
READERS = ("SimpleITKIO", "NibabelIO")


def results_folder(weights_dir: Path) -> Path:
    """The folder holding both ``Dataset10x`` folders: ``weights_dir``, its ``nnUNet/results`` or a release
    subfolder of that (as TotalSpineSeg looks for them)."""
    candidates = [weights_dir, weights_dir / "nnUNet" / "results"]
    nested = weights_dir / "nnUNet" / "results"
    if nested.is_dir():
        candidates += sorted(p for p in nested.iterdir() if p.is_dir())
    for folder in candidates:
        if all((folder / name).is_dir() for name in DATASETS):
            return folder
    raise InputError(
        f"TotalSpineSeg weights need both {DATASETS[0]} and {DATASETS[1]} (nnUNet/results layout)", path=weights_dir
    )


def trainer_folder(dataset_dir: Path) -> tuple[Path, str]:
    """The trainer folder holding ``fold_0`` and its checkpoint name (final, else best), as TotalSpineSeg picks."""
    folds = sorted(dataset_dir.glob("*__*__*/fold_0"))
    if not folds:
        raise InputError("no Trainer__Plans__configuration/fold_0 folder", path=dataset_dir)
    folder = folds[0].parent
    for name in ("checkpoint_final.pth", "checkpoint_best.pth"):
        if (folds[0] / name).is_file():
            return folder, name
    raise InputError("fold_0 holds neither checkpoint_final.pth nor checkpoint_best.pth", path=folds[0])


def lpi_grid(image: Image) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Affine and shape of the input's closest-LPI grid at :data:`SPACING_MM` (voxel 0's centre kept)."""
    from nibabel.orientations import axcodes2ornt, inv_ornt_aff, io_orientation, ornt_transform

    shape = image.array.shape[:3]
    transform = ornt_transform(io_orientation(image.affine), axcodes2ornt("LPI"))
    affine = image.affine @ inv_ornt_aff(transform, shape)
    reordered = [0, 0, 0]
    for source, (target, _) in enumerate(transform):
        reordered[int(target)] = shape[source]
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    out = affine.copy()
    out[:3, :3] = affine[:3, :3] / spacing * SPACING_MM
    new_shape = tuple(max(1, int(np.ceil(n * s / SPACING_MM))) for n, s in zip(reordered, spacing, strict=True))
    return out, new_shape  # type: ignore[return-value]


def sample(array: np.ndarray, source_affine: np.ndarray, target_affine: np.ndarray, shape: tuple, *, order: int):
    """``array`` (on ``source_affine``) sampled on the grid ``target_affine``/``shape`` (0 outside)."""
    from scipy import ndimage

    mapping = np.linalg.inv(source_affine) @ target_affine
    return ndimage.affine_transform(
        np.asarray(array, dtype=np.float32 if order else array.dtype),
        mapping[:3, :3],
        offset=mapping[:3, 3],
        output_shape=shape,
        order=order,
        mode="constant",
        cval=0.0,
    )


class TotalSpineSegBackend:
    """Label vertebrae, discs, canal and cord of a (sagittal) MR image with TotalSpineSeg's two models.

    Args:
        weights_dir: the folder holding ``Dataset101_TotalSpineSeg_step1`` and ``Dataset102_TotalSpineSeg_step2``
            (or ``nnUNet/results`` above them).
        device: ``cpu``, ``cuda`` or ``auto``.
        threads: torch CPU threads (process-wide; None leaves torch's setting).
    """

    name = "totalspineseg"

    def __init__(self, weights_dir: str | Path, *, device: str = "cpu", threads: int | None = None) -> None:
        from paraspinal.backends.totalseg import build_predictor

        self.weights_dir = Path(weights_dir)
        results = results_folder(self.weights_dir)
        self._device = torch_device(device)
        set_torch_threads(threads)
        self._scheme = load_scheme("totalspineseg")
        self._folders: list[tuple[Path, str]] = [trainer_folder(results / name) for name in DATASETS]
        self._predictors: list[Any] = []
        for folder, checkpoint in self._folders:
            with quiet():
                predictor = build_predictor(
                    folder,
                    tile_step=0.5,
                    device=self._device,
                    checkpoint_name=checkpoint,
                    trainer_fallback="nnUNetTrainer",
                )
            reader = predictor.plans_manager.image_reader_writer_class.__name__
            if reader not in READERS:
                raise InputError(f"plans.json image_reader_writer '{reader}' is not supported", path=folder)
            self._predictors.append(predictor)
        channels = [p.dataset_json.get("channel_names", {}) for p in self._predictors]
        if len(channels[1]) != 2:
            raise InputError(
                f"step 2 model takes {len(channels[1])} input channels, TotalSpineSeg's takes 2 (image, odd discs)",
                path=self._folders[1][0],
            )
        self._sha = {
            name: file_sha256(folder / "fold_0" / ckpt)
            for name, (folder, ckpt) in zip(DATASETS, self._folders, strict=True)
        }

    @classmethod
    def from_options(cls, model: Path | None, options: BackendOptions) -> TotalSpineSegBackend:
        """Catalog constructor; ``model`` is the installed weights folder."""
        folder = needs_model(model, backend=cls.name, what="TotalSpineSeg's weights (nnUNet/results)")
        return cls(folder, device=options.device, threads=options.threads)

    @property
    def scheme(self) -> LabelScheme:
        return self._scheme

    @property
    def provenance(self) -> dict[str, object]:
        fields = {
            "model_dir": str(self.weights_dir),
            "datasets": list(DATASETS),
            "trainers": [folder.name for folder, _ in self._folders],
            "checkpoints": [ckpt for _, ckpt in self._folders],
            "weights_sha256": dict(self._sha),
            "spacing_mm": SPACING_MM,
            "scheme": self._scheme.key,
            "device": self._device.type,
        }
        return model_provenance(self.name, fields, libraries=("nnunetv2",))

    def _predict(self, predictor: Any, channels: list[np.ndarray]) -> np.ndarray:
        """nnU-Net classes for (i, j, k) ``channels`` on the 1 mm grid (axes reversed as its readers do)."""
        data = np.stack([np.ascontiguousarray(c.transpose(2, 1, 0)) for c in channels]).astype(np.float32)
        with quiet():
            seg = predictor.predict_single_npy_array(data, {"spacing": [SPACING_MM] * 3}, None, None, False)
        return np.asarray(seg).transpose(2, 1, 0).astype(np.uint8)

    def segment(self, image: Image) -> LabelMap:
        """Label map of ``image`` on its own grid, in scheme ``totalspineseg``."""
        affine, shape = lpi_grid(image)
        resampled = sample(np.asarray(image.array, dtype=np.float32), image.affine, affine, shape, order=1)
        axes = {"superior_axis": SUPERIOR_AXIS, "superior_sign": SUPERIOR_SIGN}
        step1 = label_step1(self._predict(self._predictors[0], [resampled]), **axes)
        final = np.zeros(shape, dtype=np.uint8)
        info: dict[str, object] = {"resampled_shape": list(shape)}
        if step1.any():
            box = tuple(
                slice(max(0, int(idx.min()) - CROP_MARGIN_VOXELS), int(idx.max()) + 1 + CROP_MARGIN_VOXELS)
                for idx in np.nonzero(step1)
            )
            odd = odd_discs(step1[box], **axes)
            raw2 = self._predict(self._predictors[1], [resampled[box], odd])
            final[box] = label_step2(raw2, **axes)
            info["step2_box"] = [[s.start, min(s.stop, n)] for s, n in zip(box, shape, strict=True)]
        back = sample(final, affine, image.affine, image.array.shape[:3], order=0)
        return segmentation(
            image,
            compact_labels(np.asarray(back, dtype=np.uint8)),
            scheme=self._scheme,
            model=self.provenance,
            info=info,
            source=f"TotalSpineSeg of {image.source}",
        )
