"""LabelMap.confidence: per-voxel model confidence on the label grid, kept through clean-up and replace."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from paraspinal.anatomy import load_scheme
from paraspinal.io import Image, LabelMap
from paraspinal.io.label_map import Provenance
from paraspinal.postprocessing import keep_largest_component
from paraspinal.postprocessing.components import clean_label_map
from tests.phantoms import ras_affine


def _label_map() -> LabelMap:
    affine = ras_affine((1.0, 1.0, 3.0))
    labels = np.zeros((10, 10, 4), dtype=np.uint8)
    labels[2:5, 2:5] = 1
    labels[8, 8, 0] = 1  # a stray voxel the clean-up removes
    margin = np.full(labels.shape, 0.9, dtype=np.float32)
    return LabelMap(
        Image(labels, affine), load_scheme("lpm4"), Provenance("segmented"), {"margin": Image(margin, affine)}
    )


def test_given_label_map_has_no_confidence():
    lm = LabelMap.given(Image(np.zeros((4, 4, 2), dtype=np.uint8), np.eye(4)), load_scheme("lpm4"))
    assert dict(lm.confidence) == {}


def test_confidence_survives_clean_up_and_replace():
    lm = _label_map()
    cleaned, records = clean_label_map(lm)
    assert cleaned.array[8, 8, 0] == 0 and records
    assert list(cleaned.confidence) == ["margin"]
    assert cleaned.confidence["margin"] is lm.confidence["margin"]
    renamed = dataclasses.replace(cleaned, labels=keep_largest_component(cleaned.labels)[0])
    assert float(renamed.confidence["margin"].array.mean()) == pytest.approx(0.9)


def test_confidence_off_the_grid_is_refused():
    lm = _label_map()
    with pytest.raises(ValueError, match="confidence map 'margin' is not on the label grid"):
        LabelMap(lm.labels, lm.scheme, lm.provenance, {"margin": Image(np.zeros((10, 10, 3)), lm.affine)})
