"""Anatomy-honest 2-D augmentation for training slices (numpy + scipy, driven by one ``Generator``).

Spatial: a crop centred on a random (mostly foreground) pixel, rotated, scaled (slightly
anisotropically) and elastically deformed in one resampling; a left-right flip also swaps every
sided label for its other-side value (from the label scheme), so "right" keeps meaning the
patient's right. Intensity: smooth bias field, random intensity curve, inversion, gamma, contrast
and brightness, blur, noise and low-resolution simulation, so one model serves water, fat, T1
and T2 images. Field of view: optionally blanks the crop beyond a random line across one of the
patient directions ``fov_cut_sides`` (image 0, labels background), as if the scan had stopped there, so
a model cannot name what it sees from where the image ends (a spine model counting vertebrae from
the top of the image). Inputs are normalised to [0, 1] (see :func:`paraspinal.preprocessing.percentile_scale`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation strengths and probabilities (pixels are model pixels, angles in degrees).

    ``synth_probability``: share of crops whose image is a contrast synthesised from all channels of the
    case (:mod:`paraspinal.training.synth`; ``synth_mix_fraction`` of them a channel mix, the rest
    per-tissue intensities over ``synth_tissue_classes`` k-means classes). ``thick_slice_probability``:
    share of crops blended with their neighbouring slices (weight up to ``thick_slice_max_weight``).
    """

    crop_px: int = 192
    foreground_fraction: float = 0.7
    flip_probability: float = 0.5
    rotation_deg: float = 15.0
    scale_min: float = 0.8
    scale_max: float = 1.25
    anisotropy: float = 0.1
    elastic_probability: float = 0.3
    elastic_px: float = 4.0
    elastic_grid_px: int = 32
    bias_probability: float = 0.3
    bias_strength: float = 0.3
    curve_probability: float = 0.25
    invert_probability: float = 0.25
    gamma_min: float = 0.6
    gamma_max: float = 1.6
    contrast_min: float = 0.7
    contrast_max: float = 1.3
    brightness: float = 0.1
    blur_probability: float = 0.15
    noise_probability: float = 0.2
    noise_std: float = 0.05
    lowres_probability: float = 0.15
    fov_cut_probability: float = 0.0
    fov_cut_max_fraction: float = 0.6
    fov_cut_sides: tuple[str, ...] = ()
    synth_probability: float = 0.0
    synth_mix_fraction: float = 0.5
    synth_tissue_classes: int = 6
    thick_slice_probability: float = 0.0
    thick_slice_max_weight: float = 0.5

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


_OPPOSITE = {"R": "L", "L": "R", "A": "P", "P": "A", "S": "I", "I": "S"}


def fov_cut_directions(sides: tuple[str, ...], *, inplane_axcodes: tuple[str, str]) -> list[tuple[int, bool]]:
    """``(in-plane axis, cut at the high-index end)`` for each patient direction in ``sides``, given the
    directions the two in-plane array axes run towards (e.g. ``("P", "S")``: axis 1 runs to superior,
    so ``"S"`` blanks its high end). Raises ValueError for a code that is not R/L/A/P/S/I or runs
    across the slices."""
    out = []
    for side in sides:
        code = str(side).upper()
        if code not in _OPPOSITE:
            raise ValueError(f"fov_cut_sides: {side!r} is not one of R, L, A, P, S, I")
        if code in inplane_axcodes:
            out.append((inplane_axcodes.index(code), True))
        elif _OPPOSITE[code] in inplane_axcodes:
            out.append((inplane_axcodes.index(_OPPOSITE[code]), False))
        else:
            raise ValueError(
                f"fov_cut_sides: {code!r} runs across the slices (in-plane axes {''.join(inplane_axcodes)})"
            )
    return out


def _cut_field_of_view(
    image: np.ndarray,
    classes: np.ndarray,
    *,
    rng: np.random.Generator,
    config: AugmentConfig,
    cuts: list[tuple[int, bool]],
) -> tuple[np.ndarray, np.ndarray]:
    """With ``fov_cut_probability``: image (channels, h, w) and classes (h, w) blanked beyond a random line
    (up to ``fov_cut_max_fraction`` of the crop) on one of the ``cuts`` sides; otherwise unchanged."""
    if not cuts or config.fov_cut_probability <= 0.0 or rng.random() >= config.fov_cut_probability:
        return image, classes
    axis, high = cuts[int(rng.integers(len(cuts)))]
    n = classes.shape[axis]
    width = int(rng.integers(1, max(int(config.fov_cut_max_fraction * n), 1) + 1))  # pixels blanked
    blank = [slice(None), slice(None)]
    blank[axis] = slice(n - width, n) if high else slice(0, width)
    image, classes = image.copy(), classes.copy()
    image[(slice(None), *blank)] = 0.0
    classes[tuple(blank)] = 0
    return image, classes


