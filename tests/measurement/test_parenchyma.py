"""Organ parenchyma on CT: erosion in mm on anisotropic grids, outliers, exact excluded shares, ROIs,
steatosis categories withheld unless unenhanced, the real TotalSegmentator CT against an independent computation."""

from __future__ import annotations

import numpy as np
import pytest

from paraspinal.anatomy import load_scheme
from paraspinal.errors import InputError
from paraspinal.io import Image, LabelMap, read_image, read_label_map
from paraspinal.io.ct import as_ct
from paraspinal.measurement import measure_case
from paraspinal.measurement.ct import CtOptions
from paraspinal.measurement.parenchyma import place_rois, select_parenchyma, steatosis_categories
from tests.ct_support import CT_DICOM, CT_LABELS, CT_NIFTI, ct_image, needs_ct_dicom, needs_ct_example

SCHEME = load_scheme("total")
LIVER, SPLEEN = 5, 1


def _organ(*, spacing=(1.0, 1.0, 3.0)) -> tuple[Image, np.ndarray]:
    """A 20 x 20 x 10 voxel 'liver' at 60 HU, its 1-voxel rim at -50 HU, with a 'vessel' (10 voxels, 180 HU)
    and a 'cyst' (5 voxels, 5 HU) deep inside; the body around it at 30 HU, air beyond."""
    hu = np.full((40, 40, 16), -1000, dtype=np.int16)
    hu[4:36, 4:36, 1:15] = 30
    mask = np.zeros(hu.shape, dtype=bool)
    mask[10:30, 10:30, 3:13] = True
    hu[mask] = -50
    hu[11:29, 11:29, 4:12] = 60
    hu[15:20, 15:17, 6] = 180  # vessel
    hu[22:27, 22, 8] = 5  # cyst
    return ct_image(hu, spacing=spacing), mask


def test_erosion_is_in_mm_along_every_axis_of_an_anisotropic_grid():
    ct, mask = _organ(spacing=(1.0, 1.0, 3.0))
    sel = select_parenchyma(ct, mask, erosion_mm=3.0, outliers="none")
    # in-plane layers at 1, 2, 3 mm go; along z the first layer (3 mm) goes, the second (6 mm) stays
    core = np.zeros(mask.shape, dtype=bool)
    core[13:27, 13:27, 4:12] = True
    np.testing.assert_array_equal(sel.selected, core)
    assert sel.n_mask == 4000 and sel.n_selected == 14 * 14 * 8
    assert sel.share_pct(sel.margin) == pytest.approx(100 * (4000 - 1568) / 4000)
    assert sel.method == "erode3mm" and sel.volume_ml == pytest.approx(1568 * 3.0 / 1000)
    # an isotropic grid loses 3 layers along z too
    iso = select_parenchyma(_organ(spacing=(1.0, 1.0, 1.0))[0], mask, erosion_mm=3.0, outliers="none")
    assert iso.n_selected == 14 * 14 * 4


def test_mad_outliers_drop_vessel_and_cyst_exactly():
    ct, mask = _organ(spacing=(1.0, 1.0, 1.0))
    sel = select_parenchyma(ct, mask, erosion_mm=1.0)  # drops the rim: 18 x 18 x 8 voxels left, 60 HU but 15
    assert sel.method == "erode1mm+mad3"
    assert sel.bounds_hu == (60.0, 60.0)  # more than half at 60 HU: MAD 0
    assert int(sel.outliers.sum()) == 15 and sel.n_selected == 18 * 18 * 8 - 15
    assert (sel.mean_hu, sel.median_hu, sel.sd_hu) == (60.0, 60.0, 0.0)
    assert sel.excluded_share_pct == pytest.approx(100 * (4000 - sel.n_selected) / 4000)
    assert sel.share_pct(sel.outliers) == pytest.approx(100 * 15 / 4000)
    window = select_parenchyma(ct, mask, erosion_mm=1.0, outliers="window", window_hu=(0.0, 100.0))
    assert window.method == "erode1mm+window0..100" and int(window.outliers.sum()) == 10  # the cyst (5 HU) stays
    with pytest.raises(InputError, match="needs window_hu"):
        select_parenchyma(ct, mask, outliers="window")


