"""Read an nnU-Net v2 raw dataset (``dataset.json``, ``imagesTr/``, ``labelsTr/``) for training.

Layout: ``imagesTr/{case}_{channel:04d}{file_ending}`` and ``labelsTr/{case}{file_ending}``;
``dataset.json`` holds ``channel_names`` (``{"0": "water"}``), ``labels`` (``{"background": 0,
"ES_R": 1, ...}``) and ``file_ending``. The model is single-channel: each channel of a case
becomes its own training image with the case's labels, so one model serves every contrast.
Every problem is one :class:`~paraspinal.errors.InputError` line naming the file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from paraspinal.anatomy import LabelScheme
from paraspinal.errors import InputError
from paraspinal.io import Image, read_image, read_label_map
from paraspinal.preprocessing import InputSpec, prepare_volume


@dataclass(frozen=True)
class CaseFiles:
    """One case: its channel images (in channel order) and its label map."""

    case_id: str
    images: tuple[Path, ...]
    labels: Path


@dataclass(frozen=True)
class DatasetInfo:
    """A validated ``dataset.json`` and the file list it implies."""

    root: Path
    name: str
    channel_names: tuple[str, ...]
    label_values: dict[str, int]
    file_ending: str
    cases: tuple[CaseFiles, ...]

    @property
    def class_values(self) -> tuple[int, ...]:
        """Label values in class-index order (0 = background first)."""
        return tuple(sorted(set(self.label_values.values())))


@dataclass(frozen=True)
class TrainingImage:
    """One channel of one case, prepared: ``image`` float32 and ``classes`` uint8, both ``(nx, ny, n_slices)``,
    slices ``slice_spacing_mm`` apart."""

    name: str
    case_id: str
    channel: str
    image: np.ndarray
    classes: np.ndarray
    slice_spacing_mm: float = 1.0


def read_dataset(root: str | Path) -> DatasetInfo:
    """Validate ``dataset.json`` and the case files of an nnU-Net v2 raw dataset (images are not read)."""
    root = Path(root)
    if not root.is_dir():
        raise InputError("dataset folder not found", path=root)
    meta_path = root / "dataset.json"
    if not meta_path.is_file():
        raise InputError(
            "no dataset.json; expected an nnU-Net v2 raw dataset (dataset.json, imagesTr/, labelsTr/)", path=root
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"not valid JSON ({exc})", path=meta_path) from None
    if not isinstance(meta, dict):
        raise InputError("dataset.json must hold a JSON object", path=meta_path)
    for key in ("channel_names", "labels", "file_ending"):
        if key not in meta:
            raise InputError(f"missing required key '{key}'", path=meta_path)
    channels = _channel_names(meta["channel_names"], path=meta_path)
    labels = _label_values(meta["labels"], path=meta_path)
    ending = meta["file_ending"]
    if not isinstance(ending, str) or not ending.startswith("."):
        raise InputError(f"file_ending must be a suffix such as '.nii.gz', not {ending!r}", path=meta_path)
    cases = _case_files(root, n_channels=len(channels), ending=ending)
    return DatasetInfo(
        root=root,
        name=str(meta.get("name", root.name)),
        channel_names=channels,
        label_values=labels,
        file_ending=ending,
        cases=cases,
    )


def check_scheme(info: DatasetInfo, scheme: LabelScheme) -> None:
    """Every declared foreground value must be in ``scheme``, with its other-side value declared too."""
    scheme.check_values(info.class_values, path=info.root / "dataset.json")
    swap = scheme.side_swap_map()
    missing = sorted({swap[v] for v in info.class_values if v} - set(info.class_values))
    if missing:
        raise InputError(
            f"dataset.json labels lack the other-side values {missing} of scheme '{scheme.key}', "
            "so left-right flips cannot swap sides",
            path=info.root / "dataset.json",
        )


def load_training_images(info: DatasetInfo, spec: InputSpec) -> list[TrainingImage]:
    """Read every case, check it, and prepare each channel for the model (see :func:`prepare_volume`)."""
    lut_size = max(info.class_values) + 1
    lut = np.zeros(lut_size, dtype=np.uint8)
    lut[list(info.class_values)] = np.arange(len(info.class_values), dtype=np.uint8)
    declared = set(info.class_values)
    out: list[TrainingImage] = []
    for case in info.cases:
        labels = read_label_map(case.labels)
        found = {int(v) for v in np.unique(labels.array)}
        undeclared = sorted(found - declared)
        if undeclared:
            raise InputError(
                f"label values {undeclared} are not declared in dataset.json labels "
                f"(declared: {', '.join(str(v) for v in sorted(declared))})",
                path=case.labels,
            )
        for channel, image_path in zip(info.channel_names, case.images, strict=True):
            image = read_image(image_path)
            if image.shape != labels.shape:
                raise InputError(
                    f"image shape {image.shape} does not match label shape {labels.shape} of {case.labels.name}",
                    path=image_path,
                )
            aligned = Image(array=lut[labels.array], affine=image.affine, source=str(case.labels))
            prepared, classes = prepare_volume(image, spec, labels=aligned)
            assert classes is not None
            out.append(
                TrainingImage(
                    name=f"{case.case_id}/{channel}",
                    case_id=case.case_id,
                    channel=channel,
                    image=prepared.array,
                    classes=classes.astype(np.uint8),
                    slice_spacing_mm=float(prepared.oriented.spacing_mm[2]),
                )
            )
    return out


def _channel_names(raw: object, *, path: Path) -> tuple[str, ...]:
    if not isinstance(raw, dict) or not raw:
        raise InputError('channel_names must be a non-empty object such as {"0": "water"}', path=path)
    try:
        indexed = {int(k): str(v) for k, v in raw.items()}
    except ValueError:
        raise InputError(f"channel_names keys must be channel numbers, got {sorted(raw)}", path=path) from None
    if sorted(indexed) != list(range(len(indexed))):
        raise InputError(f"channel_names keys must be 0..{len(indexed) - 1}, got {sorted(indexed)}", path=path)
    return tuple(indexed[i] for i in range(len(indexed)))


def _label_values(raw: object, *, path: Path) -> dict[str, int]:
    if not isinstance(raw, dict) or not raw:
        raise InputError('labels must be a non-empty object such as {"background": 0, "muscle": 1}', path=path)
    values: dict[str, int] = {}
    for name, value in raw.items():
        if isinstance(value, list | tuple):
            raise InputError(
                f"label '{name}' is a region (list of values); region-based labels are not supported", path=path
            )
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InputError(f"label '{name}' must have a non-negative integer value, not {value!r}", path=path)
        values[str(name)] = value
    if len(set(values.values())) != len(values):
        raise InputError("labels lists the same value twice", path=path)
    if 0 not in values.values():
        raise InputError("labels must declare background as value 0", path=path)
    if len(values) < 2:
        raise InputError("labels must declare at least one foreground value", path=path)
    return values


def _case_files(root: Path, *, n_channels: int, ending: str) -> tuple[CaseFiles, ...]:
    images_dir, labels_dir = root / "imagesTr", root / "labelsTr"
    for folder in (images_dir, labels_dir):
        if not folder.is_dir():
            raise InputError(f"missing folder {folder.name}/", path=root)
    by_case: dict[str, dict[str, Path]] = {}
    for path in sorted(images_dir.iterdir()):
        name = path.name
        if not name.endswith(ending) or name.startswith("."):
            continue
        stem = name[: -len(ending)]
        case_id, sep, channel = stem.rpartition("_")
        if not sep or len(channel) != 4 or not channel.isdigit():
            raise InputError(f"image name does not end in _XXXX{ending} (a 4-digit channel number)", path=path)
        by_case.setdefault(case_id, {})[channel] = path
    label_files = {p.name[: -len(ending)]: p for p in sorted(labels_dir.iterdir()) if p.name.endswith(ending)}
    if not label_files:
        raise InputError(f"no label files ending in {ending}", path=labels_dir)
    expected = [f"{i:04d}" for i in range(n_channels)]
    cases: list[CaseFiles] = []
    for case_id, label_path in label_files.items():
        found = by_case.pop(case_id, {})
        if sorted(found) != expected:
            listing = ", ".join(f"_{c}" for c in sorted(found)) or "none"
            raise InputError(
                f"case '{case_id}' has {len(found)} channel file(s) ({listing}) but dataset.json declares "
                f"{n_channels} channel(s)",
                path=images_dir,
            )
        cases.append(CaseFiles(case_id=case_id, images=tuple(found[c] for c in expected), labels=label_path))
    if by_case:
        orphan = sorted(by_case)[0]
        raise InputError(f"case '{orphan}' has images but no label file {orphan}{ending}", path=labels_dir)
    return tuple(cases)


def identical_cases(arrays: Iterable[tuple[str, Sequence[np.ndarray]]]) -> dict[str, set[str]]:
    """Case id -> the other cases whose arrays hold the same voxels, from ``(case_id, arrays)`` pairs (a case
    may come in several pairs, e.g. one per channel: all of them are compared, in order).

    Such twins (one scan saved under two ids) leak: a validation case whose twin is trained on is scored
    on data the model has seen."""
    digests: dict[str, hashlib._Hash] = {}
    for case_id, case_arrays in arrays:
        digest = digests.setdefault(case_id, hashlib.sha256())
        for array in case_arrays:
            digest.update(str(array.shape).encode())
            digest.update(np.ascontiguousarray(array).tobytes())
    groups: dict[str, set[str]] = {}
    for case_id, digest in digests.items():
        groups.setdefault(digest.hexdigest(), set()).add(case_id)
    return {case_id: groups[digest.hexdigest()] - {case_id} for case_id, digest in digests.items()}
