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
    """What ``paraspinal backends`` shows for one backend.

    Attributes:
        name: what ``--backend`` takes.
        description: one line.
        installed: whether every module it needs can be imported here.
        missing: the modules that cannot.
        extra: the pip extra that installs them (None: the core install).
        needs_model: whether ``--model`` is required.
        model_hint: what the model folder holds.
    """

    name: str
    description: str
    installed: bool
    missing: tuple[str, ...] = ()
    extra: str | None = None
    needs_model: bool = False
    model_hint: str = ""

    @property
    def install_command(self) -> str:
        """The pip command that installs what is missing ("" when installed)."""
        if self.installed:
            return ""
        return f'pip install "paraspinal[{self.extra}]"' if self.extra else "pip install paraspinal"

    def as_dict(self) -> dict[str, object]:
        """JSON-ready fields (stable keys: name, description, installed, missing, extra, needs_model, model_hint)."""
        return {
            "name": self.name,
            "description": self.description,
            "installed": self.installed,
            "missing": list(self.missing),
            "extra": self.extra,
            "needs_model": self.needs_model,
            "model_hint": self.model_hint,
        }


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
