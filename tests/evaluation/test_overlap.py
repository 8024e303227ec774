"""Overlap and surface-distance metrics against values computed by hand on small arrays."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from paraspinal.evaluation.overlap import (
    ABSENT_IN_BOTH,
    EMPTY_PRED,
    EMPTY_REF,
    assd_mm,
    dice,
    dice_per_label,
    hausdorff_mm,
    iou,
    overlap_table,
    surface_distances,
)


def _boxes(shift: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Two 10x10x10 cubes in a 24^3 grid, the second shifted by ``shift`` voxels along i."""
    a = np.zeros((24, 24, 24), dtype=np.int16)
    b = np.zeros_like(a)
    a[5:15, 5:15, 5:15] = 1
    b[5 + shift : 15 + shift, 5:15, 5:15] = 1
    return a, b


def _value(table: pd.DataFrame, **where: object) -> tuple[float, str]:
    rows = table
    for column, wanted in where.items():
        rows = rows[rows[column].isna()] if wanted is None else rows[rows[column] == wanted]
    assert len(rows) == 1, where
    return float(rows["value"].iloc[0]), str(rows["reason"].iloc[0])


def test_dice_and_iou_of_shifted_cubes() -> None:
    a, b = _boxes()
    # overlap 8x10x10 = 800 voxels of 1000 each: Dice 2*800/2000, IoU 800/1200
    assert dice(a, b) == pytest.approx(0.8)
    assert iou(a, b) == pytest.approx(2 / 3)


def test_dice_per_label_of_two_label_maps() -> None:
    a, b = _boxes()
    a[16:20, 16:20, 16:20] = 2  # label 2: 64 voxels in pred, 4x4x2 = 32 of them in ref: Dice 2*32/96
    b[16:20, 16:20, 16:18] = 2
    b[0:2, 0:2, 0:2] = 3  # label 3 only in ref: a real miss, 0.0
    scores = dice_per_label(a, b, range(1, 5))
    assert scores[1] == pytest.approx(0.8) and scores[2] == pytest.approx(2 / 3)
    assert scores[3] == 0.0 and math.isnan(scores[4])  # 4 absent in both
    assert list(scores) == [1, 2, 3, 4]
    with pytest.raises(ValueError):
        dice_per_label(a, b[:-1], [1])


def test_hausdorff_of_shifted_cubes_scales_with_spacing_along_the_shift() -> None:
    a, b = _boxes()
    # the farthest surface voxel lies 2 voxels from the other surface, along i only
    assert hausdorff_mm(a, b, spacing_mm=(1, 1, 1), percentile=100) == pytest.approx(2.0)
    assert hausdorff_mm(a, b, spacing_mm=(2.5, 1, 1), percentile=100) == pytest.approx(5.0)
    assert hausdorff_mm(a, b, spacing_mm=(1, 3, 3), percentile=100) == pytest.approx(2.0)


def test_assd_of_shifted_cubes_counted_by_hand() -> None:
    a, b = _boxes()
    # A's 488 surface voxels: face i=5 (100) at 2; ring i=6 (36) at 1; rings i=7..13 (252) at 0;
    # face i=14: ring (36) at 0, the 8x8 inside at min(2, in-plane distance to B's side): 28 at 1, 36 at 2.
    # Sum 200 + 36 + 28 + 72 = 336 per direction (symmetric): ASSD = 672 / 976.
    assert assd_mm(a, b, spacing_mm=(1, 1, 1)) == pytest.approx(672 / 976)
    d = surface_distances(a, b, spacing_mm=(1, 1, 1))
    assert d.pred_to_ref_mm.size == d.ref_to_pred_mm.size == 10**3 - 8**3
    assert d.pred_to_ref_mm.sum() == pytest.approx(336)
    # 95th percentile of 288 zeros, 64 ones and 136 twos is 2
    assert hausdorff_mm(a, b, spacing_mm=(1, 1, 1)) == pytest.approx(2.0)


def test_parallel_slabs_with_anisotropic_spacing() -> None:
    """Two slabs two slices thick, filling the in-plane field of view, 1 slice apart along k.

    Every voxel of a 2-slice slab is surface; each slab's near slice is 2 slices (6 mm at 3 mm
    spacing) from the other's near slice and its far slice 3 slices (9 mm) away.
    """
    a = np.zeros((6, 5, 12), dtype=bool)
    b = np.zeros_like(a)
    a[:, :, 3:5] = True
    b[:, :, 6:8] = True
    spacing = (0.7, 0.9, 3.0)
    assert dice(a, b) == 0.0
    assert hausdorff_mm(a, b, spacing_mm=spacing) == pytest.approx(9.0)
    assert hausdorff_mm(a, b, spacing_mm=spacing, percentile=50) == pytest.approx(7.5)
    assert assd_mm(a, b, spacing_mm=spacing) == pytest.approx(7.5)


def test_single_voxels_use_euclidean_distance_in_mm() -> None:
    a = np.zeros((8, 8, 3), dtype=bool)
    b = np.zeros_like(a)
    a[0, 0, 0] = True
    b[3, 4, 2] = True
    expected = math.sqrt((3 * 2.0) ** 2 + (4 * 0.5) ** 2 + (2 * 5.0) ** 2)
    assert hausdorff_mm(a, b, spacing_mm=(2.0, 0.5, 5.0)) == pytest.approx(expected)
    assert assd_mm(a, b, spacing_mm=(2.0, 0.5, 5.0)) == pytest.approx(expected)


def test_identical_masks_are_perfect() -> None:
    a, _ = _boxes()
    assert dice(a, a) == 1.0
    assert hausdorff_mm(a, a, spacing_mm=(1, 1, 1)) == 0.0
    assert assd_mm(a, a, spacing_mm=(1, 1, 1)) == 0.0


