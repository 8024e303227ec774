"""Write images and label maps as NIfTI on their own grid, atomically (temp file + rename)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from paraspinal.io.image import Image


def label_dtype(max_label: int) -> np.dtype:
    """Smallest unsigned integer dtype that holds ``max_label``."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if max_label <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.int64)


def write_nifti(image: Image, path: str | Path, *, dtype: np.dtype | None = None) -> Path:
    """Write ``image`` as NIfTI (``.nii`` or ``.nii.gz``) with its affine as sform and qform.

    The file appears complete or not at all: it is written to a temporary name and renamed.
    """
    import nibabel as nib

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    array = image.array if dtype is None else image.array.astype(dtype, copy=False)
    nii = nib.Nifti1Image(array, image.affine)
    nii.header.set_xyzt_units("mm", "sec")
    nii.set_qform(image.affine, code=1)
    nii.set_sform(image.affine, code=1)
    suffix = ".nii.gz" if out.name.endswith(".nii.gz") else ".nii"
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=suffix, dir=out.parent)
    os.close(fd)
    try:
        nib.save(nii, tmp)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def write_label_map(labels: Image, path: str | Path) -> Path:
    """Write an integer label map as NIfTI on its own grid, in the smallest unsigned dtype."""
    max_label = int(labels.array.max()) if labels.array.size else 0
    return write_nifti(labels, path, dtype=label_dtype(max_label))
