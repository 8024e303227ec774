"""The backend protocol: construct once (weights loaded once), segment many images.

A backend takes an image in its native geometry and returns a label map on exactly the same grid
(same shape and affine), together with the label scheme its values follow. Anything a backend
needs (resampling, reorientation, normalisation, tiling) happens inside ``segment``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from paraspinal.anatomy import LabelScheme
from paraspinal.io.image import Image


@dataclass(frozen=True)
class Segmentation:
    """A backend's output: the label map on the input grid, its scheme, and provenance."""

    labels: Image
    scheme: LabelScheme
    info: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class BackendInfo:
    """What ``paraspinal backends`` shows for one backend."""

    name: str
    description: str
    installed: bool
    missing: tuple[str, ...] = ()


@runtime_checkable
class SegmentationBackend(Protocol):
    """Load once, segment many. Implementations must not touch the network."""

    name: str

    @property
    def scheme(self) -> LabelScheme:
        """The label scheme of the label maps this backend returns."""
        ...

    @property
    def provenance(self) -> dict[str, object]:
        """Model identity for run manifests: name, version, weights hash, settings."""
        ...

    def segment(self, image: Image) -> Segmentation:
        """Segment one image; the result's labels share ``image``'s shape and affine."""
        ...
