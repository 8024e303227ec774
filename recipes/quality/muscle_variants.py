"""Shifted variants of TUM01 for calibrating muscle quality: other contrasts, bias, noise, pixel sizes, slices.

Every variant is (name, image, reference labels) on one grid; all come from one subject (TUM01), so a variant is
a distribution shift of the same anatomy, not a new person. Randomness comes from ``np.random.default_rng(seed)``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy import ndimage

from paraspinal.io import Image, read_image
from paraspinal.sample import sample_case


def _unit(a: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(a, [0.5, 99.5])
    return np.clip((a - lo) / max(hi - lo, 1e-6), 0.0, 1.5).astype(np.float32)


def _bias(shape: tuple[int, ...], strength: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth multiplicative field exp(strength * (linear + quadratic in-plane terms)), mean about 1."""
    x, y = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    c = rng.normal(size=4)
    field = c[0] * x + c[1] * y + 0.5 * c[2] * x * x + 0.5 * c[3] * y * y
    field = field / max(np.abs(field).max(), 1e-6)
    return np.exp(strength * field)[:, :, None].astype(np.float32)


def _resample(image: np.ndarray, labels: np.ndarray, affine: np.ndarray, px_mm: float):
    """In-plane resampling to ``px_mm`` pixels, same field of view (labels nearest, image linear)."""
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    zoom = (spacing[0] / px_mm, spacing[1] / px_mm, 1.0)
    img = ndimage.zoom(image, zoom, order=1, grid_mode=True, mode="nearest")
    lab = ndimage.zoom(labels, zoom, order=0, grid_mode=True, mode="nearest")
    new = affine.copy()
    new[:3, 0] *= image.shape[0] / img.shape[0]
    new[:3, 1] *= image.shape[1] / img.shape[1]
    return img, lab, new


def tum01_variants(*, seed: int = 0) -> Iterator[tuple[str, Image, np.ndarray]]:
    """(name, image, reference labels) for TUM01 water, fat and their shifted variants."""
    case = sample_case()
    water_img = read_image(case.fat)  # the fat file has the real origin; the water grid is the same
    affine = water_img.affine
    water = _unit(np.asarray(read_image(case.water).array, dtype=np.float32))
    fat = _unit(np.asarray(water_img.array, dtype=np.float32))
    ref = np.asarray(read_image(case.labels).array).astype(np.uint8)
    rng = np.random.default_rng(seed)
    base: dict[str, np.ndarray] = {"water": water, "fat": fat}
    for a in (0.25, 0.5, 0.75):
        base[f"mix{a:g}"] = a * water + (1 - a) * fat
    base["t2like"] = _unit(fat + 0.6 * (1.0 - np.clip(water, 0, 1)) * (water > 0.05))
    base["inverted_water"] = _unit((1.2 - water) * (water > 0.05))
    base["inverted_fat"] = _unit((1.2 - fat) * (fat > 0.02))
    variants: dict[str, np.ndarray] = dict(base)
    for name in ("water", "fat", "t2like"):
        for g in (0.4, 2.5):
            variants[f"{name}_gamma{g:g}"] = np.clip(base[name], 0, None) ** g
        for s in (0.6, 1.2):
            variants[f"{name}_bias{s:g}"] = base[name] * _bias(water.shape, s, rng)
        for sd in (0.08, 0.2):
            variants[f"{name}_noise{sd:g}"] = np.abs(base[name] + rng.normal(scale=sd, size=water.shape))
        variants[f"{name}_thick"] = ndimage.uniform_filter1d(base[name], 3, axis=2)
    for name in ("water", "fat", "t2like"):  # harder shifts: the model should fail on some of these slices
        variants[f"{name}_noise0.35"] = np.abs(base[name] + rng.normal(scale=0.35, size=water.shape))
        variants[f"{name}_bias2"] = base[name] * _bias(water.shape, 2.0, rng)
        variants[f"{name}_blur2"] = ndimage.gaussian_filter(base[name], (2.0, 2.0, 0.0))
        variants[f"{name}_gamma0.2"] = np.clip(base[name], 0, None) ** 0.2
    for i in range(6):  # random contrasts: a water/fat mix, a gamma, an optional inversion, noise
        a, g, sd = rng.uniform(0, 1), np.exp(rng.uniform(-1.2, 1.2)), rng.uniform(0.0, 0.25)
        mix = np.clip(a * water + (1 - a) * fat, 0, None) ** g
        if rng.uniform() < 0.5:
            mix = (1.2 - mix) * (np.maximum(water, fat) > 0.05)
        variants[f"random{i}"] = np.abs(mix + rng.normal(scale=sd, size=water.shape))
    variants["fat_bias1.2_noise0.15"] = np.abs(
        base["fat"] * _bias(water.shape, 1.2, rng) + rng.normal(scale=0.15, size=water.shape)
    )
    variants["t2like_gamma2_noise0.12"] = np.abs(base["t2like"] ** 2 + rng.normal(scale=0.12, size=water.shape))
    for name, array in variants.items():
        yield name, Image((array * 1000).astype(np.float32), affine, source=f"TUM01 {name}"), ref
    for name in ("water", "fat"):
        for px in (0.45, 0.7, 1.2):
            img, lab, new = _resample(base[name], ref, affine, px)
            yield f"{name}_px{px:g}", Image((img * 1000).astype(np.float32), new, source=f"TUM01 {name} {px} mm"), lab
        # field of view cut: a tight box round the muscles (the body outline is lost)
        ii, jj, _ = np.nonzero(ref)
        box = (slice(max(ii.min() - 25, 0), ii.max() + 25), slice(max(jj.min() - 25, 0), jj.max() + 25))
        cut_aff = affine.copy()
        cut_aff[:3, 3] = affine[:3, :3] @ np.array([box[0].start, box[1].start, 0]) + affine[:3, 3]
        arr = np.ascontiguousarray(base[name][box[0], box[1]])
        yield (
            f"{name}_fovcut",
            Image((arr * 1000).astype(np.float32), cut_aff, source=f"TUM01 {name} cut"),
            np.ascontiguousarray(ref[box[0], box[1]]),
        )
