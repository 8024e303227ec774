"""The built-in 2-D U-Net backend: ONNX Runtime inference, no torch needed.

A model folder holds ``model.json`` (the model card, written by ``paraspinal train``) and
``model.onnx``. ``segment`` reorients the image to the model's axis order (from the affine),
normalises intensities, resamples in-plane only when the spacing differs from the model's beyond
its tolerance, crops to the body, runs slices in batches (with their neighbours ``input.context_mm``
either side as extra channels for a 2.5-D model) (optionally also left-right mirrored,
with sided labels swapped back), optionally averages the class probabilities of neighbouring
slices (a Gaussian of ``output.slice_sigma_mm`` along the slice axis), and maps the result
exactly back onto the input grid. The label map carries two confidence maps on the input grid:
``margin`` (top-1 minus top-2 class probability) and, with the mirrored pass, ``mirror_agreement``
(1 - total-variation distance between the plain and mirrored passes' probabilities). Labels
follow the patient's sides as given by the affine. The largest-component clean-up is a separate
step (:func:`paraspinal.postprocessing.keep_largest_component`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from paraspinal.anatomy import LabelScheme, load_scheme
from paraspinal.backends.base import model_provenance, segmentation
from paraspinal.backends.catalog import BackendOptions
from paraspinal.backends.model_files import read_json_object
from paraspinal.errors import InputError, ParaspinalError
from paraspinal.io.files import file_sha256
from paraspinal.io.image import Image
from paraspinal.io.label_map import LabelMap
from paraspinal.io.writers import label_dtype
from paraspinal.preprocessing import (
    InputSpec,
    context_slices,
    foreground_box,
    prepare_volume,
    resize_inplane,
    restore_orientation,
)

MODEL_FORMAT = "paraspinal-unet2d/1"
DEVICES = ("cpu", "cuda", "auto")
_RESIZE_SLAB = 8  # slices whose probabilities are taken back to the input's pixels at once
MAX_SLICE_SIGMA_MM = 20.0


@dataclass(frozen=True)
class ModelCard:
    """The parts of ``model.json`` inference needs (``raw`` keeps the whole document)."""

    folder: Path
    name: str
    spec: InputSpec
    class_values: tuple[int, ...]
    scheme: LabelScheme
    onnx_path: Path
    onnx_sha256: str
    raw: dict[str, object]
    slice_sigma_mm: float = 0.0


def read_model_card(folder: str | Path) -> ModelCard:
    """Read and check a model folder's ``model.json``; problems are one-line ``InputError``s."""
    folder = Path(folder)
    card_path = folder / "model.json"
    raw = read_json_object(card_path, what="model.json", missing="no model.json: not a paraspinal model folder")
    try:
        if raw.get("format") != MODEL_FORMAT:
            raise InputError(
                f"unsupported model format {raw.get('format')!r} (expected {MODEL_FORMAT})", path=card_path
            )
        spec = InputSpec.from_dict(raw["input"])
        output = raw["output"]
        class_values = tuple(int(v) for v in output["class_values"])
        scheme_file = output.get("scheme_file")
        scheme = load_scheme(folder / scheme_file if scheme_file else output["scheme"])
        weights = raw["weights"]
        onnx_path = folder / weights["onnx"]
        onnx_sha256 = str(weights["onnx_sha256"])
        if int(raw["input"].get("channels", 1)) != 1:
            raise InputError("only single-channel models are supported", path=card_path)
        slice_sigma_mm = float(output.get("slice_sigma_mm", 0.0))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InputError(
            f"model.json is incomplete or malformed ({type(exc).__name__}: {exc})", path=card_path
        ) from None
    if class_values[0] != 0 or len(set(class_values)) != len(class_values):
        raise InputError("output.class_values must start with background 0 and be unique", path=card_path)
    scheme.check_values(class_values, path=card_path)
    problem = slice_sigma_problem(slice_sigma_mm)
    if problem:
        raise InputError(f"output.{problem}", path=card_path)
    if not onnx_path.is_file():
        raise InputError("weights file listed in model.json is missing", path=onnx_path)
    name = str(raw.get("name", folder.name))
    return ModelCard(folder, name, spec, class_values, scheme, onnx_path, onnx_sha256, raw, slice_sigma_mm)


