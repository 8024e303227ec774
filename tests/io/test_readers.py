"""Reading every supported format into one RAS+ Image, and refusing bad files with one-line errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from paraspinal.errors import GeometryError, InputError
from paraspinal.io import axial_frame, check_same_grid, read_image, read_label_map, write_label_map
from paraspinal.io.image import Image
from tests.phantoms import ras_affine, reorient, save_nifti


def _volume() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    array = rng.integers(0, 1000, size=(12, 10, 6)).astype(np.int16)
    affine = ras_affine((0.8, 0.9, 3.5), (-10.0, 20.0, 100.0))
    return array, affine


def _itk_from(array: np.ndarray, affine: np.ndarray) -> sitk.Image:
    """SimpleITK image (LPS+) holding the same voxels and world positions as (array, RAS affine)."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
    lps = np.diag([-1.0, -1.0, 1.0]) @ affine[:3, :3]
    spacing = np.linalg.norm(lps, axis=0)
    image.SetSpacing(tuple(spacing))
    image.SetDirection(tuple((lps / spacing).ravel()))
    image.SetOrigin(tuple(np.diag([-1.0, -1.0, 1.0]) @ affine[:3, 3]))
    return image


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".nrrd", ".mha"])
def test_every_format_reads_same_voxels_and_world_geometry(tmp_path: Path, suffix: str) -> None:
    array, affine = _volume()
    path = tmp_path / f"vol{suffix}"
    if suffix.startswith(".nii"):
        save_nifti(path, array, affine)
    else:
        sitk.WriteImage(_itk_from(array, affine), str(path))
    image = read_image(path)
    np.testing.assert_array_equal(image.array, array)
    np.testing.assert_allclose(image.affine, affine, atol=1e-5)
    assert image.spacing_mm == pytest.approx((0.8, 0.9, 3.5), abs=1e-6)


def test_dicom_series_folder_reads_as_ras(tmp_path: Path) -> None:
    array, affine = _volume()
    itk = _itk_from(array, affine)
    folder = tmp_path / "series"
    folder.mkdir()
    uid = "1.2.826.0.1.3680043.8.498.1"
    for k in range(array.shape[2]):
        sl = itk[:, :, k]
        origin = itk.TransformIndexToPhysicalPoint((0, 0, k))
        for tag, value in {
            "0008|0060": "MR",
            "0020|000e": uid,
            "0020|000d": uid + ".0",
            "0020|0013": str(k + 1),
            "0020|0032": "\\".join(f"{v:.6f}" for v in origin),
            "0020|0037": "\\".join(f"{v:.6f}" for v in (*itk.GetDirection()[0::3], *itk.GetDirection()[1::3])),
            "0028|0030": f"{itk.GetSpacing()[1]:.6f}\\{itk.GetSpacing()[0]:.6f}",
            "0018|0050": f"{itk.GetSpacing()[2]:.6f}",
            "0008|103e": "phantom axial",
        }.items():
            sl.SetMetaData(tag, value)
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        writer.SetFileName(str(folder / f"{k:03d}.dcm"))
        writer.Execute(sl)
    image = read_image(folder)
    np.testing.assert_array_equal(image.array, array)
    np.testing.assert_allclose(image.affine, affine, atol=1e-4)


def test_label_map_round_trip_keeps_grid_and_values(tmp_path: Path) -> None:
    array, affine = _volume()
    labels = Image(array=(array % 5).astype(np.int32), affine=affine)
    out = write_label_map(labels, tmp_path / "x_dseg.nii.gz")
    back = read_label_map(out)
    np.testing.assert_array_equal(back.array, labels.array)
    np.testing.assert_allclose(back.affine, affine, atol=1e-6)
    assert back.array.dtype.kind == "i"


def test_axial_axis_found_for_permuted_and_flipped_storage() -> None:
    array, affine = _volume()
    for flips in [(False, False, False), (True, False, True), (True, True, False)]:
        for order in [(0, 1, 2), (2, 0, 1), (1, 2, 0)]:
            a2, aff2 = reorient(array, affine, flips=flips, order=order)
            frame = axial_frame(Image(a2, aff2))
            assert a2.shape[frame.slice_axis] == 6
            assert frame.slice_spacing_mm == pytest.approx(3.5)
            assert frame.pixel_area_mm2 == pytest.approx(0.8 * 0.9)
            assert frame.tilt_deg == pytest.approx(0.0, abs=1e-9)


def test_tilted_stack_reports_tilt_and_exact_areas() -> None:
    angle = np.radians(12.0)
    rot = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([0.7, 0.7, 4.0])
    frame = axial_frame(Image(np.zeros((4, 4, 4)), affine))
    assert frame.tilt_deg == pytest.approx(12.0)
    assert frame.pixel_area_mm2 == pytest.approx(0.49)
    assert frame.slice_spacing_mm == pytest.approx(4.0)


# --- geometry checks ---------------------------------------------------------------------------


def test_same_grid_accepts_float_rounding_in_header() -> None:
    array, affine = _volume()
    nudged = affine.copy()
    nudged[:3, :3] *= 1 + 1e-7
    assert check_same_grid(Image(array, affine), Image(array, nudged)).affine is not None


