"""Connected-component clean-up of label maps, with a record of what was removed.

Connectivity follows scipy's convention: 1 = faces (6-neighbourhood in 3-D), 2 = faces and
edges (18), 3 = faces, edges and corners (26).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from paraspinal.io.image import Image
from paraspinal.io.label_map import LabelMap


@dataclass(frozen=True)
class CleanupRecord:
    """What a clean-up step did to one label."""

    label: int
    step: str
    components_before: int
    voxels_kept: int
    voxels_removed: int
    volume_removed_mm3: float


def _label_boxes(array: np.ndarray) -> dict[int, tuple[slice, ...]]:
    """Bounding box of every non-zero label value."""
    boxes = ndimage.find_objects(array)
    return {value + 1: box for value, box in enumerate(boxes) if box is not None}


def _components(mask: np.ndarray, connectivity: int) -> tuple[np.ndarray, np.ndarray]:
    """Component ids of ``mask`` and each component's size (index 0 = background)."""
    structure = ndimage.generate_binary_structure(3, connectivity)
    components, n = ndimage.label(mask, structure=structure)
    sizes = np.bincount(components.ravel(), minlength=n + 1)
    return components, sizes


def keep_largest_component(labels: Image, *, connectivity: int = 1) -> tuple[Image, list[CleanupRecord]]:
    """Keep only the largest connected component of each label (the LPM_Segmentator step).

    Ties keep the component found first in array order. Returns the cleaned map on the same grid
    and one record per label present.
    """
    _check_connectivity(connectivity)
    array = labels.array.copy()
    records: list[CleanupRecord] = []
    voxel_mm3 = labels.voxel_volume_mm3
    for value, box in _label_boxes(array).items():
        region = array[box]
        components, sizes = _components(region == value, connectivity)
        n = len(sizes) - 1
        keep = int(np.argmax(sizes[1:])) + 1
        removed_mask = (components > 0) & (components != keep)
        removed = int(np.count_nonzero(removed_mask))
        region[removed_mask] = 0
        records.append(CleanupRecord(value, "largest_component", n, int(sizes[keep]), removed, removed * voxel_mm3))
    return labels.with_array(array), records


def clean_label_map(label_map: LabelMap, *, connectivity: int = 1) -> tuple[LabelMap, list[CleanupRecord]]:
    """:func:`keep_largest_component` on a label map, the step recorded in its provenance (the labels that lost
    voxels, how many, and the volume in mm³)."""
    labels, records = keep_largest_component(label_map.labels, connectivity=connectivity)
    changed = [dataclasses.asdict(r) for r in records if r.voxels_removed]
    return label_map.with_labels(labels, step={"step": "largest_component", "labels": changed}), records


def remove_small_objects(
    labels: Image, *, min_volume_mm3: float, connectivity: int = 1
) -> tuple[Image, list[CleanupRecord]]:
    """Remove connected components smaller than ``min_volume_mm3`` from every label."""
    _check_connectivity(connectivity)
    if min_volume_mm3 < 0:
        raise ValueError("min_volume_mm3 must be >= 0")
    array = labels.array.copy()
    voxel_mm3 = labels.voxel_volume_mm3
    records: list[CleanupRecord] = []
    for value, box in _label_boxes(array).items():
        region = array[box]
        components, sizes = _components(region == value, connectivity)
        small = np.flatnonzero(sizes * voxel_mm3 < min_volume_mm3)
        small = small[small > 0]
        removed_mask = np.isin(components, small)
        removed = int(np.count_nonzero(removed_mask))
        region[removed_mask] = 0
        kept = int(sizes[1:].sum()) - removed
        records.append(CleanupRecord(value, "min_volume", len(sizes) - 1, kept, removed, removed * voxel_mm3))
    return labels.with_array(array), records


def _check_connectivity(connectivity: int) -> None:
    if connectivity not in (1, 2, 3):
        raise ValueError(f"connectivity must be 1, 2 or 3 (faces, +edges, +corners), got {connectivity}")
