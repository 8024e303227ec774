"""MuscleMap's published models (MONAI 2-D U-Net, config JSON + ``.pth`` weights) with its inference settings.

A MuscleMap model is a config JSON (``parameters``: ``roi_size``, ``spatial_window_batch_size``,
``pix_dim``; ``model``: MONAI ``UNet`` arguments; ``labels``: the label values) and a ``.pth``
state dict with the same file stem, as in MuscleMap's ``scripts/models/<region>/`` folders. This
backend reproduces what MuscleMap's ``mm_segment`` does with them (MuscleMap code read, not copied):

* the image is cut into slabs of ``chunk_slices`` (25) along its last array axis; each slab on its
  own is reoriented to RAS, resampled to ``pix_dim`` (bilinear; -1 keeps that axis), normalised
  to zero mean / unit variance over its non-zero voxels, and cropped to its voxels above 0 with a
  20-voxel margin (MONAI ``Orientation``, ``Spacing``, ``NormalizeIntensity(nonzero=True)``,
  ``CropForeground(margin=20)``);
* MONAI ``SliceInferer`` runs the U-Net on axial slices (third RAS axis): ``roi_size`` windows,
  Gaussian blending, 90 % overlap, mixed precision on CUDA;
* the network outputs are mapped back through the inverse transforms (bilinear), the argmax
  channel ``i`` becomes the ``i``-th smallest value of the config's ``labels``;
* finally every label keeps only its largest 26-connected component, as MuscleMap's
  ``connected_chunks`` does.

The result lies on the input grid, in label scheme ``musclemap`` (4-digit MuscleMap values).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from paraspinal.anatomy import LabelScheme, load_scheme
from paraspinal.backends.base import model_provenance, segmentation
from paraspinal.backends.catalog import BackendOptions
from paraspinal.backends.model_files import load_failure, needs_model, read_json_object
from paraspinal.backends.torch_support import torch_device, torch_threads
from paraspinal.errors import InputError, ParaspinalError
from paraspinal.io.files import file_sha256
from paraspinal.io.image import Image
from paraspinal.io.label_map import LabelMap
from paraspinal.io.writers import label_dtype

OVERLAP = 0.9  # mm_segment --overlap default (90 %)
CHUNK_SLICES = 25  # mm_segment --chunk_size default
CROP_MARGIN_VOXELS = 20
NORMS = ("instance",)


@dataclass(frozen=True)
class MuscleMapModel:
    """A MuscleMap model's config and weights file.

    Attributes:
        config_path: the config JSON.
        weights_path: the ``.pth`` state dict.
        roi_size: 2-D sliding-window size in voxels.
        sw_batch_size: windows per network call.
        pixdim_mm: resampling target per RAS axis in mm (-1: keep the image's spacing on that axis).
        network: keyword arguments of MONAI's ``UNet`` (``norm`` as its config string).
        label_values: output channel ``i`` (1-based) -> ``label_values[i - 1]``.
    """

    config_path: Path
    weights_path: Path
    roi_size: tuple[int, ...]
    sw_batch_size: int
    pixdim_mm: tuple[float, ...]
    network: dict[str, Any]
    label_values: tuple[int, ...]


def _model_files(path: Path) -> tuple[Path, Path]:
    """(config JSON, weights) for a model folder or a ``.pth`` file (config: same stem, ``.json``)."""
    if path.is_file():
        if path.suffix != ".pth":
            raise InputError("expected a MuscleMap .pth weights file or a folder holding one", path=path)
        weights = path
    else:
        found = sorted(path.glob("*.pth"))
        if len(found) != 1:
            what = "no .pth weights file" if not found else f"{len(found)} .pth files (pass the one to use)"
            raise InputError(f"{what} in the MuscleMap model folder", path=path)
        weights = found[0]
    config = weights.with_suffix(".json")
    if not config.is_file():
        configs = sorted(weights.parent.glob("*.json"))
        if len(configs) != 1:
            raise InputError(f"no MuscleMap config {config.name} next to the weights", path=weights.parent)
        config = configs[0]
    return config, weights


def read_musclemap_model(path: str | Path) -> MuscleMapModel:
    """Read and check a MuscleMap model folder (or ``.pth``); problems are one-line ``InputError``s."""
    config_path, weights_path = _model_files(Path(path))
    raw = read_json_object(config_path, what="MuscleMap config")
    try:
        params, net = raw["parameters"], raw["model"]
        network = {
            "spatial_dims": int(net["spatial_dims"]),
            "in_channels": int(net["in_channels"]),
            "out_channels": int(net["out_channels"]),
            "channels": tuple(int(c) for c in net["channels"]),
            "strides": tuple(int(s) for s in net["strides"]),
            "num_res_units": int(net["num_res_units"]),
            "act": net["act"],
            "norm": str(net["norm"]),
        }
        roi_size = tuple(int(r) for r in params["roi_size"])
        sw_batch_size = int(params["spatial_window_batch_size"])
        pixdim = tuple(float(p) for p in params["pix_dim"])
        values = sorted({int(entry["value"]) for entry in raw["labels"]})
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(
            f"MuscleMap config is incomplete or malformed ({type(exc).__name__}: {exc})", path=config_path
        ) from None
    if network["norm"] not in NORMS:
        raise InputError(f"unsupported norm '{network['norm']}' (MuscleMap uses: instance)", path=config_path)
    if network["spatial_dims"] != 2 or len(roi_size) != 2 or network["in_channels"] != 1:
        raise InputError("only single-channel 2-D MuscleMap models are supported", path=config_path)
    if not values:
        raise InputError("MuscleMap config lists no 'labels', so its outputs cannot be named", path=config_path)
    if len(values) + 1 != network["out_channels"]:
        raise InputError(
            f"MuscleMap config lists {len(values)} labels but the network has {network['out_channels']} outputs "
            "(expected labels + background)",
            path=config_path,
        )
    return MuscleMapModel(config_path, weights_path, roi_size, sw_batch_size, pixdim, network, tuple(values))


def keep_largest_per_label(labels: np.ndarray) -> np.ndarray:
    """Each non-zero label keeps only its largest 26-connected component (others become 0); a new array."""
    from scipy import ndimage

    out = labels.copy()
    structure = np.ones((3, 3, 3), dtype=bool)
    for value in np.unique(out):
        if value == 0:
            continue
        mask = out == value
        box = ndimage.find_objects(mask.astype(np.uint8))[0]
        components, count = ndimage.label(mask[box], structure=structure)
        if count <= 1:
            continue
        sizes = np.bincount(components.ravel())[1:]
        drop = (components > 0) & (components != int(np.argmax(sizes)) + 1)
        out[box][drop] = 0
    return out


class MuscleMapBackend:
    """Segment with a MuscleMap model (MONAI U-Net, slice-wise sliding window); weights loaded once.

    Args:
        model: MuscleMap model folder (config JSON + ``.pth``) or the ``.pth`` file.
        device: ``cpu``, ``cuda`` or ``auto``.
        overlap: sliding-window overlap fraction (MuscleMap's default 0.9).
        chunk_slices: slab thickness along the last array axis (MuscleMap's default 25).
        keep_largest: keep each label's largest connected component, as MuscleMap does.
        threads: torch CPU threads during ``segment`` (None: torch's default).
        scheme: label scheme key or file for the label values (default ``musclemap``).
    """

    name = "musclemap"

    def __init__(
        self,
        model: str | Path,
        *,
        device: str = "cpu",
        overlap: float = OVERLAP,
        chunk_slices: int = CHUNK_SLICES,
        keep_largest: bool = True,
        threads: int | None = None,
        scheme: str | Path = "musclemap",
    ) -> None:
        import torch
        from monai.inferers import SliceInferer
        from monai.networks.layers import Norm
        from monai.networks.nets import UNet

        self.model = read_musclemap_model(model)
        self._scheme = load_scheme(scheme)
        self._scheme.check_values(self.model.label_values, path=self.model.config_path)
        self._device = torch_device(device)
        kwargs = {**self.model.network, "norm": Norm.INSTANCE}
        try:
            state = torch.load(self.model.weights_path, map_location="cpu", weights_only=True)
            network = UNet(**kwargs)
            network.load_state_dict(state)
        except Exception as exc:  # noqa: BLE001 - torch raises many types for bad files
            raise load_failure("MuscleMap weights", exc, path=self.model.weights_path) from None
        self._network = network.to(self._device).eval()
        self.overlap = float(overlap)
        self.chunk_slices = max(1, int(chunk_slices))
        self.keep_largest = keep_largest
        self.threads = threads
        self._inferer = SliceInferer(
            roi_size=self.model.roi_size,
            sw_batch_size=self.model.sw_batch_size,
            spatial_dim=2,
            mode="gaussian",
            overlap=self.overlap,
        )
        self._values = np.array((0, *self.model.label_values))
        self._weights_sha256 = file_sha256(self.model.weights_path)

    @classmethod
    def from_options(cls, model: Path | None, options: BackendOptions) -> MuscleMapBackend:
        """Catalog constructor (``options.scheme`` overrides the ``musclemap`` scheme)."""
        path = needs_model(model, backend=cls.name, what="a MuscleMap model folder (config .json + .pth)")
        return cls(path, device=options.device, threads=options.threads, scheme=options.scheme or "musclemap")

    @property
    def scheme(self) -> LabelScheme:
        return self._scheme

    @property
    def provenance(self) -> dict[str, object]:
        fields = {
            "model": self.model.config_path.stem,
            "model_dir": str(self.model.config_path.parent),
            "weights_sha256": self._weights_sha256,
            "scheme": self._scheme.key,
            "device": self._device.type,
            "roi_size": list(self.model.roi_size),
            "pix_dim": list(self.model.pixdim_mm),
            "overlap": self.overlap,
            "chunk_slices": self.chunk_slices,
            "keep_largest_component": self.keep_largest,
        }
        return model_provenance(self.name, fields, libraries=("monai",))

    def segment(self, image: Image) -> LabelMap:
        """Label map of ``image`` on its own grid, in MuscleMap's label values."""
        depth = image.shape[2]
        classes = np.zeros(image.shape, dtype=np.int64)
        with torch_threads(self.threads):
            for start in range(0, depth, self.chunk_slices):
                stop = min(start + self.chunk_slices, depth)
                classes[:, :, start:stop] = self._segment_slab(image.array[:, :, start:stop], image.affine)
        labels = self._values[classes]
        if self.keep_largest:
            labels = keep_largest_per_label(labels)
        labels = labels.astype(label_dtype(int(self._values.max())))
        return segmentation(
            image,
            labels,
            scheme=self._scheme,
            model=self.provenance,
            info=None,
            source=f"MuscleMap {self.model.config_path.stem} of {image.source}",
        )

    def _segment_slab(self, array: np.ndarray, affine: np.ndarray) -> np.ndarray:
        """Output channel index per voxel of one slab (its own preprocessing, inference and inversion).

        Like MuscleMap, every slab is given the whole image's affine: the steps do not depend on the
        origin, and keeping MuscleMap's numbers keeps its rounding.
        """
        import torch
        from monai.data import MetaTensor
        from monai.transforms import Compose, CropForeground, EnsureType, NormalizeIntensity, Orientation, Spacing

        pre = Compose(
            [
                Orientation(axcodes="RAS"),
                Spacing(pixdim=self.model.pixdim_mm, mode="bilinear"),
                NormalizeIntensity(nonzero=True),
                CropForeground(margin=CROP_MARGIN_VOXELS),
                EnsureType(),
            ]
        )
        tensor = MetaTensor(
            torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None], affine=torch.as_tensor(affine)
        )
        prepared = pre(tensor)
        batch = prepared.float()[None].to(self._device)
        amp = torch.autocast("cuda") if self._device.type == "cuda" else torch.autocast("cpu", enabled=False)
        with amp, torch.inference_mode():
            logits = self._inferer(batch, self._network)[0]
        logits = MetaTensor(logits.float().cpu(), affine=prepared.affine, meta=copy.deepcopy(prepared.meta))
        logits.applied_operations = copy.deepcopy(prepared.applied_operations)
        restored = pre.inverse(logits)
        classes = torch.argmax(torch.as_tensor(restored), dim=0).numpy()
        if classes.shape != array.shape:
            raise ParaspinalError(f"MuscleMap output shape {classes.shape} differs from slab {array.shape}")
        return classes
