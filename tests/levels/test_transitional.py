"""Masks that name transitional vertebrae (SPINEPS's L6 and T13) are flagged, not silently renumbered."""

from __future__ import annotations

import numpy as np
import pytest

from paraspinal.anatomy import load_scheme
from paraspinal.io import Image
from paraspinal.io.label_map import LabelMap
from paraspinal.levels import spine_levels_from_labels
from tests.spine_phantoms import spine_phantom

SPINEPS = {"T13": 28, "L1": 20, "L2": 21, "L3": 22, "L4": 23, "L5": 24, "L6": 25}  # VerSe numbering


def _levels(relabel: dict[str, str]):
    phantom = spine_phantom()
    array = np.zeros(phantom.shape, np.uint16)
    for name, mask in phantom.bodies.items():
        array[mask] = SPINEPS[relabel.get(name, name)]
    array[phantom.sacrum] = 26
    return spine_levels_from_labels(LabelMap.given(Image(array, phantom.affine), load_scheme("spineps")))


def test_five_lumbar_vertebrae_in_spineps_numbering_name_the_five_discs():
    result = _levels({})
    assert [d.name for d in result.discs] == ["L1/L2", "L2/L3", "L3/L4", "L4/L5", "L5/S1"]
    assert result.naming_confidence == pytest.approx(1.0)
    assert not any("transitional" in w for w in result.warnings)


@pytest.mark.parametrize(
    ("relabel", "named"),
    [
        ({"L1": "L2", "L2": "L3", "L3": "L4", "L4": "L5", "L5": "L6"}, "L6"),
        ({"L1": "T13", "L2": "L1", "L3": "L2", "L4": "L3", "L5": "L4"}, "T13"),
    ],
)
def test_a_transitional_vertebra_is_flagged(relabel, named):
    result = _levels(relabel)
    assert (
        f"the labels name transitional vertebra(e) {named}: paraspinal's level naming counts five lumbar "
        "vertebrae, so these levels are named by position and can differ from the model's own names; check the "
        "QC image"
    ) in result.warnings
    assert result.naming_confidence < 0.5  # the model's votes do not support the five-lumbar numbering
