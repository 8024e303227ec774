"""DICOM discovery, selection and reading: planes, hints, multi-frame, missing slices, uneven spacing."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from paraspinal.errors import InputError
from paraspinal.io import read_image, read_label_map
from paraspinal.io.dicom import discover_series, read_dicom, scan_dicom
from paraspinal.io.dicom_select import SeriesChoice, choice_for_role, contrast_hints, select_series
from paraspinal.io.orientation import axial_frame
from tests.dicom_factory import FAT_RESCALE, Tum01Study, rotated_affine, uid_for, write_series, write_tum01_study


@pytest.fixture(scope="module")
def tum01(tmp_path_factory: pytest.TempPathFactory) -> Tum01Study:
    return write_tum01_study(tmp_path_factory.mktemp("tum01"))


def _by_uid(folder: Path) -> dict[str, object]:
    return {s.key: s for s in discover_series(folder)}


# --- discovery -----------------------------------------------------------------------------------


def test_study_lists_every_series_with_plane_slices_spacing_and_hints(tum01: Tum01Study) -> None:
    series = _by_uid(tum01.study)
    assert set(series) == {tum01.water_uid, tum01.fat_uid, tum01.sagittal_uid, tum01.labels_uid}
    water, fat, sag = series[tum01.water_uid], series[tum01.fat_uid], series[tum01.sagittal_uid]
    assert (water.plane, water.n_slices, water.rows, water.columns) == ("axial", 29, 400, 400)
    assert water.tilt_deg == pytest.approx(0.0, abs=1e-6)
    assert water.slice_spacing_mm == pytest.approx(4.0)
    assert water.pixel_spacing_mm == pytest.approx((1.018518567, 1.018518567))
    assert water.contrasts == ("water", "t1")  # ImageType WATER; "t1" from the description
    assert fat.contrasts == ("fat", "t1")
    assert (sag.plane, sag.n_slices, sag.rows, sag.columns) == ("sagittal", 50, 29, 400)
    assert sag.slice_spacing_mm == pytest.approx(8 * 1.018518567)
    assert sag.contrasts == ("t2",)
    assert series[tum01.labels_uid].contrasts == ()
    assert all(not s.problems and s.uneven is None for s in series.values())


def test_zip_lists_and_reads_like_the_folder(tum01: Tum01Study, tmp_path: Path) -> None:
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for file in sorted(tum01.study.rglob("*.dcm")):
            zf.write(file, f"export/{file.relative_to(tum01.study)}")
        zf.writestr("export/README.txt", "not dicom")
    scan = scan_dicom(archive)
    assert {s.key for s in scan.series} == set(_by_uid(tum01.study))
    assert scan.skipped == {"not DICOM": 1}
    image = read_dicom(archive, uid=tum01.water_uid)
    np.testing.assert_array_equal(image.array, tum01.water)


def test_planes_from_orientation_cosines(tmp_path: Path) -> None:
    volume = np.arange(6 * 5 * 4, dtype=np.int16).reshape(6, 5, 4)
    cases = {"tilt12": (12.0, 0), "oblique": (40.0, 0), "coronal": (90.0, 0), "sagittal": (90.0, 1)}
    for name, (angle, axis) in cases.items():
        write_series(
            tmp_path / name, volume, rotated_affine(angle, axis=axis), series_uid=uid_for(name), description=name
        )
    found = {s.description: s for s in discover_series(tmp_path)}
    assert (found["tilt12"].plane, found["tilt12"].tilt_deg) == ("axial", pytest.approx(12.0))
    assert (found["oblique"].plane, found["oblique"].tilt_deg) == ("oblique", pytest.approx(40.0))
    assert (found["coronal"].plane, found["sagittal"].plane) == ("coronal", "sagittal")
    tilted = read_dicom(tmp_path, uid=uid_for("tilt12"))
    np.testing.assert_allclose(tilted.affine, rotated_affine(12.0), atol=1e-6)
    np.testing.assert_array_equal(tilted.array, volume)
    assert axial_frame(tilted).tilt_deg == pytest.approx(12.0)
    assert tilted.metadata["tilt_deg"] == pytest.approx(12.0)


def test_contrast_hints_from_image_type_and_description() -> None:
    assert contrast_hints(image_types=[("ORIGINAL", "PRIMARY", "W", "W")], description="") == ("water",)
    assert contrast_hints(image_types=[("DERIVED", "PRIMARY", "DIXON", "OPP_PHASE")], description="") == ("opp_phase",)
    assert contrast_hints(image_types=[], description="mDixon In Phase") == ("in_phase",)
    assert contrast_hints(image_types=[], description="T2 TSE fat sat") == ("t2",)
    assert contrast_hints(image_types=[], description="T2W_TSE FS") == ("t2",)
    assert contrast_hints(image_types=[], description="dixon_opp") == ("opp_phase",)
    assert contrast_hints(image_types=[], description="anything", acquisition_contrast="T1") == ("t1",)


# --- reading -------------------------------------------------------------------------------------


def test_axial_series_reads_to_the_nifti_voxels_and_grid(tum01: Tum01Study) -> None:
    water = read_dicom(tum01.study, plane="axial", contrast="water")
    np.testing.assert_array_equal(water.array, tum01.water)
    assert water.array.dtype == np.uint16
    np.testing.assert_allclose(water.affine, tum01.affine, rtol=0, atol=1e-9)
    fat = read_dicom(tum01.study, uid=tum01.fat_uid)
    np.testing.assert_array_equal(fat.array, tum01.fat)  # RescaleSlope 1/32 applied exactly
    assert fat.array.dtype == np.float64
    assert fat.metadata["series_instance_uid"] == tum01.fat_uid
    assert fat.metadata["plane"] == "axial"
    assert not {"PatientName", "PatientID", "PatientBirthDate"} & {k.replace("_", "") for k in fat.metadata}


def test_sagittal_reformat_holds_the_same_world_positions(tum01: Tum01Study) -> None:
    sag = read_dicom(tum01.study, plane="sagittal")
    axial = read_dicom(tum01.study, uid=tum01.water_uid)
    assert sag.shape == (400, 29, 50)  # (anterior-posterior, superior-inferior, every 8th left-right)
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in sag.shape], indexing="ij"), axis=-1).reshape(-1, 3)
    world = ijk @ sag.affine[:3, :3].T + sag.affine[:3, 3]
    back = np.rint((world - axial.affine[:3, 3]) @ np.linalg.inv(axial.affine[:3, :3]).T).astype(int)
    np.testing.assert_array_equal(sag.array.reshape(-1), axial.array[back[:, 0], back[:, 1], back[:, 2]])


def test_enhanced_multiframe_reads_like_the_classic_series(tum01: Tum01Study, tmp_path: Path) -> None:
    write_series(
        tmp_path / "mf",
        tum01.fat,
        tum01.affine,
        series_uid=uid_for("mf"),
        description="fat MF",
        rescale=FAT_RESCALE,
        enhanced=True,
        image_type=("DERIVED", "PRIMARY", "DIXON", "FAT"),
    )
    info = discover_series(tmp_path / "mf")[0]
    assert (info.multiframe, info.n_files, info.n_slices, info.contrasts) == (True, 1, 29, ("fat",))
    multi = read_dicom(tmp_path / "mf" / "enhanced.dcm")
    classic = read_dicom(tum01.study, uid=tum01.fat_uid)
    np.testing.assert_array_equal(multi.array, classic.array)
    np.testing.assert_allclose(multi.affine, classic.affine, rtol=0, atol=1e-9)


def test_read_image_routes_dicom_and_applies_the_choice(tum01: Tum01Study) -> None:
    image = read_image(tum01.study, series=SeriesChoice(plane="axial", prefer_contrast="water"))
    np.testing.assert_array_equal(image.array, tum01.water)
    labels = read_label_map(tum01.study, series=choice_for_role([f"labels={tum01.labels_uid}"], role="labels"))
    np.testing.assert_array_equal(labels.array, tum01.labels)
    assert labels.array.dtype == np.int32


def test_one_series_holding_water_and_fat_is_split_into_stacks(tum01: Tum01Study, tmp_path: Path) -> None:
    uid = uid_for("philips-mdixon")
    small_w, small_f = tum01.water[::20, ::20, :], tum01.fat[::20, ::20, :]
    affine = tum01.affine.copy()
    affine[:3, :2] *= 20
    write_series(
        tmp_path,
        small_w,
        affine,
        series_uid=uid,
        description="mDixon",
        prefix="w",
        image_type=("ORIGINAL", "PRIMARY", "W", "W"),
    )
    write_series(
        tmp_path,
        small_f,
        affine,
        series_uid=uid,
        description="mDixon",
        prefix="f",
        image_type=("ORIGINAL", "PRIMARY", "F", "F"),
        rescale=FAT_RESCALE,
    )
    keys = sorted(s.key for s in discover_series(tmp_path))
    assert keys == [f"{uid}:fat", f"{uid}:water"]
    np.testing.assert_array_equal(read_dicom(tmp_path, contrast="fat").array, small_f)
    np.testing.assert_array_equal(read_dicom(tmp_path, uid=f"{uid}:water").array, small_w)


# --- choosing ------------------------------------------------------------------------------------


def test_ambiguous_choice_lists_the_candidates(tum01: Tum01Study) -> None:
    series = discover_series(tum01.study)
    with pytest.raises(InputError) as caught:
        select_series(series, plane="axial")
    message = str(caught.value)
    assert message.startswith(f"{tum01.study}: folder holds 4 DICOM series; 3 match --plane axial, choose one: ")
    assert f"{tum01.water_uid} (water/t1, 29 files)" in message  # descriptions are free text: not by default
    assert f"{tum01.fat_uid} (fat/t1, 29 files)" in message
    assert f"{tum01.labels_uid} (29 files)" in message
    assert tum01.sagittal_uid not in message
    assert "\n" not in message
    with pytest.raises(InputError) as caught:
        select_series(series, plane="axial", keep_descriptions=True)
    message = str(caught.value)
    assert f"{tum01.water_uid} (t1_vibe_dixon_tra_W, water/t1, 29 files)" in message
    assert f"{tum01.fat_uid} (t1_vibe_dixon_tra_F, fat/t1, 29 files)" in message
    assert f"{tum01.labels_uid} (TUM01 manual labels, 29 files)" in message


def test_choice_with_no_match_and_unknown_uid_are_refused(tum01: Tum01Study) -> None:
    series = discover_series(tum01.study)
    with pytest.raises(InputError, match=r"folder holds 4 DICOM series and none matches --plane coronal: "):
        select_series(series, plane="coronal")
    with pytest.raises(InputError, match=r"folder holds no series 1\.2\.3; it holds "):
        select_series(series, uid="1.2.3")
    with pytest.raises(InputError, match=r"unknown contrast 'proton'; choose from water, fat"):
        select_series(series, contrast="proton")
    assert select_series(series, plane="sagittal").uid == tum01.sagittal_uid
    assert select_series(series, plane="axial", prefer_contrast="fat").uid == tum01.fat_uid


def test_role_words_pick_per_input_series() -> None:
    choice = choice_for_role(["1.2.3", "water=4.5.6"], role="water", plane="axial", contrast="t2")
    assert (choice.uids, choice.plane, choice.contrast, choice.prefer_contrast) == (("4.5.6",), "axial", None, "water")
    assert choice_for_role(["1.2.3", "water=4.5.6"], role="image", contrast="t2").uids == ("1.2.3",)
    assert choice_for_role([], role="labels", resample_uneven=True).uneven == "linear"
    with pytest.raises(InputError, match=r"--series 'bone=1\.2': expected UID or ROLE=UID"):
        choice_for_role(["bone=1.2"], role="image")


# --- broken series -------------------------------------------------------------------------------


def test_missing_slice_is_an_exact_error(tum01: Tum01Study, tmp_path: Path) -> None:
    uid = uid_for("missing")
    write_series(tmp_path, tum01.water, tum01.affine, series_uid=uid, description="gap", drop=[10])
    info = discover_series(tmp_path)[0]
    assert info.n_slices == 28
    with pytest.raises(InputError) as caught:
        read_dicom(tmp_path)
    assert str(caught.value) == (
        f"{tmp_path}: series {uid}: 1 missing slice(s) in a stack spaced 4 mm "
        "(gap of 8 mm after slice 10 at 228.8 mm); export the complete series"
    )


def test_uneven_spacing_is_an_exact_error_or_resampled_when_asked(tum01: Tum01Study, tmp_path: Path) -> None:
    uid = uid_for("uneven")
    write_series(tmp_path, tum01.water, tum01.affine, series_uid=uid, description="uneven", shift_mm={15: 1.0})
    with pytest.raises(InputError) as caught:
        read_dicom(tmp_path)
    assert str(caught.value) == (
        f"{tmp_path}: series {uid}: uneven slice spacing: gaps 3 to 5 mm (median 4 mm); "
        "pass --resample-uneven to resample onto regular 4 mm slices"
    )
    resampled = read_dicom(tmp_path, uneven="linear")
    assert resampled.shape == (400, 400, 29)
    np.testing.assert_allclose(resampled.affine, tum01.affine, atol=1e-9)
    expected = 0.2 * tum01.water[:, :, 14].astype(float) + 0.8 * tum01.water[:, :, 15]  # slice 15 lies at +61 mm
    np.testing.assert_allclose(resampled.array[:, :, 15], expected)
    np.testing.assert_array_equal(resampled.array[:, :, 20], tum01.water[:, :, 20])
    assert resampled.metadata["resampled"] == (
        "uneven slice spacing (gaps 3 to 5 mm) resampled to 29 slices 4 mm apart (linear interpolation)"
    )
    labels_dir = tmp_path.parent / f"{tmp_path.name}_labels"
    write_series(
        labels_dir, tum01.labels, tum01.affine, series_uid=uid_for("uneven-l"), description="l", shift_mm={15: 1.0}
    )
    nearest = read_label_map(labels_dir, series=SeriesChoice(uneven="linear"))  # label maps: nearest, never blended
    np.testing.assert_array_equal(nearest.array[:, :, 15], tum01.labels[:, :, 15])
    shutil.rmtree(labels_dir)


def test_localizer_with_three_planes_is_listed_but_not_readable(tmp_path: Path) -> None:
    uid = uid_for("localizer")
    volume = np.ones((8, 8, 1), dtype=np.uint16)
    for n, (angle, axis) in enumerate([(0.0, 0), (90.0, 0), (90.0, 1)]):
        write_series(
            tmp_path, volume, rotated_affine(angle, axis=axis), series_uid=uid, description="localizer", prefix=f"p{n}_"
        )
    info = discover_series(tmp_path)[0]
    assert (info.plane, info.n_slices) == ("mixed", 3)
    with pytest.raises(InputError, match=r"series .*: slices have different orientations \(a localizer\?\)$"):
        read_dicom(tmp_path)


def test_empty_folder_and_non_dicom_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match=r": no DICOM series found in this folder$"):
        read_image(tmp_path)
