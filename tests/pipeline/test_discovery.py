"""Case discovery: files and folders in, cases matched by name out; ambiguous names are errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from paraspinal.errors import InputError, LevelsError
from paraspinal.io.case_names import case_id_from_name, check_case_id
from paraspinal.io.case_names import parse_case_name as io_parse_case_name
from paraspinal.pipeline.case import Case
from paraspinal.pipeline.discovery import discover_cases, parse_case_name
from paraspinal.pipeline.levels import check_levels_csv


def _touch(folder: Path, *names: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        path = folder / name
        path.write_bytes(b"x")
        paths.append(path)
    return paths


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("P01_water.nii.gz", ("P01", "water", "water")),
        ("P01-FAT.nii", ("P01", "fat", "fat")),
        ("P01_water_img.nii.gz", ("P01", "water", "water")),  # LPM_Segmentator naming
        ("P01_dseg.nii.gz", ("P01", "labels", "")),
        ("TUM01_labels.nii.gz", ("TUM01", "labels", "")),
        ("P01_T2W.mha", ("P01", "image", "t2")),
        ("P01_t1.nrrd", ("P01", "image", "t1")),
        ("P01.nii.gz", ("P01", "image", "image")),
        ("fat.nii.gz", ("fat", "image", "image")),  # a role word alone is not a role
        ("sub_seg.nii.gz", ("sub", "labels", "")),
        ("P01_dsegx.nii.gz", ("P01_dsegx", "image", "image")),
    ],
)
def test_parse_case_name(name: str, expected: tuple[str, str, str]) -> None:
    assert parse_case_name(name) == expected
    assert parse_case_name is io_parse_case_name  # one implementation, re-exported by pipeline.discovery


def test_folder_of_cases_is_matched_by_name(tmp_path: Path) -> None:
    _touch(
        tmp_path,
        "A_water.nii.gz",
        "A_fat.nii.gz",
        "B_t2.nii.gz",
        "B_dseg.nii.gz",
        "B_levels.csv",
        "C.nii.gz",
        "notes.txt",
        ".hidden.nii.gz",
    )
    (tmp_path / "sub").mkdir()
    found = discover_cases([tmp_path])
    assert [c.case_id for c in found.cases] == ["A", "B", "C"]
    a, b, c = found.cases
    assert (a.water.name, a.fat.name, a.image, a.labels) == ("A_water.nii.gz", "A_fat.nii.gz", None, None)
    assert a.needs_segmentation and a.segmentation_input == "water"
    assert (b.image.name, b.image_name, b.labels.name, b.levels.name) == (
        "B_t2.nii.gz",
        "t2",
        "B_dseg.nii.gz",
        "B_levels.csv",
    )
    assert not b.needs_segmentation and b.segmentation_input == "image"
    assert c.image.name == "C.nii.gz" and c.labels is None and c.levels is None
    assert len(found.warnings) == 1 and "sub" in found.warnings[0]


def test_files_from_several_inputs_join_into_one_case(tmp_path: Path) -> None:
    water, fat = _touch(tmp_path / "w", "X_water.nii.gz")[0], _touch(tmp_path / "f", "X_fat.nii.gz")[0]
    mask = _touch(tmp_path / "m", "X_dseg.nii.gz")[0]
    (case,) = discover_cases([water, tmp_path / "f", mask]).cases
    assert (case.water, case.fat, case.labels) == (water, fat, mask)


def test_dicom_series_folder_is_one_image_case(tmp_path: Path) -> None:
    series = tmp_path / "P07"
    _touch(series, "IM0001", "IM0002")
    (case,) = discover_cases([series]).cases
    assert case.case_id == "P07" and case.image == series


def test_ambiguous_and_incomplete_names_fail_only_their_own_case(tmp_path: Path) -> None:
    _touch(
        tmp_path,
        "A_water.nii.gz",
        "A_water.nii",
        "A_fat.nii.gz",
        "B_water.nii.gz",
        "C_dseg.nii.gz",
        "D.nii.gz",
        "D_t2.nii.gz",
        "E.nii.gz",
    )
    found = discover_cases([tmp_path])
    assert [c.case_id for c in found.cases] == ["E"]
    reasons = dict(found.failed)
    assert sorted(reasons) == ["A", "B", "C", "D"]
    assert all("\n" not in r and r.startswith("cannot match the case's files by name: ") for r in reasons.values())
    assert "case A has 2 water files" in reasons["A"] and "A_water.nii" in reasons["A"]
    assert "case B has a water image but no fat image" in reasons["B"]
    assert "case C has a label map but no image" in reasons["C"]
    assert "case D has 2 image files" in reasons["D"] and "D_t2.nii.gz" in reasons["D"]


def test_bad_inputs_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        discover_cases([tmp_path / "missing.nii.gz"])
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="not an image file"):
        discover_cases([tmp_path / "notes.txt"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="folder holds no image files"):
        discover_cases([empty])
    with pytest.raises(InputError, match="no input"):
        discover_cases([])


def test_case_validates_its_files() -> None:
    with pytest.raises(InputError, match="needs both a water and a fat image"):
        Case("x", water=Path("x_water.nii.gz"))
    with pytest.raises(InputError, match="no image"):
        Case("x")
    assert Case("x", labels=Path("x_dseg.nii.gz")).needs_segmentation is False  # measure: areas and volumes only
    with pytest.raises(InputError, match="cannot name an output folder"):
        Case("../x", image=Path("a.nii.gz"))
    with pytest.raises(InputError, match=r"^case x: image name '=t2' starts with '=': spreadsheets would run"):
        Case("x", image=Path("a.nii.gz"), image_name="=t2")


RESERVED_IDS = [
    "report.html",
    "cases.csv",
    "summary.csv",
    "measurements.csv",
    "measurements.parquet",
    "manifest.json",
    "distributions.png",
    "ledger.sqlite",
    "Report.HTML",  # shared storage may not tell case apart
    "LEDGER.part2of10.sqlite",
    "ledger.sqlite-journal",
]


@pytest.mark.parametrize("case_id", RESERVED_IDS)
def test_case_ids_naming_the_runs_own_files_are_refused(case_id: str) -> None:
    with pytest.raises(InputError) as caught:
        check_case_id(case_id, path="cases.csv")
    assert str(caught.value) == (
        f"cases.csv: case id '{case_id}' is the name of one of the run's own files in the output folder; "
        "rename the file or the row"
    )


@pytest.mark.parametrize(
    ("case_id", "problem"),
    [
        (".hidden", "starts with '.': its output folder would be hidden like the run's staging folders"),
        ("=HYPERLINK(1)", "starts with '=': spreadsheets would run it as a formula"),
        ("+P1", "starts with '+': spreadsheets would run it as a formula"),
        ("-P1", "starts with '-': spreadsheets would run it as a formula"),
        ("@P1", "starts with '@': spreadsheets would run it as a formula"),
        ("\tP1", "holds a control character (U+0009): it would break table rows"),
        ("P1\r", "holds a control character (U+000D): it would break table rows"),
        ("P\n1", "holds a control character (U+000A): it would break table rows"),
        ("P1\u2028", "holds a control character (U+2028): it would break table rows"),
    ],
)
def test_hidden_and_formula_like_case_ids_are_refused(case_id: str, problem: str) -> None:
    with pytest.raises(InputError) as caught:
        check_case_id(case_id)
    assert caught.value.message == f"case id {case_id!r} {problem}; rename the file or the row"
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("case_id", ["P1", "report", "cases", "P-1", "a=b", "sub-01_ses+2", "ledger"])
def test_ordinary_case_ids_pass(case_id: str) -> None:
    check_case_id(case_id)


def test_case_ids_from_file_names_are_checked_naming_the_file(tmp_path: Path) -> None:
    _touch(tmp_path, "P1_water.nii.gz", "P1_fat.nii.gz", "=cmd_water.nii.gz", "=cmd_fat.nii.gz")
    with pytest.raises(InputError) as caught:
        discover_cases([tmp_path])
    assert str(caught.value) == (
        f"{tmp_path / '=cmd_fat.nii.gz'}: case id '=cmd' starts with '=': spreadsheets would run it as a formula; "
        "rename the file or the row"
    )


@pytest.mark.parametrize(
    ("name", "case_id"),
    [
        ("TUM01_water.nii.gz", "TUM01"),
        ("01_water_img", "01"),  # LPM_Segmentator's id for 01_water_img.nii.gz
        ("01_water_img.nii.gz", "01"),
        ("/data/case7.zip", "case7"),
        ("/data/scan_t2.dcm", "scan"),
        ("P10", "P10"),
        ("P1_sag_dseg.nii.gz", "P1"),
        ("fat", "fat"),
    ],
)
def test_case_id_from_name_uses_the_file_name_rules(name: str, case_id: str) -> None:
    assert case_id_from_name(name) == case_id


def test_shared_levels_csv_must_name_cases(tmp_path: Path) -> None:
    shared = tmp_path / "levels.csv"
    shared.write_text("case_id,level,slice\nA,L4/L5,3\nB,L4/L5,4\n")
    check_levels_csv(shared, n_cases=2)
    lpm = tmp_path / "lpm.csv"
    lpm.write_text("pid,slice_start,slice_stop\nA,1,5\n")
    check_levels_csv(lpm, n_cases=2)
    single = tmp_path / "single.csv"
    single.write_text("level,slice\nL4/L5,3\n")
    with pytest.raises(LevelsError, match="no case_id"):
        check_levels_csv(single, n_cases=2)
    with pytest.raises(LevelsError, match="not found"):
        check_levels_csv(tmp_path / "nope.csv", n_cases=2)
