"""`run` and `segment` on a DICOM study: series chosen by rule or UID, DICOM-SEG out, no patient data anywhere."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from paraspinal.cli.main import main
from paraspinal.pipeline.case import Case
from paraspinal.pipeline.read import dixon_from_dicom
from tests.dicom_factory import PLANTED, Tum01Study, write_tum01_study
from tests.privacy import scan_files, scan_texts


@pytest.fixture(scope="module")
def tum01(tmp_path_factory: pytest.TempPathFactory) -> Tum01Study:
    return write_tum01_study(tmp_path_factory.mktemp("tum01run"))


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_dixon_study_becomes_a_dixon_case(tum01: Tum01Study) -> None:
    case = Case("study", image=tum01.study)
    dixon = dixon_from_dicom(case, plane="axial")
    assert (dixon.water, dixon.fat, dixon.image) == (tum01.study, tum01.study, None)
    by_uid = dixon_from_dicom(case, series=(f"water={tum01.water_uid}", f"fat={tum01.fat_uid}"))
    assert by_uid.water == tum01.study
    assert dixon_from_dicom(case, series=(tum01.water_uid,)) == case  # one series named: a single image


def test_run_on_a_dicom_study_with_dicom_seg_and_no_patient_data(tum01: Tum01Study, tmp_path: Path, capsys) -> None:
    hd = pytest.importorskip("highdicom")
    out = tmp_path / "out"
    args = ["run", str(tum01.study), "-o", str(out), "--series", f"water={tum01.water_uid}",
            "--series", f"fat={tum01.fat_uid}", "--output-format", "dicom-seg", "--methods", "otsu"]  # fmt: skip
    code, stdout, stderr = _run(args, capsys)
    assert code == 0, stderr
    case_dir = out / "study"
    assert (case_dir / "study_dseg.nii.gz").is_file() and (case_dir / "study_report.html").is_file()
    seg = hd.seg.segread(str(case_dir / "study_dseg.dcm"))
    assert seg.number_of_segments == 4
    assert str(seg.SeriesInstanceUID) != tum01.water_uid
    referenced = {str(s.SeriesInstanceUID) for s in seg.ReferencedSeriesSequence}
    assert referenced == {tum01.water_uid}
    assert "fat_fraction" in (case_dir / "study_measurements.csv").read_text(encoding="utf-8")
    findings = scan_files(out, PLANTED.needles())
    assert findings == [], findings
    assert scan_texts({"stdout": stdout, "stderr": stderr}, PLANTED.needles()) == []


def test_segment_a_series_chosen_by_uid(tum01: Tum01Study, tmp_path: Path, capsys) -> None:
    pytest.importorskip("highdicom")
    out = tmp_path / "seg"
    code, _, stderr = _run(["segment", str(tum01.study), "--series", tum01.water_uid, "-o", str(out),
                            "--output-format", "dicom-seg", "-q"], capsys)  # fmt: skip
    assert code == 0, stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "study_dseg.dcm",
        "study_dseg.json",
        "study_dseg.nii.gz",
        "study_quality.json",
    ]
    import nibabel as nib

    labels = np.asarray(nib.load(str(out / "study_dseg.nii.gz")).dataobj)
    assert labels.shape == tum01.labels.shape and set(np.unique(labels)) == {0, 1, 2, 3, 4}
    dice = [2 * ((labels == v) & (tum01.labels == v)).sum() / ((labels == v).sum() + (tum01.labels == v).sum())
            for v in (1, 2, 3, 4)]  # fmt: skip
    assert np.mean(dice) > 0.85  # the bundled model on its own training subject, through DICOM
    assert scan_files(out, PLANTED.needles()) == []


def test_ambiguous_study_without_a_choice_is_refused(tum01: Tum01Study, tmp_path: Path, capsys) -> None:
    code, _, stderr = _run(["segment", str(tum01.study), "-o", str(tmp_path / "x")], capsys)
    assert code == 1
    assert "choose one" in stderr or "candidates" in stderr or "series" in stderr
    assert not (tmp_path / "x").exists()
