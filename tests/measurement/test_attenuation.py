"""Muscle attenuation on CT: exact HU statistics and window shares on phantoms, per slice, level and side;
padding masked; myosteatosis by Martin et al. 2013; the real TotalSegmentator CT against numpy."""

from __future__ import annotations

import numpy as np
import pytest

from paraspinal.anatomy import load_scheme
from paraspinal.errors import InputError
from paraspinal.io import Image, LabelMap, read_image, read_label_map
from paraspinal.io.ct import as_ct
from paraspinal.levels import levels_from_mapping, levels_from_vertebra_mask
from paraspinal.measurement import measure_case
from paraspinal.measurement.attenuation import hu_stats, myosteatosis_martin2013, window_label
from paraspinal.measurement.ct import CtOptions
from tests.ct_support import CT_LABELS, CT_NIFTI, ct_image, needs_ct_example

RIGHT, LEFT = 87, 86  # total: autochthon_right, autochthon_left
SCHEME = load_scheme("total")


def _phantom(*, padding: bool = False) -> tuple[Image, Image]:
    """40 x 20 x 4 voxels of 1 x 1 x 3 mm: body at 40 HU in air; right autochthon (high x) and left.

    Right muscle, every slice: 4 x 4 voxels at 50 HU, 2 x 4 at -100 HU (adipose), 2 x 4 at 200 HU (neither
    window), plus 10·k HU on slice k. Left muscle: 8 x 4 voxels at 30 HU and 0 HU, half each.
    """
    hu = np.full((40, 20, 4), -1000, dtype=np.int16)
    hu[2:38, 2:18, :] = 40
    labels = np.zeros(hu.shape, dtype=np.uint8)
    labels[24:32, 8:12, :] = RIGHT
    labels[8:16, 8:12, :] = LEFT
    for k in range(4):
        hu[24:28, 8:12, k] = 50 + 10 * k
        hu[28:30, 8:12, k] = -100 + 10 * k
        hu[30:32, 8:12, k] = 200 + 10 * k
        hu[8:12, 8:12, k] = 30
        hu[12:16, 8:12, k] = 0
    if padding:
        hu[31, 8:12, 3] = -3024  # padding inside the right muscle on the top slice
    ct = ct_image(hu, spacing=(1.0, 1.0, 3.0))
    return ct, Image(labels, ct.affine, source="labels.nii.gz")


def _rows(table, **where):
    rows = table
    for column, value in where.items():
        rows = rows[rows[column].isna()] if value is None else rows[rows[column] == value]
    return rows


def _value(table, **where) -> float:
    rows = _rows(table, **where)
    assert len(rows) == 1, f"{len(rows)} rows for {where}"
    return float(rows["value"].iloc[0])


def test_window_names_and_stats_are_exact():
    stats = hu_stats(np.array([-190, -30, -29, 150, 151, 0]))
    assert window_label((-190.0, -30.0)) == "hu[-190,-30]"
    assert (stats.n, stats.mean, stats.median) == (6, pytest.approx(52 / 6), -14.5)
    assert stats.adipose_share_pct == pytest.approx(100 * 2 / 6)  # both bounds inside: closed windows
    assert stats.muscle_share_pct == pytest.approx(100 * 3 / 6)
    assert stats.muscle_mean == pytest.approx((-29 + 150 + 0) / 3)


