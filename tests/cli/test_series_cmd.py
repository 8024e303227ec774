"""`paraspinal series` and `paraspinal measure` on a DICOM study: same numbers as NIfTI, no patient data out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import paraspinal.cli.measure_cmd  # registers `measure` (and `series`)
import paraspinal.cli.series_cmd  # noqa: F401 - registers `series`
from paraspinal.cli.main import main
from paraspinal.io.case_names import case_id_from_name as case_id_from_path
from paraspinal.sample import sample_case
from tests.dicom_factory import PLANTED, Tum01Study, rotated_affine, uid_for, write_series, write_tum01_study
from tests.phantoms import two_muscle_phantom
from tests.privacy import scan_files, scan_texts

KEYS = ["structure", "side", "scope", "level", "slice", "metric", "method", "image"]


@pytest.fixture(scope="module")
def tum01(tmp_path_factory: pytest.TempPathFactory) -> Tum01Study:
    return write_tum01_study(tmp_path_factory.mktemp("tum01"))


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _dicom_measure(tum01: Tum01Study, out: Path, *extra: str) -> list[str]:
    study = str(tum01.study)
    return [
        "measure", study, "--contrast", "fat", "--image-name", "fat",
        "--water", study, "--fat", study, "--labels", study,
        "--plane", "axial", "--series", f"labels={tum01.labels_uid}",
        "--levels", str(sample_case().levels), "--methods", "otsu,kmeans2", "-o", str(out), *extra,
    ]  # fmt: skip


def test_series_lists_both_planes_as_table_and_json(tum01: Tum01Study, capsys) -> None:
    code, stdout, _ = _run(["series", str(tum01.study)], capsys)
    assert code == 0
    for uid in (tum01.water_uid, tum01.sagittal_uid):
        assert uid in stdout
    assert "sagittal" in stdout and "axial" in stdout and "t1_vibe_dixon_tra_W" in stdout
    code, stdout, _ = _run(["series", str(tum01.study), "--json"], capsys)
    assert code == 0
    listing = {s["series_instance_uid"]: s for s in json.loads(stdout)["series"]}
    assert listing[tum01.water_uid]["plane"] == "axial"
    assert listing[tum01.water_uid]["n_slices"] == 29
    assert listing[tum01.water_uid]["contrasts"] == ["water", "t1"]
    assert listing[tum01.sagittal_uid]["plane"] == "sagittal"
    assert listing[tum01.sagittal_uid]["slice_spacing_mm"] == pytest.approx(8.148148536)
    assert [s["series_number"] for s in json.loads(stdout)["series"]] == [2, 3, 4, 90]
    assert not scan_texts({"series --json": stdout}, PLANTED.needles())


def test_measure_through_dicom_equals_measure_through_nifti(tum01: Tum01Study, tmp_path: Path, capsys) -> None:
    nifti = tum01.nifti
    code, _, err = _run(
        [
            "measure", str(nifti / "TUM01_fat.nii.gz"), "--image-name", "fat",
            "--water", str(nifti / "TUM01_water.nii.gz"), "--fat", str(nifti / "TUM01_fat.nii.gz"),
            "--labels", str(nifti / "TUM01_labels.nii.gz"), "--levels", str(sample_case().levels),
            "--methods", "otsu,kmeans2", "-o", str(tmp_path / "nifti"),
        ],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    code, _, err = _run(_dicom_measure(tum01, tmp_path / "dicom", "--keep-descriptions"), capsys)
    assert code == 0, err
    via_nifti = pd.read_parquet(tmp_path / "nifti" / "TUM01_measurements.parquet")
    via_dicom = pd.read_parquet(tmp_path / "dicom" / "study_measurements.parquet")
    assert len(via_nifti) == len(via_dicom) > 1000
    merged = via_nifti.merge(via_dicom, on=KEYS, suffixes=("_n", "_d"), how="outer", indicator=True)
    assert (merged["_merge"] == "both").all()
    np.testing.assert_allclose(merged["value_d"], merged["value_n"], rtol=1e-12, atol=1e-12, equal_nan=True)
    assert (merged["flags_n"].fillna("") == merged["flags_d"].fillna("")).all()
    assert set(merged["metric"]) >= {"csa", "volume", "fat_fraction", "fat_infiltration"}
    case = json.loads((tmp_path / "dicom" / "study_case.json").read_text(encoding="utf-8"))
    assert case["inputs"]["water_series"].startswith(f"{tum01.water_uid} (t1_vibe_dixon_tra_W; axial;")
    assert case["inputs"]["labels_series"].startswith(f"{tum01.labels_uid} (TUM01 manual labels; axial;")


def test_no_planted_patient_data_in_any_output_or_log(tum01: Tum01Study, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    code, stdout, stderr = _run(_dicom_measure(tum01, out), capsys)
    assert code == 0, stderr
    files = sorted(p.name for p in out.iterdir())
    assert files == ["study_case.json", "study_levels.csv", "study_measurements.csv",
                     "study_measurements.parquet", "study_quality.json", "study_summary.csv"]  # fmt: skip
    assert scan_files(out, PLANTED.needles()) == []
    assert scan_texts({"stdout": stdout, "stderr": stderr}, PLANTED.needles()) == []


def test_case_id_from_patient_id_only_when_asked(tum01: Tum01Study, tmp_path: Path, capsys) -> None:
    out = tmp_path / "named"
    code, _, stderr = _run(_dicom_measure(tum01, out, "--case-id-from", "patient-id"), capsys)
    assert code == 0, stderr
    assert (out / "PID-48213-QZX_measurements.csv").exists()
    findings = scan_files(out, PLANTED.needles())  # the scanner sees the ID the user asked for
    assert {f.needle for f in findings} == {PLANTED.patient_id}
    assert {Path(f.path).name for f in findings} >= {"PID-48213-QZX_measurements.csv", "PID-48213-QZX_case.json"}


def test_ambiguous_dicom_input_is_one_line_error_without_output(tum01: Tum01Study, tmp_path: Path, capsys) -> None:
    out = tmp_path / "none"
    code, _, stderr = _run(["measure", "--labels", str(tum01.study), "-o", str(out)], capsys)
    assert code == 1
    lines = stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"paraspinal: error: {tum01.study}: folder holds 4 DICOM series, choose one: ")
    assert not out.exists()


def test_dicom_options_without_dicom_input_are_refused(tum01: Tum01Study, tmp_path: Path, capsys) -> None:
    out = tmp_path / "none"
    labels = str(tum01.nifti / "TUM01_labels.nii.gz")
    code, _, stderr = _run(["measure", "--labels", labels, "--plane", "axial", "-o", str(out)], capsys)
    assert code == 1
    assert stderr.strip() == (
        "paraspinal: error: --plane: only for DICOM inputs (a folder, .zip or .dcm), and none was given"
    )
    assert not out.exists()


def test_resampled_uneven_series_is_reported(tum01: Tum01Study, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "uneven"
    write_series(folder, tum01.labels, tum01.affine, series_uid=uid_for("m-uneven"), description="l", shift_mm={15: 1})
    out = tmp_path / "out"
    code, _, stderr = _run(["measure", "--labels", str(folder), "-o", str(out)], capsys)
    assert code == 1 and "uneven slice spacing: gaps 3 to 5 mm" in stderr and not out.exists()
    code, _, stderr = _run(["measure", "--labels", str(folder), "--resample-uneven", "-o", str(out)], capsys)
    assert code == 0, stderr
    note = "resampled to 29 slices 4 mm apart (nearest interpolation)"
    assert note in stderr
    assert any(
        note in warning for warning in json.loads((out / "uneven_case.json").read_text(encoding="utf-8"))["warnings"]
    )


def test_tilted_stack_is_reported_in_warnings_and_case_json(tmp_path: Path, capsys) -> None:
    labels, _, _, _ = two_muscle_phantom()
    folder = tmp_path / "ph_labels"
    write_series(folder, labels, rotated_affine(12.0), series_uid=uid_for("tilted"), description="ax obl")
    out = tmp_path / "out"
    code, _, stderr = _run(["measure", "--labels", str(folder), "-o", str(out)], capsys)
    assert code == 0, stderr
    assert "is tilted 12.0 deg from axial; areas are measured in the slice plane" in stderr
    case = json.loads(
        (out / "ph_case.json").read_text(encoding="utf-8")
    )  # case id from the folder name, role word dropped
    assert case["inputs"]["labels_series"] == f"{uid_for('tilted')} (axial, tilted 12.0 deg; 40x30x10 voxels)"
    assert case["axial_frame"]["tilt_deg"] == pytest.approx(12.0)
    summary = pd.read_csv(out / "ph_summary.csv").set_index("side")
    assert summary.loc["right", "volume_mL"] == pytest.approx(80 * 10 * 4.0 / 1000)  # 1 x 1 x 4 mm voxels


def test_case_id_from_dicom_paths() -> None:
    assert case_id_from_path("/data/TUM01_water") == "TUM01"
    assert case_id_from_path("/data/case7.zip") == "case7"
    assert case_id_from_path("/data/scan.dcm") == "scan"
