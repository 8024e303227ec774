"""``paraspinal evaluate`` end to end on small phantoms written to disk (lpm4 labels)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

import paraspinal.cli.evaluate_cmd  # noqa: F401  (registers the command until main imports it)
from paraspinal.cli.main import main
from paraspinal.errors import InputError
from paraspinal.evaluation.pairing import case_id_from_path, find_case_file, pair_cases

SHAPE = (40, 30, 10)
AFFINE = np.diag([1.0, 1.0, 4.0, 1.0])  # RAS+: i runs to the patient's right; voxel 4 mm³
AFFINE[:3, 3] = (-20.0, -15.0, 0.0)


def _labels(width: int, *, grow_right_es: int = 0, drop: int | None = None) -> np.ndarray:
    """lpm4: 1 right ES, 2 right MF, 3 left MF, 4 left ES (erector spinae ``width`` voxels wide)."""
    lab = np.zeros(SHAPE, dtype=np.int16)
    lab[24 : 24 + width + grow_right_es, 5:15, :] = 1
    lab[20:24, 15:20, :] = 2
    lab[16:20, 15:20, :] = 3
    lab[16 - width : 16, 5:15, :] = 4
    if drop is not None:
        lab[lab == drop] = 0
    return lab


def _save(path: Path, array: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    nib.save(nib.Nifti1Image(array, affine), str(path))
    return path


def _images(lab: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Water, fat and a T1-like image: muscle 25 % fat; muscle rows j = 8, 12 bright (fat) on T1."""
    muscle = lab > 0
    water, fat, t1 = (np.full(SHAPE, 5.0) for _ in range(3))
    water[muscle], fat[muscle], t1[muscle] = 300.0, 100.0, 100.0
    bright = muscle & (np.arange(SHAPE[1]) % 4 == 0)[None, :, None]
    t1[bright] = 400.0
    return water, fat, t1


def _run(*args: str | Path) -> int:
    return main(["evaluate", *(str(a) for a in args)])


@pytest.fixture
def study(tmp_path: Path) -> dict[str, Path]:
    """Four matched cases (a..d), one prediction without reference (x), one reference without
    prediction (y); case d's prediction is on another grid; case c's prediction lacks label 3."""
    folders = {name: tmp_path / name for name in ("pred", "ref", "water", "fat", "t1")}
    for folder in folders.values():
        folder.mkdir()
    for n, case in enumerate("abcd"):
        ref = _labels(6 + n)
        pred = _labels(6 + n, grow_right_es=1, drop=3 if case == "c" else None)
        _save(folders["ref"] / f"{case}_labels.nii.gz", ref)
        shifted = AFFINE.copy()
        shifted[0, 3] += 2.0 if case == "d" else 0.0
        _save(folders["pred"] / f"{case}_pred.nii.gz", pred, shifted)
        water, fat, t1 = _images(np.maximum(ref, pred))  # muscle signal wherever either mask is
        _save(folders["water"] / f"{case}_water.nii.gz", water)
        _save(folders["fat"] / f"{case}_fat.nii.gz", fat)
        _save(folders["t1"] / f"{case}_t1.nii.gz", t1)
    _save(folders["pred"] / "x_pred.nii.gz", _labels(6))
    _save(folders["ref"] / "y_seg.nii.gz", _labels(6))
    levels = tmp_path / "levels.csv"
    pd.DataFrame(
        {
            "case_id": [c for c in "abcd" for _ in range(2)],
            "level": ["L3/L4", "L4/L5"] * 4,
            "slice_start": [0, 5] * 4,
            "slice_stop": [5, 10] * 4,
        }
    ).to_csv(levels, index=False)
    folders["levels"] = levels
    return folders


def _metric(table: pd.DataFrame, **where: object) -> pd.Series:
    rows = table
    for column, wanted in where.items():
        rows = rows[rows[column] == wanted]
    return rows["value"]