def test_empty_masks_give_nan_not_errors() -> None:
    a, _ = _boxes()
    empty = np.zeros_like(a)
    assert math.isnan(dice(empty, empty))
    assert math.isnan(iou(empty, empty))
    assert dice(a, empty) == 0.0
    assert math.isnan(hausdorff_mm(a, empty, spacing_mm=(1, 1, 1)))
    assert math.isnan(assd_mm(empty, a, spacing_mm=(1, 1, 1)))
    assert math.isnan(hausdorff_mm(empty, empty, spacing_mm=(1, 1, 1)))


def test_bad_arguments_raise_value_error() -> None:
    a, _ = _boxes()
    with pytest.raises(ValueError, match="shapes"):
        dice(a, a[:-1])
    with pytest.raises(ValueError, match="spacing"):
        assd_mm(a, a, spacing_mm=(1, 1))
    with pytest.raises(ValueError, match="spacing"):
        assd_mm(a, a, spacing_mm=(1, 0, 1))


def test_table_per_label_global_dice_and_reasons() -> None:
    ref = np.zeros((20, 10, 6), dtype=np.int16)
    ref[2:8, 2:8, :] = 1  # "right" muscle
    ref[12:18, 2:8, :] = 2  # "left" muscle
    pred = np.zeros_like(ref)
    pred[2:8, 2:8, :] = 2  # sides swapped in the prediction
    pred[12:18, 2:8, :] = 1
    ref[10, 5, 0] = 3  # label 3 only in the reference
    table = overlap_table(
        pred, ref, spacing_mm=(1.0, 1.0, 2.0), labels={1: "r", 2: "l", 3: "x", 4: "absent"}, case_id="c1"
    )
    assert list(table.columns) == ["case_id", "label", "name", "level", "metric", "value", "unit", "reason"]
    assert set(table["case_id"]) == {"c1"}
    # per-label Dice 0, but the binarised foreground (LPM's global Dice) nearly agrees:
    # |P|=432, |R|=433, |P and R|=432
    assert _value(table, name="r", level="all", metric="dice") == (0.0, "")
    assert _value(table, label=None, level="all", metric="dice")[0] == pytest.approx(2 * 432 / 865)
    assert _value(table, name="x", metric="dice") == (0.0, EMPTY_PRED)
    hd, reason = _value(table, name="x", metric="hd95")
    assert math.isnan(hd) and reason == EMPTY_PRED
    dice_absent, reason = _value(table, name="absent", metric="dice")
    assert math.isnan(dice_absent) and reason == ABSENT_IN_BOTH
    assert _value(table, name="x", metric="volume_ref") == (2.0, "")
    assert _value(table, name="x", metric="volume_diff") == (-2.0, "")
    assert _value(table, name="x", metric="volume_diff_pct") == (-100.0, "")
    pct, reason = _value(table, name="absent", metric="volume_diff_pct")
    assert math.isnan(pct) and reason == ABSENT_IN_BOTH


def test_table_reports_empty_reference_side() -> None:
    ref = np.zeros((6, 6, 4), dtype=np.int16)
    pred = ref.copy()
    pred[1:3, 1:3, 1:3] = 1
    table = overlap_table(pred, ref, spacing_mm=(1, 1, 1), labels={1: "m"})
    assert _value(table, name="m", metric="dice") == (0.0, EMPTY_REF)
    pct, reason = _value(table, name="m", metric="volume_diff_pct")
    assert math.isnan(pct) and reason == EMPTY_REF


def test_table_levels_restrict_overlap_and_surface_points() -> None:
    """Reference: a column over slices 0..9; prediction misses slices 6..9 entirely.

    Level A (slices 0..3) matches perfectly: Dice 1 and — because distances are measured to the
    whole other surface, not to the level's cut planes — HD95 and ASSD 0. Level B (slices 6..9)
    is empty in the prediction.
    """
    ref = np.zeros((10, 10, 10), dtype=np.int16)
    ref[3:7, 3:7, :] = 1
    pred = ref.copy()
    pred[:, :, 6:] = 0
    table = overlap_table(pred, ref, spacing_mm=(1, 1, 2), labels={1: "m"}, levels={"A": (0, 4), "B": (6, 10)})
    assert _value(table, name="m", level="A", metric="dice") == (1.0, "")
    assert _value(table, name="m", level="A", metric="hd95") == (0.0, "")
    assert _value(table, name="m", level="A", metric="assd") == (0.0, "")
    assert _value(table, name="m", level="A", metric="volume_ref") == (4 * 4 * 4 * 2.0, "")
    assert _value(table, name="m", level="B", metric="dice") == (0.0, EMPTY_PRED)
    assert _value(table, name="m", level="all", metric="dice")[0] == pytest.approx(2 * 96 / (96 + 160))


def test_table_default_labels_and_voxel_volume() -> None:
    a, b = _boxes()
    table = overlap_table(a, b * 3, spacing_mm=(1, 1, 1), voxel_volume_mm3=0.5)
    assert set(table["name"]) == {"foreground", "1", "3"}
    assert _value(table, name="1", metric="volume_pred") == (500.0, "")
    assert table["label"].dtype == "Int64"


def test_table_slice_axis_other_than_k() -> None:
    ref = np.zeros((10, 6, 6), dtype=np.int16)
    ref[:, 1:5, 1:5] = 1
    pred = ref.copy()
    pred[5:] = 0
    table = overlap_table(pred, ref, spacing_mm=(1, 1, 1), labels={1: "m"}, levels={"low": (0, 5)}, slice_axis=0)
    assert _value(table, name="m", level="low", metric="dice") == (1.0, "")
