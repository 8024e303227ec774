"""Train the 2-D U-Net on an nnU-Net v2 raw dataset and write a self-describing model folder.

Output folder: ``model.json`` (architecture, input convention, label scheme, classes, training
data and settings, validation Dice, weights hashes), ``model.onnx`` (inference, no torch needed),
``model.safetensors`` (optional, for reuse in PyTorch) and ``training_log.json`` (per-epoch loss
and Dice). The folder appears complete or not at all; until then it holds ``checkpoint.pt``, from
which ``resume=True`` continues a stopped run (:mod:`paraspinal.training.checkpoint`). Runs are
deterministic for a given seed, config and thread count, resumed or not (numpy ``Generator`` for
sampling and augmentation, ``torch.Generator`` for the initial weights), unless
``time_limit_minutes`` cuts the run short or the run is on a GPU. ``device`` and ``precision``: see
:mod:`paraspinal.training.steps`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import cast

import numpy as np
import torch
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from paraspinal import __version__
from paraspinal.anatomy import LabelScheme, list_schemes, load_scheme
from paraspinal.backends.torch_support import torch_device
from paraspinal.backends.unet_onnx import MODEL_FORMAT
from paraspinal.errors import InputError
from paraspinal.io import read_label_map
from paraspinal.io.files import file_sha256, temp_folder_in
from paraspinal.preprocessing import InputSpec
from paraspinal.preprocessing.orientation import reorient
from paraspinal.training.checkpoint import (
    CHECKPOINT_NAME,
    PARTIAL_NAME,
    TrainingState,
    check_output_folder,
    load_checkpoint,
    run_fingerprint,
    save_checkpoint,
)
from paraspinal.training.config import TrainConfig
from paraspinal.training.dataset import (
    DatasetInfo,
    TrainingImage,
    check_scheme,
    identical_cases,
    load_training_images,
    read_dataset,
)
from paraspinal.training.export import export_onnx, save_safetensors
from paraspinal.training.steps import autocast, make_batch, segmentation_loss, validation_dice
from paraspinal.training.synth import SynthSource, tissue_classes
from paraspinal.training.unet import UNet2D, UNetConfig

EpochCallback = Callable[[int, float, dict[str, dict[int, float | None]]], None]
History = list[dict[str, dict[int, float | None]]]


@dataclass(frozen=True)
class TrainResult:
    """What a run produced: the model folder, per-epoch mean loss and validation Dice."""

    model_dir: Path
    losses: list[float]
    dice: list[dict[str, dict[int, float | None]]]
    card: dict[str, object]


@dataclass(frozen=True)
class _Split:
    train: list[tuple[int, int]]  # (image index, slice index)
    val: dict[int, list[int]]  # image index -> slice indices
    val_kind: str
    twins_in_training: dict[str, list[str]]  # validation case -> training cases with the same voxels


def train(
    dataset_dir: str | Path,
    out_dir: str | Path,
    *,
    config: TrainConfig,
    on_epoch: EpochCallback | None = None,
    show_progress: bool = False,
    resume: bool = False,
) -> TrainResult:
    """Train on ``dataset_dir`` (nnU-Net v2 raw format) and write the model folder ``out_dir``.

    ``resume``: continue the unfinished run whose ``checkpoint.pt`` is all ``out_dir`` holds (same
    config and dataset); without one, start afresh.
    """
    out_dir = Path(out_dir)
    resuming = check_output_folder(out_dir, resume=resume)
    if config.scheme is None:
        raise InputError(
            "the dataset's label scheme is required for side-aware flips: pass --scheme KEY (see `paraspinal "
            "labels`) or set scheme in [training]",
            path=dataset_dir,
        )
    scheme = load_scheme(config.scheme)
    info = read_dataset(dataset_dir)
    check_scheme(info, scheme)
    spec = _input_spec(info, config)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)  # torch's thread count is per process: restored below
    try:
        return _run(
            out_dir,
            config=config,
            scheme=scheme,
            info=info,
            spec=spec,
            on_epoch=on_epoch,
            show_progress=show_progress,
            resuming=resuming,
        )
    finally:
        torch.set_num_threads(previous_threads)


def _run(
    out_dir: Path,
    *,
    config: TrainConfig,
    scheme: LabelScheme,
    info: DatasetInfo,
    spec: InputSpec,
    on_epoch: EpochCallback | None,
    show_progress: bool,
    resuming: bool,
) -> TrainResult:
    """The training loop proper (see :func:`train`), then the model folder."""
    started = time.perf_counter()
    fingerprint = run_fingerprint(config, info)
    state = load_checkpoint(out_dir, fingerprint=fingerprint) if resuming else None
    images = load_training_images(info, spec)
    split = _split(images, config)
    class_values = info.class_values
    swap = scheme.side_swap_map()
    swap_lut = np.array([class_values.index(swap.get(v, v)) for v in class_values], dtype=np.int64)
    sources = synth_sources(images, config=config) if config.augment.synth_probability > 0.0 else None
    class_weights = _class_weight_tensor(config, class_values)

    arch = UNetConfig(
        in_channels=spec.in_channels,
        n_classes=len(class_values),
        base_channels=config.model.base_channels,
        max_channels=config.model.max_channels,
        levels=config.model.levels,
        convs_per_level=config.model.convs_per_level,
    )
    device = torch_device(config.device, instead="device = 'cpu'")
    model = _init_weights(UNet2D(arch), seed=config.seed).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    averaged = None
    if config.ema_decay is not None:
        averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay), use_buffers=True)
    rng = np.random.default_rng(config.seed)
    total_steps = config.epochs * config.steps_per_epoch
    limit_s = None if config.time_limit_minutes is None else 60.0 * config.time_limit_minutes
    losses: list[float] = []
    history: History = []
    step = first_epoch = 0
    if state is not None:
        model.load_state_dict(state.model)
        optimizer.load_state_dict(state.optimizer)
        if averaged is not None and state.averaged is not None:
            averaged.load_state_dict(state.averaged)
        rng.bit_generator.state = state.rng_state
        losses, history, step, first_epoch = list(state.losses), list(state.history), state.step, state.epochs_done
        started -= state.elapsed_s
    progress = _progress(show_progress, total_steps)
    final_model = model if averaged is None else cast(UNet2D, averaged.module)  # what is validated and written
    with progress:
        task = progress.add_task("training", total=total_steps, completed=step, loss=float("nan"))
        for epoch in range(first_epoch, config.epochs):
            model.train()
            epoch_loss = 0.0
            for _ in range(config.steps_per_epoch):
                fraction = step / total_steps
                if limit_s is not None:
                    fraction = max(fraction, (time.perf_counter() - started) / limit_s)
                for group in optimizer.param_groups:
                    group["lr"] = config.learning_rate * max(1.0 - fraction, 0.0) ** 0.9
                x, y = make_batch(
                    images, split.train, rng=rng, config=config, swap_lut=swap_lut, spec=spec, sources=sources
                )
                with autocast(config.precision, device):
                    logits = model(x.to(device))
                weights = None if class_weights is None else class_weights.to(device)
                loss = segmentation_loss(logits, y.to(device), class_weights=weights)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if averaged is not None:
                    averaged.update_parameters(model)
                epoch_loss += float(loss.detach())
                step += 1
                progress.update(task, advance=1, loss=float(loss.detach()))
            losses.append(epoch_loss / config.steps_per_epoch)
            last = epoch == config.epochs - 1 or (limit_s is not None and time.perf_counter() - started > limit_s)
            dice: dict[str, dict[int, float | None]] = {}
            if split.val and ((epoch + 1) % config.validate_every == 0 or last):
                dice = validation_dice(final_model, images, split.val, class_values, spec=spec, device=device)
            history.append(dice)
            if not last:
                snapshot = TrainingState(
                    epochs_done=epoch + 1,
                    step=step,
                    losses=losses,
                    history=history,
                    elapsed_s=time.perf_counter() - started,
                    rng_state=rng.bit_generator.state,
                    model=model.state_dict(),
                    optimizer=optimizer.state_dict(),
                    averaged=None if averaged is None else averaged.state_dict(),
                )
                save_checkpoint(out_dir, snapshot, fingerprint=fingerprint)
            if on_epoch is not None:
                on_epoch(epoch, losses[-1], dice)
            if last:
                break
    duration = time.perf_counter() - started
    card = _card(info, scheme, spec, arch, config, images, split, losses, history, duration)
    bundled = isinstance(config.scheme, str) and config.scheme in list_schemes()
    _write_model(
        out_dir,
        final_model.to("cpu"),  # ONNX export traces on the CPU
        card,
        losses,
        history,
        save_weights=config.save_safetensors,
        scheme_file=None if bundled else Path(str(config.scheme)),
    )
    return TrainResult(
        model_dir=out_dir,
        losses=losses,
        dice=history,
        card=json.loads((out_dir / "model.json").read_text(encoding="utf-8")),
    )


def synth_sources(images: list[TrainingImage], *, config: TrainConfig) -> dict[str, SynthSource]:
    """Each case's prepared channels stacked, with their k-means tissue classes (for synthesised contrasts;
    with one channel only the per-tissue intensities make new contrasts); a case whose channels lie on
    different grids gets none."""
    by_case: dict[str, list[np.ndarray]] = {}
    for im in images:
        by_case.setdefault(im.case_id, []).append(im.image)
    out = {}
    for case_id, arrays in by_case.items():
        if len({a.shape for a in arrays}) != 1:
            continue
        channels = np.stack(arrays).astype(np.float32)
        tissue = tissue_classes(channels, n_classes=config.augment.synth_tissue_classes, seed=config.seed)
        out[case_id] = SynthSource(channels=channels, tissue=tissue)
    return out


def _class_weight_tensor(config: TrainConfig, class_values: tuple[int, ...]) -> torch.Tensor | None:
    if not config.class_weights:
        return None
    unknown = sorted({value for value, _ in config.class_weights} - set(class_values))
    if unknown:
        raise InputError(f"class_weights names label values {unknown} that the dataset does not declare")
    weights = dict(config.class_weights)
    return torch.tensor([weights.get(v, 1.0) for v in class_values], dtype=torch.float32)


def _input_spec(info: DatasetInfo, config: TrainConfig) -> InputSpec:
    opts = config.input
    spacing = opts.spacing_mm
    if spacing is None:
        spacings = [reorient(read_label_map(case.labels), axcodes=opts.axcodes).spacing_mm[:2] for case in info.cases]
        row, col = (float(v) for v in np.median(np.asarray(spacings), axis=0))
        spacing = (row, col)
    return InputSpec(
        axcodes=opts.axcodes,
        spacing_mm=spacing,
        spacing_tolerance=opts.spacing_tolerance,
        lower_percentile=opts.lower_percentile,
        upper_percentile=opts.upper_percentile,
        size_multiple=2 ** (config.model.levels - 1),
        context_mm=opts.context_mm,
    )


def _split(images: list[TrainingImage], config: TrainConfig) -> _Split:
    known = {im.case_id for im in images}
    unknown = sorted(set(config.validation_cases) - known)
    if unknown:
        raise InputError(f"validation case(s) {unknown} are not in the dataset")
    train: list[tuple[int, int]] = []
    val: dict[int, list[int]] = {}
    for index, im in enumerate(images):
        n = im.image.shape[2]
        if im.case_id in config.validation_cases:
            val[index] = list(range(n))
            continue
        held = set()
        if config.validation_slices is not None:
            start, stop = config.validation_slices
            if start >= n:
                raise InputError(f"validation_slices start {start} is beyond the {n} slices of {im.name}")
            held = set(range(start, min(stop, n)))
            val[index] = sorted(held)
        train += [(index, k) for k in range(n) if k not in held]
    if not train:
        raise InputError("no training slices left after holding out the validation data")
    held_out = set(config.validation_cases)
    same = identical_cases((im.case_id, (im.image, im.classes)) for im in images)
    twins = {case: sorted(others - held_out) for case, others in same.items() if case in held_out}
    twins = {case: others for case, others in sorted(twins.items()) if others}
    for case, others in twins.items():
        warnings.warn(
            f"validation case '{case}' holds the same image and labels as training case(s) {others}: its Dice "
            "scores data the model trains on; hold them out together",
            stacklevel=3,
        )
    if val:
        return _Split(train, val, "held-out slices/cases", twins)
    every = {i: list(range(im.image.shape[2])) for i, im in enumerate(images)}
    return _Split(train, every, "training images (fit)", twins)


def _init_weights(model: UNet2D, *, seed: int) -> UNet2D:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
                nn.init.kaiming_normal_(module.weight, a=0.01, generator=generator)
                if module.bias is not None:
                    module.bias.zero_()
    return model


def _progress(enabled: bool, total: int) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.3f}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
    )


def _card(
    info: DatasetInfo,
    scheme: LabelScheme,
    spec: InputSpec,
    arch: UNetConfig,
    config: TrainConfig,
    images: list[TrainingImage],
    split: _Split,
    losses: list[float],
    history: History,
    duration: float,
) -> dict[str, object]:
    """The model card (model.json) without the weights entry."""
    final = next((d for d in reversed(history) if d), {})
    cfg = replace(config, scheme=scheme.key).to_dict()
    return {
        "format": MODEL_FORMAT,
        "name": config.name,
        "description": config.description,
        "architecture": arch.to_dict(),
        "input": {**spec.to_dict(), "channels": 1},
        "output": {
            "scheme": scheme.key,
            "class_values": list(info.class_values),
            "labels": {str(v): scheme.entry(v).name for v in info.class_values if v},
            "slice_sigma_mm": float(config.inference.slice_sigma_mm),
            "postprocessing": "keep the largest connected component per label (paraspinal.postprocessing)",
        },
        "training": {
            "dataset": info.name,
            "dataset_channels": list(info.channel_names),
            "cases": [case.case_id for case in info.cases],
            "images": [im.name for im in images],
            "n_training_slices": len(split.train),
            "validation": {
                "on": split.val_kind,
                "slices": None if config.validation_slices is None else list(config.validation_slices),
                "cases": list(config.validation_cases),
                "twins_in_training": split.twins_in_training,
                "final_dice": {name: {str(k): v for k, v in scores.items()} for name, scores in final.items()},
            },
            "epochs_run": len(losses),
            "final_loss": losses[-1] if losses else None,
            "duration_s": round(duration, 1),
            "config": cfg,
            "torch_version": torch.__version__,
            "paraspinal_version": __version__,
        },
    }


def _write_model(
    out_dir: Path,
    model: UNet2D,
    card: dict[str, object],
    losses: list[float],
    history: History,
    *,
    save_weights: bool,
    scheme_file: Path | None,
) -> None:
    """Write the model folder into a temporary sibling and rename it into place."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_folder_in(out_dir.parent, prefix=f".{out_dir.name}.")  # the umask's mode, not mkdtemp's 0700
    try:
        export_onnx(model, tmp / "model.onnx")
        weights: dict[str, str] = {"onnx": "model.onnx", "onnx_sha256": file_sha256(tmp / "model.onnx")}
        if save_weights:
            save_safetensors(model, tmp / "model.safetensors")
            weights |= {
                "safetensors": "model.safetensors",
                "safetensors_sha256": file_sha256(tmp / "model.safetensors"),
            }
        card = {**card, "weights": weights}
        if scheme_file is not None:  # a user's scheme file travels with the model
            name = "scheme" + scheme_file.suffix.lower()
            shutil.copyfile(scheme_file, tmp / name)
            card["output"] = {**card["output"], "scheme_file": name}  # type: ignore[dict-item]
        (tmp / "model.json").write_text(json.dumps(card, indent=2, default=_json_default) + "\n", encoding="utf-8")
        log = {"loss": losses, "dice": [{n: {str(k): v for k, v in s.items()} for n, s in d.items()} for d in history]}
        (tmp / "training_log.json").write_text(json.dumps(log, indent=1) + "\n", encoding="utf-8")
        if out_dir.exists():
            for name in (CHECKPOINT_NAME, PARTIAL_NAME):
                (out_dir / name).unlink(missing_ok=True)
            out_dir.rmdir()  # empty but for the checkpoint (checked at the start)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _json_default(value: object) -> object:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
