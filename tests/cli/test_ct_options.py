"""CT through the commands: `measure` and `run` on the real example CT with TotalSegmentator's `total` label map.

The label map is a model's output: it gives real anatomy and geometry, and the numbers are checked against an
independent numpy computation on the same voxels, not claimed as accuracy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from paraspinal.cli.main import main

CT = Path(__file__).resolve().parents[3] / "shared" / "data" / "totalseg-ct-example"
pytestmark = pytest.mark.skipif(not (CT / "example_ct_sm.nii.gz").is_file(), reason="../shared CT example absent")
AUTOCHTHON = {"left": 86, "right": 87}  # TotalSegmentator `total` class values


def _by_hand() -> dict[str, tuple[float, float]]:
    """Per side: mean HU of the autochthon mask, and the share (%) of its voxels in -190..-30 HU."""
    hu = np.asarray(nib.load(CT / "example_ct_sm.nii.gz").dataobj).astype(np.float64)
    labels = np.asarray(nib.load(CT / "example_seg.nii.gz").dataobj)
    out = {}
    for side, value in AUTOCHTHON.items():
        voxels = hu[labels == value]
        out[side] = (float(voxels.mean()), float(100 * np.mean((voxels >= -190) & (voxels <= -30))))
    return out


def _row(table: pd.DataFrame, **where: object) -> float:
    rows = table
    for column, value in where.items():
        rows = rows[rows[column] == value]
    assert len(rows) == 1, where
    return float(rows["value"].iloc[0])


def test_measure_reports_hu_and_imat_per_side_and_withholds_the_steatosis_category(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    args = ["measure", str(CT / "example_ct_sm.nii.gz"), "--labels", str(CT / "example_seg.nii.gz")]
    assert main([*args, "--scheme", "total", "--modality", "ct", "-o", str(out), "-q"]) == 0
    assert "category withheld: contrast unknown" in capsys.readouterr().err
    table = pd.read_csv(out / "example_ct_sm_measurements.csv")
    structure = table[(table["scope"] == "structure") & (table["structure"] == "autochthon")]
    for side, (mean_hu, imat_pct) in _by_hand().items():
        assert _row(structure, side=side, metric="hu_mean", method="mask") == pytest.approx(mean_hu, abs=1e-9)
        assert _row(structure, side=side, metric="imat_share", method="hu[-190,-30]") == pytest.approx(imat_pct)
    liver = table[(table["scope"] == "structure") & (table["structure"] == "liver")]
    assert _row(liver, metric="hu_mean", method="parenchyma:erode10mm+mad3") == pytest.approx(46.789, abs=1e-3)
    grade = liver[liver["metric"] == "steatosis_grade"]
    assert grade["value"].isna().all() and grade["flags"].str.contains("category_withheld_contrast_unknown").all()
    assert not table["metric"].eq("fat_infiltration").any()  # MRI thresholds never run on HU
    unenhanced = tmp_path / "unenhanced"
    assert main([*args, "--scheme", "total", "--modality", "ct", "--ct-contrast", "none", "-o", str(unenhanced)]) == 0
    graded = pd.read_csv(unenhanced / "example_ct_sm_measurements.csv")
    assert _row(graded[graded["structure"] == "liver"], scope="structure", metric="steatosis_grade") == 1.0  # mild


def test_run_writes_the_ct_qc_image_and_a_report_with_hu_columns(tmp_path: Path) -> None:
    cases = tmp_path / "in"
    cases.mkdir()
    shutil.copy(CT / "example_ct_sm.nii.gz", cases / "CT1.nii.gz")
    shutil.copy(CT / "example_seg.nii.gz", cases / "CT1_dseg.nii.gz")
    out = tmp_path / "out"
    assert main(["run", str(cases), "-o", str(out), "--scheme", "total", "--modality", "ct", "-q"]) == 0
    folder = out / "CT1"
    assert (folder / "qc" / "CT1_ct_parenchyma.png").is_file()
    assert not (folder / "qc" / "CT1_fat_threshold.png").exists()
    page = (folder / "CT1_report.html").read_text(encoding="utf-8")
    assert 'data-column="hu_mean:mask:ct"' in page and "IMAT hu[-190,-30]" in page
    summary = pd.read_csv(out / "summary.csv").set_index(["structure", "side"])
    hand = _by_hand()
    assert summary.loc[("autochthon", "right"), "hu_mean_HU"] == pytest.approx(hand["right"][0])
    levels = pd.read_csv(folder / "CT1_levels.csv")
    assert list(levels["level"]) == ["L1"]  # the one whole vertebra in view; T12 and L2 are cut
