"""QC images: planes oriented from the affine (radiological), slice choice, and the images themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from paraspinal.anatomy import load_scheme
from paraspinal.io import Image
from paraspinal.io.label_map import LabelMap
from paraspinal.levels import levels_from_mapping
from paraspinal.measurement import measure_case
from paraspinal.reporting.qc import QcSlice, label_colours, plot_axial_overlay, plot_locator, qc_slices
from paraspinal.reporting.qc_case import write_case_qc
from paraspinal.reporting.qc_checks import case_checks
from paraspinal.reporting.qc_fat import fat_fraction_map
from paraspinal.reporting.qc_sagittal import spread_labels
from paraspinal.reporting.qc_views import crop_box, display_window, plane_view
from tests.phantoms import ras_affine, reorient, two_muscle_phantom

STORAGES = [
    ((False, False, False), (0, 1, 2)),  # RAS
    ((True, True, False), (0, 1, 2)),  # LPS
    ((True, False, True), (2, 0, 1)),  # flipped and permuted
    ((False, True, False), (1, 2, 0)),
]


def _marker_image(flips, order) -> Image:
    """A marker in the patient's right-anterior-superior corner, stored in some orientation."""
    array = np.zeros((20, 16, 12), dtype=np.int16)
    array[15:19, 11:15, 8:11] = 1  # RAS+: high i = right, high j = anterior, high k = superior
    stored, affine = reorient(array, ras_affine((1.0, 1.5, 2.0), (-10, -12, 0)), flips=flips, order=order)
    return Image(stored, affine)


@pytest.mark.parametrize(("flips", "order"), STORAGES)
def test_planes_are_radiological_whatever_the_storage(flips, order) -> None:
    image = _marker_image(flips, order)
    voxels = np.argwhere(image.array > 0)
    expected = {
        # plane: letters at (top, bottom, left, right); the marker must sit top-left
        "axial": ("A", "P", "R", "L"),
        "coronal": ("S", "I", "R", "L"),
        "sagittal": ("S", "I", "A", "P"),
    }
    for plane, letters in expected.items():
        probe = plane_view(image, plane, 0)
        index = int(np.median(voxels[:, probe.fixed_axis]))
        view = plane_view(image, plane, index)
        shown = view.take(image.array)
        rows, cols = np.nonzero(shown)
        assert rows.size, plane
        assert rows.mean() < shown.shape[0] / 2, f"{plane}: marker not in the top half"
        assert cols.mean() < shown.shape[1] / 2, f"{plane}: marker not in the left half"
        assert view.edge_letters == letters


def test_plane_spacing_crop_and_slice_positions() -> None:
    labels, _water, _fat, affine = two_muscle_phantom()
    image = Image(labels, affine)
    box = crop_box(image, "axial", margin_mm=2.0)
    assert box is not None
    view = plane_view(image, "axial", 5, crop=box)
    shown = view.take(image.array)
    assert shown.shape == view.shape == (10 + 4, 24 + 4)  # j 5..14 and i 8..31, 2 voxels around
    assert view.extent_mm == (0.0, 28.0, 14.0, 0.0)
    coronal = plane_view(image, "coronal", 10)
    assert coronal.row_spacing_mm == 4.0 and coronal.col_spacing_mm == 1.0
    # slice 9 is the most superior: first row of a coronal view
    assert coronal.row_mm(9) == pytest.approx(2.0) and coronal.row_mm(0) == pytest.approx(38.0)
    assert crop_box(Image(np.zeros((4, 4, 4), np.int16), np.eye(4)), "axial") is None


def test_qc_slices_from_levels_or_evenly_spaced() -> None:
    labels, _w, _f, affine = two_muscle_phantom()
    image = Image(labels, affine)
    levels = levels_from_mapping({"L4/L5": 2, "L3/L4": (5, 8)}, n_slices=10)
    chosen = qc_slices(image, levels)
    assert [(s.level, s.index) for s in chosen] == [("L3/L4", 6), ("L4/L5", 2)]  # superior first
    assert chosen[0].label == "L3/L4 middle slice 6" and chosen[1].label == "L4/L5 disc slice 2"
    assert chosen[0].z_mm == pytest.approx(24.0)
    even = qc_slices(image, None, n_even=3)
    assert [s.index for s in even] == [7, 4, 2]  # 2.25, 4.5, 6.75 rounded: inside 0..9, superior first
    assert all(s.level is None for s in even)


def test_window_ignores_background_and_hot_pixels() -> None:
    values = np.zeros(10_000)
    values[:5000] = np.linspace(100, 200, 5000)
    values[0] = 1e6
    low, high = display_window(values)
    assert 100 <= low < 105 and 195 < high <= 200


def test_fat_fraction_map_is_100_f_over_f_plus_w() -> None:
    ff = fat_fraction_map(np.array([300.0, 0.0, 0.0, 50.0]), np.array([100.0, 0.0, 10.0, 50.0]))
    np.testing.assert_allclose(ff, [25.0, np.nan, 100.0, 50.0], equal_nan=True)


def _colour_columns(png: Path, colour: str, *, top_fraction: float = 0.8) -> np.ndarray:
    """Pixel columns (x) of ``png`` whose colour is close to ``colour`` (image area only, legend excluded)."""
    rgb = np.asarray(PILImage.open(png).convert("RGB"), dtype=np.int32)
    rgb = rgb[: int(rgb.shape[0] * top_fraction)]
    target = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
    close = np.abs(rgb - target).sum(axis=2) < 40
    return np.nonzero(close)[1]