def test_mad_bounds_follow_a_noisy_parenchyma():
    rng = np.random.default_rng(7)
    ct, mask = _organ(spacing=(1.0, 1.0, 1.0))
    hu = ct.array.astype(np.float64)
    hu[mask] = 55 + rng.normal(0, 8, int(mask.sum()))
    hu[15:20, 15:17, 6] = 190
    sel = select_parenchyma(ct.with_array(hu), mask, erosion_mm=0.0)
    eroded = hu[mask]
    median = np.median(eroded)
    bound = 3 * 1.4826 * np.median(np.abs(eroded - median))
    assert sel.bounds_hu == pytest.approx((median - bound, median + bound))
    assert sel.mean_hu == pytest.approx(eroded[np.abs(eroded - median) <= bound].mean())
    assert not sel.selected[15:20, 15:17, 6].any()


def test_padding_in_the_mask_is_never_measured():
    ct, mask = _organ()
    hu = ct.array.copy()
    hu[11:29, 11:13, 4:12] = -2048
    sel = select_parenchyma(ct.with_array(hu), mask, erosion_mm=0.0, outliers="none")
    assert int(sel.padding.sum()) == 18 * 2 * 8 and sel.values_hu.min() > -100


def test_rois_sit_deep_inside_and_apart():
    ct, mask = _organ(spacing=(1.0, 1.0, 1.0))
    sel = select_parenchyma(ct, mask, erosion_mm=1.0)
    rois = place_rois(ct, sel, n_rois=3, radius_mm=2.0)
    assert 1 <= len(rois) <= 3
    centres = np.array([r.centre for r in rois], dtype=float)
    for a in range(len(rois)):
        for b in range(a + 1, len(rois)):
            assert np.linalg.norm(centres[a] - centres[b]) >= 4.0
    assert all(r.mean_hu == 60.0 and r.n_voxels == 13 for r in rois)  # a disc of radius 2 voxels holds 13
    assert place_rois(ct, sel, n_rois=2, radius_mm=50.0) == []


@pytest.mark.parametrize(
    ("liver", "spleen", "grade", "liver_spleen"),
    [(60.0, 50.0, 0.0, 0.0), (57.0, None, 0.0, None), (56.9, 50.0, 1.0, 0.0), (40.0, 52.0, 1.0, 1.0),
     (39.9, 45.0, 2.0, 0.0)],
)  # fmt: skip
def test_steatosis_cutoffs_on_unenhanced_ct(liver, spleen, grade, liver_spleen):
    found = {c.metric: c for c in steatosis_categories(liver, spleen_hu=spleen, contrast="none")}
    assert found["steatosis_grade"].value == grade
    assert found["steatosis_grade"].method == "liver_hu<57|<40(graffy2019)"
    if liver_spleen is None:
        assert "steatosis_liver_spleen" not in found
    else:
        assert found["steatosis_liver_spleen"].value == liver_spleen


@pytest.mark.parametrize(("contrast", "why"), [("applied", "contrast-enhanced CT"), ("unknown", "contrast unknown")])
def test_steatosis_is_withheld_unless_unenhanced(contrast, why):
    for category in steatosis_categories(30.0, spleen_hu=50.0, contrast=contrast):
        assert np.isnan(category.value) and category.label == "withheld"
        assert why in category.note and "unenhanced CT only" in category.note


def _liver_case(contrast: str | None) -> tuple[Image, LabelMap]:
    ct, mask = _organ(spacing=(1.0, 1.0, 1.0))
    labels = np.zeros(mask.shape, dtype=np.uint8)
    labels[mask] = LIVER
    metadata = {} if contrast is None else {"contrast_agent": contrast}
    ct = Image(ct.array, ct.affine, source=ct.source, metadata={"modality": "CT", **metadata})
    return ct, LabelMap.given(Image(labels, ct.affine, source="labels.nii.gz"), SCHEME)


def test_measure_case_reports_liver_parenchyma_and_withholds_on_enhanced_ct():
    ct, labels = _liver_case("applied")
    measured = measure_case(labels, case_id="ph", ct=ct, ct_options=CtOptions(erosion_mm=1.0))
    liver = measured.table[(measured.table["structure"] == "liver") & (measured.table["image"] == "ct")]
    by = {
        (m, k): (v, f)
        for m, k, v, f in zip(liver["metric"], liver["method"], liver["value"], liver["flags"], strict=True)
    }
    method = "parenchyma:erode1mm+mad3"
    assert by[("hu_mean", method)][0] == 60.0 and by[("volume", method)][0] == pytest.approx((2592 - 15) / 1000)
    assert by[("excluded_share", "outliers:mad3")][0] == pytest.approx(100 * 15 / 4000)
    grade, flags = by[("steatosis_grade", "liver_hu<57|<40(graffy2019)")]
    assert np.isnan(grade) and "category_withheld_contrast_applied" in flags and "contrast_applied" in flags
    assert any("contrast-enhanced CT" in w for w in measured.warnings)
    assert measured.parenchyma["liver"].n_selected == 2592 - 15  # kept for the QC image


