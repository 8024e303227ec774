"""Write images and label maps as NIfTI on their own grid, atomically (temp file + rename)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from paraspinal.io.files import ensure_folder, os_errors_name, temp_file_for
from paraspinal.io.image import Image


def label_dtype(max_label: int) -> np.dtype:
    """Smallest unsigned integer dtype that holds ``max_label``."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if max_label <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.int64)


def write_nifti(
    image: Image, path: str | Path, *, dtype: np.dtype | None = None, compressed: bool | None = None
) -> Path:
    """Write ``image`` as NIfTI (``.nii`` or ``.nii.gz``) with its affine as sform and qform.

    The file appears complete or not at all: it is written to a temporary name and renamed; its mode
    follows the umask. ``compressed`` is needed only when ``path`` has no NIfTI suffix (a staged
    ``.part`` file of :class:`~paraspinal.reporting.AtomicOutputs`). A file-system error (read-only
    folder, full disk) is an :class:`OSError` naming ``path``.
    """
    import nibabel as nib

    out = Path(path)
    gz = _compressed(out, compressed)
    ensure_folder(out.parent)
    array = image.array if dtype is None else image.array.astype(dtype, copy=False)
    nii = nib.Nifti1Image(array, image.affine)
    nii.header.set_xyzt_units("mm", "sec")
    nii.set_qform(image.affine, code=1)
    nii.set_sform(image.affine, code=1)
    tmp = temp_file_for(out, suffix=".nii.gz" if gz else ".nii")
    try:
        with os_errors_name(out):
            nib.save(nii, tmp)
            os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


def write_label_map(labels: Image, path: str | Path, *, compressed: bool | None = None) -> Path:
    """Write an integer label map as NIfTI on its own grid, in the smallest unsigned dtype."""
    max_label = int(labels.array.max()) if labels.array.size else 0
    return write_nifti(labels, path, dtype=label_dtype(max_label), compressed=compressed)


def _compressed(path: Path, compressed: bool | None) -> bool:
    name = path.name.lower()
    by_name = name.endswith(".nii.gz") if name.endswith((".nii.gz", ".nii")) else None
    if by_name is None and compressed is None:
        raise ValueError(f"{path}: not a NIfTI name (.nii or .nii.gz); say whether to compress")
    if by_name is not None and compressed is not None and by_name != compressed:
        raise ValueError(f"{path}: the suffix contradicts compressed={compressed}")
    return by_name if by_name is not None else bool(compressed)
