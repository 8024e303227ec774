"""Faulty or hostile inputs through real ``paraspinal`` processes: no case gets another case's levels, a
single-slice image runs with default QC, and no case id, level name or cell reaches a CSV as a formula."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.phantoms import save_nifti, two_muscle_phantom
from tests.reliability.support import one_error_line, run_cli, start_cli

FORMULA = "spreadsheets would run it as a formula"
FIX = "rename the file or the row"


def _dixon_case(folder: Path, case_id: str, *, names: tuple[str, str, str] = ("water", "fat", "dseg")) -> None:
    """The two-muscle phantom as ``<case>_water``, ``_fat`` and ``_dseg`` (10 axial slices, 4 mm)."""
    folder.mkdir(parents=True, exist_ok=True)
    labels, water, fat, affine = two_muscle_phantom()
    for name, array in zip(names, (water.astype(np.float32), fat.astype(np.float32), labels), strict=True):
        save_nifti(folder / f"{case_id}_{name}.nii.gz", array, affine)


def _case_files(out: Path, case_id: str) -> tuple[pd.DataFrame, dict, dict, str]:
    """A finished case's measurements, case JSON, manifest and report text."""
    folder = out / case_id
    return (
        pd.read_csv(folder / f"{case_id}_measurements.csv"),
        json.loads((folder / f"{case_id}_case.json").read_text(encoding="utf-8")),
        json.loads((folder / f"{case_id}_manifest.json").read_text(encoding="utf-8")),
        (folder / f"{case_id}_report.html").read_text(encoding="utf-8"),
    )


@pytest.mark.slow
def test_a_levels_csv_gives_no_case_the_levels_of_another(tmp_path: Path) -> None:
    scans = tmp_path / "scans"
    for case_id in ("P1", "P10", "P2"):
        _dixon_case(scans, case_id)
    _dixon_case(scans, "01", names=("water_img", "fat_img", "dseg"))  # LPM_Segmentator's file names
    shared = tmp_path / "levels.csv"
    shared.write_text("case_id,level,slice\nP10,L4/L5,3\nP10,L3/L4,6\n01_water_img,L4/L5,2\n")
    own = scans / "P2_levels.csv"  # P2's own CSV, with rows only for P20
    own.write_text("case_id,level,slice\nP20,L4/L5,3\n")
    out = tmp_path / "out"
    done = run_cli(["run", scans, "-o", out, "--levels", shared])
    assert done.returncode == 0, done.stderr
    run_manifest = {c["case_id"]: c for c in json.loads((out / "manifest.json").read_text(encoding="utf-8"))["cases"]}
    for case_id, source in (("P1", shared), ("P2", own)):
        note = f"levels CSV {source} has no rows for case {case_id}: measured per slice only"
        table, case_json, manifest, report = _case_files(out, case_id)
        assert f"paraspinal: warning: {case_id}: {note}" in done.stderr.splitlines()
        assert note in case_json["warnings"] and note in manifest["warnings"]
        assert note in run_manifest[case_id]["warnings"] and note in report
        assert (table["scope"] == "level").sum() == 0
        assert (table["scope"] == "slice").any()
        assert not (out / case_id / f"{case_id}_levels.csv").exists()
    for case_id, levels in (("P10", ["L3/L4", "L4/L5"]), ("01", ["L4/L5"])):
        table, case_json, _, _ = _case_files(out, case_id)
        assert sorted(set(table.loc[table["scope"] == "level", "level"])) == levels
        assert pd.read_csv(out / case_id / f"{case_id}_levels.csv")["level"].tolist() == levels
        assert not any("no rows" in w for w in case_json["warnings"])
    cohort = pd.read_csv(out / "measurements.csv")
    assert set(cohort.loc[cohort["scope"] == "level", "case_id"].astype(str)) == {"P10", "01"}


@pytest.mark.slow
def test_measure_with_a_levels_csv_without_the_cases_rows_warns_and_measures_per_slice(tmp_path: Path) -> None:
    _dixon_case(tmp_path, "P1")
    shared = tmp_path / "levels.csv"
    shared.write_text("pid,slice_start,slice_stop\nP10,2,8\n")
    out = tmp_path / "out"
    files = {"--labels": "P1_dseg", "--water": "P1_water", "--fat": "P1_fat"}
    args = [a for option, stem in files.items() for a in (option, tmp_path / f"{stem}.nii.gz")]
    done = run_cli(["measure", *args, "--levels", shared, "-o", out])
    assert done.returncode == 0, done.stderr
    note = f"levels CSV {shared} has no rows for case P1: measured per slice only"
    assert f"paraspinal: warning: {note}" in done.stderr.splitlines()
    assert note in json.loads((out / "P1_case.json").read_text(encoding="utf-8"))["warnings"]
    table = pd.read_csv(out / "P1_measurements.csv")
    assert (table["scope"] == "level").sum() == 0 and (table["scope"] == "slice").any()
    assert not (out / "P1_levels.csv").exists()