def test_muscle_hu_per_structure_slice_level_and_side_are_exact():
    ct, labels = _phantom()
    levels = levels_from_mapping({"L3": (1, 3)}, n_slices=4)
    table = measure_case(LabelMap.given(labels, SCHEME), case_id="ph", ct=ct, levels=levels).table
    ct_rows = _rows(table, image="ct")
    # right, whole structure: per slice 16 at 50+10k, 8 at -100+10k, 8 at 200+10k
    right = np.concatenate([np.repeat([50 + 10 * k, -100 + 10 * k, 200 + 10 * k], [16, 8, 8]) for k in range(4)])
    assert _value(
        ct_rows, structure="autochthon", side="right", scope="structure", metric="hu_mean", method="mask"
    ) == (pytest.approx(right.mean()))
    assert _value(ct_rows, structure="autochthon", side="right", scope="structure", metric="hu_sd", method="mask") == (
        pytest.approx(right.std(ddof=1))
    )
    assert _value(ct_rows, structure="autochthon", side="right", scope="structure", metric="imat_share",
                  method="hu[-190,-30]") == pytest.approx(25.0)  # fmt: skip
    assert _value(ct_rows, structure="autochthon", side="right", scope="structure", metric="muscle_share",
                  method="hu[-29,150]") == pytest.approx(50.0)  # fmt: skip
    assert _value(ct_rows, structure="autochthon", side="right", scope="structure", metric="hu_mean",
                  method="hu[-29,150]") == pytest.approx(65.0)  # fmt: skip
    # one slice: k = 2
    assert _value(ct_rows, side="right", scope="slice", slice=2, metric="hu_median", method="mask") == 70.0
    assert _value(ct_rows, side="right", scope="slice", slice=2, metric="hu_mean", method="mask") == pytest.approx(
        (16 * 70 + 8 * -80 + 8 * 220) / 32
    )
    # level L3 = slices 1 and 2; left side: 30 and 0 HU, half each
    assert _value(ct_rows, side="right", scope="level", level="L3", metric="hu_mean", method="hu[-29,150]") == 65.0
    assert _value(ct_rows, side="left", scope="level", level="L3", metric="hu_mean", method="mask") == 15.0
    assert _value(ct_rows, side="left", scope="structure", metric="imat_share", method="hu[-190,-30]") == 0.0
    # both sides together
    both = np.concatenate([right, np.repeat([30, 0], 64)])
    assert _value(ct_rows, structure="autochthon", side="both", scope="structure", metric="hu_mean", method="mask") == (
        pytest.approx(both.mean())
    )
    assert set(ct_rows["unit"][ct_rows["metric"].str.startswith("hu_")]) == {"HU"}
    assert set(ct_rows["flags"]) == {"fov_truncated", ""}  # unenhanced phantom: no contrast flag


def test_padding_inside_a_muscle_is_left_out_and_flagged():
    ct, labels = _phantom(padding=True)
    measured = measure_case(LabelMap.given(labels, SCHEME), case_id="ph", ct=ct)
    rows = _rows(measured.table, image="ct", side="right", scope="slice", slice=3, metric="hu_mean", method="mask")
    assert float(rows["value"].iloc[0]) == pytest.approx((16 * 80 + 8 * -70 + 4 * 230) / 28)
    assert "padding_excluded" in rows["flags"].iloc[0]
    assert any("4 padding voxels left out" in w for w in measured.warnings)


def test_windows_are_configurable_and_named():
    ct, labels = _phantom()
    options = CtOptions(adipose_window_hu=(-150, -50), muscle_window_hu=(0, 100))
    table = measure_case(LabelMap.given(labels, SCHEME), case_id="ph", ct=ct, ct_options=options).table
    methods = set(_rows(table, image="ct", metric="imat_share")["method"])
    assert methods == {"hu[-150,-50]"}
    # slice 0: -100 HU inside the new adipose window; slice 3: -70 also; all four slices -> 25 %
    assert _value(table, image="ct", side="right", scope="slice", slice=0, metric="imat_share") == 25.0
    assert _value(table, image="ct", side="left", scope="structure", metric="muscle_share", method="hu[0,100]") == 100.0
    with pytest.raises(InputError, match="adipose window must run from a low to a high HU value"):
        CtOptions(adipose_window_hu=(-30, -190))


def test_myosteatosis_martin2013_cutoffs():
    assert myosteatosis_martin2013(40.9, bmi_kg_m2=24.9) and not myosteatosis_martin2013(41.0, bmi_kg_m2=24.9)
    assert myosteatosis_martin2013(32.9, bmi_kg_m2=25.0) and not myosteatosis_martin2013(33.0, bmi_kg_m2=30.0)
    with pytest.raises(InputError, match="BMI must be a number"):
        myosteatosis_martin2013(30.0, bmi_kg_m2=0.0)


def test_myosteatosis_rows_only_at_l3_with_a_bmi_and_a_note():
    ct, labels = _phantom()
    table = measure_case(LabelMap.given(labels, SCHEME), case_id="ph", ct=ct).table
    assert "myosteatosis" not in set(table["metric"])  # no BMI: no category
    levels = levels_from_mapping({"L3": (1, 3), "L4": (3, 4)}, n_slices=4)
    measured = measure_case(LabelMap.given(labels, SCHEME), case_id="ph", ct=ct, levels=levels,
                            ct_options=CtOptions(bmi_kg_m2=27.0))  # fmt: skip
    rows = _rows(measured.table, metric="myosteatosis")
    assert set(rows["level"]) == {"L3"} and set(rows["method"]) == {"martin2013:MA<33HU(BMI>=25)"}
    values = dict(zip(rows["side"], rows["value"], strict=True))
    assert values == {"right": 0.0, "left": 1.0, "both": 1.0}  # MA: right 65 HU, left 15 HU, both (32·65 + 64·15)/96
    assert all("defined_for_all_L3_skeletal_muscle" in f for f in rows["flags"])
    no_l3 = measure_case(LabelMap.given(labels, SCHEME), case_id="ph", ct=ct, ct_options=CtOptions(bmi_kg_m2=22.0))
    assert any("defined at L3, and the case has no L3 level" in w for w in no_l3.warnings)


