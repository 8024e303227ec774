"""CT through the commands: the shared CT flags (declared once, in every command's --help at the same place), then
`measure` and `run` on the real example CT with TotalSegmentator's `total` label map.

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
import typer
from typer.testing import CliRunner

from paraspinal.cli.ct_options import CT_FLAGS, ct_flags, with_ct_flags
from paraspinal.cli.main import main
from paraspinal.measurement.ct_options import CtOptions

CT = Path(__file__).resolve().parents[3] / "shared" / "data" / "totalseg-ct-example"
needs_ct = pytest.mark.skipif(not (CT / "example_ct_sm.nii.gz").is_file(), reason="../shared CT example absent")
AUTOCHTHON = {"left": 86, "right": 87}  # TotalSegmentator `total` class values


FLAGS = ["ct_contrast", "erosion_mm", "outliers", "mad_k", "outlier_window", "adipose_window", "muscle_window"]
FLAGS += ["rois", "roi_radius_mm", "bmi", "organs"]


def _toy(*, bmi: bool) -> tuple[typer.Typer, list[CtOptions]]:
    app, seen = typer.Typer(add_completion=False), []

    @app.command()
    @with_ct_flags(bmi=bmi)
    def toy(first: int = typer.Option(1, "--first"), ct: CtOptions = CT_FLAGS, last: int = typer.Option(2)) -> None:
        seen.append(ct)

    return app, seen


def test_the_ct_flags_take_the_marked_parameters_place_and_arrive_parsed() -> None:
    app, seen = _toy(bmi=True)
    names = [p.name for p in typer.main.get_command(app).params]
    assert names == ["first", *FLAGS, "last"]
    assert [name for name, _kind, _option in ct_flags()] == FLAGS
    assert CliRunner().invoke(app, []).exit_code == 0
    assert seen[-1] == CtOptions()  # the flags' defaults are CtOptions' defaults
    args = ["--adipose-window", "-180,-40", "--organs", "liver", "--rois", "2", "--bmi", "27", "--ct-contrast", "none"]
    assert CliRunner().invoke(app, [*args, "--outliers", "window", "--outlier-window", "0,100"]).exit_code == 0
    assert seen[-1] == CtOptions(
        adipose_window_hu=(-180.0, -40.0),
        organs=("liver",),
        n_rois=2,
        bmi_kg_m2=27.0,
        contrast="none",
        outliers="window",
        outlier_window_hu=(0.0, 100.0),
    )
    bad = CliRunner().invoke(app, ["--muscle-window", "high"])
    assert bad.exit_code == 2 and "expected LOW,HIGH in HU" in bad.output


def test_without_bmi_the_flag_is_absent_and_no_bmi_is_passed() -> None:
    app, seen = _toy(bmi=False)
    assert [p.name for p in typer.main.get_command(app).params] == ["first", *[f for f in FLAGS if f != "bmi"], "last"]
    assert CliRunner().invoke(app, ["--bmi", "27"]).exit_code == 2
    assert CliRunner().invoke(app, []).exit_code == 0 and seen[-1].bmi_kg_m2 is None


@pytest.mark.parametrize(("command", "before", "after"), [
    ("measure", "modality", "quiet"), ("run", "modality", "quiet"), ("evaluate", "manual_values", "image_name"),
])  # fmt: skip
def test_every_command_lists_the_ct_flags_in_one_block(command: str, before: str, after: str) -> None:
    from paraspinal.cli.app import app
    from paraspinal.cli.main import _register_commands

    _register_commands()
    names = [p.name for p in typer.main.get_command(app).commands[command].params]
    expected = [f for f in FLAGS if command != "evaluate" or f != "bmi"]
    start = names.index(before) + 1
    assert names[start - 1 : start + len(expected) + 1] == [before, *expected, after]


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


@needs_ct
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


@needs_ct
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