def _single_slice_cases(folder: Path) -> None:
    """S1: a one-slice Dixon case with a level on its slice; S2: a one-slice T2 case without levels."""
    folder.mkdir(parents=True, exist_ok=True)
    labels, water, fat, affine = two_muscle_phantom()
    one = (slice(None), slice(None), slice(4, 5))
    save_nifti(folder / "S1_water.nii.gz", water[one].astype(np.float32), affine)
    save_nifti(folder / "S1_fat.nii.gz", fat[one].astype(np.float32), affine)
    save_nifti(folder / "S1_dseg.nii.gz", labels[one], affine)
    (folder / "S1_levels.csv").write_text("level,slice\nL4/L5,0\n")
    t2 = np.where(labels[one] > 0, 300.0 + (np.arange(labels[one].size) % 50).reshape(labels[one].shape), 20.0)
    save_nifti(folder / "S2_t2.nii.gz", t2.astype(np.float32), affine)
    save_nifti(folder / "S2_dseg.nii.gz", labels[one], affine)


@pytest.mark.slow
def test_single_slice_images_run_with_default_qc_and_no_field_of_view_flag(tmp_path: Path) -> None:
    scans, out = tmp_path / "scans", tmp_path / "out"
    _single_slice_cases(scans)
    done = run_cli(["run", scans, "-o", out])
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "first or last slice" not in done.stderr
    assert pd.read_csv(out / "cases.csv")["status"].tolist() == ["ok", "ok"]
    assert (out / "report.html").is_file()
    expected = {
        "S1": ["S1_axial_L4-L5.png", "S1_fat_fraction.png", "S1_montage.png"],
        "S2": ["S2_axial_slice000.png", "S2_fat_threshold.png", "S2_montage.png"],
    }
    for case_id, pngs in expected.items():
        table, case_json, manifest, report = _case_files(out, case_id)
        assert sorted(p.name for p in (out / case_id / "qc").iterdir()) == pngs
        assert not table["flags"].dropna().astype(str).str.contains("fov_truncated").any()
        assert not any("fov_truncated" in flags for flags in case_json["flags"].values())
        fov = next(c for c in manifest["checks"] if c["name"] == "fov_truncated")
        assert (fov["status"], fov["message"]) == (
            "not_applicable",
            "single-slice image: no slices above or below to tell",
        )
        assert re.search(
            r'data-check="fov_truncated">.*not applicable</span> single-slice image: no slices above or below to tell',
            report,
        )
        assert "Single-slice image: no sagittal/coronal locator" in report
        assert 'data-kind="locator"' not in report
    s1 = pd.read_csv(out / "S1" / "S1_measurements.csv")
    assert set(s1.loc[s1["scope"] == "level", "level"]) == {"L4/L5"}
    summary = pd.read_csv(out / "summary.csv")
    assert "fov_truncated" not in summary.to_csv()


def _run_all(commands: Sequence[Sequence[str | Path]], *, at_once: int = 4) -> list[tuple[int, str]]:
    """Run ``paraspinal`` commands, ``at_once`` at a time; ``(exit code, stderr)`` of each, in order."""
    results: list[tuple[int, str]] = []
    for start in range(0, len(commands), at_once):
        procs = [start_cli(c) for c in commands[start : start + at_once]]
        for proc in procs:
            _, stderr = proc.communicate(timeout=300)
            results.append((proc.returncode, stderr))
    return results


RESERVED = [
    "report.html",
    "cases.csv",
    "summary.csv",
    "measurements.csv",
    "measurements.parquet",
    "manifest.json",
    "distributions.png",
    "ledger.sqlite",
    "ledger.part1of4.sqlite",
    "Manifest.JSON",
]
FORMULA_IDS = {
    '=HYPERLINK("http://x","y")': f"starts with '=': {FORMULA}",
    "+P1": f"starts with '+': {FORMULA}",
    "-P1": f"starts with '-': {FORMULA}",
    "@SUM(A1)": f"starts with '@': {FORMULA}",
    "P\n1": "holds a control character (U+000A): it would break table rows",
    "P1\x1bx": "holds a control character (U+001B): it would break table rows",
}