def test_single_pair_overlap_by_hand(tmp_path: Path) -> None:
    ref = _save(tmp_path / "case1_ref.nii.gz", _labels(6))
    pred = _save(tmp_path / "case1_pred.nii.gz", _labels(6, grow_right_es=1))
    out = tmp_path / "out"
    assert _run("--pred", pred, "--ref", ref, "-o", out, "--no-plots", "-q") == 0
    overlap = pd.read_csv(out / "overlap.csv")
    assert {"case_id", "label", "name", "structure", "side", "level", "metric", "value", "unit", "reason"} <= set(
        overlap.columns
    )
    assert set(overlap["case_id"]) == {"case1"}
    # right ES: 6 vs 7 voxels wide, 6 shared -> Dice 12/13; volume +1/6; HD95 1 mm (along i)
    es = overlap[(overlap["name"] == "right erector spinae") & (overlap["level"] == "all")].set_index("metric")
    assert es.loc["dice", "value"] == pytest.approx(12 / 13)
    assert es.loc["volume_diff_pct", "value"] == pytest.approx(100 / 6)
    assert es.loc["volume_diff", "value"] == pytest.approx(10 * 10 * 4.0)  # one 10x10 sheet of 4 mm³ voxels
    assert es.loc["hd95", "value"] == pytest.approx(1.0)
    assert _metric(overlap, name="left multifidus", level="all", metric="dice").iloc[0] == 1.0
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["n_cases_evaluated"] == 1 and summary["errors"] == []
    n_ref = 2 * 6 * 10 * 10 + 2 * 4 * 5 * 10  # foreground voxels of the reference; prediction has 100 more
    assert summary["global_dice"]["mean"] == pytest.approx(2 * n_ref / (2 * n_ref + 100))
    # volume agreement needs only label maps; one case gives n = 1 and NaN ICC (null in JSON)
    agreement = pd.read_csv(out / "agreement.csv")
    assert set(agreement["metric"]) == {"volume"}
    assert (agreement["n"] == 1).all() and agreement["icc21"].isna().all()


def test_folders_unmatched_ids_grid_errors_and_missing_labels(study: dict[str, Path], capsys) -> None:
    out = study["pred"].parent / "out"
    code = _run(
        "--pred", study["pred"], "--ref", study["ref"], "-o", out, "--levels", study["levels"], "--no-plots", "-q"
    )
    err = capsys.readouterr().err
    assert code == 1  # case d failed: results for the others are still written
    assert "no reference: x" in err and "no prediction: y" in err
    assert "d: " in err and "header differs" in err
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["n_cases_matched"] == 4 and summary["n_cases_evaluated"] == 3 and summary["n_cases_failed"] == 1
    assert any("x" in w for w in summary["warnings"])
    status = {c["case_id"]: c["status"] for c in summary["cases"]}
    assert status == {"a": "ok", "b": "ok", "c": "ok", "d": "error"}
    overlap = pd.read_csv(out / "overlap.csv", keep_default_na=False, na_values=[""])
    assert set(overlap["case_id"]) == {"a", "b", "c"}
    assert set(overlap["level"]) == {"all", "L3/L4", "L4/L5"}
    missing = overlap[
        (overlap["case_id"] == "c") & (overlap["name"] == "left multifidus") & (overlap["level"] == "all")
    ].set_index("metric")
    assert missing.loc["dice", "value"] == 0.0 and missing.loc["dice", "reason"] == "empty in prediction"
    assert math.isnan(missing.loc["hd95", "value"]) and missing.loc["hd95", "reason"] == "empty in prediction"
    assert summary["overlap"]["all"]["left multifidus"]["reasons"] == {"empty in prediction": 4}