def test_declared_unenhanced_ct_is_graded():
    ct, labels = _liver_case(None)
    table = measure_case(labels, case_id="ph", ct=ct, ct_options=CtOptions(erosion_mm=1.0, contrast="none")).table
    rows = table[table["metric"] == "steatosis_grade"]
    assert rows["value"].tolist() == [0.0] and rows["flags"].tolist() == ["category_none"]


# --------------------------------------------------------------------------- the real CT


@needs_ct_example
@pytest.mark.parametrize("contrast", [None, "applied", "none"])
def test_real_ct_liver_parenchyma_matches_an_independent_computation(contrast):
    import nibabel as nib
    from scipy import ndimage

    hu = np.asarray(nib.load(str(CT_NIFTI)).dataobj).astype(np.float64)
    seg = np.asarray(nib.load(str(CT_LABELS)).dataobj)
    # independent: 3 mm isotropic voxels, 10 mm margin = erosion by a ball of radius 10/3 voxels, FOV edge kept
    r = np.arange(-3, 4)
    ball = (r[:, None, None] ** 2 + r[None, :, None] ** 2 + r[None, None, :] ** 2) * 9.0 <= 100.0
    core = ndimage.binary_erosion(seg == LIVER, structure=ball, border_value=1)
    values = hu[core]
    median = np.median(values)
    kept = values[np.abs(values - median) <= 3 * 1.4826 * np.median(np.abs(values - median))]
    ct = as_ct(read_image(CT_NIFTI)) if contrast is None else as_ct(read_image(CT_NIFTI), contrast=contrast)
    measured = measure_case(LabelMap.given(read_label_map(CT_LABELS), SCHEME), case_id="ex", ct=ct)
    liver = measured.table[(measured.table["structure"] == "liver") & (measured.table["image"] == "ct")]
    value = dict(zip(liver["metric"] + " " + liver["method"], liver["value"], strict=True))
    assert value["hu_mean parenchyma:erode10mm+mad3"] == pytest.approx(kept.mean(), abs=1e-9)
    excluded = 100.0 * (np.count_nonzero(seg == LIVER) - kept.size) / np.count_nonzero(seg == LIVER)
    assert value["excluded_share parenchyma:erode10mm+mad3"] == pytest.approx(excluded, abs=1e-9)
    assert kept.mean() == pytest.approx(46.789, abs=1e-3) and excluded == pytest.approx(49.884, abs=1e-3)
    grade = value["steatosis_grade liver_hu<57|<40(graffy2019)"]
    if contrast == "none":
        assert grade == 1.0  # 46.8 HU: mild, were the scan unenhanced
    else:
        flags = set(";".join(liver["flags"]).split(";"))
        assert np.isnan(grade) and f"category_withheld_contrast_{contrast or 'unknown'}" in flags


@needs_ct_dicom
def test_real_dicom_contrast_withholds_the_category():
    """The DICOM says ContrastBolusAgent APPLIED: a parenchyma there is measured, its category withheld."""
    image = read_image(CT_DICOM)
    labels = np.zeros(image.shape, dtype=np.uint8)
    soft = (image.array > 20) & (image.array < 120)
    labels[200:300, 200:300, 5:15][soft[200:300, 200:300, 5:15]] = LIVER  # a soft-tissue block, not a liver
    measured = measure_case(LabelMap.given(Image(labels, image.affine, source="block"), SCHEME), case_id="d", ct=image,
                            ct_options=CtOptions(erosion_mm=3.0))  # fmt: skip
    table = measured.table
    grade = table[table["metric"] == "steatosis_grade"]
    assert np.isnan(grade["value"].iloc[0]) and "category_withheld_contrast_applied" in grade["flags"].iloc[0]
    mean = table[(table["metric"] == "hu_mean") & (table["method"] == "parenchyma:erode3mm+mad3")]["value"].iloc[0]
    assert 20 < mean < 120


# --------------------------------------------------------------------------- QC image


