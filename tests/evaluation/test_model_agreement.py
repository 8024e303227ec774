"""``paraspinal evaluate --a --b``: agreement between two models' label maps, no reference."""

from __future__ import annotations

import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

import paraspinal.cli.evaluate_cmd
import paraspinal.cli.run_cmd  # noqa: F401
from paraspinal.anatomy import load_registry
from paraspinal.backends import catalog
from paraspinal.backends.catalog import BACKENDS
from paraspinal.cli.main import main
from paraspinal.errors import InputError
from paraspinal.evaluation.model_agreement import compare_models, label_map_scheme
from paraspinal.evaluation.overlap import hausdorff_mm
from tests.fake_backends import FAKE_MASK, write_model

SHAPE = (40, 30, 10)
AFFINE = np.diag([1.0, 1.0, 4.0, 1.0])  # voxel 4 mm³
AFFINE[:3, 3] = (-20.0, -15.0, 0.0)
VOXEL_MM3 = 4.0


def lpm4(*, grow_right_es: int = 0) -> np.ndarray:
    """1 right ES (400 voxels + 100 per grown column), 2 right MF (200), 3 left MF (200), 4 left ES (400)."""
    lab = np.zeros(SHAPE, dtype=np.int16)
    lab[24 : 28 + grow_right_es, 5:15, :] = 1
    lab[20:24, 15:20, :] = 2
    lab[16:20, 15:20, :] = 3
    lab[12:16, 5:15, :] = 4
    return lab


def total_mr() -> np.ndarray:
    """47 right autochthon = lpm4's right ES + MF; 46 left autochthon = lpm4's left ES only; 5 liver."""
    base = lpm4()
    lab = np.zeros(SHAPE, dtype=np.int16)
    lab[np.isin(base, (1, 2))] = 47
    lab[base == 4] = 46
    lab[0:4, 0:4, :] = 5
    return lab


def _save(path: Path, array: np.ndarray, *, scheme: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, AFFINE), str(path))
    if scheme is not None:  # the sidecar `paraspinal segment` writes
        sidecar = path.with_name(path.name.replace(".nii.gz", ".json"))
        sidecar.write_text(json.dumps({"source": "x", "scheme": scheme}), encoding="utf-8")
    return path


def _value(overlap: pd.DataFrame, name: str, metric: str, level: str = "all") -> float:
    row = overlap[(overlap["name"] == name) & (overlap["metric"] == metric) & (overlap["level"] == level)]
    assert len(row) == 1, (name, metric, level)
    return float(row["value"].iloc[0])