@pytest.mark.slow
def test_reserved_hidden_and_formula_like_case_ids_are_refused_with_one_line(tmp_path: Path) -> None:
    expected = dict.fromkeys(RESERVED, "is the name of one of the run's own files in the output folder")
    expected[".hidden"] = "starts with '.': its output folder would be hidden like the run's staging folders"
    expected.update(FORMULA_IDS)
    commands, wanted, outs = [], [], []
    for i, (case_id, problem) in enumerate(expected.items()):
        cases = tmp_path / f"cases{i}.csv"
        with cases.open("w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows([["case_id", "image"], [case_id, "a.nii.gz"]])
        outs.append(tmp_path / f"out{i}")
        commands.append(["run", cases, "-o", outs[-1]])
        wanted.append(f"paraspinal: error: {cases}: case id {case_id!r} {problem}; {FIX}")
    # a case id from a file name, and measure's --case-id
    scans = tmp_path / "scans"
    _dixon_case(scans, "=cmd")
    commands.append(["run", scans, "-o", tmp_path / "out_scans"])
    wanted.append(f"paraspinal: error: {scans / '=cmd_dseg.nii.gz'}: case id '=cmd' starts with '=': {FORMULA}; {FIX}")
    _dixon_case(tmp_path, "P1")
    commands.append(
        ["measure", "--labels", tmp_path / "P1_dseg.nii.gz", "--case-id", "@x", "-o", tmp_path / "out_measure"]
    )
    wanted.append(f"paraspinal: error: case id '@x' starts with '@': {FORMULA}; pass another --case-id")
    outs += [tmp_path / "out_scans", tmp_path / "out_measure"]
    for (code, stderr), line, out in zip(_run_all(commands), wanted, outs, strict=True):
        assert code == 1, stderr
        assert one_error_line(stderr) == line
        assert not out.exists()


LEVEL_NAMES = {
    "=1+1": f"starts with '=': {FORMULA}",
    "+L4": f"starts with '+': {FORMULA}",
    "-L4": f"starts with '-': {FORMULA}",
    "@L4": f"starts with '@': {FORMULA}",
    "L4\nL5": "holds a control character (U+000A): it would break table rows",
}


@pytest.mark.slow
def test_formula_like_level_names_are_refused_with_one_line(tmp_path: Path) -> None:
    _dixon_case(tmp_path, "P1")
    commands, wanted = [], []
    for i, (name, problem) in enumerate(LEVEL_NAMES.items()):
        levels = tmp_path / f"levels{i}.csv"
        with levels.open("w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows([["level", "slice"], ["L3/L4", 6], [name, 3]])
        commands.append(
            ["measure", "--labels", tmp_path / "P1_dseg.nii.gz", "--levels", levels, "-o", tmp_path / f"out{i}"]
        )
        wanted.append(f"paraspinal: error: {levels}: level name {name!r} {problem}; rename the level")
    for (code, stderr), line in zip(_run_all(commands), wanted, strict=True):
        assert code == 1, stderr
        assert one_error_line(stderr) == line
    assert not any(p.name.startswith("out") for p in tmp_path.iterdir())


def _bad_cells(path: Path) -> list[str]:
    """Cells of a CSV that a spreadsheet would run as a formula (not plain numbers) or that hold control characters."""
    number = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
    control = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
    with path.open(newline="", encoding="utf-8") as handle:
        return [
            f"{path.name}: {cell!r}"
            for row in csv.reader(handle)
            for cell in row
            if (cell[:1] in ("=", "+", "-", "@") and not number.fullmatch(cell)) or control.search(cell)
        ]


@pytest.mark.slow
def test_no_csv_of_a_run_holds_a_formula_or_a_control_character(tmp_path: Path) -> None:
    # relative paths starting with '=' (the input folder, the levels CSV) end up in error messages and tables
    scans = tmp_path / "=scans"
    for case_id in ("A", "B", "C"):
        _dixon_case(scans, case_id)
    (scans / "C_fat.nii.gz").write_bytes(b"\x1f\x8bnot a gzip stream")  # C fails: its error names =scans/...
    labels, water, _fat, affine = two_muscle_phantom()
    save_nifti(scans / "D_t2.nii.gz", water.astype(np.float32), affine)  # a T2 case: threshold methods too
    save_nifti(scans / "D_dseg.nii.gz", labels, affine)
    (tmp_path / "=levels.csv").write_text("case_id,level,slice\nA,L4/L5,3\nD,L3/L4,6\n")  # none for B
    done = run_cli(["run", "=scans", "-o", "out", "--levels", "=levels.csv"], cwd=tmp_path)
    assert done.returncode == 3, done.stderr
    out = tmp_path / "out"
    cases = pd.read_csv(out / "cases.csv", keep_default_na=False).set_index("case_id")
    assert cases.loc["C", "error"].startswith("'=scans/C_fat.nii.gz: ")  # shown as text, not run
    assert pd.read_csv(out / "A" / "A_levels.csv")["source"].tolist() == ["'=levels.csv"]
    written = sorted(out.rglob("*.csv"))
    assert {p.name for p in written} >= {"cases.csv", "summary.csv", "measurements.csv", "A_levels.csv"}
    assert {p.name for p in written} >= {f"{c}_{kind}.csv" for c in "ABD" for kind in ("measurements", "summary")}
    assert [cell for path in written for cell in _bad_cells(path)] == []
