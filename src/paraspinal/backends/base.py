"""The backend protocol: construct once (weights loaded once), segment many images.

A backend takes an image in its native geometry and returns a :class:`~paraspinal.io.LabelMap` on exactly
the same grid (same shape and affine), in the label scheme its values follow, with the model's provenance.
Anything a backend needs (resampling, reorientation, normalisation, tiling) happens inside ``segment``;
:func:`segmentation` builds its result (:func:`compact_labels`, :func:`model_provenance` help),
:func:`segment_on_grid` is how callers run one (and check it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from paraspinal import __version__
from paraspinal.anatomy import LabelScheme
from paraspinal.errors import GeometryError
from paraspinal.io.image import Image
from paraspinal.io.label_map import LabelMap, Provenance
from paraspinal.io.writers import label_dtype


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

    def segment(self, image: Image) -> LabelMap:
        """Segment one image; the result's labels share ``image``'s shape and affine."""
        ...


def segmentation(
    image: Image,
    labels: np.ndarray,
    *,
    scheme: LabelScheme,
    model: Mapping[str, object],
    info: Mapping[str, object] | None = None,
    source: str,
    confidence: Mapping[str, np.ndarray] | None = None,
) -> LabelMap:
    """A backend's result: ``labels`` (integer, on ``image``'s grid) as a segmented :class:`LabelMap` whose
    provenance holds the model's identity (``model``) and this image's details (``info``); ``confidence``:
    per-voxel float maps on the same grid (see :class:`LabelMap`)."""
    if not np.issubdtype(labels.dtype, np.integer):
        labels = np.rint(labels).astype(label_dtype(int(np.nanmax(labels)) if labels.size else 0))
    return LabelMap(
        image.with_array(labels, source=source),
        scheme,
        Provenance("segmented", model=dict(model), info=dict(info or {})),
        {name: image.with_array(array, source=f"{source} ({name})") for name, array in (confidence or {}).items()},
    )


def compact_labels(labels: np.ndarray) -> np.ndarray:
    """``labels`` in the smallest unsigned integer type that holds their largest value (uint8 at least)."""
    largest = int(labels.max()) if labels.size else 0
    return labels.astype(label_dtype(max(largest, 1)), copy=False)


def model_provenance(backend: str, fields: Mapping[str, object], *, libraries: Sequence[str] = ()) -> dict[str, object]:
    """A backend's provenance: ``backend``, ``fields``, the installed version of each library (distribution
    names; key ``<name>_version``, lower case) and ``paraspinal_version``."""
    from importlib.metadata import version

    versions = {f"{name.lower()}_version": version(name) for name in libraries}
    return {"backend": backend, **fields, **versions, "paraspinal_version": __version__}


def segment_on_grid(backend: SegmentationBackend, image: Image) -> LabelMap:
    """``backend.segment(image)``, checked: labels on exactly ``image``'s grid (else a one-line error)."""
    result = backend.segment(image)
    labels = result.labels
    if labels.shape != image.shape or not np.allclose(labels.affine, image.affine, atol=1e-4):
        raise GeometryError(
            f"segmentation backend {getattr(backend, 'name', '?')} returned labels of shape {labels.shape} "
            f"not on the input grid {image.shape}",
            path=image.source,
        )
    provenance = dict(result.provenance.model) or dict(getattr(backend, "provenance", {}) or {})
    provenance.setdefault("name", getattr(backend, "name", type(backend).__name__))
    fixed = Image(labels.array, image.affine.copy(), source=f"{image.source} (segmented)")
    confidence = {name: Image(c.array, image.affine.copy(), source=c.source) for name, c in result.confidence.items()}
    return LabelMap(fixed, result.scheme, dataclasses.replace(result.provenance, model=provenance), confidence)
