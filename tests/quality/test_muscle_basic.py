"""The first, anatomy-only muscle assessment: a gap, a shrunken slice, fragments, a structure never labelled."""

from __future__ import annotations

import numpy as np

from paraspinal.anatomy import load_scheme
from paraspinal.io import Image
from paraspinal.io.label_map import LabelMap
from paraspinal.quality.muscle import assess_muscles
from tests.phantoms import ras_affine


def _assess(labels: np.ndarray):
    image = Image(labels, ras_affine((1.0, 1.0, 4.0)))
    found = assess_muscles(label_map=LabelMap.given(image, load_scheme("lpm4")), image=image)
    return {(q.structure, q.side): q for q in found}


def test_gap_small_slice_fragments_and_missing_structures() -> None:
    labels = np.zeros((40, 30, 10), dtype=np.int16)
    labels[24:32, 5:15, :] = 1  # right erector spinae, 80 voxels a slice
    labels[24:32, 5:15, 4] = 0  # gap inside its extent
    labels[24:32, 5:15, 6] = 0
    labels[24:27, 5:10, 6] = 1  # 15 voxels: 19 % of its neighbours
    labels[8:16, 5:15, :] = 4  # left erector spinae
    labels[12, 5:15, 3] = 0  # cut in two on slice 3
    found = _assess(labels)
    right = found[("erector_spinae", "right")]
    assert set(right.slices) == set(range(10))
    assert right.slices[4].status == "fail" and "missing on slice 4" in right.slices[4].reasons[0]
    assert right.slices[6].status == "review" and right.slices[6].reasons[0].startswith("area 15 voxels, 19 %")
    assert [k for k, a in right.slices.items() if a.status != "ok"] == [4, 6]
    assert right.assessment.score == 1 - 0.2 / 0.5 and right.assessment.status == "review"
    left = found[("erector_spinae", "left")]
    assert [k for k, a in left.slices.items() if a.status != "ok"] == [3]
    assert left.slices[3].reasons == ("2 separate pieces on slice 3",)
    assert left.assessment.status == "ok"
    assert found[("multifidus", "right")].assessment.status == "fail"
    assert found[("multifidus", "left")].assessment.reasons == ("not labelled on any slice",)
