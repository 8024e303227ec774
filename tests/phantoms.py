"""Analytic phantoms with known answers, written to disk in any orientation and format."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np


def ras_affine(spacing_mm: tuple[float, float, float], origin_mm: tuple[float, float, float] = (0, 0, 0)) -> np.ndarray:
    """Axis-aligned RAS+ affine: i runs towards the patient's right (+x), j anterior (+y), k superior (+z)."""
    affine = np.diag([*spacing_mm, 1.0])
    affine[:3, 3] = origin_mm
    return affine


def box_labels(shape: tuple[int, int, int], boxes: dict[int, tuple[slice, slice, slice]]) -> np.ndarray:
    """Label array with each value filling a box of voxel slices."""
    array = np.zeros(shape, dtype=np.int16)
    for value, box in boxes.items():
        array[box] = value
    return array


def reorient(
    array: np.ndarray,
    affine: np.ndarray,
    *,
    flips: tuple[bool, bool, bool] = (False, False, False),
    order: tuple[int, int, int] = (0, 1, 2),
) -> tuple[np.ndarray, np.ndarray]:
    """The same physical image stored with axes flipped and/or permuted (world positions unchanged)."""
    new_array = array
    new_affine = affine.copy()
    for axis, flip in enumerate(flips):
        if flip:
            n = array.shape[axis]
            new_array = np.flip(new_array, axis=axis)
            # voxel i in the new array is voxel n-1-i in the old one
            step = np.eye(4)
            step[axis, axis] = -1
            step[axis, 3] = n - 1
            new_affine = new_affine @ step
    new_array = np.transpose(new_array, order)
    perm = np.eye(4)
    perm[:3, :3] = np.eye(3)[:, order]
    return np.ascontiguousarray(new_array), new_affine @ perm


def save_nifti(path: Path, array: np.ndarray, affine: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(array, affine), str(path))
    return path


def two_muscle_phantom() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Labels, water, fat and affine of a simple bilateral phantom in the lpm4 scheme.

    Grid 40 x 30 x 10 at (1.0, 1.0, 4.0) mm, RAS+ (i runs towards the patient's right, see ras_affine).
    Label 1 (right ES): i 24..31, j 5..14, all 10 slices -> 8*10 = 80 voxels per slice.
    Label 4 (left ES): i 8..15, j 5..14, slices 2..7 -> 80 voxels per slice on 6 slices.
    Water 300 / fat 100 in label 1 (FF 25 %), water 200 / fat 200 in label 4 (FF 50 %).
    """
    shape = (40, 30, 10)
    labels = box_labels(
        shape, {1: (slice(24, 32), slice(5, 15), slice(0, 10)), 4: (slice(8, 16), slice(5, 15), slice(2, 8))}
    )
    water = np.full(shape, 10.0)
    fat = np.full(shape, 10.0)
    water[labels == 1], fat[labels == 1] = 300.0, 100.0
    water[labels == 4], fat[labels == 4] = 200.0, 200.0
    return labels, water, fat, ras_affine((1.0, 1.0, 4.0), (-20.0, -15.0, 0.0))
