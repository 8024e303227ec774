"""Synthetic lumbar spines with known disc planes: box-shaped bodies stacked along a tilted axis.

World frame RAS+ (mm). The spine axis ``a`` lies in the sagittal (y-z) plane, tilted ``tilt_deg``
from +z towards +y (anterior). Bodies are boxes aligned with ``a`` (height along ``a``, depth along
the in-plane perpendicular, width along x); a sacrum box sits below L5 with the same disc gap.
Disc k (between body k and the one below) has centre midway between them and normal ``a``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from paraspinal.io.image import Image

NAMES = ("L1", "L2", "L3", "L4", "L5")
BODY_HEIGHT_MM = 25.0
DISC_HEIGHT_MM = 10.0
PITCH_MM = BODY_HEIGHT_MM + DISC_HEIGHT_MM
BODY_DEPTH_MM = 32.0
BODY_WIDTH_MM = 40.0


@dataclass(frozen=True)
class SpinePhantom:
    """Label arrays per part (``bodies[name]``, ``discs[level]``, ``sacrum``) and the known answers."""

    affine: np.ndarray
    shape: tuple[int, int, int]
    bodies: dict[str, np.ndarray]  # boolean masks
    discs: dict[str, np.ndarray]
    sacrum: np.ndarray
    centres: dict[str, np.ndarray]  # disc level -> centre (mm)
    axis: np.ndarray  # cranial unit axis

    def image(self, array: np.ndarray, *, source: str = "<phantom>") -> Image:
        return Image(array=array, affine=self.affine.copy(), source=source)

    def encode(self, bodies: dict[str, int], discs: dict[str, int] | None = None, sacrum: int | None = None) -> Image:
        """A label map with the given values for bodies (by name), discs (by level) and the sacrum."""
        array = np.zeros(self.shape, dtype=np.int16)
        for name, value in bodies.items():
            array[self.bodies[name]] = value
        for level, value in (discs or {}).items():
            array[self.discs[level]] = value
        if sacrum is not None:
            array[self.sacrum] = sacrum
        return self.image(array)


def spine_phantom(
    *,
    tilt_deg: float = 12.0,
    spacing_mm: tuple[float, float, float] = (4.0, 1.0, 1.0),
    shape: tuple[int, int, int] = (14, 90, 230),
    top_mm: float = 95.0,
    names: tuple[str, ...] = NAMES,
) -> SpinePhantom:
    """The phantom on a sagittal RAS+ grid (i: x, sagittal slices; j: y; k: z), origin so the spine is central.

    ``top_mm``: world z of L1's centre along the axis from the origin point (0, 0, 0) of the spine line.
    ``names``: the bodies drawn, of L1-L5 and T12 (one pitch above L1).
    """
    t = np.radians(tilt_deg)
    axis = np.array([0.0, np.sin(t), np.cos(t)])
    depth = np.array([0.0, np.cos(t), -np.sin(t)])
    width = np.array([1.0, 0.0, 0.0])
    affine = np.diag([*spacing_mm, 1.0])
    affine[:3, 3] = -(np.asarray(shape) - 1) / 2 * np.asarray(spacing_mm)
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).reshape(-1, 3)
    world = ijk @ affine[:3, :3].T + affine[:3, 3]

    def box(centre: np.ndarray, half_height: float) -> np.ndarray:
        rel = world - centre
        inside = (
            (np.abs(rel @ axis) <= half_height)
            & (np.abs(rel @ depth) <= BODY_DEPTH_MM / 2)
            & (np.abs(rel @ width) <= BODY_WIDTH_MM / 2)
        )
        return inside.reshape(shape)

    body_centres = {name: axis * (top_mm - i * PITCH_MM) for i, name in enumerate(NAMES)}
    body_centres["T12"] = axis * (top_mm + PITCH_MM)  # only where ``names`` asks for it (it needs a taller grid)
    bodies = {name: box(body_centres[name], BODY_HEIGHT_MM / 2) for name in names}
    order = [*NAMES, "S1"]
    centres = {}
    discs = {}
    for i, name in enumerate(NAMES):
        level = f"{name}/{order[i + 1]}"
        centre = body_centres[name] - axis * PITCH_MM / 2
        centres[level] = centre
        discs[level] = box(centre, DISC_HEIGHT_MM / 2)
    sacrum_top = body_centres["L5"] - axis * (BODY_HEIGHT_MM / 2 + DISC_HEIGHT_MM)
    sacrum = box(sacrum_top - axis * 20.0, 20.0)
    return SpinePhantom(
        affine=affine, shape=shape, bodies=bodies, discs=discs, sacrum=sacrum, centres=centres, axis=axis
    )


def axial_stack(
    *,
    tilt_deg: float,
    z0_mm: float,
    n_slices: int = 40,
    spacing_mm: float = 4.0,
    pixel_mm: float = 1.0,
    n_pixels: int = 120,
    lps: bool = False,
    reverse: bool = False,
) -> Image:
    """An axial stack: slice planes tilted ``tilt_deg`` about x (normal towards +y from +z), slice 0's
    plane through (0, 0, ``z0_mm``) at its centre, slices stepping superior (``reverse``: inferior).

    ``lps`` stores the array as DICOM/ITK would (i towards patient left, j posterior); the world
    geometry is identical.
    """
    t = np.radians(tilt_deg)
    normal = np.array([0.0, np.sin(t), np.cos(t)])
    row = np.array([0.0, np.cos(t), -np.sin(t)])
    col = np.array([1.0, 0.0, 0.0])
    if lps:
        col, row = -col, -row
    step = -normal if reverse else normal
    affine = np.eye(4)
    affine[:3, 0] = col * pixel_mm
    affine[:3, 1] = row * pixel_mm
    affine[:3, 2] = step * spacing_mm
    centre = np.array([0.0, 0.0, z0_mm])
    half = (n_pixels - 1) / 2
    affine[:3, 3] = centre - affine[:3, 0] * half - affine[:3, 1] * half
    return Image(array=np.zeros((n_pixels, n_pixels, n_slices), dtype=np.int16), affine=affine, source="<axial>")
