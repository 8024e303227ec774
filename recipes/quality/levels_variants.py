"""Shifted variants of the sagittal spines for calibrating the levels quality (see ``calibrate_levels.py``).

Every variant keeps world positions: a cut moves the affine's origin, a resampling scales its columns, a
storage flip negates one. So the manual bodies' centres, computed once on the original grid in world mm, stay
the ground truth; a body counts only when its centre is in the variant's field of view.

Array convention of ``/work/shared/data/spine-sagittal``: axis 0 runs superior -> inferior, axis 1 anterior ->
posterior, axis 2 across (see its README).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from paraspinal.io.image import Image

LUMBAR = ("L1", "L2", "L3", "L4", "L5")
KINDS = (
    "cut_sacrum",  # the image ends 2-8 mm below L5: no sacrum in view
    "cut_l5",  # the image ends inside L5 or just below L4
    "cut_top",  # the image starts 8 mm above L2 or L3
    "extend_top",  # 60-100 mm reflected above the top: thoracic-like bodies
    "t11_l5",  # extended at the top and cut below L5 (the T11-L5 view)
    "invert",  # T2-like: tissue intensities inverted
    "gamma",  # gamma 0.5 or 2
    "resample",  # in-plane 0.7 or 1.4 mm, or 3-4 mm slices
    "flip",  # stored inferior -> superior and posterior -> anterior (same world)
)


@dataclass(frozen=True)
class Truth:
    """The manual bodies: centre (world mm) of each lumbar body, and its top/bottom rows on the original grid."""

    centres_mm: dict[str, np.ndarray]
    top_row: dict[str, int]
    bottom_row: dict[str, int]


def truth_from_bodies(labels: np.ndarray, affine: np.ndarray) -> Truth:
    """Truth of a Dixon spine (labels 1-5 = L1-L5 bodies)."""
    centres, top, bottom = {}, {}, {}
    for value, name in enumerate(LUMBAR, start=1):
        ijk = np.argwhere(labels == value)
        if len(ijk) == 0:
            continue
        centres[name] = ijk.mean(axis=0) @ affine[:3, :3].T + affine[:3, 3]
        top[name], bottom[name] = int(ijk[:, 0].min()), int(ijk[:, 0].max())
    return Truth(centres, top, bottom)


def truth_from_discs(labels: np.ndarray, affine: np.ndarray) -> Truth:
    """Truth of a T2 spine (labels 1 = L5/S1 ... 5 = L1/L2 discs): a body's centre midway between its discs
    (L1: one pitch above L1/L2's midpoint to L2/L3), its rows from the discs' facing edges."""
    discs = {}
    rows = {}
    for value in range(1, 6):
        ijk = np.argwhere(labels == value)
        if len(ijk):
            discs[value] = ijk.mean(axis=0)
            rows[value] = (int(ijk[:, 0].min()), int(ijk[:, 0].max()))
    centres, top, bottom = {}, {}, {}
    for k, name in enumerate(LUMBAR, start=1):  # body Lk between disc value 7-k (above) and 6-k (below)
        above, below = 7 - k, 6 - k
        if above in discs and below in discs:
            c = (discs[above] + discs[below]) / 2
            top[name], bottom[name] = rows[above][1] + 1, rows[below][0] - 1
        elif below in discs and (below - 1) in discs:  # L1: extrapolate one pitch up
            c = 1.5 * discs[below] - 0.5 * discs[below - 1]
            top[name] = round(c[0] - (rows[below][0] - c[0]))
            bottom[name] = rows[below][0] - 1
        else:
            continue
        centres[name] = c @ affine[:3, :3].T + affine[:3, 3]
    return Truth(centres, top, bottom)


def _crop_rows(image: Image, labels: np.ndarray, start: int, stop: int) -> tuple[Image, np.ndarray]:
    start, stop = max(start, 0), min(stop, image.shape[0])
    affine = image.affine.copy()
    affine[:3, 3] = image.affine[:3, 0] * start + image.affine[:3, 3]
    return Image(np.asarray(image.array)[start:stop], affine, source=image.source), labels[start:stop]


def _tissue_scaled(array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = array.astype(np.float32)
    hi = float(np.percentile(a, 99.5)) or 1.0
    return np.clip(a / hi, 0, 1), a > np.percentile(a, 20)


def make_variant(
    image: Image, labels: np.ndarray, truth: Truth, *, kind: str, rng: np.random.Generator
) -> tuple[Image, np.ndarray, str]:
    """One shifted variant of ``image`` (and its labels on the new grid) and a short description."""
    array = np.asarray(image.array)
    if kind in ("cut_sacrum", "t11_l5"):
        stop = truth.bottom_row["L5"] + 1 + int(rng.integers(2, 9))
        image, labels = _crop_rows(image, labels, 0, stop)
        what = f"cut {stop}"
        if kind == "t11_l5":
            image, labels, more = make_variant(image, labels, truth, kind="extend_top", rng=rng)
            what += ", " + more
        return image, labels, what
    if kind == "cut_l5":
        mid_l5 = rng.random() < 0.5
        stop = (truth.top_row["L5"] + truth.bottom_row["L5"]) // 2 if mid_l5 else truth.bottom_row["L4"] + 6
        return (*_crop_rows(image, labels, 0, stop), f"cut {stop}")
    if kind == "cut_top":
        level = str(rng.choice(["L2", "L3"]))
        start = truth.top_row[level] - 8
        return (*_crop_rows(image, labels, start, image.shape[0]), f"from {level}")
    if kind == "extend_top":
        pad = int(rng.integers(60, 101))
        pad = min(pad, array.shape[0] - 1)
        out = np.concatenate([array[1 : pad + 1][::-1], array], axis=0)
        lab = np.concatenate([np.zeros_like(labels[:pad]), labels], axis=0)
        affine = image.affine.copy()
        affine[:3, 3] = image.affine[:3, 3] - image.affine[:3, 0] * pad
        return Image(out, affine, source=image.source), lab, f"reflected {pad} mm on top"
    if kind == "invert":
        scaled, tissue = _tissue_scaled(array)
        out = np.where(tissue, 1.0 - scaled, 0.0) * 255
        return Image(out.astype(np.float32), image.affine, source=image.source), labels, "inverted"
    if kind == "gamma":
        g = float(rng.choice([0.5, 2.0]))
        scaled, _ = _tissue_scaled(array)
        return Image((scaled**g * 255).astype(np.float32), image.affine, source=image.source), labels, f"gamma {g}"
    if kind == "resample":
        choice = int(rng.integers(3))
        zoom = [(1 / 0.7, 1 / 0.7, 1.0), (1 / 1.4, 1 / 1.4, 1.0), (1.0, 1.0, 1 / float(rng.choice([3.0, 4.0])))][choice]
        src = ndimage.gaussian_filter(array.astype(np.float32), [max(0.0, 0.4 / z - 0.4) for z in zoom])
        out = ndimage.zoom(src, zoom, order=1)
        lab = ndimage.zoom(labels, zoom, order=0)
        affine = image.affine.copy()
        shape_ratio = np.array(array.shape) / np.array(out.shape)
        affine[:3, :3] = image.affine[:3, :3] * shape_ratio
        affine[:3, 3] = image.affine[:3, 3] + image.affine[:3, :3] @ ((shape_ratio - 1) / 2)
        spacing = np.linalg.norm(affine[:3, :3], axis=0)
        return Image(out, affine, source=image.source), lab, "spacing " + "x".join(f"{s:.2f}" for s in spacing)
    if kind == "flip":
        out, lab = array[::-1, ::-1], labels[::-1, ::-1]
        affine = image.affine.copy()
        for axis in (0, 1):
            affine[:3, 3] = affine[:3, 3] + affine[:3, axis] * (array.shape[axis] - 1)
            affine[:3, axis] = -affine[:3, axis]
        return Image(np.ascontiguousarray(out), affine, source=image.source), np.ascontiguousarray(lab), "flipped"
    raise ValueError(f"unknown variant {kind}")


def in_view(truth: Truth, image: Image) -> dict[str, np.ndarray]:
    """The manual body centres inside ``image``'s field of view (at least 5 mm from its S-I ends)."""
    inverse = np.linalg.inv(image.affine)
    kept = {}
    for name, centre in truth.centres_mm.items():
        ijk = inverse[:3, :3] @ centre + inverse[:3, 3]
        spacing = float(np.linalg.norm(image.affine[:3, 0]))
        margin = 5.0 / spacing
        if margin <= ijk[0] <= image.shape[0] - 1 - margin:
            kept[name] = centre
    return kept
