"""Naming model output: bodies cut apart at thin necks, the sacrum's top taken as S1, appendages kept.

Box phantoms (tests/spine_phantoms.py) with the kinds of error a lumbar-only model makes.
"""

from __future__ import annotations

import numpy as np
import pytest

from paraspinal.anatomy import load_registry, load_scheme
from paraspinal.io.label_map import LabelMap
from paraspinal.levels import spine_levels_from_labels
from paraspinal.levels.naming import name_bodies
from tests.spine_phantoms import BODY_DEPTH_MM, NAMES, spine_phantom

LUMBAR = {name: i + 1 for i, name in enumerate(NAMES)}


@pytest.fixture(scope="module")
def phantom():
    return spine_phantom(tilt_deg=12.0)


def _world(phantom) -> np.ndarray:
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in phantom.shape], indexing="ij"), axis=-1)
    return ijk @ phantom.affine[:3, :3].T + phantom.affine[:3, 3]


def _box(phantom, centre, *, half_axis_mm: float, half_depth_mm: float, half_width_mm: float) -> np.ndarray:
    """Voxels of a box aligned with the phantom's spine axis (height), depth and width (x)."""
    axis = phantom.axis
    depth = np.array([0.0, axis[2], -axis[1]])
    rel = _world(phantom) - np.asarray(centre)
    return (
        (np.abs(rel @ axis) <= half_axis_mm)
        & (np.abs(rel @ depth) <= half_depth_mm)
        & (np.abs(rel[..., 0]) <= half_width_mm)
    )


def _centre(phantom, mask: np.ndarray) -> np.ndarray:
    return _world(phantom)[mask].mean(axis=0)


def test_the_top_of_the_sacrum_labelled_l5_is_taken_as_s1(phantom) -> None:
    # a lumbar-only model marks the sacrum's top as L5: six bodies, and only "L1-L5 above S1" fits the votes
    labels = phantom.encode(LUMBAR, sacrum=5)
    spine = spine_levels_from_labels(LabelMap.given(labels, load_scheme("lumbar_bodies")))
    assert [(b.name, b.kind) for b in spine.bodies] == [*((n, "body") for n in NAMES), ("S1", "sacrum")]
    l5_s1 = spine.disc("L5/S1")
    assert not l5_s1.estimated  # placed between L5 and the sacrum, not extrapolated below L5
    assert np.linalg.norm(np.asarray(l5_s1.centre_mm) - phantom.centres["L5/S1"]) < 0.5
    # next best numbering (T12-L5) wins only the sacrum's L5 votes
    sizes = {n: int(phantom.bodies[n].sum()) for n in NAMES}
    sacrum = int(phantom.sacrum.sum())
    total = sum(sizes.values()) + sacrum
    assert spine.naming_confidence == pytest.approx((sum(sizes.values()) - sacrum) / total)
    assert spine.bodies[-1].confidence == pytest.approx(spine.naming_confidence)
    assert not any("estimated" in w for w in spine.warnings)


def test_a_lone_body_is_never_taken_for_the_sacrum(phantom) -> None:
    named = name_bodies(phantom.encode({"L5": 2}), scheme=load_scheme("lumbar_bodies"), registry=load_registry())
    assert (named.names, named.kinds) == (["L2"], ["body"])  # named by its (wrong) votes, never S1


def test_bodies_joined_by_a_thin_bridge_with_mixed_votes_are_cut_at_the_neck(phantom) -> None:
    # L4 and L5 joined through the disc by an 8 mm column, and L5 mostly labelled L4: the labels alone
    # cannot separate them (L5's own votes are under half a body), the shape can
    array = phantom.encode(LUMBAR).array.copy()
    centre = phantom.centres["L4/L5"]
    bridge = _box(phantom, centre, half_axis_mm=6.0, half_depth_mm=4.0, half_width_mm=4.0)
    array[bridge & (array == 0)] = 4
    l5 = phantom.bodies["L5"]
    upper = l5 & ((_world(phantom) - _centre(phantom, l5)) @ phantom.axis > -5.0)  # all but L5's lowest 7.5 mm
    array[upper] = 4
    assert np.sum(array[l5] == 5) < 0.5 * phantom.bodies["L3"].sum()
    spine = spine_levels_from_labels(LabelMap.given(phantom.image(array), load_scheme("lumbar_bodies")))
    assert [b.name for b in spine.bodies] == list(NAMES)
    for name in NAMES:  # each found body sits on its phantom body
        centroid = np.asarray(spine.body(name).centroid_mm)
        assert np.linalg.norm(centroid - _centre(phantom, phantom.bodies[name])) < 3.0


def test_a_thick_appendage_on_a_thin_stalk_stays_with_its_body(phantom) -> None:
    # a 16 mm block behind L3 (deep enough to seed its own piece), joined by a thin stalk: merged back
    # into L3 instead of becoming a body (which would shift every name below it)
    array = phantom.encode(LUMBAR).array.copy()
    l3_centre = _centre(phantom, phantom.bodies["L3"])
    back = -np.array([0.0, phantom.axis[2], -phantom.axis[1]])
    block = _box(phantom, l3_centre + back * (BODY_DEPTH_MM / 2 + 14.0), half_axis_mm=8.0, half_depth_mm=8.0,
                 half_width_mm=8.0)  # fmt: skip
    stalk = _box(phantom, l3_centre + back * (BODY_DEPTH_MM / 2 + 3.0), half_axis_mm=2.0, half_depth_mm=4.0,
                 half_width_mm=2.0)  # fmt: skip
    array[(block | stalk) & (array == 0)] = 3
    spine = spine_levels_from_labels(LabelMap.given(phantom.image(array), load_scheme("lumbar_bodies")))
    assert [b.name for b in spine.bodies] == list(NAMES)
    assert not any("fragment" in w for w in spine.warnings)
    appendage_voxels = int(np.sum((block | stalk) & ~phantom.bodies["L3"]))
    assert spine.body("L3").volume_mm3 == pytest.approx((phantom.bodies["L3"].sum() + appendage_voxels) * 4.0)


def test_the_spine_bodies_scheme_votes_t12_and_anchors_on_its_sacrum() -> None:
    from paraspinal.anatomy import load_registry, load_scheme
    from paraspinal.levels.naming import SPINE_NAMES, body_value_roles

    votes, bodies, anchors = body_value_roles(load_scheme("spine_bodies"), load_registry())
    assert {v: SPINE_NAMES[i] for v, i in votes.items()} == {1: "L1", 2: "L2", 3: "L3", 4: "L4", 5: "L5", 6: "T12"}
    assert bodies == {1, 2, 3, 4, 5, 6} and anchors == {7}
