"""What a model expects of its input, and the one function that prepares a volume for it.

:func:`prepare_volume` reorients to ``spec.axcodes`` (slices along the third axis), scales
intensities by per-image percentiles, and resamples in-plane to ``spec.spacing_mm`` only when the
image's spacing differs from it by more than ``spec.spacing_tolerance`` (relative). Training and
inference both call it, so a model sees the same kind of array in both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from paraspinal.io.image import Image
from paraspinal.preprocessing.intensity import percentile_scale
from paraspinal.preprocessing.orientation import Oriented, reorient
from paraspinal.preprocessing.resample import inplane_shape_for_spacing, resize_inplane

_AXIS_PAIRS = ({"R", "L"}, {"A", "P"}, {"S", "I"})
MAX_CONTEXT_MM = 20.0


def context_problem(context_mm: float) -> str | None:
    """Why ``context_mm`` is not a usable 2.5-D context (None when it is)."""
    if 0.0 <= context_mm <= MAX_CONTEXT_MM:
        return None
    return f"context_mm must be between 0 and {MAX_CONTEXT_MM:g} mm, got {context_mm:g}"


@dataclass(frozen=True)
class InputSpec:
    """A model's input convention (stored in model.json under ``input``).

    Attributes:
        axcodes: patient direction of array axes 0, 1, 2 after reorientation; the model sees 2-D
            slices across axis 2 (S/I last: axial slices; R/L last: sagittal slices), axes 0 and 1 in-plane.
        spacing_mm: in-plane pixel size (mm) along axes 0 and 1 that the model was trained at.
        spacing_tolerance: relative spacing difference tolerated before resampling in-plane.
        lower_percentile, upper_percentile: intensity percentiles mapped to 0 and 1 (clipped).
        size_multiple: slice height and width are padded to a multiple of this (pixels).
        context_mm: 2.5-D input: besides each slice the model also sees the image this far (mm) to
            either side along the slice axis, as extra channels (see :func:`context_slices`); 0 = 2-D.
    """

    axcodes: tuple[str, str, str] = ("R", "A", "S")
    spacing_mm: tuple[float, float] = (1.0, 1.0)
    spacing_tolerance: float = 0.1
    lower_percentile: float = 0.5
    upper_percentile: float = 99.5
    size_multiple: int = 16
    context_mm: float = 0.0

    def __post_init__(self) -> None:
        codes = tuple(str(c).upper() for c in self.axcodes)
        if len(codes) != 3 or any(sum(code in pair for code in codes) != 1 for pair in _AXIS_PAIRS):
            raise ValueError(f"axcodes must name R/L, A/P and S/I once each, got {self.axcodes}")
        object.__setattr__(self, "axcodes", codes)
        object.__setattr__(self, "spacing_mm", tuple(float(s) for s in self.spacing_mm))
        object.__setattr__(self, "context_mm", float(self.context_mm))
        problem = context_problem(self.context_mm)
        if problem:
            raise ValueError(problem)

    @property
    def in_channels(self) -> int:
        """Network input channels: 1 for 2-D slices, 3 (before, slice, after) for 2.5-D."""
        return 3 if self.context_mm > 0 else 1

    @property
    def lr_axis(self) -> int | None:
        """In-plane array axis (0 or 1) that runs between the patient's left and right; None for sagittal slices."""
        for axis in (0, 1):
            if self.axcodes[axis] in {"R", "L"}:
                return axis
        return None

    @property
    def plane(self) -> str:
        """The slice plane the model sees: ``axial``, ``sagittal`` or ``coronal``."""
        return {"S": "axial", "I": "axial", "R": "sagittal", "L": "sagittal"}.get(self.axcodes[2], "coronal")

    def to_dict(self) -> dict[str, object]:
        return {
            "axcodes": list(self.axcodes),
            "spacing_mm": list(self.spacing_mm),
            "spacing_tolerance": self.spacing_tolerance,
            "resampling": "in-plane only, linear, when the relative spacing difference exceeds spacing_tolerance",
            "normalisation": {
                "method": "percentile",
                "lower_percentile": self.lower_percentile,
                "upper_percentile": self.upper_percentile,
                "clip": [0.0, 1.0],
            },
            "size_multiple": self.size_multiple,
            "context_mm": self.context_mm,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> InputSpec:
        norm = data.get("normalisation", {})
        assert isinstance(norm, dict)
        return cls(
            axcodes=tuple(data["axcodes"]),  # type: ignore[arg-type]
            spacing_mm=tuple(data["spacing_mm"]),  # type: ignore[arg-type]
            spacing_tolerance=float(data.get("spacing_tolerance", 0.1)),  # type: ignore[arg-type]
            lower_percentile=float(norm.get("lower_percentile", 0.5)),
            upper_percentile=float(norm.get("upper_percentile", 99.5)),
            size_multiple=int(data.get("size_multiple", 16)),  # type: ignore[arg-type]
            context_mm=float(data.get("context_mm", 0.0)),  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class PreparedVolume:
    """A volume ready for a model, and how to get back to the original grid.

    Attributes:
        array: float32 ``(nx, ny, n_slices)`` in ``spec.axcodes`` order, intensities in [0, 1].
        oriented: the reorientation (before any resampling), see :func:`restore_orientation`.
        resampled: whether the in-plane grid was resampled (then ``array.shape[:2]`` differs from
            ``oriented.array.shape[:2]``).
        spacing_mm: in-plane pixel size of ``array`` (mm).
    """

    array: np.ndarray
    oriented: Oriented
    resampled: bool
    spacing_mm: tuple[float, float]


def needs_resampling(spacing_mm: tuple[float, float], spec: InputSpec) -> bool:
    """Whether in-plane ``spacing_mm`` differs from the spec's by more than its tolerance."""
    return any(abs(s / t - 1.0) > spec.spacing_tolerance for s, t in zip(spacing_mm, spec.spacing_mm, strict=True))


def prepare_volume(
    image: Image, spec: InputSpec, *, labels: Image | None = None
) -> tuple[PreparedVolume, np.ndarray | None]:
    """Reorient, normalise and (if needed) resample ``image`` for a model with ``spec``.

    ``labels`` on the same grid (training) are reoriented and resampled with nearest neighbour
    alongside; returns ``(prepared, prepared_labels_or_None)``.
    """
    oriented = reorient(image, axcodes=spec.axcodes)
    scaled = percentile_scale(
        oriented.array, lower_percentile=spec.lower_percentile, upper_percentile=spec.upper_percentile
    )
    spacing = oriented.spacing_mm[:2]
    label_array = None if labels is None else reorient(labels, axcodes=spec.axcodes).array
    resampled = needs_resampling(spacing, spec)
    if resampled:
        shape_xy = inplane_shape_for_spacing(scaled.shape[:2], spacing_mm=spacing, target_spacing_mm=spec.spacing_mm)
        scaled = resize_inplane(scaled, shape_xy=shape_xy, order=1)
        if label_array is not None:
            label_array = resize_inplane(label_array, shape_xy=shape_xy, order=0)
        spacing = tuple(n * s / m for n, s, m in zip(oriented.array.shape[:2], spacing, shape_xy, strict=True))
    prepared = PreparedVolume(
        array=scaled, oriented=oriented, resampled=resampled, spacing_mm=(float(spacing[0]), float(spacing[1]))
    )
    return prepared, label_array


def context_slices(
    volume: np.ndarray, indices: np.ndarray | list[int] | range, *, slice_spacing_mm: float, context_mm: float
) -> np.ndarray:
    """Model input for slices ``indices`` of ``volume`` ``(nx, ny, n_slices)``: ``(len(indices), C, nx, ny)``.

    ``context_mm`` 0: ``C`` = 1, the slices themselves. Otherwise ``C`` = 3: the image ``context_mm``
    before the slice (lower index along axis 2), the slice, and ``context_mm`` after it, linearly
    interpolated between slices ``slice_spacing_mm`` apart (so thick and thin slices give the model the
    same distances), with the edge slices repeated beyond the ends.
    """
    k = np.asarray(indices, dtype=np.intp)
    if context_mm <= 0:
        return np.ascontiguousarray(np.moveaxis(volume[:, :, k], 2, 0)[:, None])
    n = volume.shape[2]
    offset = float(context_mm) / float(slice_spacing_mm)
    out = np.empty((len(k), 3, *volume.shape[:2]), dtype=volume.dtype)
    for channel, shift in enumerate((-offset, 0.0, offset)):
        position = np.clip(k + shift, 0, n - 1)
        low = np.floor(position).astype(np.intp)
        high = np.minimum(low + 1, n - 1)
        weight = (position - low).astype(volume.dtype)[:, None, None]
        below = np.moveaxis(volume[:, :, low], 2, 0)
        above = np.moveaxis(volume[:, :, high], 2, 0)
        out[:, channel] = below + weight * (above - below)
    return out