def test_tum01_water_header_mismatch_is_explained_then_accepted_on_request() -> None:
    from paraspinal.sample import sample_case

    case = sample_case()
    labels, water = read_label_map(case.labels), read_image(case.water)
    with pytest.raises(
        GeometryError,
        match=r"TUM01_water\.nii\.gz: header differs from .*TUM01_labels\.nii\.gz.*"
        r"origin \(0, 0, 0\) vs \(204\.51, 147\.95, 192\.78\) mm.*spacing \(1\.0185, 1\.0185, 4\) "
        r"vs \(1\.018519, 1\.018519, 4\).*--assume-aligned",
    ):
        check_same_grid(labels, water)
    aligned = check_same_grid(labels, water, assume_aligned=True)
    np.testing.assert_array_equal(aligned.affine, labels.affine)
    assert "origin" in str(aligned.metadata["header_mismatch"])


def test_different_shapes_are_always_an_error() -> None:
    array, affine = _volume()
    with pytest.raises(GeometryError, match=r"shape \(12, 10, 5\) vs \(12, 10, 6\)"):
        check_same_grid(Image(array, affine), Image(array[:, :, :5], affine), assume_aligned=True)


# --- bad files ---------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.nii\.gz: file not found$"):
        read_image(tmp_path / "nope.nii.gz")


def test_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "junk.nii.gz"
    path.write_bytes(b"this is not an image at all" * 10)
    with pytest.raises(InputError, match=r"junk\.nii\.gz: cannot read NIfTI"):
        read_image(path)


def test_truncated_file(tmp_path: Path) -> None:
    array, affine = _volume()
    good = save_nifti(tmp_path / "good.nii.gz", array.astype(np.float32), affine)
    data = good.read_bytes()
    bad = tmp_path / "cut.nii.gz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cut\.nii\.gz: cannot read NIfTI: corrupt or truncated"):
        read_image(bad)
    raw = tmp_path / "cut.nii"
    raw.write_bytes(gzip.decompress(data)[:1000])
    with pytest.raises(  # refused from the header, before any voxel is allocated
        InputError,
        match=r"cut\.nii: header declares 2\.9 kB of voxels but the file holds 1\.0 kB \(truncated or corrupt\)$",
    ):
        read_image(raw)


def test_2d_and_4d_images_are_refused(tmp_path: Path) -> None:
    p2 = save_nifti(tmp_path / "flat.nii.gz", np.zeros((5, 5), np.float32), np.eye(4))
    with pytest.raises(InputError, match=r"flat\.nii\.gz: image is 2-D \(shape \(5, 5\)\); a 3-D volume is required"):
        read_image(p2)
    p4 = save_nifti(tmp_path / "dyn.nii.gz", np.zeros((5, 5, 5, 3), np.float32), np.eye(4))
    with pytest.raises(InputError, match=r"dyn\.nii\.gz: image is 4-D \(shape \(5, 5, 5, 3\)\) with 3 volumes"):
        read_image(p4)
    # not all zero: a blank image is refused on its own (tests/reliability/test_io_faults.py)
    single = save_nifti(tmp_path / "one.nii.gz", np.arange(125, dtype=np.float32).reshape(5, 5, 5, 1), np.eye(4))
    assert read_image(single).shape == (5, 5, 5)


def test_nan_and_inf_voxels_are_refused(tmp_path: Path) -> None:
    array = np.ones((4, 4, 4), np.float32)
    array[0, 0, 0], array[1, 1, 1] = np.nan, np.inf
    path = save_nifti(tmp_path / "nan.nii.gz", array, np.eye(4))
    with pytest.raises(InputError, match=r"nan\.nii\.gz: image holds 2 NaN or infinite voxels"):
        read_image(path)


def test_label_map_with_fractional_values_is_refused(tmp_path: Path) -> None:
    path = save_nifti(tmp_path / "soft.nii.gz", np.full((3, 3, 3), 0.5, np.float32), np.eye(4))
    with pytest.raises(InputError, match=r"soft\.nii\.gz: label map holds non-integer values"):
        read_label_map(path)


def test_unsupported_suffix(tmp_path: Path) -> None:
    path = tmp_path / "scan.png"
    path.write_bytes(b"\x89PNG")
    with pytest.raises(InputError, match=r"scan\.png: unsupported file type"):
        read_image(path)


def test_dicom_folder_with_two_series_lists_them(tmp_path: Path) -> None:
    array, affine = _volume()
    for n, uid in enumerate(["1.2.3.4.1", "1.2.3.4.2"]):
        itk = _itk_from(array, affine)
        for k in range(2):
            sl = itk[:, :, k]
            sl.SetMetaData("0020|000e", uid)
            sl.SetMetaData("0020|0013", str(k + 1))
            sl.SetMetaData("0008|103e", f"series {n}")
            sl.SetMetaData("0020|0032", "\\".join(f"{v:.4f}" for v in itk.TransformIndexToPhysicalPoint((0, 0, k))))
            writer = sitk.ImageFileWriter()
            writer.KeepOriginalImageUIDOn()
            writer.SetFileName(str(tmp_path / f"s{n}_{k}.dcm"))
            writer.Execute(sl)
    with pytest.raises(
        InputError,
        match=r"folder holds 2 DICOM series, choose one: 1\.2\.3\.4\.1 \(2 files\); "  # no descriptions
        r"1\.2\.3\.4\.2 \(2 files\)",
    ):
        read_image(tmp_path)


def test_nibabel_reference_affine_is_ras() -> None:
    """Guard the convention: nibabel's affine is RAS+, so a positive x column means 'towards the right'."""
    assert nib.aff2axcodes(np.eye(4)) == ("R", "A", "S")
