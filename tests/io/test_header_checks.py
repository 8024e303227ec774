"""Header checks before reading, doubtful voxels, umask-following output files, escaped DICOM text."""

from __future__ import annotations

import gzip
import os
import stat
import struct
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from paraspinal.errors import InputError
from paraspinal.io import read_image, read_label_map
from paraspinal.io.files import current_umask, os_errors_name, temp_file_for, temp_folder_in
from paraspinal.io.header_checks import human_bytes
from paraspinal.io.text import escape_control
from paraspinal.reporting import AtomicOutputs
from tests.phantoms import ras_affine

RAMP = np.arange(6 * 5 * 4, dtype=np.float32).reshape(6, 5, 4)
PIXDIM = 76  # byte offset of pixdim[0] in a NIfTI-1 header; pixdim[k] at 76 + 4 k
QFORM_CODE, SFORM_CODE, SROW_X = 252, 254, 280


def _nifti(path: Path, array: np.ndarray, *, qform: int = 1, sform: int = 0, pixdim: dict[int, float]) -> Path:
    """A NIfTI file with raw header fields overwritten after nibabel wrote it (no fix-ups)."""
    image = nib.Nifti1Image(array, ras_affine((2.0, 2.0, 4.0)))
    image.set_qform(image.affine, code=1)
    image.set_sform(image.affine, code=1)
    raw = bytearray(image.to_bytes())
    struct.pack_into("<h", raw, QFORM_CODE, qform)
    struct.pack_into("<h", raw, SFORM_CODE, sform)
    for axis, value in pixdim.items():
        struct.pack_into("<f", raw, PIXDIM + 4 * axis, value)
    path.write_bytes(gzip.compress(bytes(raw)) if path.name.endswith(".gz") else bytes(raw))
    return path


@pytest.mark.parametrize(
    ("qform", "axis", "value", "shown"),
    [
        (0, 3, 0.0, "0"),
        (1, 3, 0.0, "0"),
        (1, 2, -1.5, "-1.5"),
        (0, 1, float("nan"), "nan"),
        (1, 3, float("inf"), "inf"),
    ],
)
def test_bad_spacing_without_sform_is_refused_naming_the_axis(
    tmp_path: Path, qform: int, axis: int, value: float, shown: str
) -> None:
    path = _nifti(tmp_path / "bad.nii.gz", RAMP, qform=qform, pixdim={axis: value})
    with pytest.raises(InputError) as caught:
        read_image(path)
    assert str(caught.value) == (
        f"{path}: voxel spacing along axis {axis} is {shown} in the NIfTI header (pixdim[{axis}]) and no sform gives "
        "another; volumes would be wrong: fix the header"
    )


def test_an_sform_overrides_a_zero_pixdim(tmp_path: Path) -> None:
    path = _nifti(tmp_path / "sform.nii", RAMP, qform=0, sform=1, pixdim={3: 0.0})
    image = read_image(path)
    assert image.voxel_volume_mm3 == pytest.approx(16.0)  # from the sform: 2 x 2 x 4 mm


def test_a_zero_column_in_the_sform_is_refused(tmp_path: Path) -> None:
    path = _nifti(tmp_path / "flat.nii.gz", RAMP, qform=0, sform=1, pixdim={})
    raw = bytearray(gzip.decompress(path.read_bytes()))
    for row in (SROW_X, SROW_X + 16, SROW_X + 32):
        struct.pack_into("<f", raw, row + 8, 0.0)  # srow_x/y/z[2]: the third voxel axis has no length
    path.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(InputError, match=r"flat\.nii\.gz: voxel spacing along axis 3 is 0 mm; volumes would be wrong$"):
        read_image(path)


def test_zero_spacing_in_an_mha_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "z.mha"
    sitk.WriteImage(sitk.GetImageFromArray(RAMP.transpose(2, 1, 0)), str(path))
    path.write_bytes(path.read_bytes().replace(b"ElementSpacing = 1 1 1", b"ElementSpacing = 1 1 0"))
    with pytest.raises(InputError) as caught:
        read_image(path)
    assert (
        str(caught.value)
        == f"{path}: voxel spacing along axis 3 is 0 in the image header; volumes would be wrong: fix the header"
    )


def test_declared_size_is_checked_against_the_file_and_its_data_file(tmp_path: Path) -> None:
    header = tmp_path / "cut.mhd"
    sitk.WriteImage(sitk.GetImageFromArray(RAMP.transpose(2, 1, 0)), str(header))
    raw = tmp_path / "cut.raw"
    raw.write_bytes(raw.read_bytes()[:100])  # 480 bytes of voxels cut to 100
    held = header.stat().st_size + 100
    with pytest.raises(InputError) as caught:
        read_image(header)
    assert str(caught.value) == (
        f"{header}: header declares 480 B of voxels but the data file with its header holds {held} B "
        "(truncated or corrupt)"
    )


