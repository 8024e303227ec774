"""Check that images and label maps share a voxel grid, and explain it when they do not."""

from __future__ import annotations

import numpy as np

from paraspinal.errors import GeometryError
from paraspinal.io.image import Image

DEFAULT_TOLERANCE_MM = 0.01


def _corners(image: Image) -> np.ndarray:
    """World positions (mm) of the 8 corner voxel centres of the grid, shape (8, 3)."""
    n = np.asarray(image.shape, dtype=np.float64) - 1.0
    ijk = np.array([[i, j, k] for i in (0, n[0]) for j in (0, n[1]) for k in (0, n[2])])
    return ijk @ image.affine[:3, :3].T + image.affine[:3, 3]


def grid_differences(reference: Image, other: Image, *, tolerance_mm: float = DEFAULT_TOLERANCE_MM) -> list[str]:
    """Human-readable differences between two grids; empty when they match.

    Grids match when the shapes are equal and every corner voxel centre lies within
    ``tolerance_mm`` of its counterpart (so float rounding in headers is tolerated, while a
    different origin, spacing or direction is not).
    """
    if reference.shape != other.shape:
        return [f"shape {other.shape} vs {reference.shape}"]
    shift = float(np.max(np.linalg.norm(_corners(reference) - _corners(other), axis=1)))
    if shift <= tolerance_mm:
        return []
    diffs: list[str] = []
    origin_ref, origin_oth = reference.affine[:3, 3], other.affine[:3, 3]
    if np.linalg.norm(origin_ref - origin_oth) > tolerance_mm:
        diffs.append(
            f"origin {_fmt(origin_oth)} vs {_fmt(origin_ref)} mm "
            f"({np.linalg.norm(origin_ref - origin_oth):.3g} mm apart)"
        )
    sp_ref, sp_oth = np.asarray(reference.spacing_mm), np.asarray(other.spacing_mm)
    if not np.allclose(sp_ref, sp_oth, rtol=0.0, atol=1e-9):
        diffs.append(f"spacing {_fmt(sp_oth, 7)} vs {_fmt(sp_ref, 7)} mm")
    dir_ref = reference.affine[:3, :3] / sp_ref
    dir_oth = other.affine[:3, :3] / sp_oth
    cosines = np.clip(np.sum(dir_ref * dir_oth, axis=0), -1.0, 1.0)
    angle = float(np.degrees(np.max(np.arccos(cosines))))
    if angle > 1e-3:
        diffs.append(f"axis directions differ by up to {angle:.3g} degrees")
    diffs.append(f"voxel centres up to {shift:.3g} mm apart")
    return diffs


def check_same_grid(
    reference: Image,
    other: Image,
    *,
    assume_aligned: bool = False,
    tolerance_mm: float = DEFAULT_TOLERANCE_MM,
) -> Image:
    """Return ``other`` on ``reference``'s grid, or raise :class:`GeometryError` saying what differs.

    Different shapes are always an error. Same shape with different headers is an error unless
    ``assume_aligned`` is set, in which case the voxels are taken as aligned and ``other`` is
    returned with ``reference``'s affine (the difference is kept in ``metadata['header_mismatch']``).
    """
    diffs = grid_differences(reference, other, tolerance_mm=tolerance_mm)
    if not diffs:
        return other
    summary = "; ".join(diffs)
    if reference.shape != other.shape:
        raise GeometryError(
            f"voxel grid does not match {reference.source}: {summary}; resample one onto the other first",
            path=other.source,
        )
    if not assume_aligned:
        raise GeometryError(
            f"header differs from {reference.source} on the same {reference.shape} grid: {summary}; "
            "if the voxels are known to be aligned, pass --assume-aligned",
            path=other.source,
        )
    aligned = Image(
        array=other.array,
        affine=reference.affine.copy(),
        source=other.source,
        metadata={**other.metadata, "header_mismatch": summary},
    )
    return aligned


def _fmt(values: np.ndarray, digits: int = 5) -> str:
    return "(" + ", ".join(f"{float(v) + 0.0:.{digits}g}" for v in values) + ")"
