"""Training configuration: defaults, overridable from a TOML file and the command line.

TOML layout (every table and key optional)::

    [training]                # scheme, seed, epochs, steps_per_epoch, batch_size, learning_rate, ...
    [model]                   # base_channels, max_channels, levels, convs_per_level
    [input]                   # axcodes, spacing_mm (default: the dataset's median), spacing_tolerance, percentiles,
                              # context_mm (2.5-D)
    [augment]                 # see AugmentConfig
    [inference]               # slice_sigma_mm: written to model.json for ONNX inference
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from paraspinal.backends.unet_onnx import slice_sigma_problem
from paraspinal.errors import InputError
from paraspinal.preprocessing.spec import context_problem
from paraspinal.training.augment import AugmentConfig, fov_cut_directions

PRECISIONS = ("float32", "bfloat16")
_DEVICE = re.compile(r"cpu|cuda(:[0-9]+)?")


@dataclass(frozen=True)
class ModelOptions:
    """Network size (see :class:`paraspinal.training.unet.UNetConfig`)."""

    base_channels: int = 12
    max_channels: int = 192
    levels: int = 6
    convs_per_level: int = 2


@dataclass(frozen=True)
class InputOptions:
    """Input convention; ``spacing_mm`` None = the median in-plane spacing of the dataset; ``context_mm`` > 0
    makes the model 2.5-D (it also sees the image that far either side of each slice, see
    :func:`paraspinal.preprocessing.context_slices`)."""

    axcodes: tuple[str, str, str] = ("R", "A", "S")
    spacing_mm: tuple[float, float] | None = None
    spacing_tolerance: float = 0.1
    lower_percentile: float = 0.5
    upper_percentile: float = 99.5
    context_mm: float = 0.0


@dataclass(frozen=True)
class InferenceOptions:
    """How the written model is applied (stored in model.json under ``output``).

    ``slice_sigma_mm``: Gaussian sigma (mm, along the slice axis) with which inference averages
    neighbouring slices' class probabilities before the argmax; 0 = every slice on its own. The
    per-epoch validation Dice is measured slice by slice, without it.
    """

    slice_sigma_mm: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (stored in model.json).

    ``validation_slices`` = ``[start, stop)`` holds out those axial slices (indices along the
    model's slice axis, 0 = most inferior for axcodes ending in S) of every image;
    ``validation_cases`` holds out whole cases. With neither, the per-epoch Dice is measured on
    the training images themselves (a fit check, not an accuracy claim). ``ema_decay`` (e.g.
    0.999) keeps an exponential moving average of the weights, updated every step; validation and
    the written model then use the averaged weights. None = the last step's weights. ``precision``:
    "float32" or "bfloat16" (autocast forward/backward; weights stay float32); ``device``: "cpu", "cuda"
    or "cuda:N" (see :mod:`paraspinal.training.steps`). ``class_weights``: ``(label value, weight)`` pairs
    for the cross-entropy (TOML ``class_weights = { "2" = 1.5 }``; unlisted values weigh 1).
    """

    scheme: str | None = None
    name: str = "paraspinal_unet"
    description: str = ""
    seed: int = 0
    epochs: int = 30
    steps_per_epoch: int = 50
    batch_size: int = 8
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    threads: int = 2
    time_limit_minutes: float | None = None
    validation_slices: tuple[int, int] | None = None
    validation_cases: tuple[str, ...] = ()
    validate_every: int = 1
    ema_decay: float | None = None
    class_weights: tuple[tuple[int, float], ...] = ()
    precision: str = "float32"
    device: str = "cpu"
    save_safetensors: bool = True
    model: ModelOptions = field(default_factory=ModelOptions)
    input: InputOptions = field(default_factory=InputOptions)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    inference: InferenceOptions = field(default_factory=InferenceOptions)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_TABLES = {"model": ModelOptions, "input": InputOptions, "augment": AugmentConfig, "inference": InferenceOptions}


