"""One training step's parts: the number format, a batch of augmented crops, the loss, validation.

Precision (``[training] precision``; the device is picked by :func:`paraspinal.backends.torch_support.torch_device`):
the weights, the optimiser state and the loss are always float32; ``precision = "bfloat16"`` runs the network's
forward and backward passes under ``torch.autocast`` in bfloat16 (about 1.8x faster per step on CPUs with
AVX-512 BF16, and on GPUs).
Validation and the exported ONNX model are float32 whatever the training precision.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F

from paraspinal.preprocessing import InputSpec, context_slices, foreground_box
from paraspinal.training.augment import augment_slice, fov_cut_directions
from paraspinal.training.config import TrainConfig
from paraspinal.training.dataset import TrainingImage
from paraspinal.training.synth import SynthSource, synthesise_slice, through_plane_slice
from paraspinal.training.unet import UNet2D


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager[object]:
    """The forward pass's number format: a bfloat16 autocast region, or nothing for float32."""
    if precision == "bfloat16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def bfloat16_problem(device: torch.device) -> str | None:
    """Why ``[training] precision = "bfloat16"`` would slow training down on ``device`` (None: it runs natively,
    or torch cannot tell). CPUs without AVX-512 emulate it: about 10x slower steps than float32 on an AVX2 CPU
    (``benchmarks/bench_train_step.py``)."""
    if device.type == "cuda":  # native from compute capability 8 (Ampere) on; older GPUs emulate it
        major = torch.cuda.get_device_properties(device).major
        return None if major >= 8 else f"bfloat16 is emulated on this GPU (compute capability {major}.x, before 8.0)"
    if device.type != "cpu":
        return None
    try:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without oneDNN: no way to tell
        return None
    if native:
        return None
    capability = torch.backends.cpu.get_cpu_capability()
    return f"bfloat16 is emulated on this CPU ({capability}, no AVX-512): steps are about 10x slower than float32"


def make_batch(
    images: list[TrainingImage],
    train: list[tuple[int, int]],
    *,
    rng: np.random.Generator,
    config: TrainConfig,
    swap_lut: np.ndarray,
    spec: InputSpec,
    sources: dict[str, SynthSource] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of augmented crops (on the CPU): images (b, C, crop, crop) float32 (C = ``spec.in_channels``)
    and class maps (b, crop, crop) int64. ``sources`` (case id -> channels and tissue classes) enable
    the synthesised contrasts of ``[augment] synth_probability``."""
    xs, ys = [], []
    cuts = fov_cut_directions(config.augment.fov_cut_sides, inplane_axcodes=spec.axcodes[:2])
    aug = config.augment
    for _ in range(config.batch_size):
        index, k = train[int(rng.integers(len(train)))]
        im = images[index]
        thick = rng.uniform(0.0, aug.thick_slice_max_weight) if rng.random() < aug.thick_slice_probability else 0.0
        source = None if sources is None else sources.get(im.case_id)
        if source is not None and rng.random() < aug.synth_probability:
            plane = synthesise_slice(
                source, k, rng=rng, mix_fraction=aug.synth_mix_fraction, through_plane_weight=thick
            )
            stack = plane[None]
        elif thick > 0.0 and spec.context_mm <= 0:
            stack = through_plane_slice(im.image, k, weight=thick)[None]
        else:
            stack = context_slices(im.image, [k], slice_spacing_mm=im.slice_spacing_mm, context_mm=spec.context_mm)[0]
        x, y = augment_slice(
            stack,
            im.classes[:, :, k],
            rng=rng,
            config=config.augment,
            swap_lut=swap_lut,
            lr_axis=spec.lr_axis,
            fov_cuts=cuts,
        )
        xs.append(x)
        ys.append(y)
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))


def segmentation_loss(
    logits: torch.Tensor, target: torch.Tensor, *, class_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Cross-entropy (``class_weights`` per class index, None = equal) plus soft Dice over the foreground
    classes (batch Dice), computed in float32."""
    logits = logits.float()
    ce = F.cross_entropy(logits, target, weight=class_weights)
    probs = torch.softmax(logits, dim=1)[:, 1:]
    onehot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2)[:, 1:].to(probs.dtype)
    dims = (0, 2, 3)
    intersection = (probs * onehot).sum(dims)
    denominator = probs.sum(dims) + onehot.sum(dims)
    dice = (2 * intersection + 1.0) / (denominator + 1.0)
    return ce + (1.0 - dice.mean())


@torch.no_grad()
def validation_dice(
    model: UNet2D,
    images: list[TrainingImage],
    val: dict[int, list[int]],
    class_values: tuple[int, ...],
    *,
    spec: InputSpec,
    device: torch.device,
) -> dict[str, dict[int, float | None]]:
    """Dice per label value over each validation image's held-out slices (pooled; float32)."""
    model.eval()
    out: dict[str, dict[int, float | None]] = {}
    for index, slices in val.items():
        im = images[index]
        volume = im.image[:, :, slices]
        bx, by = foreground_box(volume, margin_px=8)
        stack = context_slices(im.image, slices, slice_spacing_mm=im.slice_spacing_mm, context_mm=spec.context_mm)
        crop = stack[:, :, bx, by]
        pad = [(-n) % spec.size_multiple for n in crop.shape[2:]]
        batch = torch.from_numpy(np.ascontiguousarray(np.pad(crop, ((0, 0), (0, 0), (0, pad[0]), (0, pad[1])))))
        pred = np.concatenate(
            [model(batch[i : i + 4].to(device)).argmax(1).cpu().numpy() for i in range(0, len(batch), 4)]
        )
        full = np.zeros(volume.shape, dtype=np.uint8)
        full[bx, by] = np.moveaxis(pred, 0, 2)[: crop.shape[2], : crop.shape[3]]
        ref = im.classes[:, :, slices]
        scores: dict[int, float | None] = {}
        for c, value in enumerate(class_values):
            if c == 0:
                continue
            a, b = full == c, ref == c
            total = int(a.sum() + b.sum())
            scores[value] = None if total == 0 else 2.0 * int((a & b).sum()) / total
        out[im.name] = scores
    model.train()
    return out
