"""The lumbar spine recipe's T2 body labels: where the outlining model missed L1, the image is cut at L1/L2.
Recipe code, not shipped; tested on small label arrays."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest

from tests.recipes.support import load_recipe


@pytest.fixture(scope="module")
def recipe() -> ModuleType:
    return load_recipe("lumbar_spine/add_t2_bodies.py")


def _column(l1_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Bodies down a 60-row column (axis 0 superior -> inferior): L1 in the first ``l1_rows`` of rows 0-9,
    L2 rows 12-21, L3 rows 24-33; discs (value 5 = L1/L2) at rows 10-11."""
    bodies = np.zeros((60, 4, 4), dtype=np.uint8)
    bodies[0:l1_rows] = 1
    bodies[12:22] = 2
    bodies[24:34] = 3
    discs = np.zeros_like(bodies)
    discs[10:12] = 5
    return bodies, discs


def test_a_missed_l1_cuts_the_image_at_the_l1_l2_disc(recipe: ModuleType) -> None:
    assert recipe.missing_l1_crop(*_column(2)) == 10  # 32 L1 voxels < half of L2's 160
    assert recipe.missing_l1_crop(*_column(8)) == 0  # 128 >= 80: L1 found, nothing cut


def _spine(rows: int = 100) -> tuple[np.ndarray, object]:
    """A straight column down array axis 0 (superior -> inferior, 1 mm): discs 5 (L1/L2) ... 1 (L5/S1) two rows
    thick every 10 rows from row 30, and a foreground of every other row (bodies) from row 0 to the bottom."""
    from paraspinal.io import Image

    affine = np.array([[0.0, 0, 1, 0], [0, 1, 0, 0], [-1, 0, 0, 0], [0, 0, 0, 1]])  # row -> world -z (inferior)
    discs = np.zeros((rows, 6, 6), dtype=np.uint8)
    for k, value in enumerate(range(5, 0, -1)):
        discs[30 + 10 * k : 32 + 10 * k] = value
    return discs, Image(discs, affine)


def test_spine_bodies_names_t12_one_segment_above_l1_and_the_sacrum_below_l5_s1(recipe: ModuleType) -> None:
    discs, image = _spine()
    foreground = discs == 0
    lumbar = recipe.name_by_discs(foreground, image)
    both = recipe.name_by_discs(foreground, image, neighbours=True)
    column = both[:, 3, 3]
    # L1/L2 at rows 30-31 (centre 30.5), a segment is 10 mm: L1 rows 21-29, T12 rows 11-20, nothing above
    assert set(column[:10]) == {0} and set(column[11:20]) == {recipe.T12} and set(column[22:30]) == {1}
    assert set(column[72:]) == {recipe.SACRUM}  # below L5/S1 (rows 70-71)
    assert np.array_equal(np.where(both >= recipe.T12, 0, both), lumbar)  # L1-L5 as in lumbar_bodies


def test_a_missed_t12_or_sacrum_cuts_the_image_at_that_end(recipe: ModuleType) -> None:
    discs, image = _spine()
    both = recipe.name_by_discs(discs == 0, image, neighbours=True)
    assert recipe.missing_neighbour_rows(both, discs) == (0, 100)
    no_t12 = np.where(both == recipe.T12, 0, both)
    no_sacrum = np.where(both == recipe.SACRUM, 0, both)
    top_of_l1 = int(np.argwhere(both == 1)[:, 0].min())
    assert recipe.missing_neighbour_rows(no_t12, discs) == (top_of_l1, 100)
    assert recipe.missing_neighbour_rows(no_sacrum, discs) == (0, 70)  # the L5/S1 disc's first row
    # tilted: the upper edge of L1 one row deeper in one column: the cut goes below it, no T12 voxel is left
    tilted = no_t12.copy()
    tilted[top_of_l1, 0, 0] = 0
    top, _ = recipe.missing_neighbour_rows(tilted, discs)
    assert top == top_of_l1 + 1 and not np.any(both[top:] == recipe.T12)
