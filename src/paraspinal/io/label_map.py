"""The one value that flows after segmentation: a label map with its scheme and its provenance.

A :class:`LabelMap` is an integer :class:`~paraspinal.io.image.Image` (labels on a voxel grid, affine RAS+
mm), the :class:`~paraspinal.anatomy.LabelScheme` its values follow (structure and patient side of each
value), and a :class:`Provenance`: where the labels came from (a given file, or a model with its identity
and per-image details) and every step applied since (the largest-component clean-up, a naming step).
A segmented map may also carry the model's per-voxel ``confidence`` maps (float images on the label grid, e.g.
``margin``: top-1 minus top-2 class probability; ``mirror_agreement``: agreement of the plain and mirrored
passes), which quality assessment reads; a given map has none.
Backends return one, post-processing returns a new one with its step recorded, and levels, measurement
and reporting read the scheme and the provenance from it instead of taking them as loose arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Literal

import numpy as np

from paraspinal.anatomy import LabelScheme
from paraspinal.errors import InputError
from paraspinal.io.image import Image

__all__ = ["LabelMap", "Provenance"]


@dataclass(frozen=True)
class Provenance:
    """Where a label map came from, and what was done to it.

    Attributes:
        source: ``given`` (read from ``path``) or ``segmented`` (made by ``model``).
        path: the file a given map was read from.
        model: the backend's identity (name, version, weights hash, options), for a segmented map.
        info: the backend's details for this image (crop box, resampling, ...).
        steps: post-processing steps applied, in order (each a JSON-ready mapping with a ``step`` key).
    """

    source: Literal["given", "segmented"]
    path: str | None = None
    model: Mapping[str, object] = field(default_factory=dict)
    info: Mapping[str, object] = field(default_factory=dict)
    steps: tuple[Mapping[str, object], ...] = ()

    @property
    def segmented(self) -> bool:
        return self.source == "segmented"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form, as manifests and sidecars record it."""
        return {
            "source": self.source,
            "path": self.path,
            "model": dict(self.model),
            "info": dict(self.info),
            "steps": [dict(s) for s in self.steps],
        }


@dataclass(frozen=True, eq=False)
class LabelMap:
    """Integer labels on a grid, the scheme their values follow, their provenance, and (for a model's output)
    per-voxel confidence maps on the same grid (name -> float image, values in [0, 1], 1 = confident)."""

    labels: Image
    scheme: LabelScheme
    provenance: Provenance
    confidence: Mapping[str, Image] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not np.issubdtype(self.labels.array.dtype, np.integer):
            raise InputError("a label map holds integer values", path=self.labels.source)
        for name, image in self.confidence.items():
            if image.shape != self.labels.shape or not np.allclose(image.affine, self.labels.affine, atol=1e-4):
                raise ValueError(f"confidence map {name!r} is not on the label grid")
        object.__setattr__(self, "confidence", MappingProxyType(dict(self.confidence)))

    @classmethod
    def given(cls, labels: Image, scheme: LabelScheme) -> LabelMap:
        """A label map read from a file (``labels.source``), checked against ``scheme``."""
        scheme.check_values(np.unique(labels.array), path=labels.source)
        return cls(labels, scheme, Provenance("given", path=labels.source))

    @property
    def array(self) -> np.ndarray:
        return self.labels.array

    @property
    def affine(self) -> np.ndarray:
        return self.labels.affine

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.labels.shape

    @property
    def source(self) -> str:
        return self.labels.source

    def with_labels(self, labels: Image, *, step: Mapping[str, object] | None = None) -> LabelMap:
        """The same scheme and provenance on new labels (same grid), with ``step`` appended when given."""
        if labels.shape != self.labels.shape or not np.allclose(labels.affine, self.labels.affine, atol=1e-4):
            raise ValueError("a label map step must keep the grid")
        steps = self.provenance.steps + ((dict(step),) if step is not None else ())
        return LabelMap(labels, self.scheme, replace(self.provenance, steps=steps), self.confidence)

    def present_values(self) -> list[int]:
        """Label values present (background 0 excluded), sorted."""
        return [int(v) for v in np.unique(self.labels.array) if v != 0]