def test_an_image_not_in_hu_is_refused_before_measuring():
    ct, labels = _phantom()
    shifted = ct.with_array((ct.array + 1024).astype(np.int16), source="shifted.nii.gz")
    with pytest.raises(InputError, match=r"shifted\.nii\.gz: not a CT image in HU"):
        measure_case(LabelMap.given(labels, SCHEME), case_id="ph", ct=shifted)


# --------------------------------------------------------------------------- the real CT and its total labels


@pytest.fixture(scope="module")
def real_case():
    import nibabel as nib

    hu = np.asarray(nib.load(str(CT_NIFTI)).dataobj).astype(np.float64)  # independent of paraspinal's readers
    seg = np.asarray(nib.load(str(CT_LABELS)).dataobj)
    ct = as_ct(read_image(CT_NIFTI))
    labels = LabelMap.given(read_label_map(CT_LABELS), SCHEME)
    levels = levels_from_vertebra_mask(labels.labels, scheme=SCHEME)
    measured = measure_case(labels, case_id="example", ct=ct, levels=levels)
    return hu, seg, levels, measured


@needs_ct_example
def test_real_ct_autochthon_per_side_matches_numpy(real_case):
    hu, seg, _levels, measured = real_case
    table = _rows(measured.table, image="ct", structure="autochthon", scope="structure")
    expected = {}
    for side, value in (("right", RIGHT), ("left", LEFT)):
        voxels = hu[seg == value]
        imat = 100.0 * np.count_nonzero((voxels >= -190) & (voxels <= -30)) / voxels.size
        expected[side] = (voxels.mean(), imat)
        assert _value(table, side=side, metric="hu_mean", method="mask") == pytest.approx(voxels.mean(), abs=1e-9)
        assert _value(table, side=side, metric="imat_share", method="hu[-190,-30]") == pytest.approx(imat, abs=1e-9)
        assert _value(table, side=side, metric="hu_median", method="mask") == np.median(voxels)
    # the numbers this real scan gives (a model's labels: anatomy for the test, not an accuracy claim)
    assert expected["right"][0] == pytest.approx(23.333, abs=1e-3) and expected["left"][0] == pytest.approx(
        25.667, abs=1e-3
    )
    assert expected["right"][1] == pytest.approx(1.4017, abs=1e-4) and expected["left"][1] == pytest.approx(
        1.0922, abs=1e-4
    )


@needs_ct_example
def test_real_ct_vertebral_level_and_slice_rows_match_numpy(real_case):
    hu, seg, levels, measured = real_case
    assert levels.names == ("L1",)  # T12 and L2 are cut by the field of view
    level = levels.levels[0]
    table = _rows(measured.table, image="ct", structure="autochthon")
    for side, value in (("right", RIGHT), ("left", LEFT)):
        voxels = hu[:, :, level.slice_start : level.slice_stop][
            seg[:, :, level.slice_start : level.slice_stop] == value
        ]
        got = _value(table, side=side, scope="level", level="L1", metric="hu_mean", method="mask")
        assert got == pytest.approx(voxels.mean(), abs=1e-9)
        on_slice = hu[:, :, 15][seg[:, :, 15] == value]
        assert _value(table, side=side, scope="slice", slice=15, metric="hu_sd", method="mask") == pytest.approx(
            on_slice.std(ddof=1), abs=1e-9
        )


def test_vertebral_levels_cover_each_whole_vertebra_core():
    labels = np.zeros((20, 20, 30), dtype=np.uint8)
    labels[5:15, 5:15, 4:12] = 29  # L3 body: slices 4..11
    labels[9:11, 14:18, 2:14] = 29  # thin posterior tips reaching slices 2..13
    labels[5:15, 5:15, 14:22] = 28  # L4
    labels[5:15, 5:15, 24:30] = 27  # L5 cut by the field of view: no level
    image = Image(labels, np.eye(4), source="spine.nii.gz")
    table = levels_from_vertebra_mask(image, scheme=SCHEME)
    assert [(lv.name, lv.slice_start, lv.slice_stop, lv.disc_slice) for lv in table] == [
        ("L3", 4, 12, None),
        ("L4", 14, 22, None),
    ]