def _providers(device: str) -> list[str]:
    import onnxruntime as ort

    if device not in DEVICES:
        raise ParaspinalError(f"unknown device '{device}' (choose from {', '.join(DEVICES)})")
    available = ort.get_available_providers()
    has_cuda = "CUDAExecutionProvider" in available
    if device == "cuda" and not has_cuda:
        raise ParaspinalError(
            "device 'cuda' requested but ONNX Runtime has no CUDA provider here "
            f"(available: {', '.join(available)}); install onnxruntime-gpu or use --device cpu"
        )
    if device == "cuda" or (device == "auto" and has_cuda):
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class UNetOnnxBackend:
    """Segment with a paraspinal U-Net model folder through ONNX Runtime (weights loaded once).

    Args:
        model_dir: folder with ``model.json`` and ``model.onnx``.
        device: ``cpu`` (default), ``cuda`` (error if ONNX Runtime has no CUDA provider) or ``auto``.
        test_time_flip: also segment the left-right mirrored image and average (sides swapped back).
        batch_size: slices per ONNX Runtime call (twice as many images with the flip); small batches keep
            peak memory low and are as fast on a CPU.
        threads: CPU threads for ONNX Runtime (None: its default, one per physical core).
        slice_sigma_mm: Gaussian sigma (mm, along the slice axis) for averaging neighbouring slices'
            class probabilities before the argmax; None = the model card's ``output.slice_sigma_mm``
            (0 when absent), 0 = each slice on its own.
    """

    name = "unet_onnx"

    def __init__(
        self,
        model_dir: str | Path,
        *,
        device: str = "cpu",
        test_time_flip: bool = True,
        batch_size: int = 2,
        threads: int | None = None,
        slice_sigma_mm: float | None = None,
    ) -> None:
        import onnxruntime as ort

        self.card = read_model_card(model_dir)
        sha = file_sha256(self.card.onnx_path)
        if sha != self.card.onnx_sha256:
            raise InputError(
                "weights do not match the sha256 in model.json (corrupt or replaced file)", path=self.card.onnx_path
            )
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads is not None:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(self.card.onnx_path), options, providers=_providers(device))
        except ParaspinalError:
            raise
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise InputError(
                f"cannot load ONNX model ({' '.join(str(exc).split())[:160]})", path=self.card.onnx_path
            ) from None
        self._input = self._session.get_inputs()[0].name
        self.device = "cuda" if "CUDAExecutionProvider" in self._session.get_providers() else "cpu"
        # a sagittal model has no in-plane left-right axis: nothing to mirror
        self.test_time_flip = test_time_flip and self.card.spec.lr_axis is not None
        self.batch_size = max(1, int(batch_size))
        self.slice_sigma_mm = self.card.slice_sigma_mm if slice_sigma_mm is None else float(slice_sigma_mm)
        problem = slice_sigma_problem(self.slice_sigma_mm)
        if problem:
            raise ParaspinalError(problem)
        swap = self.card.scheme.side_swap_map()
        values = self.card.class_values
        self._swap_lut = np.array([values.index(swap.get(v, v)) for v in values], dtype=np.intp)
        self._values = np.asarray(values)

    @classmethod
    def from_options(cls, model: Path, options: BackendOptions) -> UNetOnnxBackend:
        """Catalog constructor (the catalog resolves the bundled model of a task to its folder)."""
        return cls(model, device=options.device, test_time_flip=options.test_time_flip, threads=options.threads)

    @property
    def scheme(self) -> LabelScheme:
        return self.card.scheme

    @property
    def provenance(self) -> dict[str, object]:
        import onnxruntime as ort

        fields = {
            "model": self.card.name,
            "model_dir": str(self.card.folder),
            "weights_sha256": self.card.onnx_sha256,
            "scheme": self.card.scheme.key,
            "device": self.device,
            "test_time_flip": self.test_time_flip,
            "slice_sigma_mm": self.slice_sigma_mm,
            "onnxruntime_version": ort.__version__,  # the onnxruntime-gpu distribution says it too
        }
        return model_provenance(self.name, fields)

    def segment(self, image: Image) -> LabelMap:
        """Label map of ``image`` on its own grid, in the model's label scheme."""
        spec = self.card.spec
        prepared, _ = prepare_volume(image, spec)
        volume = prepared.array
        bx, by = foreground_box(volume, margin_px=16)
        crop = volume[bx, by]
        pad = [(-n) % spec.size_multiple for n in crop.shape[:2]]
        padded = np.pad(crop, ((0, pad[0]), (0, pad[1]), (0, 0)))
        slices = context_slices(  # (z, C, H, W); C = 3 for a 2.5-D model
            padded,
            range(padded.shape[2]),
            slice_spacing_mm=prepared.oriented.spacing_mm[2],
            context_mm=spec.context_mm,
        )
        n_classes = len(self._values)
        stack = np.empty((crop.shape[2], n_classes, *crop.shape[:2]), dtype=np.float32)  # (z, C, h, w) in the box
        agreement = np.ones(crop.shape, dtype=np.float32) if self.test_time_flip else None
        for start in range(0, len(slices), self.batch_size):
            p, agree = self._probabilities(slices[start : start + self.batch_size])  # (b, C, H, W), (b, H, W)
            stack[start : start + p.shape[0]] = p[:, :, : crop.shape[0], : crop.shape[1]]
            if agreement is not None and agree is not None:
                agree = agree[:, : crop.shape[0], : crop.shape[1]]
                agreement[:, :, start : start + p.shape[0]] = np.transpose(agree, (1, 2, 0))
        stack = smooth_across_slices(  # slices on the outer axis: each tap is one contiguous block
            stack, slice_spacing_mm=prepared.oriented.spacing_mm[2], sigma_mm=self.slice_sigma_mm, axis=0
        )
        box = np.moveaxis(stack, (0, 1), (2, 3))  # (h, w, z, C) view
        if prepared.resampled:
            probs = np.zeros((*volume.shape, n_classes), dtype=np.float32)
            probs[..., 0] = 1.0
            probs[bx, by] = box
            del box
            original_xy = prepared.oriented.array.shape[:2]
            classes = np.empty((*original_xy, volume.shape[2]), dtype=_class_dtype(n_classes))
            margin = np.empty((*original_xy, volume.shape[2]), dtype=np.float32)
            for z0 in range(0, volume.shape[2], _RESIZE_SLAB):  # in slabs: bounded memory
                slab = resize_inplane(probs[:, :, z0 : z0 + _RESIZE_SLAB], shape_xy=original_xy, order=1)
                classes[:, :, z0 : z0 + _RESIZE_SLAB], margin[:, :, z0 : z0 + _RESIZE_SLAB] = top_two(slab)
            if agreement is not None:
                full = np.ones(volume.shape, dtype=np.float32)
                full[bx, by] = agreement
                agreement = np.clip(resize_inplane(full, shape_xy=original_xy, order=1), 0.0, 1.0).astype(np.float32)
        else:
            winner, box_margin = top_two(stack, axis=1)  # (z, h, w)
            classes = np.zeros(volume.shape, dtype=winner.dtype)
            classes[bx, by] = np.moveaxis(winner, 0, 2)
            margin = np.ones(volume.shape, dtype=np.float32)  # outside the crop box: certain background
            margin[bx, by] = np.moveaxis(box_margin, 0, 2)
            if agreement is not None:
                full = np.ones(volume.shape, dtype=np.float32)
                full[bx, by] = agreement
                agreement = full
        labels = self._values[classes].astype(label_dtype(int(self._values.max())))
        labels = restore_orientation(labels, prepared.oriented)
        confidence = {"margin": restore_orientation(margin, prepared.oriented)}
        if agreement is not None:
            confidence["mirror_agreement"] = restore_orientation(agreement, prepared.oriented)
        info = {
            "resampled_inplane": prepared.resampled,
            "model_spacing_mm": list(spec.spacing_mm),
            "crop_box": [[bx.start, bx.stop], [by.start, by.stop]],
        }
        return segmentation(
            image,
            labels,
            scheme=self.card.scheme,
            model=self.provenance,
            info=info,
            source=f"{self.card.name} segmentation of {image.source}",
            confidence=confidence,
        )

    def _probabilities(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Softmax probabilities (b, C, H, W) of a batch of slices, mirror-averaged if enabled, and the
        agreement of the plain and mirrored passes (b, H, W; 1 - total-variation distance of their class
        probabilities, in [0, 1]; None without the mirrored pass)."""
        if not self.test_time_flip:
            return _softmax(self._session.run(None, {self._input: batch})[0]), None
        axis = 2 + self.card.spec.lr_axis
        both = np.concatenate([batch, np.flip(batch, axis=axis)])
        out = _softmax(self._session.run(None, {self._input: np.ascontiguousarray(both)})[0])
        n = len(batch)
        mirrored = np.flip(out[n:], axis=axis)[:, self._swap_lut]
        agreement = 1.0 - 0.5 * np.abs(out[:n] - mirrored).sum(axis=1)
        return 0.5 * (out[:n] + mirrored), agreement.astype(np.float32)


def slice_sigma_problem(sigma_mm: float) -> str | None:
    """Why ``sigma_mm`` is not a usable slice-averaging sigma (None when it is)."""
    if 0.0 <= sigma_mm <= MAX_SLICE_SIGMA_MM:
        return None
    return f"slice_sigma_mm must be between 0 and {MAX_SLICE_SIGMA_MM:g} mm, got {sigma_mm:g}"


def smooth_across_slices(probs: np.ndarray, *, slice_spacing_mm: float, sigma_mm: float, axis: int) -> np.ndarray:
    """Class probabilities averaged over neighbouring slices with a Gaussian of ``sigma_mm`` (mm).

    The kernel is measured in mm, so thick slices are mixed less than thin ones; it reaches
    2 sigma to either side (rounded to whole slices) and repeats the edge slices at the ends.
    ``sigma_mm`` 0 returns ``probs`` unchanged. Weights sum to 1, so probabilities stay probabilities.
    """
    if sigma_mm <= 0.0 or probs.shape[axis] < 2:
        return probs
    sigma_px = sigma_mm / float(slice_spacing_mm)
    radius = int(2.0 * sigma_px + 0.5)
    offsets = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 * (offsets / sigma_px) ** 2)
    weights = (weights / weights.sum()).astype(probs.dtype)
    slices = np.moveaxis(probs, axis, 0)  # views: with axis 0 every term is one contiguous block
    out = np.empty_like(probs)
    smoothed = np.moveaxis(out, axis, 0)
    term = np.empty_like(slices[0])
    n = slices.shape[0]
    for k in range(n):
        np.multiply(slices[min(max(k + offsets[0], 0), n - 1)], weights[0], out=smoothed[k])
        for offset, weight in zip(offsets[1:], weights[1:], strict=True):
            np.multiply(slices[min(max(k + offset, 0), n - 1)], weight, out=term)
            smoothed[k] += term
    return out


def top_two(probs: np.ndarray, *, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """The winning class along ``axis`` (exactly ``np.argmax``: the first of tied maxima; uint8 for up to 256
    classes) and its margin, top-1 minus top-2 probability (float32, in [0, 1]; probabilities are >= 0).

    One running pass over the classes (contiguous blocks when ``axis`` is the outer one), instead of an
    argmax and a partial sort along a short axis.
    """
    classes = np.moveaxis(probs, axis, 0)
    first = np.array(classes[0], dtype=np.float32)  # a copy (0-d for a single pixel)
    second = np.zeros_like(first)
    winner = np.zeros(first.shape, dtype=_class_dtype(len(classes)))
    better = np.empty(first.shape, dtype=bool)
    for k, p in enumerate(classes[1:], start=1):
        np.maximum(second, np.minimum(first, p), out=second)
        np.greater(p, first, out=better)  # strictly greater: ties keep the earlier class, as argmax does
        np.copyto(winner, k, where=better)
        np.maximum(first, p, out=first)
    return winner, first - second


def _class_dtype(n_classes: int) -> type[np.integer]:
    """The smallest index type for ``n_classes`` class indices (uint8 up to 256)."""
    return np.uint8 if n_classes <= 256 else np.intp


def _softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over axis 1, computed in place in ``logits`` (the session's output buffer, used once)."""
    np.subtract(logits, logits.max(axis=1, keepdims=True), out=logits)
    np.exp(logits, out=logits)
    np.divide(logits, logits.sum(axis=1, keepdims=True), out=logits)
    return logits
