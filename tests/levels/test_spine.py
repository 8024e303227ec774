"""Spine levels from sagittal label maps: disc planes, naming from votes, and matching to axial stacks.

Known answers come from box phantoms (tests/spine_phantoms.py): bodies stacked along a spine axis
tilted 12 degrees, discs exactly midway between them with the axis as normal.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from paraspinal.anatomy import load_scheme
from paraspinal.errors import LevelsError
from paraspinal.io.image import Image
from paraspinal.io.label_map import LabelMap
from paraspinal.levels import match_axial, spine_levels_from_labels
from tests.phantoms import reorient
from tests.spine_phantoms import NAMES, axial_stack, spine_phantom

SPINE_TILT_DEG = 12.0
LEVELS = ("L1/L2", "L2/L3", "L3/L4", "L4/L5", "L5/S1")


@pytest.fixture(scope="module")
def phantom():
    return spine_phantom(tilt_deg=SPINE_TILT_DEG)


def _bodies(phantom, **kw) -> Image:
    return phantom.encode({name: i + 1 for i, name in enumerate(NAMES) if name in phantom.bodies}, **kw)


def _angle_deg(a, b) -> float:
    return float(np.degrees(np.arccos(np.clip(abs(np.dot(a, b)), 0.0, 1.0))))


@pytest.mark.parametrize(
    ("flips", "order"),
    [((False, False, False), (0, 1, 2)), ((True, True, False), (0, 1, 2)), ((True, False, True), (2, 0, 1))],
    ids=["RAS", "LPS", "flipped-permuted"],
)
def test_discs_between_bodies_match_the_phantom_in_any_storage(phantom, flips, order) -> None:
    labels = _bodies(phantom)
    array, affine = reorient(labels.array, labels.affine, flips=flips, order=order)
    spine = spine_levels_from_labels(LabelMap.given(Image(array, affine), load_scheme("lumbar_bodies")))
    assert [d.name for d in spine.discs] == list(LEVELS)
    assert [b.name for b in spine.bodies] == list(NAMES)
    for disc in spine.discs:
        assert np.linalg.norm(np.asarray(disc.centre_mm) - phantom.centres[disc.name]) < 0.3
        assert _angle_deg(disc.normal, phantom.axis) < 0.6
        assert disc.normal[2] > 0  # cranial
        assert disc.confidence == 1.0
    assert [d.estimated for d in spine.discs] == [False] * 4 + [True]
    assert spine.discs[0].height_mm == pytest.approx(10.0, abs=1.5)
    assert spine.naming_confidence == 1.0


def _expected_slice(centre, *, tilt_deg, z0_mm, spacing_mm, reverse):
    """Nearest slice and signed distance (mm, + = superior) from the stack's definition alone."""
    t = np.radians(tilt_deg)
    normal = np.array([0.0, np.sin(t), np.cos(t)])
    along = float((np.asarray(centre) - [0.0, 0.0, z0_mm]) @ normal)  # superior distance from slice 0's plane
    position = (-along if reverse else along) / spacing_mm
    nearest = int(np.rint(position))
    plane = nearest * spacing_mm * (-1 if reverse else 1)
    return nearest, along - plane