def _cli(args: list[object], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_two_lpm4_predictions_give_the_known_dice_and_volume_difference(tmp_path: Path, capsys) -> None:
    a = _save(tmp_path / "a" / "P1_dseg.nii.gz", lpm4())
    b = _save(tmp_path / "b" / "P1_dseg.nii.gz", lpm4(grow_right_es=2))
    out = tmp_path / "out"
    code, stdout, err = _cli(
        ["evaluate", "--a", a, "--b", b, "--scheme-a", "lpm4", "--scheme-b", "lpm4", "-o", out], capsys
    )
    assert code == 0, err
    overlap = pd.read_csv(out / "overlap.csv")
    assert set(overlap["scheme_a"]) == {"lpm4"} and set(overlap["scheme_b"]) == {"lpm4"}
    assert _value(overlap, "right erector spinae", "dice") == pytest.approx(2 * 400 / (400 + 600))
    for name in ("right multifidus", "left multifidus", "left erector spinae"):
        assert _value(overlap, name, "dice") == 1.0 and _value(overlap, name, "hd95") == 0.0
    assert _value(overlap, "foreground", "dice") == pytest.approx(2 * 1200 / (1200 + 1400))
    assert _value(overlap, "right erector spinae", "volume_a") == 400 * VOXEL_MM3
    assert _value(overlap, "right erector spinae", "volume_b") == 600 * VOXEL_MM3
    assert _value(overlap, "right erector spinae", "volume_diff") == -200 * VOXEL_MM3
    assert _value(overlap, "right erector spinae", "volume_diff_pct") == pytest.approx(-100 * 200 / 600)
    spacing = (1.0, 1.0, 4.0)
    expected_hd = hausdorff_mm(lpm4() == 1, lpm4(grow_right_es=2) == 1, spacing_mm=spacing)
    assert expected_hd > 0 and _value(overlap, "right erector spinae", "hd95") == pytest.approx(expected_hd)
    assert not {"volume_pred", "volume_ref"} & set(overlap["metric"])
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["kind"] == "model_agreement" and "neither is a reference" in summary["definitions"]["comparison"]
    assert [row["values_a"] for row in summary["common_labels"]] == [[1], [2], [3], [4]]
    assert not (out / "agreement.csv").exists() and (out / "common_labels.csv").is_file()
    page = (out / "evaluation.html").read_text(encoding="utf-8")
    assert "Agreement between two models (no reference)" in page and "against reference masks" not in page
    assert 'data-table="evaluation-labels"' in page and "Volume A (mL)" in page
    assert "agreement of models A and B (no reference)" in stdout


def test_lpm4_and_total_mr_are_compared_as_autochthon_per_side(tmp_path: Path, capsys) -> None:
    a = _save(tmp_path / "lpm" / "P1_dseg.nii.gz", lpm4(), scheme="lpm4")
    b = _save(tmp_path / "ts" / "P1_dseg.nii.gz", total_mr(), scheme="total_mr")
    out = tmp_path / "out"
    code, _, err = _cli(["evaluate", "--a", a, "--b", b, "-o", out, "--no-plots"], capsys)
    assert code == 0, err
    name = load_registry()["autochthon"].name
    overlap = pd.read_csv(out / "overlap.csv")
    assert set(overlap["name"]) == {"foreground", f"right {name}", f"left {name}"}
    assert set(overlap["structure"].dropna()) == {"foreground", "autochthon"}
    assert _value(overlap, f"right {name}", "dice") == 1.0 and _value(overlap, f"right {name}", "assd") == 0.0
    assert _value(overlap, f"left {name}", "dice") == pytest.approx(2 * 400 / (600 + 400))
    assert _value(overlap, f"left {name}", "volume_diff") == 200 * VOXEL_MM3
    assert _value(overlap, f"left {name}", "volume_diff_pct") == pytest.approx(50.0)
    assert _value(overlap, "foreground", "dice") == pytest.approx(2 * 1000 / (1200 + 1000))  # liver left out
    assert "model B (total_mr) labels with no counterpart in lpm4, left out: spleen" in err
    common = pd.read_csv(out / "common_labels.csv", dtype=str)
    assert common[["side", "values_a", "values_b"]].values.tolist() == [["right", "1 2", "47"], ["left", "3 4", "46"]]


def test_run_folders_of_two_backends_are_paired_and_their_schemes_read_from_the_manifests(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalog, "BACKENDS", (*BACKENDS, FAKE_MASK))
    image = tmp_path / "in" / "P1_t2.nii.gz"
    _save(image, np.where(lpm4() > 0, 300.0, 20.0).astype(np.float32))
    lpm_model = write_model(tmp_path / "lpm_model", lpm4(), "lpm4")
    ts_model = write_model(tmp_path / "ts_model", total_mr(), "lpm4")  # native scheme given on the command line
    common = ["--no-qc", "--no-report", "--no-largest-component", "-q"]
    run_a, run_b = tmp_path / "run_a", tmp_path / "run_b"
    assert main(["run", str(image), "-o", str(run_a), "-b", "fake_mask", "-m", str(lpm_model), *common]) == 0
    args = ["run", str(image), "-o", str(run_b), "-b", "fake_mask", "-m", str(ts_model), "--model-scheme", "total_mr"]
    assert main([*args, *common]) == 0
    assert json.loads((run_b / "P1" / "P1_manifest.json").read_text(encoding="utf-8"))["label_scheme"] == "total_mr"
    capsys.readouterr()
    out = tmp_path / "agreement"
    code, _, err = _cli(["evaluate", "--a", run_a, "--b", run_b, "-o", out, "--no-plots"], capsys)
    assert code == 0, err
    overlap = pd.read_csv(out / "overlap.csv")
    assert set(overlap["case_id"]) == {"P1"} and set(overlap["scheme_b"]) == {"total_mr"}
    name = load_registry()["autochthon"].name
    assert _value(overlap, f"left {name}", "dice") == pytest.approx(0.8)
    assert _value(overlap, f"right {name}", "dice") == 1.0


def test_levels_restrict_the_comparison(tmp_path: Path, capsys) -> None:
    a = _save(tmp_path / "a" / "P1_dseg.nii.gz", lpm4())
    changed = lpm4()
    changed[24:28, 5:15, 5:] = 0  # right ES missing in the upper half of B
    b = _save(tmp_path / "b" / "P1_dseg.nii.gz", changed)
    levels = tmp_path / "levels.csv"
    levels.write_text("case_id,level,slice_start,slice_stop\nP1,L4-L5,0,5\nP1,L3-L4,5,10\n", encoding="utf-8")
    result = compare_models(a, b, scheme_a="lpm4", scheme_b="lpm4", levels_csv=levels)
    assert not result.warnings and result.cases[0].status == "ok", result.cases[0].warnings
    assert _value(result.overlap, "right erector spinae", "dice", "L4/L5") == 1.0
    assert _value(result.overlap, "right erector spinae", "dice", "L3/L4") == 0.0
    assert _value(result.overlap, "right erector spinae", "dice") == pytest.approx(2 * 200 / (400 + 200))


def test_a_scheme_that_cannot_be_told_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    a = _save(tmp_path / "a" / "P1_dseg.nii.gz", lpm4())
    b = _save(tmp_path / "b" / "P1_dseg.nii.gz", lpm4())
    code, _, err = _cli(["evaluate", "--a", a, "--b", b, "--scheme-b", "lpm4", "-o", tmp_path / "o"], capsys)
    assert code == 1
    assert err.strip() == (
        f"paraspinal: error: {a}: cannot tell the label scheme (no segment sidecar or run manifest beside it); "
        "give --scheme-a KEY|FILE"
    )
    with pytest.raises(InputError, match="cannot tell the label scheme"):
        label_map_scheme(a, explicit=None, fallback=None, option="--scheme-a")
    assert label_map_scheme(a, explicit=None, fallback="xu7", option="--scheme-a").key == "xu7"


def test_schemes_with_nothing_in_common_are_a_one_line_error(tmp_path: Path, capsys) -> None:
    a = _save(tmp_path / "a" / "P1_dseg.nii.gz", lpm4(), scheme="lpm4")
    b = _save(tmp_path / "b" / "P1_dseg.nii.gz", lpm4(), scheme="spider")
    code, _, err = _cli(["evaluate", "--a", a, "--b", b, "-o", tmp_path / "o"], capsys)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1
    assert lines[0] == (
        "paraspinal: error: label schemes 'lpm4' and 'spider' have no structure in common "
        "(no label of one lies in, or contains, a label of the other in the anatomy registry)"
    )


@pytest.mark.parametrize(
    ("extra", "hint"),
    [
        (["--a", "A"], "--a/--b"),
        (["--a", "A", "--b", "B", "--pred", "P"], "not both"),
        (["--a", "A", "--b", "B", "--water", "W"], "--water"),
        ([], "--pred/--ref"),
        (["--pred", "P", "--ref", "R", "--scheme-a", "lpm4"], "--scheme-a"),
    ],
)
def test_mode_mixups_are_usage_errors(tmp_path: Path, capsys, extra: list[str], hint: str) -> None:
    code, _, err = _cli(["evaluate", "-o", tmp_path / "o", *extra], capsys)
    assert code == 2 and hint in err and not (tmp_path / "o").exists()


def test_a_folder_pair_keeps_going_past_a_bad_case(tmp_path: Path) -> None:
    for case in ("P1", "P2"):
        _save(tmp_path / "a" / f"{case}_dseg.nii.gz", lpm4())
    _save(tmp_path / "b" / "P1_dseg.nii.gz", lpm4())
    (tmp_path / "b" / "P2_dseg.nii.gz").write_bytes(b"not a nifti")
    result = compare_models(tmp_path / "a", tmp_path / "b", scheme_a="lpm4", scheme_b="lpm4")
    assert [c.status for c in result.cases] == ["ok", "error"] and result.n_failed == 1
    assert set(result.overlap["case_id"]) == {"P1"}
    assert math.isclose(_value(result.overlap, "left erector spinae", "dice"), 1.0)


def test_a_pair_that_fails_still_gets_a_report_and_a_failing_exit_code(tmp_path: Path) -> None:
    array = np.zeros((8, 8, 4), dtype=np.uint8)
    array[2:5, 2:5, :] = 1
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    nib.save(nib.Nifti1Image(array, np.eye(4)), tmp_path / "a" / "C1_dseg.nii.gz")
    shifted = np.eye(4)
    shifted[:3, 3] = 50.0  # same voxels, another origin: refused without --assume-aligned
    nib.save(nib.Nifti1Image(array, shifted), tmp_path / "b" / "C1_dseg.nii.gz")
    args = ["evaluate", "--a", str(tmp_path / "a"), "--b", str(tmp_path / "b"), "--scheme", "lpm4"]
    code = main([*args, "-o", str(tmp_path / "eval"), "-q"])
    assert code != 0
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text(encoding="utf-8"))
    assert summary["n_cases_failed"] == 1 and "header differs" in summary["errors"][0]
    assert (tmp_path / "eval" / "evaluation.html").is_file()
