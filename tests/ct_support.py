"""Shared pieces of the CT tests: the real TotalSegmentator example (``../shared/data/totalseg-ct-example``)
and phantom CT images with known HU values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from paraspinal.io import Image

CT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "totalseg-ct-example"
CT_NIFTI = CT_DATA / "example_ct_sm.nii.gz"
CT_LABELS = CT_DATA / "example_seg.nii.gz"
CT_DICOM = CT_DATA / "dicom"

needs_ct_example = pytest.mark.skipif(
    not (CT_NIFTI.is_file() and CT_LABELS.is_file()), reason="../shared/data/totalseg-ct-example not present"
)
needs_ct_dicom = pytest.mark.skipif(
    not CT_DICOM.is_dir(), reason="../shared/data/totalseg-ct-example/dicom not present"
)


def ras_affine(spacing: tuple[float, float, float]) -> np.ndarray:
    """Axis-aligned RAS+ affine with the given spacing (mm): +i towards the patient's right, +k superior."""
    return np.diag([*spacing, 1.0])


def ct_image(array: np.ndarray, *, spacing=(1.0, 1.0, 1.0), metadata: dict | None = None, source="phantom.nii.gz"):
    """A CT phantom: ``array`` in HU on a RAS+ grid."""
    meta = {"modality": "CT", "contrast_agent": "none", **(metadata or {})}
    return Image(array=array, affine=ras_affine(spacing), source=source, metadata=meta)


def body_in_air(shape=(40, 40, 6), *, body_hu: int = 40, air_hu: int = -1000, margin: int = 5) -> np.ndarray:
    """An int16 box of tissue at ``body_hu`` with ``margin`` voxels of air around it in-plane."""
    array = np.full(shape, air_hu, dtype=np.int16)
    array[margin:-margin, margin:-margin, :] = body_hu
    return array
