"""Measurements on analytic phantoms: known areas, volumes and fat fractions in any orientation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from paraspinal.anatomy import load_scheme
from paraspinal.io.image import Image
from paraspinal.io.label_map import LabelMap
from paraspinal.levels import levels_from_mapping
from paraspinal.measurement import measure_case
from tests.phantoms import ras_affine, reorient, two_muscle_phantom


def _value(table: pd.DataFrame, **where: object) -> float:
    rows = table
    for column, wanted in where.items():
        rows = rows[rows[column].isna()] if wanted is None else rows[rows[column] == wanted]
    assert len(rows) == 1, f"expected one row for {where}, got {len(rows)}"
    return float(rows["value"].iloc[0])


def _measure(labels: np.ndarray, water: np.ndarray | None, fat: np.ndarray | None, affine: np.ndarray, **kw):
    lab = Image(labels, affine, source="labels.nii.gz")
    w = None if water is None else Image(water, affine)
    f = None if fat is None else Image(fat, affine)
    return measure_case(LabelMap.given(lab, kw.pop("scheme", load_scheme("lpm4"))), case_id="ph", water=w, fat=f, **kw)


def test_box_phantom_areas_volumes_and_fat_fractions_are_exact() -> None:
    labels, water, fat, affine = two_muscle_phantom()
    t = _measure(labels, water, fat, affine).table
    # 8 x 10 voxels of 1 x 1 mm per slice; 4 mm slices
    assert _value(t, structure="erector_spinae", side="right", scope="structure", metric="volume") == pytest.approx(3.2)
    assert _value(t, structure="erector_spinae", side="left", scope="structure", metric="volume") == pytest.approx(1.92)
    assert _value(t, structure="erector_spinae", side="both", scope="structure", metric="volume") == pytest.approx(5.12)
    csa = t[(t.metric == "csa") & (t.scope == "slice") & (t.side == "right")]
    assert len(csa) == 10 and np.allclose(csa.value, 80.0)
    assert _value(t, structure="erector_spinae", side="left", scope="slice", slice=5, metric="csa") == pytest.approx(
        80.0
    )
    for method in ("signal_weighted", "voxel_mean"):
        ff = dict(metric="fat_fraction", method=method, scope="structure", structure="erector_spinae")
        assert _value(t, side="right", **ff) == pytest.approx(25.0)
        assert _value(t, side="left", **ff) == pytest.approx(50.0)
    units = t.drop_duplicates("metric").set_index("metric")["unit"].to_dict()
    assert units["volume"] == "mL" and units["csa"] == "mm2" and units["fat_fraction"] == "%"


def test_two_fat_fraction_definitions_differ_as_defined() -> None:
    labels, water, fat, affine = two_muscle_phantom()
    right = labels == 1
    half = right & (np.arange(labels.shape[2])[None, None, :] < 5)
    water[right], fat[right] = 300.0, 100.0  # FF 0.25, F+W = 400
    water[half], fat[half] = 50.0, 50.0  # FF 0.50, F+W = 100
    t = _measure(labels, water, fat, affine).table
    common = dict(metric="fat_fraction", scope="structure", structure="erector_spinae", side="right")
    # equal voxel counts in each half: signal-weighted = (100+50)/(400+100); voxel mean = (0.25+0.5)/2
    assert _value(t, method="signal_weighted", **common) == pytest.approx(30.0)
    assert _value(t, method="voxel_mean", **common) == pytest.approx(37.5)


def test_zero_signal_voxels_do_not_divide_by_zero() -> None:
    labels, water, fat, affine = two_muscle_phantom()
    water[labels == 4], fat[labels == 4] = 0.0, 0.0
    with np.errstate(all="raise"):
        t = _measure(labels, water, fat, affine).table
    common = dict(metric="fat_fraction", scope="structure", structure="erector_spinae", side="left")
    assert np.isnan(_value(t, method="signal_weighted", **common))
    assert np.isnan(_value(t, method="voxel_mean", **common))


def test_ellipse_area_matches_pi_a_b() -> None:
    spacing = (0.25, 0.3, 5.0)
    shape = (200, 160, 3)
    affine = ras_affine(spacing, (-25.0, -24.0, 0.0))
    ijk = np.indices(shape).reshape(3, -1).T
    xyz = ijk @ affine[:3, :3].T + affine[:3, 3]
    a, b = 18.0, 11.0  # mm
    inside = ((xyz[:, 0] - 0.0) / a) ** 2 + ((xyz[:, 1] + 0.0) / b) ** 2 <= 1
    labels = inside.reshape(shape).astype(np.int16)  # label 1 everywhere in the ellipse
    t = _measure(labels, None, None, affine).table
    area = _value(t, structure="erector_spinae", side="right", scope="slice", slice=1, metric="csa")
    assert area == pytest.approx(np.pi * a * b, rel=0.005)
    volume = _value(t, structure="erector_spinae", side="right", scope="structure", metric="volume")
    assert volume == pytest.approx(np.pi * a * b * 5.0 * 3 / 1000, rel=0.005)


ORIENTATIONS = [
    ((False, False, False), (0, 1, 2)),  # RAS
    ((True, True, False), (0, 1, 2)),  # LPS storage
    ((False, False, True), (0, 1, 2)),  # slices stored top-down
    ((True, False, False), (2, 0, 1)),  # permuted axes: slice axis first
    ((False, True, True), (1, 2, 0)),
]


@pytest.mark.parametrize(("flips", "order"), ORIENTATIONS)
def test_any_storage_orientation_gives_identical_measurements(flips, order) -> None:
    labels, water, fat, affine = two_muscle_phantom()
    rng = np.random.default_rng(1)
    water = water + rng.normal(0, 5, water.shape)  # make every voxel count
    t2 = np.where(labels > 0, rng.choice([200.0, 700.0], size=labels.shape, p=[0.7, 0.3]), 0.0)
    levels = {"L3/L4": 3, "L4/L5": (5, 9)}

    reference = _measure(
        labels,
        water,
        fat,
        affine,
        image=Image(t2, affine),
        image_name="t2",
        levels=levels_from_mapping(levels, n_slices=10),
    ).table
    moved = [reorient(a, affine, flips=flips, order=order) for a in (labels, water, fat, t2)]
    aff2 = moved[0][1]
    # the axial axis is original axis 2: if it was flipped, slice v became n-1-v
    n = 10
    mapped = {
        name: ((n - 1 - v) if flips[2] else v) if isinstance(v, int) else ((n - v[1], n - v[0]) if flips[2] else v)
        for name, v in levels.items()
    }
    lab2, w2, f2, t22 = (m[0] for m in moved)
    table = _measure(
        lab2, w2, f2, aff2, image=Image(t22, aff2), image_name="t2", levels=levels_from_mapping(mapped, n_slices=n)
    ).table
    key = ["structure", "side", "scope", "level", "metric", "method", "image", "z_mm"]

    def canon(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.assign(z_mm=frame.z_mm.round(6)).sort_values(key, na_position="first")
        return frame[[*key, "value"]].reset_index(drop=True)

    a, b = canon(reference), canon(table)
    pd.testing.assert_frame_equal(a[key], b[key])
    np.testing.assert_allclose(a.value.to_numpy(), b.value.to_numpy(), rtol=1e-9, equal_nan=True)


def _scheme_file(tmp_path: Path) -> Path:
    path = tmp_path / "unsided.toml"
    path.write_text(
        'key = "unsided"\nname = "unsided test scheme"\ndescription = "multifidus without sides"\n'
        'reference = "test"\n'
        '[[labels]]\nvalue = 1\nname = "multifidus"\nstructure = "multifidus"\nside = "none"\n'
        '[[labels]]\nvalue = 2\nname = "vertebra"\nstructure = "vertebra_L4"\nside = "none"\n'
    )
    return path


def test_unsided_scheme_splits_at_midline_and_flipping_affine_x_swaps_sides(tmp_path: Path) -> None:
    shape = (40, 20, 4)
    labels = np.zeros(shape, np.int16)
    labels[10:20, 5:10, :] = 1  # 10 columns on one side of the vertebra
    labels[24:28, 5:10, :] = 1  # 4 columns on the other
    labels[20:24, 2:12, :] = 2  # the vertebra in the middle
    affine = ras_affine((1.0, 1.0, 3.0), (-22.0, 0, 0))  # i increases towards the patient's right
    scheme = load_scheme(_scheme_file(tmp_path))
    t = _measure(labels, None, None, affine, scheme=scheme).table
    area = dict(structure="multifidus", scope="slice", slice=0, metric="csa")
    # low i is the patient's left here: the 10-column part is left
    assert _value(t, side="left", **area) == pytest.approx(50.0)
    assert _value(t, side="right", **area) == pytest.approx(20.0)
    flipped = affine.copy()
    flipped[0, :] *= -1  # mirror world x: same voxels, patient sides exchanged
    t2 = _measure(labels, None, None, flipped, scheme=scheme).table
    assert _value(t2, side="left", **area) == pytest.approx(20.0)
    assert _value(t2, side="right", **area) == pytest.approx(50.0)


def test_sided_labels_on_the_wrong_side_are_flagged() -> None:
    labels, water, fat, affine = two_muscle_phantom()
    result = _measure(labels, water, fat, affine)
    assert not any("laterality" in w for w in result.warnings)
    flipped = affine.copy()
    flipped[0, :] *= -1
    result = _measure(labels, water, fat, flipped)
    assert any("laterality: 'erector_spinae' labelled right lies on the patient's left" in w for w in result.warnings)
    assert result.table[result.table.structure == "erector_spinae"]["flags"].str.contains("laterality_mismatch").all()


def test_structures_touching_the_fov_edge_are_flagged_not_dropped() -> None:
    labels, water, fat, affine = two_muscle_phantom()
    t = _measure(labels, water, fat, affine).table
    vol = t[(t.metric == "volume") & (t.scope == "structure")].set_index("side")["flags"]
    assert "fov_truncated" in vol["right"]  # label 1 spans all 10 slices
    assert "fov_truncated" not in vol["left"]  # label 4 spans slices 2..7


def test_swapped_fat_and_water_warn_in_output_and_table() -> None:
    labels, water, fat, affine = two_muscle_phantom()
    water[labels == 4], fat[labels == 4] = 100.0, 300.0
    result = _measure(labels, fat, water, affine)  # swapped on purpose
    assert any(w.startswith("fat and water look swapped") for w in result.warnings)
    ff = result.table[result.table.metric == "fat_fraction"]
    assert ff["flags"].str.contains("fat_water_swap_suspected").all()


def test_levels_give_disc_slice_and_level_mean_csa_and_rcsa(tmp_path: Path) -> None:
    shape = (40, 30, 10)
    labels = np.zeros(shape, np.int16)
    labels[24:32, 5:15, :] = 1  # right ES: 80 mm2 per slice
    labels[24:32, 5:10, 6:] = 0  # 40 mm2 on slices 6..9
    labels[16:24, 20:28, 4] = 3  # a "disc" 64 mm2 on slice 4 (label 3 -> disc_L3_L4 below)
    scheme_path = tmp_path / "s.toml"
    scheme_path.write_text(
        'key = "s"\nname = "s"\ndescription = "d"\nreference = "r"\n'
        '[[labels]]\nvalue = 1\nname = "right ES"\nstructure = "erector_spinae"\nside = "right"\n'
        '[[labels]]\nvalue = 3\nname = "L3/L4 disc"\nstructure = "disc_L3_L4"\nside = "none"\n'
    )
    levels = levels_from_mapping({"L3/L4": 4, "L4/L5": (4, 8)}, n_slices=10)
    t = _measure(labels, None, None, ras_affine((1.0, 1.0, 4.0)), scheme=load_scheme(scheme_path), levels=levels).table
    es = dict(structure="erector_spinae", side="right", scope="level")
    assert _value(t, level="L3/L4", metric="csa", method="disc_slice", **es) == pytest.approx(80.0)
    assert _value(t, level="L4/L5", metric="csa", method="level_mean", **es) == pytest.approx((80 + 80 + 40 + 40) / 4)
    assert _value(t, level="L4/L5", metric="volume", method="level_slices", **es) == pytest.approx(240 * 4 / 1000)
    assert _value(t, level="L3/L4", metric="rcsa", **es) == pytest.approx(80.0 / 64.0)


def test_fat_infiltration_in_table_matches_known_share() -> None:
    labels, _water, _fat, affine = two_muscle_phantom()
    rng = np.random.default_rng(7)
    t2 = np.zeros(labels.shape)
    for value, share in ((1, 0.2), (4, 0.4)):
        n = int((labels == value).sum())
        vals = np.where(np.arange(n) < round(share * n), rng.normal(700, 25, n), rng.normal(250, 20, n))
        t2[labels == value] = vals
    t = _measure(labels, None, None, affine, image=Image(t2, affine), image_name="t2").table
    for method in ("otsu", "otsu_xu", "kmeans2", "gmm2"):
        common = dict(metric="fat_infiltration", method=method, scope="structure", structure="erector_spinae")
        assert _value(t, side="right", **common) == pytest.approx(20.0, abs=0.5)
        assert _value(t, side="left", **common) == pytest.approx(40.0, abs=0.5)
        both = _value(t, side="both", **common)
        assert both == pytest.approx(100 * (0.2 * 800 + 0.4 * 480) / 1280, abs=0.5)
        thr = _value(
            t, side="right", metric="fat_threshold", method=method, scope="structure", structure="erector_spinae"
        )
        assert 300 < thr < 650


def test_intensities_are_float_not_truncated() -> None:
    labels, _water, _fat, affine = two_muscle_phantom()
    img = np.zeros(labels.shape, np.uint16)
    img[labels == 1] = np.where(np.arange(int((labels == 1).sum())) % 2 == 0, 100, 101)
    t = _measure(labels, None, None, affine, image=Image(img, affine), image_name="t1", infiltration_methods=()).table
    mean = _value(t, structure="erector_spinae", side="right", scope="structure", metric="intensity_mean", image="t1")
    assert mean == pytest.approx(100.5)