def _has_colour(png, rgb, *, tol=0.08) -> bool:
    import matplotlib.image as mpimg

    pixels = mpimg.imread(str(png))[..., :3]
    return bool(np.any(np.all(np.abs(pixels - np.asarray(rgb)) < tol, axis=-1)))


def test_qc_image_draws_selected_margin_and_outliers(tmp_path):
    from paraspinal.reporting.qc_ct import COLOURS, ct_qc_slice, plot_ct_axial_qc

    ct, labels = _liver_case("none")
    measured = measure_case(labels, case_id="ph", ct=ct, ct_options=CtOptions(erosion_mm=1.0))
    index = ct_qc_slice(labels, measured.parenchyma)
    assert index in range(4, 12)
    png = plot_ct_axial_qc(ct, labels, selections=measured.parenchyma, slice_index=6, title="ph",
                           path=tmp_path / "q.png", display_window_hu=(-1000, 1000))  # fmt: skip
    assert png.is_file() and png.stat().st_size > 5000
    # blended over grey: check the hue order rather than exact values
    import matplotlib.image as mpimg

    pixels = mpimg.imread(str(png))[..., :3]
    greenish = (pixels[..., 1] > pixels[..., 0] + 0.15) & (pixels[..., 1] > pixels[..., 2] + 0.05)
    orange = (pixels[..., 0] > pixels[..., 1] + 0.1) & (pixels[..., 1] > pixels[..., 2] + 0.1)
    assert greenish.sum() > 100 and orange.sum() > 100
    assert set(COLOURS) == {"selected", "margin", "outliers", "imat"}


@needs_ct_example
def test_qc_image_of_the_real_ct(tmp_path):
    from paraspinal.reporting.qc_ct import ct_qc_slice, plot_ct_axial_qc

    ct = as_ct(read_image(CT_NIFTI))
    labels = LabelMap.given(read_label_map(CT_LABELS), SCHEME)
    measured = measure_case(labels, case_id="ex", ct=ct)
    index = ct_qc_slice(labels, measured.parenchyma)
    png = plot_ct_axial_qc(ct, labels, selections=measured.parenchyma, slice_index=index, title="example",
                           path=tmp_path / "ct.png")  # fmt: skip
    assert png.stat().st_size > 20000
    assert _has_colour(png, (0.94, 0.89, 0.26), tol=0.05)  # IMAT voxels drawn opaque in yellow


def test_depth_on_the_bounding_box_equals_the_full_distance_transform():
    from scipy import ndimage

    from paraspinal.measurement.parenchyma import depth_mm

    mask = np.zeros((30, 24, 12), dtype=bool)
    mask[0:18, 5:20, 3:12] = True  # touches the array edge on two sides: not a boundary there
    mask[8:10, 9:11, 6] = False  # a hole
    np.testing.assert_array_equal(
        depth_mm(mask, spacing_mm=(0.7, 0.7, 2.5)), ndimage.distance_transform_edt(mask, sampling=(0.7, 0.7, 2.5))
    )


def test_ct_rows_pair_with_manual_masks_for_agreement():
    """CT rows go through the existing agreement statistics like any metric (auto vs manual masks)."""
    import pandas as pd

    from paraspinal.evaluation.measurement_agreement import agreement_table, pair_measurements

    autos, manuals = [], []
    for n, liver_hu in enumerate((48, 55, 62, 70)):
        ct, labels = _liver_case("none")
        hu = ct.array.copy()
        hu[hu == 60] = liver_hu
        ct = ct.with_array(hu)
        manual = labels.labels.array.copy()
        manual[10, 10:30, 3:13] = 0  # the reader drew one row less
        options = CtOptions(erosion_mm=1.0)
        autos.append(measure_case(labels, case_id=f"c{n}", ct=ct, ct_options=options).table)
        manual_map = LabelMap.given(labels.labels.with_array(manual), SCHEME)
        manuals.append(measure_case(manual_map, case_id=f"c{n}", ct=ct, ct_options=options).table)
    pairs = pair_measurements(pd.concat(autos), pd.concat(manuals), metrics=("hu_mean",), scopes=("structure",))
    liver = pairs[(pairs["structure"] == "liver") & (pairs["method"] == "parenchyma:erode1mm+mad3")]
    assert liver["auto"].tolist() == [48.0, 55.0, 62.0, 70.0] and liver["manual"].tolist() == [48.0, 55.0, 62.0, 70.0]
    stats = agreement_table(liver)
    assert len(stats) == 1 and stats["n"].iloc[0] == 4 and stats["mae"].iloc[0] == 0.0
