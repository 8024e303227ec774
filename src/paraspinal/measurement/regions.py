"""Turn a label map into measurable regions: one per (structure, patient side).

Sides come from the label scheme when it names them. Bilateral structures that a scheme leaves
unsided (e.g. Xu et al.'s ``multifidus``) are split at the patient's midline, found from the
affine: voxels with world x (RAS+) greater than the midline are on the patient's right. The
midline on each slice is the mean x of midline structures (vertebrae, discs, canal) on that
slice when present, otherwise the mean x of all labelled voxels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from paraspinal.anatomy import AnatomyRegistry, LabelScheme
from paraspinal.io.image import Image
from paraspinal.io.orientation import AxialFrame

SIDES = ("right", "left", "none")


@dataclass(frozen=True)
class Region:
    """One measured region: a registry structure on one patient side."""

    index: int
    structure: str
    side: str
    category: str
    bilateral: bool
    labels: tuple[int, ...]


@dataclass(frozen=True)
class RegionVoxels:
    """The labelled voxels of a case, flattened, with their region and axial slice.

    Attributes:
        regions: regions in table order; ``regions[r - 1].index == r``.
        region: region index of each labelled voxel (1-based).
        slice_index: axial slice of each labelled voxel.
        flat_index: flat (C-order) index of each voxel into the image array.
        laterality_mismatch: structures whose "right" label lies on the patient's left of its "left" label.
    """

    regions: tuple[Region, ...]
    region: np.ndarray
    slice_index: np.ndarray
    flat_index: np.ndarray
    laterality_mismatch: tuple[str, ...]


def region_voxels(labels: Image, *, scheme: LabelScheme, registry: AnatomyRegistry, frame: AxialFrame) -> RegionVoxels:
    """Assign every labelled voxel of ``labels`` to a (structure, side) region."""
    flat = np.flatnonzero(labels.array.ravel())
    values = labels.array.ravel()[flat]
    ijk = np.stack(np.unravel_index(flat, labels.shape), axis=1)
    slice_index = ijk[:, frame.slice_axis].astype(np.int64)
    x_mm = ijk @ labels.affine[0, :3] + labels.affine[0, 3]

    midline_values = [v for v, e in scheme.labels.items() if not registry[e.structure].bilateral]
    needs_split = any(e.side == "none" and registry[e.structure].bilateral for e in scheme.labels.values())
    midline = _midline_x_mm(x_mm, values, slice_index, midline_values, frame.n_slices) if needs_split else None

    keys: dict[tuple[str, str], list[int]] = {}
    voxel_key = np.zeros(flat.size, dtype=np.int64)
    region_of_key: dict[tuple[str, str], int] = {}
    for value in sorted(int(v) for v in np.unique(values)):
        entry = scheme.entry(value)
        structure = registry[entry.structure]
        in_label = values == value
        if entry.side == "none" and structure.bilateral:
            assert midline is not None
            right = x_mm[in_label] > midline[slice_index[in_label]]
            sides = np.where(right, "right", "left")
            for side in ("right", "left"):
                keys.setdefault((entry.structure, side), []).append(value)
            codes = np.empty(sides.shape, dtype=np.int64)
            for side in ("right", "left"):
                key = (entry.structure, side)
                region_of_key.setdefault(key, len(region_of_key) + 1)
                codes[sides == side] = region_of_key[key]
            voxel_key[in_label] = codes
        else:
            key = (entry.structure, entry.side)
            keys.setdefault(key, []).append(value)
            region_of_key.setdefault(key, len(region_of_key) + 1)
            voxel_key[in_label] = region_of_key[key]

    order = sorted(region_of_key, key=lambda k: (k[0], SIDES.index(k[1])))
    renumber = np.zeros(len(region_of_key) + 1, dtype=np.int64)
    regions = []
    for new_index, key in enumerate(order, start=1):
        renumber[region_of_key[key]] = new_index
        structure = registry[key[0]]
        regions.append(
            Region(new_index, key[0], key[1], structure.category, structure.bilateral, tuple(sorted(set(keys[key]))))
        )
    region = renumber[voxel_key]
    mismatch = _laterality_mismatch(tuple(regions), region, x_mm)
    return RegionVoxels(tuple(regions), region, slice_index, flat, mismatch)


def _midline_x_mm(
    x_mm: np.ndarray, values: np.ndarray, slice_index: np.ndarray, midline_values: list[int], n_slices: int
) -> np.ndarray:
    """Patient midline (world x, mm) for each axial slice."""
    fallback = float(x_mm.mean())
    if midline_values:
        on_midline = np.isin(values, midline_values)
        if on_midline.any():
            fallback = float(x_mm[on_midline].mean())
            counts = np.bincount(slice_index[on_midline], minlength=n_slices)
            sums = np.bincount(slice_index[on_midline], weights=x_mm[on_midline], minlength=n_slices)
            with np.errstate(invalid="ignore", divide="ignore"):
                per_slice = sums / counts
            return np.where(counts > 0, per_slice, fallback)
    counts = np.bincount(slice_index, minlength=n_slices)
    sums = np.bincount(slice_index, weights=x_mm, minlength=n_slices)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_slice = sums / counts
    return np.where(counts > 0, per_slice, fallback)


def _laterality_mismatch(regions: tuple[Region, ...], region: np.ndarray, x_mm: np.ndarray) -> tuple[str, ...]:
    """Structures whose right-side region lies to the patient's left of the left-side one."""
    sums = np.bincount(region, weights=x_mm, minlength=len(regions) + 1)
    counts = np.bincount(region, minlength=len(regions) + 1)
    by_key = {(r.structure, r.side): r.index for r in regions}
    mismatched = []
    for (structure, side), index in by_key.items():
        if side != "right" or (structure, "left") not in by_key:
            continue
        left = by_key[(structure, "left")]
        if counts[index] and counts[left] and sums[index] / counts[index] < sums[left] / counts[left]:
            mismatched.append(structure)
    return tuple(sorted(mismatched))
