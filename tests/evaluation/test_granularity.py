"""Common granularity of two label schemes through the anatomy registry, on small phantoms."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from paraspinal.anatomy import load_registry, load_scheme
from paraspinal.errors import InputError
from paraspinal.evaluation.granularity import common_granularity

SHAPE = (30, 20, 4)


def lpm4_phantom() -> np.ndarray:
    """lpm4: 1 right ES, 2 right MF, 3 left MF, 4 left ES."""
    lab = np.zeros(SHAPE, dtype=np.int16)
    lab[18:24, 4:10, :] = 1
    lab[15:18, 10:14, :] = 2
    lab[12:15, 10:14, :] = 3
    lab[6:12, 4:10, :] = 4
    return lab


def total_mr_phantom() -> np.ndarray:
    """total_mr: 47 autochthon right, 46 autochthon left (both shifted one voxel), 5 liver."""
    lab = np.zeros(SHAPE, dtype=np.int16)
    lpm = np.roll(lpm4_phantom(), 1, axis=1)
    lab[np.isin(lpm, (1, 2))] = 47
    lab[np.isin(lpm, (3, 4))] = 46
    lab[0:4, 0:4, :] = 5
    return lab


def _scheme_file(tmp_path: Path, key: str, labels: list[tuple[int, str, str]]) -> Path:
    path = tmp_path / f"{key}.json"
    document = {
        "key": key,
        "name": key,
        "labels": [{"value": v, "name": f"{side} {s}", "structure": s, "side": side} for v, s, side in labels],
    }
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_lpm4_against_total_mr_merges_es_and_mf_per_side_into_autochthon() -> None:
    common = common_granularity(load_scheme("lpm4"), load_scheme("total_mr"))
    name = load_registry()["autochthon"].name
    rows = [(g.value, g.name, g.structure, g.side, g.values_a, g.values_b) for g in common.groups]
    assert rows == [
        (1, f"right {name}", "autochthon", "right", (1, 2), (47,)),
        (2, f"left {name}", "autochthon", "left", (3, 4), (46,)),
    ]
    assert common.unmatched_a == () and 5 in common.unmatched_b and 47 not in common.unmatched_b
    assert len(common.unmatched_b) == len(load_scheme("total_mr").values) - 2
    lpm, total = lpm4_phantom(), total_mr_phantom()
    merged_a, merged_b = common.merge_a(lpm), common.merge_b(total)
    expected_a = np.where(np.isin(lpm, (1, 2)), 1, np.where(np.isin(lpm, (3, 4)), 2, 0))
    np.testing.assert_array_equal(merged_a, expected_a)
    np.testing.assert_array_equal(merged_b, np.roll(expected_a, 1, axis=1))  # liver (5) dropped
    scheme = common.scheme
    assert scheme.key == "lpm4~total_mr" and [scheme.entry(v).side for v in scheme.values] == ["right", "left"]


def test_a_scheme_against_itself_is_the_identity() -> None:
    lpm4 = load_scheme("lpm4")
    common = common_granularity(lpm4, lpm4)
    assert common.is_identity and common.unmatched_b == ()
    assert [(g.value, g.name) for g in common.groups] == [(v, lpm4.entry(v).name) for v in lpm4.values]
    lab = lpm4_phantom()
    np.testing.assert_array_equal(common.merge_a(lab), lab)
    np.testing.assert_array_equal(common.merge_b(lab), lab)


def test_the_order_of_the_schemes_sets_the_merged_values() -> None:
    common = common_granularity(load_scheme("total_mr"), load_scheme("lpm4"))
    assert [(g.side, g.values_a, g.values_b) for g in common.groups] == [
        ("left", (46,), (3, 4)),
        ("right", (47,), (1, 2)),
    ]
    assert not common.is_identity


def test_schemes_with_nothing_in_common_are_a_clear_error() -> None:
    with pytest.raises(InputError) as info:
        common_granularity(load_scheme("lpm4"), load_scheme("spider"))
    assert str(info.value) == (
        "label schemes 'lpm4' and 'spider' have no structure in common "
        "(no label of one lies in, or contains, a label of the other in the anatomy registry)"
    )


def test_an_unsided_scheme_merges_both_sides_of_the_other() -> None:
    common = common_granularity(load_scheme("xu7"), load_scheme("lpm4"))
    by_structure = {g.structure: (g.side, g.values_b) for g in common.groups}
    assert by_structure == {"erector_spinae": ("none", (1, 4)), "multifidus": ("none", (2, 3))}
    xu7 = load_scheme("xu7")
    es_values = {v for v in xu7.values if xu7.entry(v).structure in ("iliocostalis", "longissimus")}
    assert set(next(g for g in common.groups if g.structure == "erector_spinae").values_a) == es_values


def test_finer_labels_merge_only_as_far_as_needed(tmp_path: Path) -> None:
    """ES vs iliocostalis + longissimus meets at erector spinae; multifidus stays multifidus."""
    fine = load_scheme(
        _scheme_file(
            tmp_path,
            "fine",
            [(1, "iliocostalis", "right"), (2, "longissimus", "right"), (3, "multifidus", "right")],
        )
    )
    coarse = load_scheme(_scheme_file(tmp_path, "coarse", [(7, "erector_spinae", "right"), (9, "multifidus", "right")]))
    common = common_granularity(fine, coarse)
    rows = [(g.value, g.structure, g.side, g.values_a, g.values_b) for g in common.groups]
    assert rows == [(1, "erector_spinae", "right", (1, 2), (7,)), (2, "multifidus", "right", (3,), (9,))]
    assert common.groups[1].name == "right multifidus"  # fine's own name: the label is unchanged
    lab = np.array([[[0, 1, 2, 3, 4]]])
    np.testing.assert_array_equal(common.merge_a(lab), [[[0, 1, 1, 2, 0]]])


def test_a_group_absorbs_labels_under_its_structure(tmp_path: Path) -> None:
    """A's multifidus meets nothing in B, but lies under A's autochthon, which meets B's iliocostalis."""
    a = load_scheme(
        _scheme_file(tmp_path, "a", [(1, "autochthon", "left"), (2, "multifidus", "left"), (3, "psoas_major", "left")])
    )
    b = load_scheme(_scheme_file(tmp_path, "b", [(4, "iliocostalis", "left")]))
    common = common_granularity(a, b)
    assert [(g.structure, g.side, g.values_a, g.values_b) for g in common.groups] == [
        ("autochthon", "left", (1, 2), (4,))
    ]
    assert common.unmatched_a == (3,) and common.unmatched_b == ()
    np.testing.assert_array_equal(common.merge_a(np.array([0, 1, 2, 3])), [0, 1, 1, 0])
    np.testing.assert_array_equal(common.merge_b(np.array([0, 4, 1])), [0, 1, 0])
