"""Test doubles for the backend catalog: importable by name, so batch workers (spawned) can build them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from paraspinal.anatomy import LabelScheme, load_scheme
from paraspinal.backends.base import segmentation
from paraspinal.backends.catalog import BackendOptions, BackendSpec
from paraspinal.errors import InputError
from paraspinal.io import Image
from paraspinal.io.label_map import LabelMap

NO_SUCH_MODULE = "paraspinal_test_no_such_module"


class FakeMaskBackend:
    """Returns the label map stored in its model folder (``mask.npy``; scheme in ``scheme.txt`` or --scheme)."""

    name = "fake_mask"

    def __init__(self, model: Path, options: BackendOptions) -> None:
        self.model = model
        self.options = options
        self.mask = np.load(model / "mask.npy")
        key = options.scheme or (model / "scheme.txt").read_text(encoding="utf-8").strip()
        self._scheme = load_scheme(key)

    @classmethod
    def from_options(cls, model: Path | None, options: BackendOptions) -> FakeMaskBackend:
        if model is None or not (model / "mask.npy").is_file():
            raise InputError("no mask.npy: not a fake model folder", path=model)
        return cls(model, options)

    @property
    def scheme(self) -> LabelScheme:
        return self._scheme

    @property
    def provenance(self) -> dict[str, object]:
        return {"backend": self.name, "model_dir": str(self.model), "weights_sha256": "0" * 64, "version": "fake-1"}

    def segment(self, image: Image) -> LabelMap:
        if image.array.shape != self.mask.shape:
            raise InputError(f"fake model holds a {self.mask.shape} mask, image is {image.array.shape}")
        return segmentation(
            image,
            self.mask.copy(),
            scheme=self._scheme,
            model=self.provenance,
            info={"fake": True},
            source=image.source,
        )


FAKE_MASK = BackendSpec(
    name="fake_mask",
    description="test double: the mask stored in the model folder",
    target="tests.fake_backends:FakeMaskBackend",
    extra=None,
    requires=("numpy",),
    needs_model=True,
    model_hint="a folder with mask.npy and scheme.txt",
)
FAKE_MISSING = BackendSpec(
    name="fake_missing",
    description="test double whose library is not installed",
    target="tests.fake_backends:FakeMaskBackend",
    extra="fakeextra",
    requires=("numpy", NO_SUCH_MODULE),
    needs_model=True,
    model_hint="anything",
)


def write_model(folder: Path, mask: np.ndarray, scheme: str) -> Path:
    """A fake model folder returning ``mask`` in ``scheme``."""
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "mask.npy", mask)
    (folder / "scheme.txt").write_text(scheme, encoding="utf-8")
    return folder
