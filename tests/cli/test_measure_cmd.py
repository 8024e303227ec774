"""`paraspinal measure` end to end, and every bad input: one line, exit 1, no partial output."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from paraspinal.cli.main import main
from paraspinal.sample import sample_case
from tests.phantoms import save_nifti, two_muscle_phantom


@pytest.fixture()
def phantom_files(tmp_path: Path) -> dict[str, Path]:
    labels, water, fat, affine = two_muscle_phantom()
    return {
        "labels": save_nifti(tmp_path / "ph_labels.nii.gz", labels, affine),
        "water": save_nifti(tmp_path / "ph_water.nii.gz", water.astype(np.float32), affine),
        "fat": save_nifti(tmp_path / "ph_fat.nii.gz", fat.astype(np.float32), affine),
    }


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_measure_writes_csv_parquet_summary_and_json(phantom_files, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    code, stdout, _ = _run(
        [
            "measure",
            "--labels",
            str(phantom_files["labels"]),
            "--water",
            str(phantom_files["water"]),
            "--fat",
            str(phantom_files["fat"]),
            "-o",
            str(out),
        ],
        capsys,
    )
    assert code == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "ph_case.json",
        "ph_measurements.csv",
        "ph_measurements.parquet",
        "ph_quality.json",
        "ph_summary.csv",
    ]
    csv = pd.read_csv(out / "ph_measurements.csv")
    parquet = pd.read_parquet(out / "ph_measurements.parquet")
    assert len(csv) == len(parquet) > 0
    np.testing.assert_allclose(csv.value.to_numpy(), parquet.value.to_numpy(), equal_nan=True)
    assert "erector_spinae" in stdout and "wrote" in stdout
    summary = pd.read_csv(out / "ph_summary.csv").set_index("side")
    assert summary.loc["right", "volume_mL"] == pytest.approx(3.2)
    assert summary.loc["right", "ff_signal_weighted_%"] == pytest.approx(25.0)


def test_sample_runs_with_header_warning(tmp_path, capsys) -> None:
    code, _stdout, stderr = _run(["measure", "--sample", "-o", str(tmp_path / "s")], capsys)
    assert code == 0
    assert "header differs from the label map, voxels assumed aligned" in stderr
    assert (tmp_path / "s" / "TUM01_levels.csv").exists()


def _expect_error(args: list[str], capsys, out: Path, pattern: str) -> None:
    code, _, stderr = _run(args, capsys)
    assert code == 1
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("paraspinal: error: ")
    assert pattern in lines[0], lines[0]
    assert "Traceback" not in stderr
    assert not out.exists(), "no partial output may be left behind"


def test_bad_inputs(phantom_files, tmp_path, capsys) -> None:
    out = tmp_path / "never"
    lab, water, fat = (str(phantom_files[k]) for k in ("labels", "water", "fat"))
    base = ["measure", "-o", str(out)]

    _expect_error([*base, "--labels", str(tmp_path / "missing.nii.gz")], capsys, out, "missing.nii.gz: file not found")

    corrupt = tmp_path / "corrupt_labels.nii.gz"
    corrupt.write_bytes(b"\x1f\x8b" + b"garbage" * 50)
    _expect_error([*base, "--labels", str(corrupt)], capsys, out, "corrupt_labels.nii.gz: cannot read NIfTI")

    data = Path(water).read_bytes()
    truncated = tmp_path / "truncated_water.nii.gz"
    truncated.write_bytes(data[: len(data) // 3])
    _expect_error(
        [*base, "--labels", lab, "--water", str(truncated), "--fat", fat],
        capsys,
        out,
        "truncated_water.nii.gz: cannot read NIfTI: corrupt or truncated",
    )

    flat = save_nifti(tmp_path / "flat.nii.gz", np.zeros((40, 30), np.float32), np.eye(4))
    _expect_error([*base, str(flat), "--labels", lab], capsys, out, "flat.nii.gz: image is 2-D")

    dyn = save_nifti(tmp_path / "dyn.nii.gz", np.zeros((40, 30, 10, 2), np.float32), np.eye(4))
    _expect_error([*base, str(dyn), "--labels", lab], capsys, out, "dyn.nii.gz: image is 4-D")

    nan_img = nib.load(water)
    arr = np.asarray(nan_img.dataobj).copy()
    arr[3, 3, 3] = np.nan
    nanp = save_nifti(tmp_path / "nan_water.nii.gz", arr, nan_img.affine)
    _expect_error(
        [*base, "--labels", lab, "--water", str(nanp), "--fat", fat],
        capsys,
        out,
        "nan_water.nii.gz: image holds 1 NaN or infinite voxels",
    )

    lab_img = nib.load(lab)
    wrong = np.asarray(lab_img.dataobj).copy()
    wrong[0, 0, 0], wrong[1, 0, 0] = 7, 9
    wrongp = save_nifti(tmp_path / "wrong_labels.nii.gz", wrong, lab_img.affine)
    _expect_error(
        [*base, "--labels", str(wrongp)],
        capsys,
        out,
        "wrong_labels.nii.gz: label values [7, 9] are not in scheme 'lpm4'",
    )

    shifted = lab_img.affine.copy()
    shifted[:3, 3] += 5.0
    moved = save_nifti(tmp_path / "moved_water.nii.gz", np.asarray(nib.load(water).dataobj), shifted)
    _expect_error(
        [*base, "--labels", lab, "--water", str(moved), "--fat", fat],
        capsys,
        out,
        "moved_water.nii.gz: header differs from",
    )

    ramp = np.arange(20 * 30 * 10, dtype=np.float32).reshape(20, 30, 10)  # not blank: that is refused first
    small = save_nifti(tmp_path / "small_water.nii.gz", ramp, lab_img.affine)
    _expect_error(
        [*base, "--labels", lab, "--water", str(small), "--fat", fat],
        capsys,
        out,
        "small_water.nii.gz: voxel grid does not match",
    )

    empty = save_nifti(tmp_path / "empty_labels.nii.gz", np.zeros((40, 30, 10), np.int16), lab_img.affine)
    _expect_error([*base, "--labels", str(empty)], capsys, out, "empty_labels.nii.gz: label map is empty")

    levels = tmp_path / "far_levels.csv"
    levels.write_text("level,slice\nL4/L5,12\n")
    _expect_error(
        [*base, "--labels", lab, "--levels", str(levels)],
        capsys,
        out,
        "far_levels.csv: level L4/L5: slices 12..12 are outside the image's 10 axial slices (0..9)",
    )


def test_usage_errors_exit_2(capsys) -> None:
    code, _, _ = _run(["measure", "--labels"], capsys)
    assert code == 2
    code, _, stderr = _run(["measure", "-o", "x"], capsys)
    assert code == 2 and "--labels" in stderr


def test_existing_output_folder_is_kept_on_error(phantom_files, tmp_path, capsys) -> None:
    out = tmp_path / "existing"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, _, _ = _run(["measure", "--labels", str(tmp_path / "nope.nii.gz"), "-o", str(out)], capsys)
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_labels_command_lists_schemes_and_one_scheme(capsys) -> None:
    code, stdout, _ = _run(["labels"], capsys)
    assert code == 0 and "lpm4" in stdout and "total_mr" in stdout and "spider" in stdout
    code, stdout, _ = _run(["labels", "--scheme", "lpm4"], capsys)
    assert code == 0
    assert "right erector spinae" in stdout and "multifidus" in stdout


def test_sample_files_ship_inside_the_package() -> None:
    case = sample_case()
    for path in (case.water, case.fat, case.labels, case.levels, case.water.parent / "NOTICE"):
        assert path.is_file()
    assert "Burian" in (case.water.parent / "NOTICE").read_text(encoding="utf-8")
    assert shutil.which("paraspinal") is not None
