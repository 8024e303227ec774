"""The spine recipe's T12 and sacrum pseudo-labels: the neighbour body one segment beyond L1 / L5, where the
image looks like the body it is copied from. Recipe code, not shipped; tested on a phantom column."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest

from tests.recipes.support import load_recipe


@pytest.fixture(scope="module")
def recipe() -> ModuleType:
    return load_recipe("lumbar_spine/add_neighbour_bodies.py")


def _column(*, bodies_above: int, bottom_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """A 5-body column along axis 0 (superior -> inferior), 20-row bodies every 25 rows, labelled L1-L5, with
    ``bodies_above`` unlabelled bodies above L1 and ``bottom_rows`` of an unlabelled body below L5 in view."""
    top = 25 * bodies_above + 3
    n_rows = top + 5 * 25 + bottom_rows
    image = np.full((n_rows, 30, 12), 10.0)
    labels = np.zeros(image.shape, dtype=np.uint8)
    for b in range(-bodies_above, 6):
        start = top + 25 * b
        rows = slice(max(start, 0), min(start + 20, n_rows))
        image[rows, 5:25, 2:10] = 100.0  # marrow-like, the same in every body
        if 0 <= b < 5:
            labels[rows, 5:25, 2:10] = b + 1
    return image, labels


def test_t12_and_the_sacrum_are_found_one_segment_beyond_l1_and_l5(recipe) -> None:
    image, labels = _column(bodies_above=1, bottom_rows=12)
    new, kept = recipe.add_neighbours(image, labels)
    t12_rows = np.unique(np.nonzero(new == recipe.T12)[0])
    sacrum_rows = np.unique(np.nonzero(new == recipe.SACRUM)[0])
    assert t12_rows.min() >= 3 and t12_rows.max() <= 22  # the body above L1 (rows 3-22), not the disc
    assert sacrum_rows.min() >= 153 and sacrum_rows.max() <= 155 + 12  # the part of the body below L5 in view
    assert kept["T12"] > 0.8 * 20 * 20 * 8 and kept["sacrum"] >= 400
    np.testing.assert_array_equal(new[labels > 0], labels[labels > 0])  # manual labels untouched


def test_a_neighbour_outside_the_view_or_unlike_the_body_gets_no_label(recipe) -> None:
    image, labels = _column(bodies_above=0, bottom_rows=2)
    new, kept = recipe.add_neighbours(image, labels)
    assert kept == {"T12": 0, "sacrum": 0} and not np.isin(new, (recipe.T12, recipe.SACRUM)).any()
    image, labels = _column(bodies_above=1, bottom_rows=12)
    image[:23] = 10.0  # nothing body-like above L1
    assert recipe.add_neighbours(image, labels)[1]["T12"] == 0
