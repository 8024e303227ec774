"""Reorient a volume to a model's axis order and back, exactly (flips and axis permutations only).

The target is given as nibabel axis codes, e.g. ``("R", "A", "S")``: array axis 0 then runs towards
the patient's right, axis 1 anterior, axis 2 superior. The voxel axis closest to each patient axis
is chosen from the affine, so any storage order (RAS, LPS, permuted) of the same physical image
gives the same reoriented array, and a mirrored affine gives a mirrored array.
"""

from __future__ import annotations

from dataclasses import dataclass

import nibabel.orientations as nio
import numpy as np

from paraspinal.io.image import Image


@dataclass(frozen=True)
class Oriented:
    """A volume in the target orientation plus what is needed to map results back.

    Attributes:
        array: the reoriented voxel values.
        affine: voxel -> RAS+ world (mm) of ``array``.
        source_ornt: nibabel orientation of the original array (from its affine).
        target_ornt: nibabel orientation of ``array``.
        original_shape: shape of the original array.
    """

    array: np.ndarray
    affine: np.ndarray
    source_ornt: np.ndarray
    target_ornt: np.ndarray
    original_shape: tuple[int, int, int]

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """Voxel edge lengths (mm) along the reoriented axes."""
        return tuple(float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]


def reorient(image: Image, *, axcodes: tuple[str, str, str]) -> Oriented:
    """``image``'s array with axes flipped/permuted so they run along ``axcodes``."""
    source = nio.io_orientation(image.affine)
    target = nio.axcodes2ornt(axcodes)
    transform = nio.ornt_transform(source, target)
    array = nio.apply_orientation(image.array, transform)
    affine = image.affine @ nio.inv_ornt_aff(transform, image.shape)
    return Oriented(
        array=np.ascontiguousarray(array),
        affine=affine,
        source_ornt=source,
        target_ornt=target,
        original_shape=image.shape,
    )


def restore_orientation(array: np.ndarray, oriented: Oriented) -> np.ndarray:
    """Map an array on ``oriented``'s grid (3-D, optionally with trailing axes) back onto the original grid."""
    transform = nio.ornt_transform(oriented.target_ornt, oriented.source_ornt)
    return np.ascontiguousarray(nio.apply_orientation(array, transform))