@pytest.mark.parametrize("flips", [(False, False, False), (True, True, False)])
def test_axial_overlay_puts_the_patients_right_on_the_viewers_left(tmp_path: Path, flips) -> None:
    labels, water, _fat, affine = two_muscle_phantom()  # label 1 right ES, label 4 left ES
    stored_labels, stored_affine = reorient(labels, affine, flips=flips)
    stored_water, _ = reorient(water, affine, flips=flips)
    scheme = load_scheme("lpm4")
    png = plot_axial_overlay(
        Image(stored_water, stored_affine),
        Image(stored_labels, stored_affine),
        scheme=scheme,
        qc_slice=QcSlice(4, 16.0, None, "slice 4"),
        title="phantom",
        path=tmp_path / "axial.png",
    )
    colours = label_colours(scheme)
    right_es = _colour_columns(png, colours[1])
    left_es = _colour_columns(png, colours[4])
    width = PILImage.open(png).size[0]
    assert right_es.size > 50 and left_es.size > 50
    assert right_es.mean() < width / 2 < left_es.mean()


def test_case_qc_writes_every_kind_of_image(tmp_path: Path) -> None:
    labels, water, fat, affine = two_muscle_phantom()
    lab, w, f = Image(labels, affine), Image(water, affine), Image(fat, affine)
    t1 = Image(np.where(labels > 0, np.tile(np.linspace(100, 400, 10), (40, 30, 1)), 10.0), affine)
    scheme = load_scheme("lpm4")
    levels = levels_from_mapping({"L4/L5": 3}, n_slices=10)
    table = measure_case(
        LabelMap.given(lab, scheme),
        case_id="ph",
        water=w,
        fat=f,
        image=t1,
        image_name="t1",
        levels=levels,
        infiltration_methods=("otsu", "kmeans2"),
    ).table
    images = write_case_qc(
        tmp_path,
        case_id="ph",
        label_map=LabelMap.given(lab, scheme),
        levels=levels,
        background=w,
        table=table,
        water=w,
        fat=f,
        image=t1,
        image_name="t1",
        infiltration_methods=("otsu", "kmeans2"),
    )
    assert [i.kind for i in images] == ["axial", "locator", "montage", "fat_fraction", "fat_threshold"]
    assert images[0].path == Path("qc/ph_axial_L4-L5.png")
    for image in images:
        png = PILImage.open(tmp_path / image.path)
        assert png.format == "PNG" and min(png.size) > 200
        assert np.asarray(png.convert("L")).std() > 10  # not blank
    no_levels = write_case_qc(
        tmp_path / "b",
        case_id="ph",
        label_map=LabelMap.given(lab, scheme),
        levels=None,
        background=w,
        table=table,
        n_even=4,
    )
    assert [i.kind for i in no_levels] == ["axial"] * 4 + ["locator", "montage"]


@pytest.mark.parametrize(("flips", "order"), [STORAGES[0], STORAGES[2]])
def test_single_slice_case_qc_leaves_out_the_locator_and_never_contours_a_strip(tmp_path: Path, flips, order) -> None:
    labels, water, fat, affine = two_muscle_phantom()
    stored = [reorient(a[:, :, 4:5], affine, flips=flips, order=order) for a in (labels, water, fat)]
    lab, w, f = (Image(a, aff) for a, aff in stored)
    t2 = Image(np.where(lab.array > 0, 300.0 + np.arange(lab.array.size).reshape(lab.shape) % 50, 10.0), lab.affine)
    scheme = load_scheme("lpm4")
    measured = measure_case(LabelMap.given(lab, scheme), case_id="one", water=w, fat=f, image=t2, image_name="t2")
    assert not measured.table["flags"].dropna().astype(str).str.contains("fov_truncated").any()
    fov = case_checks(measured, dixon=True)[0]
    assert (fov.name, fov.status, fov.message) == (
        "fov_truncated",
        "not_applicable",
        "single-slice image: no slices above or below to tell",
    )
    levels = levels_from_mapping({"L4/L5": 0}, n_slices=1)
    for case_levels in (None, levels):
        images = write_case_qc(
            tmp_path / str(case_levels is None),
            case_id="one",
            label_map=LabelMap.given(lab, scheme),
            levels=case_levels,
            background=w,
            table=measured.table,
            water=w,
            fat=f,
            image=t2,
            image_name="t2",
            infiltration_methods=("otsu",),
        )
        assert [i.kind for i in images] == ["axial", "montage", "fat_fraction", "fat_threshold"]
        for image in images:
            assert np.asarray(PILImage.open(tmp_path / str(case_levels is None) / image.path).convert("L")).std() > 10
    # called directly, the locator draws the 1-voxel reformats without contours instead of failing
    png = plot_locator(
        w, lab, scheme=scheme, slices=qc_slices(lab, None), levels=None, title="x", path=tmp_path / "l.png"
    )
    assert png.is_file()


def test_disc_labels_are_spread_apart_in_order_and_inside_the_view() -> None:
    # far apart: unchanged
    assert spread_labels([10.0, 50.0, 90.0], min_gap=5.0, low=0.0, high=100.0) == [10.0, 50.0, 90.0]
    # three labels on one height (tilted planes extrapolated to the margin): pushed 5 apart, order kept
    ys = spread_labels([40.0, 40.0, 41.0], min_gap=5.0, low=0.0, high=100.0)
    assert ys == [40.0, 45.0, 50.0]
    # crowded at the top edge: pushed down, never beyond the view
    ys = spread_labels([99.0, 98.0, 100.0], min_gap=5.0, low=0.0, high=100.0)
    assert ys == [95.0, 90.0, 100.0]
    # more labels than fit: the gap shrinks to fit them all evenly
    ys = spread_labels([5.0] * 5, min_gap=10.0, low=0.0, high=20.0)
    assert ys == [0.0, 5.0, 10.0, 15.0, 20.0]
    assert spread_labels([], min_gap=1.0, low=0.0, high=1.0) == []
