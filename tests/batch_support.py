"""Helpers for batch tests: phantom cohorts on disk and a picklable backend that counts its loads."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from paraspinal.anatomy import LabelScheme, load_scheme
from paraspinal.backends import segmentation
from paraspinal.io.image import Image
from paraspinal.io.label_map import LabelMap
from tests.phantoms import save_nifti, two_muscle_phantom


def write_cohort(folder: Path, n: int, *, with_masks: bool = True, corrupt: tuple[int, ...] = ()) -> list[str]:
    """``n`` phantom Dixon cases ``C000..`` (water, fat and optionally a ``_dseg`` mask); ``corrupt`` ones broken."""
    folder.mkdir(parents=True, exist_ok=True)
    ids = []
    for i in range(n):
        labels, water, fat, affine = two_muscle_phantom()
        rng = np.random.default_rng(i)
        water = water + rng.normal(0, 3, water.shape)
        fat = fat * (1 + 0.02 * i)
        case_id = f"C{i:03d}"
        save_nifti(folder / f"{case_id}_water.nii.gz", water.astype(np.float32), affine)
        save_nifti(folder / f"{case_id}_fat.nii.gz", fat.astype(np.float32), affine)
        if with_masks:
            save_nifti(folder / f"{case_id}_dseg.nii.gz", labels, affine)
        if i in corrupt:
            (folder / f"{case_id}_fat.nii.gz").write_bytes(b"\x1f\x8bnot a gzip stream at all")
        ids.append(case_id)
    return ids


class ThresholdBackend:
    """Labels the phantom's right muscle from the water image (bright voxels on the patient's right)."""

    name = "threshold-test-backend"

    def __init__(self) -> None:
        self._scheme = load_scheme("lpm4")

    @property
    def scheme(self) -> LabelScheme:
        return self._scheme

    @property
    def provenance(self) -> dict[str, object]:
        return {"name": self.name, "weights_sha256": "none"}

    def segment(self, image: Image) -> LabelMap:
        array = np.where(image.array > 100, 1, 0).astype(np.int16)
        x = np.indices(image.shape)[0] * image.affine[0, 0] + image.affine[0, 3]
        array[(array == 1) & (x < 0)] = 4
        return segmentation(image, array, scheme=self._scheme, model=self.provenance, source=image.source)


@dataclass(frozen=True)
class CountingFactory:
    """Picklable backend factory that leaves one marker file per load (to count loads per worker)."""

    marker_dir: str

    def __call__(self) -> ThresholdBackend:
        Path(self.marker_dir).mkdir(parents=True, exist_ok=True)
        (Path(self.marker_dir) / f"load-{os.getpid()}-{os.urandom(4).hex()}").touch()
        return ThresholdBackend()


class SlowBackend(ThresholdBackend):
    """The threshold backend, taking ``seconds`` per image: long enough to kill a worker in the middle."""

    name = "slow-test-backend"

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def segment(self, image: Image) -> LabelMap:
        import time

        time.sleep(self.seconds)
        return super().segment(image)


@dataclass(frozen=True)
class SlowFactory:
    """Picklable factory of :class:`SlowBackend`."""

    seconds: float = 1.0

    def __call__(self) -> SlowBackend:
        return SlowBackend(self.seconds)


class PoisonBackend(ThresholdBackend):
    """Kills its own process (SIGKILL, as the kernel's out-of-memory killer does) on images whose path holds
    ``marker``; segments the others like :class:`ThresholdBackend`."""

    name = "poison-test-backend"

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = marker

    def segment(self, image: Image) -> LabelMap:
        import signal

        if self.marker in image.source:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().segment(image)


@dataclass(frozen=True)
class PoisonFactory:
    """Picklable factory of :class:`PoisonBackend`."""

    marker: str

    def __call__(self) -> PoisonBackend:
        return PoisonBackend(self.marker)