@pytest.mark.parametrize("lps", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
def test_axial_match_gives_known_slice_distance_and_angle(phantom, lps, reverse) -> None:
    spine = spine_levels_from_labels(LabelMap.given(_bodies(phantom, sacrum=None), load_scheme("lumbar_bodies")))
    axial_tilt, spacing = -6.0, 4.0
    z0 = -110.0 if not reverse else 46.0
    stack = axial_stack(tilt_deg=axial_tilt, z0_mm=z0, n_slices=40, spacing_mm=spacing, lps=lps, reverse=reverse)
    matched = match_axial(spine, stack, tolerance_mm=5.0)
    by_name = {r.name: r for r in matched.records}
    assert set(by_name) == {"L2/L3", "L3/L4", "L4/L5", "L5/S1"}  # L1/L2 lies above the stack
    assert any("L1/L2 disc centre lies outside the axial stack" in w for w in matched.warnings)
    for name, record in by_name.items():
        nearest, signed = _expected_slice(
            phantom.centres[name], tilt_deg=axial_tilt, z0_mm=z0, spacing_mm=spacing, reverse=reverse
        )
        assert record.disc_slice == nearest
        assert record.signed_distance_mm == pytest.approx(signed, abs=0.4)
        assert record.distance_mm == pytest.approx(abs(signed), abs=0.4)
        assert record.angle_deg == pytest.approx(SPINE_TILT_DEG - axial_tilt, abs=0.7)
    table = matched.table
    assert table.names == ("L2/L3", "L3/L4", "L4/L5", "L5/S1")
    ranges = sorted((lv.slice_start, lv.slice_stop) for lv in table)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))  # contiguous, no overlap
    for lv in table:
        assert lv.slice_start <= lv.disc_slice < lv.slice_stop
        assert lv.angle_deg == pytest.approx(18.0, abs=0.7)
    # a 35 mm disc pitch at 4 mm slices: inner levels span ~8.75 slices (midpoint to midpoint)
    inner = table.levels[1]
    assert inner.slice_stop - inner.slice_start in (8, 9, 10)


def test_axial_stack_in_other_coordinates_is_refused(phantom) -> None:
    spine = spine_levels_from_labels(LabelMap.given(_bodies(phantom), load_scheme("lumbar_bodies")))
    far = axial_stack(tilt_deg=0.0, z0_mm=400.0)
    with pytest.raises(LevelsError, match=r"^<axial>: none of the 5 disc centres found on the sagittal image lies "):
        match_axial(spine, far)


def test_different_frames_of_reference_are_refused(phantom) -> None:
    labels = _bodies(phantom)
    spine = spine_levels_from_labels(LabelMap.given(labels, load_scheme("lumbar_bodies")))
    sagittal = Image(labels.array, labels.affine, source="sag", metadata={"frame_of_reference_uid": "1.2.3"})
    stack = axial_stack(tilt_deg=0.0, z0_mm=-110.0)
    axial = Image(stack.array, stack.affine, source="ax", metadata={"frame_of_reference_uid": "1.2.4"})
    with pytest.raises(LevelsError) as info:
        match_axial(spine, axial, sagittal=sagittal)
    assert str(info.value) == (
        "ax: different frames of reference: the sagittal image (sag) and the axial stack were not acquired in one "
        "scanner coordinate system"
    )
    same = Image(stack.array, stack.affine, source="ax", metadata={"frame_of_reference_uid": "1.2.3"})
    assert len(match_axial(spine, same, sagittal=sagittal).records) == 4


def test_partial_field_of_view_is_named_from_the_votes() -> None:
    partial = spine_phantom(tilt_deg=SPINE_TILT_DEG, names=("L3", "L4", "L5"))
    array = np.zeros(partial.shape, dtype=np.int16)
    # model-like votes: L3 25 % voted L2 (its upper quarter), L4 all L4, L5 half L5 and half L4 below
    for name, value in (("L3", 3), ("L4", 4), ("L5", 5)):
        array[partial.bodies[name]] = value
    z = np.indices(partial.shape)[2]
    l3 = partial.bodies["L3"]
    array[l3 & (z > np.percentile(z[l3], 75))] = 2
    l5 = partial.bodies["L5"]
    array[l5 & (z < np.percentile(z[l5], 35))] = 4
    spine = spine_levels_from_labels(LabelMap.given(partial.image(array), load_scheme("lumbar_bodies")))
    assert [b.name for b in spine.bodies] == ["L3", "L4", "L5"]
    assert [d.name for d in spine.discs] == ["L3/L4", "L4/L5", "L5/S1"]
    conf = {b.name: b.confidence for b in spine.bodies}
    assert conf["L4"] == 1.0
    assert conf["L3"] == pytest.approx(np.mean(array[l3] == 3))
    assert conf["L5"] == pytest.approx(np.mean(array[l5] == 5))
    assert spine.disc("L3/L4").confidence == pytest.approx(conf["L3"])
    # the best offset (L3-L5) against the next best (L2-L4: only L3's upper quarter agrees)
    voted = sum(int(np.sum(array[partial.bodies[n]] > 0)) for n in ("L3", "L4", "L5"))
    best = int(np.sum(array[l3] == 3)) + int(np.sum(array[partial.bodies["L4"]] == 4)) + int(np.sum(array[l5] == 5))
    second = int(np.sum(array[l3] == 2)) + int(np.sum(array[l5] == 4))
    assert spine.naming_confidence == pytest.approx((best - second) / voted)
    assert np.linalg.norm(np.asarray(spine.disc("L4/L5").centre_mm) - partial.centres["L4/L5"]) < 0.3