def test_measurement_agreement_and_fat_classification(study: dict[str, Path]) -> None:
    for name in ("pred", "ref"):  # keep the three clean cases
        for case in "dxy":
            for f in study[name].glob(f"{case}_*"):
                f.unlink()
    out = study["pred"].parent / "out"
    code = _run(
        "--pred",
        study["pred"],
        "--ref",
        study["ref"],
        "-o",
        out,
        "--levels",
        study["levels"],
        "--water",
        study["water"],
        "--fat",
        study["fat"],
        "--image",
        study["t1"],
        "--image-name",
        "t1",
        "--methods",
        "otsu",
        "--tost-margin",
        "fat_fraction=1",
        "--no-plots",
        "-q",
    )
    assert code == 0
    agreement = pd.read_csv(out / "agreement.csv", keep_default_na=False, na_values=[""])
    assert {"volume", "csa", "fat_fraction", "fat_infiltration"} <= set(agreement["metric"])
    for column in (
        "mae",
        "mse",
        "mape_pct",
        "icc21",
        "icc21_ci_low",
        "icc31",
        "pearson_r",
        "spearman_rho",
        "ba_bias",
        "ba_loa_low",
        "ba_loa_high",
        "tost_margin",
        "tost_p",
        "tost_equivalent",
    ):
        assert column in agreement.columns
    vol = agreement[
        (agreement["metric"] == "volume")
        & (agreement["scope"] == "structure")
        & (agreement["structure"] == "erector_spinae")
        & (agreement["side"] == "right")
    ].iloc[0]
    # auto right ES is one 10x10x10 sheet (4 mL at 4 mm³ voxels) larger in every case
    assert vol["n"] == 3 and vol["ba_bias"] == pytest.approx(0.4) and vol["ba_sd"] == pytest.approx(0.0)
    widths = np.array([6, 7, 8])
    assert vol["mape_pct"] == pytest.approx(np.mean(100 / widths))
    assert vol["tost_margin_rule"] == "±5% of manual mean"
    ff = agreement[(agreement["metric"] == "fat_fraction") & (agreement["scope"] == "structure")]
    assert np.allclose(ff["ba_bias"], 0.0) and (ff["tost_margin"] == 1.0).all() and (ff["tost_equivalent"] == 1).all()
    pairs = pd.read_csv(out / "pairs.csv")
    assert {"case_id", "auto", "manual", "difference"} <= set(pairs.columns)
    measurements = pd.read_csv(out / "measurements.csv")
    assert set(measurements["source"]) == {"auto", "manual"}
    classes = pd.read_csv(out / "fat_classification.csv", keep_default_na=False, na_values=[""])
    es = classes[
        (classes["case_id"] == "a")
        & (classes["structure"] == "erector_spinae")
        & (classes["side"] == "right")
        & (classes["scope"] == "structure")
    ].iloc[0]
    # 2 bright rows (j = 8, 12) x 10 slices per column; the extra auto column (i = 30) is fat only in auto
    assert (es["tp"], es["fp"], es["fn"], es["tn"]) == (6 * 20, 20, 0, 7 * 100 - 7 * 20)
    assert es["precision"] == pytest.approx(120 / 140) and es["recall"] == 1.0
    assert es["specificity"] == pytest.approx(560 / 580)
    assert es["kappa"] == pytest.approx(
        (680 / 700 - (140 * 120 + 560 * 580) / 700**2) / (1 - (140 * 120 + 560 * 580) / 700**2)
    )
    missed = classes[
        (classes["case_id"] == "c")
        & (classes["structure"] == "multifidus")
        & (classes["side"] == "left")
        & (classes["scope"] == "structure")
    ].iloc[0]
    # label 3 is missing from c's prediction: every manual fat voxel (4 x row j = 16 x 10 slices) is a miss
    assert (missed["tp"], missed["fp"], missed["fn"]) == (0, 0, 4 * 1 * 10) and missed["recall"] == 0.0
    pooled = pd.read_csv(out / "fat_classification_pooled.csv")
    assert (pooled["n_cases"] == 3).all()
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["fat_classification_pooled"] and summary["agreement_structure_scope"]


def test_plots_are_written(tmp_path: Path) -> None:
    for folder in ("p", "r"):
        (tmp_path / folder).mkdir()
    for n, case in enumerate("abc"):
        _save(tmp_path / "r" / f"{case}.nii.gz", _labels(5 + n))
        _save(tmp_path / "p" / f"{case}.nii.gz", _labels(5 + n, grow_right_es=n % 2))
    out = tmp_path / "out"
    assert _run("-p", tmp_path / "p", "-r", tmp_path / "r", "-o", out, "-q") == 0
    plots = sorted(p.name for p in (out / "plots").glob("*.png"))
    assert "dice_by_label.png" in plots
    assert "bland_altman_volume_voxel_count_structure.png" in plots
    assert all((out / "plots" / p).stat().st_size > 1000 for p in plots)


