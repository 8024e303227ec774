"""What the nnU-Net v1 and v2 backends share: their options, the folds of a trainer folder, nnU-Net's prints
kept quiet, and the (z, y, x) array nnU-Net's readers make of an image (and the way back to its grid).

v1 and v2 pick folds by different rules (:func:`v1_folds`, :func:`v2_folds`), as their own predictors do.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from paraspinal.backends.catalog import BackendOptions
from paraspinal.errors import InputError
from paraspinal.io.image import Image


def nnunet_options(options: BackendOptions) -> dict[str, Any]:
    """The keyword arguments of an nnU-Net backend's constructor taken from ``options``."""
    return {
        "folds": options.folds,
        "checkpoint": options.checkpoint,
        "device": options.device,
        "test_time_flip": options.test_time_flip,
        "threads": options.threads,
        "scheme": options.scheme,
    }


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Swallow nnU-Net's prints (progress, unset-path notices) and its library warnings."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def v1_folds(folder: Path, folds: tuple[str, ...] | None, checkpoint: str) -> list[str]:
    """v1 fold folder names (``fold_0``, ``all``) to ensemble; one-line errors for missing folders or files."""
    names = [f"fold_{f}" if f != "all" else "all" for f in folds] if folds else None
    if names is None:
        names = sorted((p.name for p in folder.glob("fold_*") if p.is_dir()), key=lambda n: (len(n), n))
        if not names:
            raise InputError("no fold_K folder (not an nnU-Net v1 trainer folder?)", path=folder)
    for name in names:
        fold_dir = folder / name
        if not fold_dir.is_dir():
            raise InputError(f"fold folder {name} not found", path=folder)
        for suffix in (".model", ".model.pkl"):
            if not (fold_dir / f"{checkpoint}{suffix}").is_file():
                raise InputError(f"checkpoint {checkpoint}{suffix} not found", path=fold_dir)
    return names


def v2_folds(folder: Path, folds: tuple[str, ...] | None, checkpoint: str) -> list[str]:
    """v2 fold names (``"0"``, ``"all"``) to ensemble: the requested ones, or every fold holding the checkpoint."""
    if folds:
        for fold in folds:
            fold_dir = folder / f"fold_{fold}"
            if not fold_dir.is_dir():
                raise InputError(f"fold folder fold_{fold} not found", path=folder)
            if not (fold_dir / checkpoint).is_file():
                raise InputError(f"checkpoint {checkpoint} not found", path=fold_dir)
        return [str(f) for f in folds]
    found = sorted(
        (p.name.removeprefix("fold_") for p in folder.glob("fold_*") if (p / checkpoint).is_file()),
        key=lambda f: (not f.isdigit(), int(f) if f.isdigit() else 0, f),
    )
    numbered = [f for f in found if f.isdigit()]
    chosen = numbered or found  # like nnU-Net: fold_all only when it is the only one
    if not chosen:
        raise InputError(f"no fold_K folder holds {checkpoint} (not a trained nnU-Net model folder?)", path=folder)
    return chosen


def nnunet_input(image: Image, reader: str) -> tuple[np.ndarray, list[float], tuple | None]:
    """What nnU-Net's ``reader`` makes of ``image``: array (1, z, y, x) float32, spacing (z, y, x) mm, undo.

    ``SimpleITKIO`` / ``NibabelIO``: the array as stored with its axes reversed (the affine's orientation is
    not used); ``NibabelIOWithReorient``: first reoriented to the closest RAS+ axis order.
    """
    array, affine = image.array, image.affine
    back = None
    if reader == "NibabelIOWithReorient":
        from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, io_orientation, ornt_transform

        ornt = io_orientation(affine)
        affine = affine @ inv_ornt_aff(ornt, array.shape)
        array = apply_orientation(array, ornt)
        back = ornt_transform(axcodes2ornt("RAS"), ornt)
    spacing = [float(s) for s in np.linalg.norm(affine[:3, :3], axis=0)[::-1]]
    data = np.ascontiguousarray(np.asarray(array, dtype=np.float32).transpose(2, 1, 0)[None])
    return data, spacing, back


def restore_grid(seg_zyx: np.ndarray, back: object) -> np.ndarray:
    """Undo :func:`nnunet_input`'s axis reversal (and reorientation) on a (z, y, x) label array."""
    seg = np.asarray(seg_zyx).transpose(2, 1, 0)
    if back is not None:
        from nibabel.orientations import apply_orientation

        seg = apply_orientation(seg, back)
    return np.ascontiguousarray(seg)
