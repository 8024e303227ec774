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