def test_usage_and_input_errors(tmp_path: Path, capsys) -> None:
    ref = _save(tmp_path / "a_ref.nii.gz", _labels(6))
    assert _run("--pred", tmp_path / "missing.nii.gz", "--ref", ref, "-o", tmp_path / "o") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("paraspinal: error:") and "missing.nii.gz" in err[0]
    assert _run("--pred", ref, "--ref", ref, "-o", tmp_path / "o", "--tost-margin", "volume") == 2
    assert _run("--pred", ref, "--ref", ref, "-o", tmp_path / "o", "--methods", "nope") == 2
    assert _run("--pred", tmp_path, "--ref", ref, "-o", tmp_path / "o") == 1
    assert "two files or two folders" in capsys.readouterr().err


def test_partial_cases_levels_missing_and_labels_outside_the_scheme(tmp_path: Path, capsys) -> None:
    ref_array = _labels(6)
    ref_array[0, 0, 0] = 9  # not an lpm4 value: overlap is still evaluated, measurement is skipped
    ref = _save(tmp_path / "k1_ref.nii.gz", ref_array)
    pred = _save(tmp_path / "k1_pred.nii.gz", _labels(6))
    levels = tmp_path / "levels.csv"
    pd.DataFrame({"case_id": ["other"], "level": ["L4/L5"], "slice": [3]}).to_csv(levels, index=False)
    out = tmp_path / "out"
    assert _run("--pred", pred, "--ref", ref, "--levels", levels, "-o", out, "--no-plots", "-q") == 0
    err = capsys.readouterr().err
    assert "no levels, whole volume only" in err and "measurement agreement skipped" in err
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["cases"][0]["status"] == "partial"
    overlap = pd.read_csv(out / "overlap.csv")
    assert set(overlap["level"]) == {"all"}
    extra = overlap[(overlap["name"] == "label_9") & (overlap["metric"] == "dice")]
    assert extra["value"].iloc[0] == 0.0 and extra["reason"].iloc[0] == "empty in prediction"


def test_image_file_with_folders_is_refused(study: dict[str, Path], capsys) -> None:
    water = next(study["water"].glob("a_*"))
    assert _run("-p", study["pred"], "-r", study["ref"], "--water", water, "-o", study["pred"].parent / "o") == 1
    assert "--water must be a folder" in capsys.readouterr().err


def test_case_ids_and_pairing(tmp_path: Path) -> None:
    assert case_id_from_path("a/TUM01_labels.nii.gz") == "TUM01"
    assert case_id_from_path("TUM01_pred.nrrd") == "TUM01"
    assert case_id_from_path("sub-01_dseg.nii") == "sub-01"
    assert case_id_from_path("x_SEG.mha") == "x"
    assert case_id_from_path("TUM01_water.nii.gz") == "TUM01_water"
    assert case_id_from_path("_seg.nii.gz") == "_seg"
    p, r = tmp_path / "p", tmp_path / "r"
    p.mkdir()
    r.mkdir()
    for name in ("a_pred.nii.gz", "b.nii.gz", "notes.txt"):
        (p / name).write_bytes(b"")
    for name in ("a_ref.nii.gz", "c_seg.nii.gz"):
        (r / name).write_bytes(b"")
    pairing = pair_cases(p, r)
    assert [c.case_id for c in pairing.pairs] == ["a"]
    assert pairing.pred_only == ("b",) and pairing.ref_only == ("c",)
    (p / "a.nii.gz").write_bytes(b"")
    with pytest.raises(InputError, match="two files map to case id 'a'"):
        pair_cases(p, r)
    (p / "a.nii.gz").unlink()
    (r / "a_ref.nii.gz").unlink()
    with pytest.raises(InputError, match="no case id matches"):
        pair_cases(p, r)
    images = tmp_path / "img"
    images.mkdir()
    for name in ("a_water.nii.gz", "ab_water.nii.gz", "b_t1.nii.gz", "b_t2.nii.gz"):
        (images / name).write_bytes(b"")
    assert find_case_file(images, "a", option="--water", single_case=False).name == "a_water.nii.gz"
    with pytest.raises(InputError, match="several images for case b"):
        find_case_file(images, "b", option="--image", single_case=False)
    with pytest.raises(InputError, match="no image for case z"):
        find_case_file(images, "z", option="--image", single_case=False)
    with pytest.raises(InputError, match="must be a folder"):
        find_case_file(images / "a_water.nii.gz", "a", option="--water", single_case=False)
