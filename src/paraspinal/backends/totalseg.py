"""TotalSegmentator's MR tasks (``total_mr``, ``vertebrae_mr``) and its CT task ``total`` from a local weights folder.

Which code path we use, and why
-------------------------------
TotalSegmentator's ``python_api.totalsegmentator`` downloads missing weights, writes its
``config.json`` into the home folder, may post usage statistics, and builds a new nnU-Net predictor
(weights read from disk again) for every call through ``nnunet.nnUNetv2_predict``. This backend
instead re-runs the steps of its ``nnunet.nnUNet_predict_image`` for one image with predictors
built once in :meth:`TotalSegmentatorBackend.__init__`:

1. the image as float64 (``nibabel.Nifti1Image(get_fdata(), affine)``), reoriented with
   TotalSegmentator's ``alignment.as_closest_canonical``;
2. resampled with its ``resampling.change_spacing`` to the task's spacing (1.5 mm for both tasks,
   linear interpolation, cast to int32, as TotalSegmentator does);
3. written as NIfTI and read back with the plan's nnU-Net reader, segmented by
   ``nnUNetPredictor.predict_single_npy_array`` (same preprocessing, sliding window and export
   as its ``predict_from_files``) with TotalSegmentator's settings: fold 0, ``checkpoint_final.pth``,
   Gaussian weighting, no mirroring, tile step 0.8 for ``total_mr`` and 0.5 otherwise; images above
   512·512·900 voxels are split into three overlapping slabs along z for multi-model tasks, as it does;
4. ``total_mr``'s two models (datasets 850 organs, 851 muscles), or CT ``total``'s five (291 organs, 292
   vertebrae, 293 cardiac, 294 muscles, 295 ribs), merged with its class maps (a later model's labels win
   where two label a voxel);
5. nearest-neighbour resampling back with ``change_spacing(..., order=0)``, ``undo_canonical``.

Nothing downloads, no statistics are sent, no licence is checked, and no ``config.json`` is written.
TotalSegmentator's own modules that patch nnU-Net (``totalsegmentator.nnunet``) are not imported,
and no environment variable is set: nnU-Net gets explicit folder paths. The trainer class named in
a checkpoint is looked up in nnU-Net's trainer package like nnU-Net does, except that modules whose
optional dependencies fail to import are skipped instead of aborting the search.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import pkgutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from paraspinal.anatomy import LabelScheme, load_scheme
from paraspinal.backends.base import compact_labels, model_provenance, segmentation
from paraspinal.backends.catalog import BackendOptions
from paraspinal.backends.model_files import load_failure, needs_model
from paraspinal.backends.torch_support import torch_device, torch_threads
from paraspinal.errors import InputError, ParaspinalError
from paraspinal.io.files import file_sha256
from paraspinal.io.image import Image
from paraspinal.io.label_map import LabelMap

TASKS: dict[str, str] = {"total_mr": "total_mr", "vertebrae_mr": "total_vertebrae_mr", "total": "total"}
"""Supported TotalSegmentator task -> paraspinal label scheme key."""

WEIGHTS_RELEASE_URL = "https://github.com/wasserth/TotalSegmentator/releases/download"
SPLIT_VOXELS = 512 * 512 * 900  # TotalSegmentator's threshold for splitting multi-model inputs into 3 slabs
SPLIT_MARGIN = 20
CHECKPOINT = "checkpoint_final.pth"


@dataclass(frozen=True)
class TaskSettings:
    """What TotalSegmentator's task table says for one MR task (its default, full-resolution mode).

    Attributes:
        task: task name.
        dataset_ids: nnU-Net dataset ids, in the order TotalSegmentator merges them.
        folder_names: the weights folder name of each dataset, as TotalSegmentator unzips them.
        zip_urls: where TotalSegmentator downloads each folder from.
        trainer: nnU-Net trainer name; plans ``nnUNetPlans``, configuration ``3d_fullres``.
        spacing_mm: resampling target before nnU-Net (x, y, z) in mm.
        tile_step: nnU-Net sliding-window step (fraction of the patch).
    """

    task: str
    dataset_ids: tuple[int, ...]
    folder_names: tuple[str, ...]
    zip_urls: tuple[str, ...]
    trainer: str
    spacing_mm: tuple[float, float, float]
    tile_step: float
    plans: str = "nnUNetPlans"
    configuration: str = "3d_fullres"


def task_settings(task: str) -> TaskSettings:
    """Read ``task``'s settings from TotalSegmentator's own tables (``map_tasks_config``)."""
    from totalsegmentator.map_tasks_config import DEFAULT_CONFIG, TASK_CONFIGS, TASK_ID_WEIGHTS_CONFIGS

    if task not in TASKS:
        raise InputError(f"unsupported TotalSegmentator task '{task}' (supported: {', '.join(TASKS)})")
    raw = TASK_CONFIGS[task]
    config = {**DEFAULT_CONFIG, **(raw["sub_modes"]["default"] if "sub_modes" in raw else raw)}
    ids = config["task_id"] if isinstance(config["task_id"], list) else [config["task_id"]]
    names = tuple(TASK_ID_WEIGHTS_CONFIGS[i]["foldername"] for i in ids)
    urls = tuple(
        f"{WEIGHTS_RELEASE_URL}/{TASK_ID_WEIGHTS_CONFIGS[i]['version']}/{n}.zip"
        for i, n in zip(ids, names, strict=True)
    )
    resample = config["resample"]
    spacing = tuple(float(s) for s in resample) if isinstance(resample, list) else (float(resample),) * 3
    return TaskSettings(
        task=task,
        dataset_ids=tuple(int(i) for i in ids),
        folder_names=names,
        zip_urls=urls,
        trainer=str(config["trainer"]),
        spacing_mm=spacing,  # type: ignore[arg-type]
        tile_step=0.8 if task in ("total", "total_v3", "total_mr") else 0.5,
    )


def task_part_classes(dataset_id: int) -> dict[int, str]:
    """The class map (value -> name) of one model of a multi-model task, from TotalSegmentator's tables
    (MR parts for datasets 850/851, CT ``total``'s five parts for 291-295)."""
    from totalsegmentator.map_to_binary import (
        class_map_5_parts,
        class_map_parts_mr,
        map_taskid_to_partname_ct,
        map_taskid_to_partname_mr,
    )

    if dataset_id in map_taskid_to_partname_mr:
        return class_map_parts_mr[map_taskid_to_partname_mr[dataset_id]]
    return class_map_5_parts[map_taskid_to_partname_ct[dataset_id]]


def results_folder(weights_dir: Path) -> Path:
    """The folder holding ``Dataset...`` folders: ``<home>/nnunet/results``, or ``weights_dir`` itself."""
    nested = weights_dir / "nnunet" / "results"
    if nested.is_dir():
        return nested
    if weights_dir.is_dir() and any(p.name.startswith("Dataset") for p in weights_dir.iterdir()):
        return weights_dir
    return nested


def model_folders(weights_dir: Path, settings: TaskSettings) -> list[Path]:
    """The nnU-Net model folder of each dataset of the task; one-line errors name what is missing."""
    results = results_folder(weights_dir)
    folders = []
    for name, url in zip(settings.folder_names, settings.zip_urls, strict=True):
        dataset_dir = results / name
        if not dataset_dir.is_dir():
            raise InputError(
                f"TotalSegmentator task '{settings.task}' needs the weights folder {name} under {results} "
                f"(download {url} and unzip it there)",
                path=weights_dir,
            )
        folder = dataset_dir / f"{settings.trainer}__{settings.plans}__{settings.configuration}"
        needed = [folder / "dataset.json", folder / "plans.json", folder / "fold_0" / CHECKPOINT]
        missing = [str(p.relative_to(dataset_dir)) for p in needed if not p.is_file()]
        if missing:
            raise InputError(
                f"incomplete TotalSegmentator weights folder: missing {', '.join(missing)} (re-download {url})",
                path=dataset_dir,
            )
        folders.append(folder)
    return folders


def find_trainer_class(name: str) -> type:
    """The nnU-Net trainer class called ``name``, searched in ``nnunetv2.training.nnUNetTrainer``.

    Same search as nnU-Net's ``recursive_find_trainer_class_by_name`` (modules before subpackages),
    but a module that fails to import (an optional dependency such as timm/torchvision) is skipped.
    """
    import nnunetv2.training.nnUNetTrainer as root

    def search(path: list[str], prefix: str) -> type | None:
        infos = list(pkgutil.iter_modules(path))
        for info in (i for i in infos if not i.ispkg):
            try:
                module = importlib.import_module(f"{prefix}.{info.name}")
            except Exception:  # noqa: BLE001 - broken optional dependencies raise all kinds of errors
                continue
            if isinstance(getattr(module, name, None), type):
                return getattr(module, name)
        for info in (i for i in infos if i.ispkg):
            found = search([str(Path(path[0]) / info.name)], f"{prefix}.{info.name}")
            if found is not None:
                return found
        return None

    found = search(list(root.__path__), root.__name__)
    if found is None:
        raise InputError(f"nnU-Net trainer class '{name}' not found in this nnunetv2 installation")
    return found


def build_predictor(
    folder: Path,
    *,
    tile_step: float,
    device: Any,
    checkpoint_name: str = CHECKPOINT,
    trainer_fallback: str | None = None,
) -> Any:
    """An ``nnUNetPredictor`` for one model folder (fold 0, ``checkpoint_name``), set up as TotalSegmentator
    sets it up (Gaussian weighting, no mirroring). ``trainer_fallback``: the trainer class whose network
    builder is used when the checkpoint's trainer is not part of this nnunetv2 (one that only changes
    training, such as TotalSpineSeg's data-augmentation trainer)."""
    import torch
    from batchgenerators.utilities.file_and_folder_operations import load_json
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    checkpoint_path = folder / "fold_0" / checkpoint_name
    try:
        dataset_json = load_json(str(folder / "dataset.json"))
        plans_manager = PlansManager(load_json(str(folder / "plans.json")))
        checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
        trainer_name = checkpoint["trainer_name"]
        configuration = plans_manager.get_configuration(checkpoint["init_args"]["configuration"])
        n_in = determine_num_input_channels(plans_manager, configuration, dataset_json)
        n_out = plans_manager.get_label_manager(dataset_json).num_segmentation_heads
        try:
            trainer_class = find_trainer_class(trainer_name)
        except InputError:
            if trainer_fallback is None:
                raise
            trainer_class = find_trainer_class(trainer_fallback)
        network = trainer_class.build_network_architecture(
            plans_manager, configuration, n_in, n_out, enable_deep_supervision=False
        )
        network.load_state_dict(checkpoint["network_weights"])
    except ParaspinalError:
        raise
    except Exception as exc:  # noqa: BLE001 - json, pickle and torch raise many types
        raise load_failure("nnU-Net model", exc, path=folder) from None
    with contextlib.redirect_stdout(io.StringIO()):  # it prints a note about CPU devices
        predictor = nnUNetPredictor(
            tile_step_size=tile_step,
            use_gaussian=True,
            use_mirroring=False,
            perform_everything_on_device=device.type == "cuda",
            device=device,
            verbose=False,
            verbose_preprocessing=False,
            allow_tqdm=False,
        )
    predictor.manual_initialization(
        network,
        plans_manager,
        configuration,
        [checkpoint["network_weights"]],
        dataset_json,
        trainer_name,
        checkpoint.get("inference_allowed_mirroring_axes"),
    )
    return predictor


class TotalSegmentatorBackend:
    """Segment MR images with TotalSegmentator's ``total_mr`` or ``vertebrae_mr`` models (loaded once).

    Args:
        weights_dir: TotalSegmentator's home folder (holding ``nnunet/results/Dataset.../``) or the
            ``nnunet/results`` folder itself.
        task: ``total_mr`` (default) or ``vertebrae_mr``.
        device: ``cpu``, ``cuda`` or ``auto``.
        threads: torch CPU threads during ``segment`` (None: TotalSegmentator's choice, all cores).
    """

    name = "totalsegmentator"

    def __init__(
        self, weights_dir: str | Path, *, task: str = "total_mr", device: str = "cpu", threads: int | None = None
    ) -> None:
        self.weights_dir = Path(weights_dir)
        self.settings = task_settings(task)
        folders = model_folders(self.weights_dir, self.settings)
        self._scheme = load_scheme(TASKS[task])
        self._device = torch_device(device)
        self.threads = threads
        self._predictors = [build_predictor(f, tile_step=self.settings.tile_step, device=self._device) for f in folders]
        self._luts = self._part_luts()
        self._checkpoints = {
            name: file_sha256(f / "fold_0" / CHECKPOINT)
            for name, f in zip(self.settings.folder_names, folders, strict=True)
        }

    @classmethod
    def from_options(cls, model: Path | None, options: BackendOptions) -> TotalSegmentatorBackend:
        """Catalog constructor; ``options.task`` picks the task (default ``total_mr``)."""
        folder = needs_model(model, backend=cls.name, what="TotalSegmentator's weights folder")
        return cls(folder, task=options.task or "total_mr", device=options.device, threads=options.threads)

    @property
    def scheme(self) -> LabelScheme:
        return self._scheme

    @property
    def provenance(self) -> dict[str, object]:
        fields = {
            "task": self.settings.task,
            "model_dir": str(self.weights_dir),
            "datasets": list(self.settings.folder_names),
            "weights_sha256": dict(self._checkpoints),
            "trainer": self.settings.trainer,
            "spacing_mm": list(self.settings.spacing_mm),
            "tile_step": self.settings.tile_step,
            "scheme": self._scheme.key,
            "device": self._device.type,
        }
        return model_provenance(self.name, fields, libraries=("TotalSegmentator", "nnunetv2"))

    def _part_luts(self) -> list[np.ndarray | None]:
        """Per model: lookup table from its label values to the task's values (None: used as is)."""
        from totalsegmentator.map_to_binary import class_map

        if len(self.settings.dataset_ids) == 1:
            return [None]
        inverse = {name: value for value, name in class_map[self.settings.task].items()}
        luts: list[np.ndarray | None] = []
        for dataset_id in self.settings.dataset_ids:
            part = task_part_classes(dataset_id)
            lut = np.zeros(max(part) + 1, dtype=np.uint8)
            for value, name in part.items():
                lut[value] = inverse[name]
            luts.append(lut)
        return luts

    def segment(self, image: Image) -> LabelMap:
        """Label map of ``image`` on its own grid, in scheme ``total_mr``, ``total_vertebrae_mr`` or ``total`` (CT)."""
        import nibabel as nib
        from totalsegmentator.alignment import as_closest_canonical, undo_canonical
        from totalsegmentator.resampling import change_spacing

        use_gpu = self._device.type == "cuda"
        original = nib.Nifti1Image(np.asarray(image.array, dtype=np.float64), image.affine)
        canonical = as_closest_canonical(original)
        resampled = change_spacing(
            canonical, list(self.settings.spacing_mm), order=1, dtype=np.int32, nr_cpus=1, use_gpu=use_gpu
        )
        with torch_threads(self.threads):
            labels = self._predict(resampled)
        prediction = nib.Nifti1Image(labels, resampled.affine)
        if resampled is not canonical:
            prediction = change_spacing(
                prediction,
                list(self.settings.spacing_mm),
                canonical.shape,
                order=0,
                dtype=np.uint8,
                nr_cpus=1,
                force_affine=canonical.affine,
                use_gpu=use_gpu,
            )
        restored = undo_canonical(prediction, original)
        values = np.asarray(restored.dataobj).astype(np.uint8)
        if values.shape != image.shape:
            raise ParaspinalError(f"TotalSegmentator output shape {values.shape} differs from input {image.shape}")
        info = {"resampled_shape": list(resampled.shape)}
        return segmentation(
            image,
            compact_labels(values),
            scheme=self._scheme,
            model=self.provenance,
            info=info,
            source=f"TotalSegmentator {self.settings.task} of {image.source}",
        )

    def _predict(self, resampled: Any) -> np.ndarray:
        """Merged label map (uint8) on the resampled canonical grid, slab-split like TotalSegmentator."""
        import nibabel as nib

        data = np.asarray(resampled.dataobj)
        shape = data.shape
        split = len(self._predictors) > 1 and int(np.prod(shape)) > SPLIT_VOXELS and shape[2] > 200
        third = shape[2] // 3
        m = SPLIT_MARGIN
        slabs = [slice(0, third + m), slice(third + 1 - m, third * 2 + m), slice(third * 2 + 1 - m, None)]
        parts = [data[:, :, s] for s in slabs] if split else [data]
        merged = [np.zeros(p.shape, dtype=np.uint8) for p in parts]
        with tempfile.TemporaryDirectory(prefix="paraspinal_totalseg_") as tmp:
            files = []
            for index, part in enumerate(parts):
                path = Path(tmp) / f"s{index:02d}_0000.nii.gz"
                nib.save(nib.Nifti1Image(part, resampled.affine), path)
                files.append(path)
            for predictor, lut in zip(self._predictors, self._luts, strict=True):
                for index, path in enumerate(files):
                    seg = _predict_file(predictor, path, Path(tmp) / f"seg{index:02d}.nii.gz")
                    mapped = seg if lut is None else _apply_lut(lut, seg)
                    np.copyto(merged[index], mapped, where=mapped != 0)
        if not split:
            return merged[0]
        combined = np.zeros(shape, dtype=np.uint8)
        combined[:, :, :third] = merged[0][:, :, :-m]
        combined[:, :, third : third * 2] = merged[1][:, :, m - 1 : -m]
        combined[:, :, third * 2 :] = merged[2][:, :, m - 1 :]
        return combined


def _apply_lut(lut: np.ndarray, seg: np.ndarray) -> np.ndarray:
    if seg.size and int(seg.max()) >= len(lut):
        lut = np.pad(lut, (0, int(seg.max()) + 1 - len(lut)))
    return lut[seg]


def _predict_file(predictor: Any, image_path: Path, seg_path: Path) -> np.ndarray:
    """nnU-Net segmentation of one NIfTI, read and written with the plan's reader/writer (uint8)."""
    import nibabel as nib

    reader = predictor.plans_manager.image_reader_writer_class()
    data, properties = reader.read_images([str(image_path)])
    seg = predictor.predict_single_npy_array(data, properties, None, None, False)
    reader.write_seg(seg, str(seg_path), properties)
    return np.asarray(nib.load(seg_path).dataobj).astype(np.uint8)
