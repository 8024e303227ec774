"""Level tables from LPM CSVs, per-level CSVs, mappings and disc masks."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from paraspinal.anatomy import load_scheme
from paraspinal.errors import LevelsError
from paraspinal.io.image import Image
from paraspinal.io.label_map import LabelMap
from paraspinal.levels import (
    LevelsResult,
    levels_from_disc_mask,
    levels_from_mapping,
    normalise_level_name,
    read_levels_csv,
    resolve_levels,
)
from tests.phantoms import ras_affine

LPM_CSV = (
    ",pid,slice_start,slice_stop,img_shape_z,img_shape_xy,img_spacing_x,img_spacing_y,img_spacing_z\n"
    "0,01_water_img,0,28,63,400,1.0184999704361,1.0184999704361,4\n"
    "0,02_water_img,6,34,63,400,1.0184999704361,1.0184999704361,4\n"
)


def test_lpm_csv_picks_the_case_and_keeps_half_open_range(tmp_path: Path) -> None:
    path = tmp_path / "lpm.csv"
    path.write_text(LPM_CSV)
    table = read_levels_csv(path, n_slices=63, case_id="02_water_img")
    (level,) = table.levels
    assert (level.name, level.slice_start, level.slice_stop, level.disc_slice) == ("L2-L5", 6, 34, None)
    assert list(level.slices) == list(range(6, 34))
    # LPM's id "01_water_img" is the file name stem of case 01's water image: it names case 01
    assert read_levels_csv(path, n_slices=63, case_id="01").levels[0].slice_stop == 28
    # ids match whole: no prefix of the case id, nor the case id as a prefix, names it
    for other in ("01_water_img_img_L2-L5", "0", "01_water"):
        with pytest.raises(LevelsError, match=rf"lpm\.csv: no rows for case {other}$"):
            read_levels_csv(path, n_slices=63, case_id=other)


def test_levels_csv_ids_match_exactly_never_by_prefix(tmp_path: Path) -> None:
    path = tmp_path / "levels.csv"
    path.write_text("case_id,level,slice\nP10,L4/L5,3\nP1_water_img,L3/L4,5\n01,L4/L5,2\n")
    assert read_levels_csv(path, n_slices=29, case_id="P10").names == ("L4/L5",)
    assert read_levels_csv(path, n_slices=29, case_id="P1").names == ("L3/L4",)  # the stem of P1's water image
    assert read_levels_csv(path, n_slices=29, case_id="01").names == ("L4/L5",)  # "01" stays text, not 1
    for other in ("P", "P100", "1", "P1_water"):
        with pytest.raises(LevelsError, match=rf"levels\.csv: no rows for case {other}$"):
            read_levels_csv(path, n_slices=29, case_id=other)


def test_levels_csv_with_two_ids_naming_one_case_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "levels.csv"
    path.write_text("pid,slice_start,slice_stop\nP1,0,10\nP1_water_img,2,12\n")
    with pytest.raises(
        LevelsError, match=r"levels\.csv: case P1 matches the rows of several ids \(P1, P1_water_img, column pid\)$"
    ):
        read_levels_csv(path, n_slices=29, case_id="P1")


def test_lpm_csv_with_several_cases_needs_a_case_id(tmp_path: Path) -> None:
    path = tmp_path / "lpm.csv"
    path.write_text(LPM_CSV)
    with pytest.raises(
        LevelsError, match=r"lpm\.csv: levels CSV holds 2 cases \(01_water_img, 02_water_img\); name the case"
    ):
        read_levels_csv(path, n_slices=63)
    with pytest.raises(LevelsError, match=r"lpm\.csv: no rows for case TUM99$"):
        read_levels_csv(path, n_slices=63, case_id="TUM99")


def test_per_level_csv_with_disc_slices_and_ranges(tmp_path: Path) -> None:
    path = tmp_path / "levels.csv"
    path.write_text("level,slice\nL4-L5,2\nl3/l4,11\nL2L3,19\n")
    table = read_levels_csv(path, n_slices=29)
    assert table.names == ("L2/L3", "L3/L4", "L4/L5")  # cranial to caudal
    assert [lv.disc_slice for lv in table] == [19, 11, 2]
    ranged = tmp_path / "ranged.csv"
    ranged.write_text("level,slice_start,slice_stop,disc_slice\nL4/L5,1,4,2\n")
    (lv,) = read_levels_csv(ranged, n_slices=29).levels
    assert (lv.slice_start, lv.slice_stop, lv.disc_slice) == (1, 4, 2)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "level,slice\nL4/L5,29\n",
            r"level L4/L5: slices 29\.\.29 are outside the image's 29 axial slices \(0\.\.28\)",
        ),
        (
            "pid,slice_start,slice_stop\nTUM01,0,40\n",
            r"level L2-L5: slices 0\.\.39 are outside the image's 29 axial slices",
        ),
        ("level,slice_start,slice_stop\nL4/L5,5,5\n", r"level L4/L5: slice_start 5 must be below slice_stop 5"),
        ("level,slice\nL4/L5,-1\n", r"level L4/L5: slices -1\.\.-1 are outside"),
        ("level,slice\nL4/L5,2.5\n", r"column slice must hold whole slice numbers"),
        ("level,slice\nL4/L5,2\nL4-L5,3\n", r"level L4/L5 is listed twice"),
        ("a,b\n1,2\n", r"levels CSV needs columns level \+ slice"),
        ("level,slice_start,slice_stop,disc_slice\nL4/L5,1,4,30\n", r"level L4/L5: disc slice 30 is outside"),
    ],
)
def test_bad_level_csvs_name_file_and_problem(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad_levels.csv"
    path.write_text(content)
    with pytest.raises(LevelsError, match=r"bad_levels\.csv: " + message):
        read_levels_csv(path, n_slices=29)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("=1+1", "starts with '=': spreadsheets would run it as a formula"),
        ("+L4", "starts with '+': spreadsheets would run it as a formula"),
        ("-L4", "starts with '-': spreadsheets would run it as a formula"),
        ("@L4", "starts with '@': spreadsheets would run it as a formula"),
        ("L4\x07L5", "holds a control character (U+0007): it would break table rows"),
        ("L4\nL5", "holds a control character (U+000A): it would break table rows"),  # not read as L4/L5
        ("L4\tL5", "holds a control character (U+0009): it would break table rows"),
    ],
)
def test_formula_like_level_names_are_refused(tmp_path: Path, name: str, problem: str) -> None:
    path = tmp_path / "levels.csv"
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows([["level", "slice"], ["L3/L4", 5], [name, 2]])
    with pytest.raises(LevelsError) as caught:
        read_levels_csv(path, n_slices=29)
    assert str(caught.value) == f"{path}: level name {name!r} {problem}; rename the level"
    with pytest.raises(LevelsError, match=r"^level name .* rename the level$"):
        levels_from_mapping({name: 2}, n_slices=29)


def test_a_csv_without_rows_for_the_case_gives_no_levels_and_a_note(tmp_path: Path) -> None:
    path = tmp_path / "levels.csv"
    path.write_text("case_id,level,slice\nP10,L4/L5,3\n")
    labels = Image(np.ones((4, 4, 6), dtype=np.int16), ras_affine((1.0, 1.0, 4.0)))
    found = resolve_levels(LabelMap.given(labels, load_scheme("lpm4")), csv=path, case_id="P1")
    assert found == LevelsResult(
        None,
        f"none ({path} has no rows for this case; per slice over the whole stack)",
        (f"levels CSV {path} has no rows for case P1: measured per slice only",),
    )
    assert resolve_levels(LabelMap.given(labels, load_scheme("lpm4")), csv=path, case_id="P10").table.names == (
        "L4/L5",
    )


def test_level_names_are_normalised() -> None:
    assert normalise_level_name("l5-s1") == "L5/S1"
    assert normalise_level_name("T12 L1") == "T12/L1"
    assert normalise_level_name("L2-L5") == "L2-L5"  # a range, not a disc


def test_levels_from_disc_mask_find_nearest_slice_and_distance(tmp_path: Path) -> None:
    shape = (20, 20, 12)
    labels = np.zeros(shape, np.int16)
    labels[5:15, 5:15, 3:5] = 201  # centroid at slice 3.5 -> nearest 3 or 4, 0.5 slices away
    labels[5:15, 5:15, 8] = 202  # centroid exactly on slice 8
    path = tmp_path / "discs.toml"
    path.write_text(
        'key = "discs"\nname = "d"\ndescription = "d"\nreference = "r"\n'
        '[[labels]]\nvalue = 201\nname = "L4/L5"\nstructure = "disc_L4_L5"\nside = "none"\n'
        '[[labels]]\nvalue = 202\nname = "L3/L4"\nstructure = "disc_L3_L4"\nside = "none"\n'
    )
    table = levels_from_disc_mask(Image(labels, ras_affine((1.0, 1.0, 3.0))), scheme=load_scheme(path))
    assert table.names == ("L3/L4", "L4/L5")
    l34, l45 = table.levels
    assert (l34.disc_slice, l34.distance_mm, l34.slice_start, l34.slice_stop) == (8, 0.0, 8, 9)
    assert l45.disc_slice in (3, 4) and l45.distance_mm == pytest.approx(1.5)
    assert (l45.slice_start, l45.slice_stop) == (3, 5)


def test_mapping_levels_validate_range() -> None:
    with pytest.raises(LevelsError, match=r"level L4/L5: slices 8\.\.11 are outside the image's 10 axial slices"):
        levels_from_mapping({"L4/L5": (8, 12)}, n_slices=10)
