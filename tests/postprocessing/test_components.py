"""Largest-component clean-up and small-object removal, with records of what was removed."""

from __future__ import annotations

import numpy as np
import pytest

from paraspinal.io.image import Image
from paraspinal.postprocessing import keep_largest_component, remove_small_objects
from tests.phantoms import ras_affine


def _labels() -> Image:
    array = np.zeros((30, 30, 10), np.int16)
    array[2:12, 2:12, 2:8] = 1  # 600 voxels
    array[20:23, 20:23, 2:4] = 1  # 18-voxel island
    array[14, 14, 5] = 1  # a single voxel
    array[2:10, 15:25, 1:9] = 2  # 640 voxels
    array[10, 25, 9] = 2  # touches the box only diagonally (corner)
    return Image(array, ras_affine((1.0, 1.0, 2.0)))


def test_keep_largest_component_per_label_and_records() -> None:
    cleaned, records = keep_largest_component(_labels())
    assert int((cleaned.array == 1).sum()) == 600
    assert int((cleaned.array == 2).sum()) == 640
    rec = {r.label: r for r in records}
    assert (rec[1].components_before, rec[1].voxels_removed) == (3, 19)
    assert rec[1].volume_removed_mm3 == pytest.approx(19 * 2.0)


def test_connectivity_26_keeps_diagonal_neighbours() -> None:
    cleaned, _ = keep_largest_component(_labels(), connectivity=3)
    assert int((cleaned.array == 2).sum()) == 641


def test_remove_small_objects_by_volume_in_mm3() -> None:
    cleaned, records = remove_small_objects(_labels(), min_volume_mm3=10.0)  # 2 mm3 voxels: < 5 voxels go
    assert int((cleaned.array == 1).sum()) == 618  # the single voxel (2 mm3) goes, the 36 mm3 island stays
    assert {r.label: r.voxels_removed for r in records} == {1: 1, 2: 1}


def test_bad_connectivity_is_refused() -> None:
    with pytest.raises(ValueError, match="connectivity must be 1, 2 or 3"):
        keep_largest_component(_labels(), connectivity=4)