def load_config(path: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """Defaults, updated by the TOML file at ``path``, then by non-None ``overrides`` (training keys)."""
    config = TrainConfig()
    if path is not None:
        path = Path(path)
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError("config file not found", path=path) from None
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise InputError(f"not a valid TOML file: {exc}", path=path) from None
        config = _apply(config, document, path=path)
    clean = {k: v for k, v in overrides.items() if v is not None}
    return _apply(config, {"training": clean}, path=None) if clean else config


def _apply(config: TrainConfig, document: dict[str, Any], *, path: Path | None) -> TrainConfig:
    unknown_tables = sorted(set(document) - {"training", *_TABLES})
    if unknown_tables:
        known_tables = ", ".join(["training", *_TABLES])
        raise InputError(f"unknown table(s) {unknown_tables} (known: {known_tables})", path=path)
    changes: dict[str, Any] = {}
    for table, cls in _TABLES.items():
        if table in document:
            changes[table] = _update(getattr(config, table), document[table], cls, table=table, path=path)
    if "training" in document:
        known = {f.name for f in fields(TrainConfig)} - set(_TABLES)
        changes.update(_checked(document["training"], known, table="training", path=path))
    if "validation_slices" in changes and changes["validation_slices"] is not None:
        start, stop = (int(v) for v in changes["validation_slices"])
        if not 0 <= start < stop:
            raise InputError(
                f"validation_slices must be [start, stop) with 0 <= start < stop, got {[start, stop]}", path=path
            )
        changes["validation_slices"] = (start, stop)
    precision = changes.get("precision")
    if precision is not None and precision not in PRECISIONS:
        raise InputError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}", path=path)
    device = changes.get("device")
    if device is not None and not _DEVICE.fullmatch(str(device)):
        raise InputError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}", path=path)
    decay = changes.get("ema_decay")
    if decay is not None and not 0.0 < float(decay) < 1.0:
        raise InputError(f"ema_decay must be between 0 and 1 (exclusive), got {decay}", path=path)
    for problem in (
        context_problem(float(changes["input"].context_mm)) if "input" in changes else None,
        slice_sigma_problem(float(changes["inference"].slice_sigma_mm)) if "inference" in changes else None,
    ):
        if problem:
            raise InputError(problem, path=path)
    merged = replace(config, **{k: v for k, v in changes.items() if k in ("input", "augment")})
    try:
        fov_cut_directions(merged.augment.fov_cut_sides, inplane_axcodes=merged.input.axcodes[:2])
    except ValueError as exc:
        raise InputError(str(exc), path=path) from None
    if merged.augment.fov_cut_probability > 0.0 and not merged.augment.fov_cut_sides:
        raise InputError('fov_cut_probability > 0 needs fov_cut_sides (e.g. ["S"])', path=path)
    fraction = float(merged.augment.fov_cut_max_fraction)
    if not 0.0 < fraction < 1.0:
        raise InputError(f"fov_cut_max_fraction must be between 0 and 1 (exclusive), got {fraction:g}", path=path)
    problem = _synth_problem(merged)
    if problem:
        raise InputError(problem, path=path)
    if "class_weights" in changes:
        changes["class_weights"] = _class_weights(changes["class_weights"], path=path)
    for key in ("validation_cases",):
        if key in changes:
            changes[key] = tuple(str(v) for v in changes[key])
    return replace(config, **changes)


def _synth_problem(config: TrainConfig) -> str | None:
    aug = config.augment
    for key in ("synth_probability", "synth_mix_fraction", "thick_slice_probability"):
        value = float(getattr(aug, key))
        if not 0.0 <= value <= 1.0:
            return f"{key} must be between 0 and 1, got {value:g}"
    if not 0.0 <= float(aug.thick_slice_max_weight) < 1.0:
        return f"thick_slice_max_weight must be in [0, 1), got {aug.thick_slice_max_weight:g}"
    if not 2 <= int(aug.synth_tissue_classes) <= 16:
        return f"synth_tissue_classes must be 2 to 16, got {aug.synth_tissue_classes}"
    for key in ("synth_probability", "thick_slice_probability"):
        if float(getattr(aug, key)) > 0.0 and config.input.context_mm > 0.0:
            return f"{key} needs a single-slice model (context_mm = 0)"
    return None


def _class_weights(raw: object, *, path: Path | None) -> tuple[tuple[int, float], ...]:
    """``{"2": 1.5}`` (label value -> cross-entropy weight; unlisted values weigh 1) as sorted pairs."""
    if not isinstance(raw, dict):
        raise InputError('class_weights must be a table such as { "2" = 1.5 } (label value = weight)', path=path)
    out = []
    for key, weight in raw.items():
        try:
            value = int(key)
        except (TypeError, ValueError):
            raise InputError(f"class_weights key {key!r} is not a label value", path=path) from None
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0.0 < float(weight) <= 100.0:
            raise InputError(f"class_weights[{key}] must be a number in (0, 100], got {weight!r}", path=path)
        out.append((value, float(weight)))
    return tuple(sorted(out))


def _update(current: Any, values: Any, cls: type, *, table: str, path: Path | None) -> Any:
    known = {f.name for f in fields(cls)}
    checked = _checked(values, known, table=table, path=path)
    for key in ("axcodes", "spacing_mm", "fov_cut_sides"):
        if checked.get(key) is not None:
            checked[key] = tuple(checked[key])
    return replace(current, **checked)


def _checked(values: Any, known: set[str], *, table: str, path: Path | None) -> dict[str, Any]:
    if not isinstance(values, dict):
        raise InputError(f"[{table}] must be a table", path=path)
    unknown = sorted(set(values) - known)
    if unknown:
        raise InputError(f"unknown key(s) {unknown} in [{table}] (known: {', '.join(sorted(known))})", path=path)
    return dict(values)