def test_gzip_bound_refuses_only_what_cannot_inflate(tmp_path: Path) -> None:
    zeros = np.zeros((64, 64, 64), np.uint8)
    zeros[0, 0, 0] = 1  # highly compressible, but real: read
    path = tmp_path / "sparse.nii.gz"
    nib.save(nib.Nifti1Image(zeros, np.eye(4)), str(path))
    assert read_image(path).shape == (64, 64, 64)
    assert human_bytes(2048) == "2.0 kB" and human_bytes(8e9) == "8.0 GB" and human_bytes(97) == "97 B"


def test_complex_voxels_are_refused_in_nifti_and_nrrd(tmp_path: Path) -> None:
    array = (RAMP + 1j).astype(np.complex64)
    nii = tmp_path / "c.nii.gz"
    nib.save(nib.Nifti1Image(array, np.eye(4)), str(nii))
    with pytest.raises(InputError) as caught:
        read_image(nii)
    assert str(caught.value) == (
        f"{nii}: image holds complex values (complex64); save the magnitude (or the real part) as a real-valued image"
    )
    nrrd = tmp_path / "c.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(array.transpose(2, 1, 0)), str(nrrd))
    with pytest.raises(InputError, match=r"c\.nrrd: image holds complex values \(complex of 32-bit float\); "):
        read_image(nrrd)


@pytest.mark.parametrize(("value", "what"), [(0.0, "blank"), (3.25, "constant")])
def test_constant_images_are_refused_but_constant_label_maps_are_read(tmp_path: Path, value: float, what: str) -> None:
    path = tmp_path / "flat.nii.gz"
    nib.save(nib.Nifti1Image(np.full((6, 5, 4), value, np.float32), np.eye(4)), str(path))
    with pytest.raises(InputError) as caught:
        read_image(path)
    assert str(caught.value) == (
        f"{path}: every voxel of the image is {value:g} ({what} image: a failed export or the wrong file?); "
        "nothing to segment or measure"
    )
    labels = tmp_path / "labels.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((6, 5, 4), np.uint8), np.eye(4)), str(labels))
    assert int(read_label_map(labels).array.max()) == 0


def test_umask_is_read_without_being_changed() -> None:
    previous = os.umask(0o027)
    try:
        assert current_umask() == 0o027
        assert os.umask(0o027) == 0o027  # unchanged by the read
    finally:
        os.umask(previous)


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_temporary_outputs_follow_the_umask(tmp_path: Path, umask: int) -> None:
    previous = os.umask(umask)
    try:
        file = temp_file_for(tmp_path / "a.csv")
        folder = temp_folder_in(tmp_path, prefix=".stage-")
        with AtomicOutputs(tmp_path / "out") as outputs:
            outputs.path("b.csv").write_text("x\n")
    finally:
        os.umask(previous)
    assert file.name.startswith(".a.csv.") and file.name.endswith(".part")
    assert stat.S_IMODE(file.stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~umask
    assert stat.S_IMODE((tmp_path / "out" / "b.csv").stat().st_mode) == 0o666 & ~umask


def test_errors_without_a_file_name_the_output(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(OSError) as caught, os_errors_name(out):
        raise OSError(28, "Error writing bytes to file. Detail: [errno 28] No space left on device")
    assert (caught.value.errno, caught.value.strerror, caught.value.filename) == (
        28,
        "No space left on device",
        str(out),
    )
    with pytest.raises(FileNotFoundError) as missing, os_errors_name(out, temporaries=[tmp_path / ".x.part"]):
        raise FileNotFoundError(2, "No such file or directory", "/an/input.parquet")
    assert missing.value.filename == "/an/input.parquet"  # an input's error keeps its name
    with pytest.raises(OSError) as blocked, AtomicOutputs(tmp_path / "m") as outputs:
        temp = outputs.path("t.csv")
        raise OSError(28, "No space left on device", str(temp))
    assert blocked.value.filename == str(tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_control_characters_are_escaped_and_other_text_kept() -> None:
    assert escape_control("John Smith [/] \x1b[31mRED") == "John Smith [/] \\x1b[31mRED"
    assert escape_control("a\nb\tc\x00\u202e\u2028") == "a\\nb\\tc\\x00\\u202e\\u2028"
    assert escape_control("Müller T2 ax (éè)") == "Müller T2 ax (éè)"
    assert escape_control(escape_control("\x07")) == "\\x07"  # idempotent