def _crop_centre(classes: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    if rng.random() < config.foreground_fraction:
        fg = np.flatnonzero(classes)
        if fg.size:
            return np.asarray(np.unravel_index(fg[rng.integers(fg.size)], classes.shape), dtype=np.float64)
    return rng.uniform(0, 1, size=2) * (np.asarray(classes.shape) - 1)


def _coordinates(rng: np.random.Generator, config: AugmentConfig, centre: np.ndarray) -> np.ndarray:
    """Source coordinates (2, crop, crop) of each output pixel."""
    n = config.crop_px
    grid = np.mgrid[0:n, 0:n].astype(np.float64) - (n - 1) / 2.0
    angle = np.radians(rng.uniform(-config.rotation_deg, config.rotation_deg))
    scale = np.exp(rng.uniform(np.log(config.scale_min), np.log(config.scale_max)))
    stretch = np.exp(rng.uniform(-config.anisotropy, config.anisotropy, size=2))
    # output pixel offset -> source offset: zoom in (scale > 1) means fewer source pixels per output pixel
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix = rot @ np.diag(1.0 / (scale * stretch))
    coords = np.einsum("ij,jxy->ixy", matrix, grid) + centre[:, None, None]
    if rng.random() < config.elastic_probability:
        coarse_n = max(2, n // config.elastic_grid_px + 2)
        coarse = rng.normal(0.0, config.elastic_px, size=(2, coarse_n, coarse_n))
        zoom = n / coarse_n
        coords += np.stack([ndimage.zoom(c, zoom, order=3, grid_mode=True, mode="nearest")[:n, :n] for c in coarse])
    return coords


def _intensity(image: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """Random intensity changes of a ``(channels, h, w)`` stack, the same for every channel."""
    x = image
    plane = x.shape[1:]
    if rng.random() < config.bias_probability:
        coarse = rng.normal(0.0, config.bias_strength, size=(3, 3))
        field = ndimage.zoom(coarse, np.asarray(plane) / 3, order=3, grid_mode=True, mode="nearest")
        x = x * np.exp(field[: plane[0], : plane[1]])
    if rng.random() < config.curve_probability:
        knots = np.sort(rng.uniform(0, 1, size=5))
        x = np.interp(np.clip(x, 0, 1), np.linspace(0, 1, 5), knots)
    if rng.random() < config.invert_probability:
        x = 1.0 - np.clip(x, 0, 1)
    gamma = np.exp(rng.uniform(np.log(config.gamma_min), np.log(config.gamma_max)))
    x = np.power(np.clip(x, 0, None), gamma)
    mean = float(x.mean())
    x = (x - mean) * rng.uniform(config.contrast_min, config.contrast_max) + mean
    x = x + rng.uniform(-config.brightness, config.brightness)
    if rng.random() < config.blur_probability:
        sigma = rng.uniform(0.5, 1.5)
        x = ndimage.gaussian_filter(x, sigma=(0.0, sigma, sigma))
    if rng.random() < config.lowres_probability:
        factor = rng.uniform(1.5, 2.5)
        small = ndimage.zoom(x, (1.0, 1 / factor, 1 / factor), order=1, grid_mode=True, mode="nearest")
        x = ndimage.zoom(small, np.asarray(x.shape) / np.asarray(small.shape), order=1, grid_mode=True, mode="nearest")
    if rng.random() < config.noise_probability:
        x = x + rng.normal(0.0, rng.uniform(0, config.noise_std), size=x.shape)
    return x.astype(np.float32)


def augment_slice(
    image: np.ndarray,
    classes: np.ndarray,
    *,
    rng: np.random.Generator,
    config: AugmentConfig,
    swap_lut: np.ndarray,
    lr_axis: int | None,
    fov_cuts: list[tuple[int, bool]] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One augmented training pair from a 2-D slice and its class-index map.

    ``image`` is ``(h, w)`` or a ``(channels, h, w)`` stack (2.5-D: neighbouring slices), which gets
    the same spatial and intensity changes on every channel; the output image has the input's
    layout with ``(crop, crop)`` pixels, the classes ``(crop, crop)``. ``swap_lut[c]`` is the class
    of the same structure on the other side (identity for unsided and background); ``lr_axis`` is
    the in-plane array axis running between the patient's left and right; ``fov_cuts`` the
    field-of-view cut directions (:func:`fov_cut_directions`; None or empty: no cut).
    """
    stack = image[None] if image.ndim == 2 else image
    centre = _crop_centre(classes, rng, config)
    coords = _coordinates(rng, config, centre)
    out_image = np.stack(
        [ndimage.map_coordinates(c, coords, order=1, mode="constant", cval=0.0, prefilter=False) for c in stack]
    )
    out_classes = ndimage.map_coordinates(classes, coords, order=0, mode="constant", cval=0)
    if lr_axis is not None and rng.random() < config.flip_probability:
        out_image = np.flip(out_image, axis=1 + lr_axis)
        out_classes = swap_lut[np.flip(out_classes, axis=lr_axis)]
    out_image, out_classes = _cut_field_of_view(out_image, out_classes, rng=rng, config=config, cuts=fov_cuts or [])
    out_image = _intensity(out_image, rng, config)
    if image.ndim == 2:
        out_image = out_image[0]
    return np.ascontiguousarray(out_image), np.ascontiguousarray(out_classes.astype(np.int64))