def test_a_mislabelled_body_is_renamed_with_reduced_confidence(phantom) -> None:
    labels = _bodies(phantom)
    array = labels.array.copy()
    array[phantom.bodies["L3"]] = 4  # L3 drawn with L4's value
    spine = spine_levels_from_labels(LabelMap.given(phantom.image(array), load_scheme("lumbar_bodies")))
    assert [b.name for b in spine.bodies] == list(NAMES)
    assert {b.name: b.confidence for b in spine.bodies} == {"L1": 1.0, "L2": 1.0, "L3": 0.0, "L4": 1.0, "L5": 1.0}
    sizes = {n: int(phantom.bodies[n].sum()) for n in NAMES}
    # the next best numbering (L2-L5 and the lowest body as S1) wins only L3's votes for L4
    assert spine.naming_confidence == pytest.approx(1 - 2 * sizes["L3"] / sum(sizes.values()))
    assert spine.disc("L2/L3").confidence == 0.0 and spine.disc("L3/L4").confidence == 0.0
    assert spine.disc("L4/L5").confidence == 1.0


def test_two_bodies_bridged_by_a_few_voxels_are_split(phantom) -> None:
    labels = _bodies(phantom)
    array = labels.array.copy()
    centre = phantom.centres["L2/L3"]
    ijk = np.rint(np.linalg.solve(phantom.affine[:3, :3], centre - phantom.affine[:3, 3])).astype(int)
    array[ijk[0], ijk[1], ijk[2] - 7 : ijk[2] + 8] = 2  # a thin column of L2 through the disc
    spine = spine_levels_from_labels(LabelMap.given(phantom.image(array), load_scheme("lumbar_bodies")))
    assert [b.name for b in spine.bodies] == list(NAMES)


ENCODINGS = {
    "lumbar_bodies": {"bodies": {n: i + 1 for i, n in enumerate(NAMES)}},
    "spider": {
        "bodies": {n: 5 - i for i, n in enumerate(NAMES)},
        "discs": {lv: 205 - i for i, lv in enumerate(LEVELS)},
    },
    "totalspineseg": {
        "bodies": {n: 41 + i for i, n in enumerate(NAMES)},
        "discs": dict(zip(LEVELS, (92, 93, 94, 95, 100), strict=True)),
        "sacrum": 50,
    },
    "total_mr": {"bodies": dict.fromkeys(NAMES, 19), "discs": dict.fromkeys(LEVELS, 20), "sacrum": 18},
    "total_vertebrae_mr": {"bodies": {n: 6 - i for i, n in enumerate(NAMES)}, "sacrum": 1},
    "ivd_t2": {"bodies": {}, "discs": {lv: 5 - i for i, lv in enumerate(LEVELS)}},
}


def test_every_mask_scheme_gives_the_same_level_table(phantom) -> None:
    stack = axial_stack(tilt_deg=4.0, z0_mm=-150.0, n_slices=70, spacing_mm=3.5)
    tables, spines = {}, {}
    for key, encoding in ENCODINGS.items():
        spine = spine_levels_from_labels(LabelMap.given(phantom.encode(**encoding), load_scheme(key)))
        spines[key] = spine
        tables[key] = match_axial(spine, stack).table.to_frame().drop(columns=["source"])
    assert spines["spider"].method == spines["ivd_t2"].method == spines["totalspineseg"].method == "labelled discs"
    assert {spines[k].method for k in ("lumbar_bodies", "total_mr", "total_vertebrae_mr")} == {"vertebral bodies"}
    assert "vertebrae named by counting up from the sacrum" in spines["total_mr"].warnings
    reference = tables["spider"]
    assert list(reference["level"]) == list(LEVELS)
    for key, table in tables.items():
        for column in ("level", "slice_start", "slice_stop", "disc_slice"):
            assert list(table[column]) == list(reference[column]), (key, column)
        np.testing.assert_allclose(table["distance_mm"], reference["distance_mm"], atol=0.4, err_msg=key)
        np.testing.assert_allclose(table["angle_deg"], reference["angle_deg"], atol=0.7, err_msg=key)
    assert [d.estimated for d in spines["lumbar_bodies"].discs][-1] is True
    assert not any(d.estimated for d in spines["total_mr"].discs)  # the sacrum is labelled


def test_level_less_vertebrae_without_a_sacrum_cannot_be_named(phantom) -> None:
    labels = phantom.encode(dict.fromkeys(NAMES, 19))
    with pytest.raises(LevelsError, match="carry no level names and no sacrum is labelled to count from"):
        spine_levels_from_labels(LabelMap.given(labels, load_scheme("total_mr")))


def test_fragments_below_the_size_threshold_are_ignored(phantom) -> None:
    array = _bodies(phantom).array.copy()
    array[0:2, 0:2, 0:2] = 3  # 8 mm x 4 stray voxels far from the spine
    spine = spine_levels_from_labels(LabelMap.given(phantom.image(array), load_scheme("lumbar_bodies")))
    assert [b.name for b in spine.bodies] == list(NAMES)
    assert "1 vertebra fragment(s) ignored (under 1000 mm³ or 20% of the largest body)" in spine.warnings


def test_a_blob_far_smaller_than_a_body_is_not_named(phantom) -> None:
    array = _bodies(phantom).array.copy()
    body_voxels = int(phantom.bodies["L3"].sum())
    blob = np.zeros_like(array, dtype=bool)
    blob[:, 0:8, 0:8] = True  # ~11 % of a body, over 1000 mm³, far from the spine
    assert 1000 < blob.sum() * 4.0 < 0.2 * body_voxels * 4.0
    array[blob] = 1
    spine = spine_levels_from_labels(LabelMap.given(phantom.image(array), load_scheme("lumbar_bodies")))
    assert [b.name for b in spine.bodies] == list(NAMES)


def test_several_bodies_merged_through_their_discs_are_split_by_label(phantom) -> None:
    labels = _bodies(phantom)
    array = labels.array.copy()
    array[phantom.discs["L1/L2"]] = 1  # model output that runs L1, L2 and L3 together through the discs
    array[phantom.discs["L2/L3"]] = 2
    spine = spine_levels_from_labels(LabelMap.given(phantom.image(array), load_scheme("lumbar_bodies")))
    assert [b.name for b in spine.bodies] == list(NAMES)
    assert spine.naming_confidence == pytest.approx(1.0)


def test_votes_that_support_two_numberings_give_a_low_naming_confidence(phantom) -> None:
    # L1 and L5 carry their neighbour's label: the true numbering wins (3 bodies agree) but only
    # just over the numbering shifted by one (1 body agrees)
    labels = phantom.encode({"L1": 2, "L2": 2, "L3": 3, "L4": 4, "L5": 4})
    spine = spine_levels_from_labels(LabelMap.given(labels, load_scheme("lumbar_bodies")))
    assert [b.name for b in spine.bodies] == list(NAMES)
    assert spine.naming_confidence < 0.5
    # no "naming uncertain" warning any more: the calibrated levels quality says it (tests/quality/test_levels.py)
    assert not any("uncertain" in w for w in spine.warnings)
