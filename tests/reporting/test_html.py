"""HTML reports: tables mirror the measurement table exactly; pages are self-contained and offline."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from paraspinal.anatomy import load_scheme
from paraspinal.io import Image
from paraspinal.io.label_map import LabelMap
from paraspinal.levels import levels_from_mapping
from paraspinal.measurement import measure_case
from paraspinal.reporting.html import format_value, frame_table, level_table, render_run_report, structure_table
from paraspinal.reporting.qc_checks import case_checks, segmentation_check
from tests.phantoms import two_muscle_phantom


@dataclass
class HtmlCell:
    text: str
    attrs: dict[str, str]


@dataclass
class HtmlRow:
    attrs: dict[str, str]
    cells: list[HtmlCell] = field(default_factory=list)


class _TableParser(HTMLParser):
    """Collects every ``<table data-table=NAME>`` as rows of cells with their ``data-*`` attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[HtmlRow]] = {}
        self.images: list[dict[str, str]] = []
        self.links: list[str] = []
        self.scripts = 0
        self._table: str | None = None
        self._cell: HtmlCell | None = None

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if tag == "table" and "data-table" in a:
            self._table = a["data-table"]
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None and a:
            self.tables[self._table].append(HtmlRow({k[5:]: v for k, v in a.items() if k.startswith("data-")}))
        elif tag == "td" and self._table is not None and self.tables[self._table]:
            self._cell = HtmlCell("", {k[5:]: v for k, v in a.items() if k.startswith("data-")})
        elif tag == "img":
            self.images.append(a)
        elif tag == "a":
            self.links.append(a.get("href", ""))
        elif tag in ("script", "link", "iframe"):
            self.scripts += 1

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.text += data

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].cells.append(self._cell)
            self._cell = None
        elif tag == "table":
            self._table = None


def parse_page(path: Path) -> _TableParser:
    parser = _TableParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def assert_level_and_structure_tables_match(page: _TableParser, csv: pd.DataFrame) -> int:
    """Every number in the page's level and structure tables equals its row of the tidy CSV (and vice
    versa for level CSA, volume and fat fraction); returns how many numbers were compared."""
    csv = csv.assign(image=csv["image"].fillna("").astype(str))
    compared = 0
    for name, scope in (("levels", "level"), ("structures", "structure")):
        for row in page.tables.get(name, []):
            for cell in row.cells:
                if "value" not in cell.attrs:
                    continue
                hit = csv[
                    (csv["scope"] == scope)
                    & (csv["structure"] == row.attrs["structure"])
                    & (csv["side"] == row.attrs["side"])
                    & (csv["metric"] == cell.attrs["metric"])
                    & (csv["method"] == cell.attrs["method"])
                    & (csv["image"] == cell.attrs["image"])
                    & ((csv["level"] == row.attrs["level"]) if scope == "level" else True)
                ]
                assert len(hit) == 1, (row.attrs, cell.attrs)
                expected = float(hit["value"].iloc[0])
                shown = float(cell.attrs["value"])
                assert shown == pytest.approx(expected, rel=1e-12, nan_ok=True)
                assert cell.text == format_value(expected, cell.attrs["unit"])
                compared += 1
    level_rows = csv[(csv["scope"] == "level") & csv["metric"].isin(["csa", "volume", "fat_fraction"])]
    shown_level = sum(
        "value" in c.attrs
        for r in page.tables.get("levels", [])
        for c in r.cells
        if c.attrs.get("metric") in ("csa", "volume", "fat_fraction")
    )
    assert shown_level == len(level_rows), "every level CSA, volume and fat fraction row is in the page"
    return compared


def assert_frame_table_matches(rows: list[HtmlRow], frame: pd.DataFrame) -> None:
    """A page table rendered by ``frame_table`` equals ``frame`` cell by cell (numbers to full precision)."""
    assert len(rows) == len(frame)
    for row, (_, expected) in zip(rows, frame.iterrows(), strict=True):
        assert [c.attrs["column"] for c in row.cells] == list(frame.columns)
        for cell in row.cells:
            value = expected[cell.attrs["column"]]
            if "value" in cell.attrs:
                if cell.attrs["value"] == "nan":
                    assert pd.isna(value)
                else:
                    assert float(cell.attrs["value"]) == pytest.approx(float(value), rel=1e-12)
            else:
                assert cell.text == ("" if pd.isna(value) else str(value))


@pytest.fixture(scope="module")
def phantom_measurements():
    labels, water, fat, affine = two_muscle_phantom()
    lab = Image(labels, affine)
    t1 = Image(np.where(labels > 0, np.tile(np.linspace(100, 400, 10), (40, 30, 1)), 10.0), affine)
    levels = levels_from_mapping({"L4/L5": 3, "L3/L4": (5, 8)}, n_slices=10)
    return measure_case(
        LabelMap.given(lab, load_scheme("lpm4")),
        case_id="ph",
        water=Image(water, affine),
        fat=Image(fat, affine),
        image=t1,
        image_name="t1",
        levels=levels,
        infiltration_methods=("otsu", "gmm2"),
    )


def test_format_value_rounds_by_unit() -> None:
    assert format_value(2085.13394, "mm2") == "2085.1"
    assert format_value(24.922019, "mL") == "24.92"
    assert format_value(17.349, "%") == "17.3"
    assert format_value(0.51234, "ratio") == "0.512"
    assert format_value(48953.0, "voxels") == "48953"
    assert format_value(math.nan, "%") == "\u2013"


def test_level_and_structure_tables_carry_the_table_values(phantom_measurements) -> None:
    table = phantom_measurements.table
    levels = level_table(table)
    assert levels is not None
    keys = [c.key for c in levels.columns]
    assert "fat_infiltration:otsu:t1" in keys and "fat_fraction:signal_weighted:dixon" in keys
    assert [r.attrs["level"] for r in levels.rows][:1] == ["L3/L4"]
    right_es = next(
        r for r in levels.rows if r.attrs == {"level": "L4/L5", "structure": "erector_spinae", "side": "right"}
    )
    by_key = {f"{c.attrs['metric']}:{c.attrs['method']}:{c.attrs['image']}": c for c in right_es.cells if c.attrs}
    assert float(by_key["csa:disc_slice:"].attrs["value"]) == pytest.approx(80.0)  # 8 x 10 voxels of 1 mm2
    assert by_key["fat_fraction:signal_weighted:dixon"].text == "25.0"
    structures = structure_table(table)
    sides = [(r.attrs["structure"], r.attrs["side"]) for r in structures.rows]
    assert sides == [("erector_spinae", "right"), ("erector_spinae", "left"), ("erector_spinae", "both")]
    assert structures.rows[0].cells[-1].text == "fov_truncated"  # right ES spans every slice
    assert level_table(table[table["scope"] != "level"]) is None


def test_frame_table_keeps_full_precision_and_links() -> None:
    frame = pd.DataFrame({"case_id": ["a", "b"], "volume_mL": [1.23456789, np.nan], "status": ["ok", "failed"]})
    table = frame_table(frame, name="x", links={"case_id": lambda r: f"{r['case_id']}/r.html"}, badges=("status",))
    assert [c.title for c in table.columns] == ["case id", "volume (mL)", "status"]
    first = table.rows[0].cells
    assert first[0].href == "a/r.html" and first[1].text == "1.23" and first[1].attrs["value"] == "1.23456789"
    assert table.rows[1].cells[1].attrs["value"] == "nan" and table.rows[1].cells[2].badge == "failed"


def test_checks_report_truncation_swap_and_laterality(phantom_measurements) -> None:
    checks = {c.name: c for c in case_checks(phantom_measurements, dixon=True)}
    assert checks["fov_truncated"].status == "warning" and "erector_spinae (right)" in checks["fov_truncated"].message
    assert checks["fat_water_swap"].status == "ok"
    assert checks["laterality"].status == "ok"
    assert {c.name: c.status for c in case_checks(phantom_measurements, dixon=False)}["fat_water_swap"] == (
        "not_applicable"
    )


def test_segmentation_check_flags_missing_labels_and_scattered_output() -> None:
    def record(label: int, kept: int, removed: int) -> dict[str, int]:
        return {"label": label, "voxels_kept": kept, "voxels_removed": removed}

    given = segmentation_check(segmented=False, expected=(1, 2), present=(1,), cleanup=())
    assert given.status == "not_applicable"
    fine = segmentation_check(segmented=True, expected=(1, 2), present=(1, 2), cleanup=[record(1, 800, 8)])
    assert fine.status == "ok"
    bad = segmentation_check(segmented=True, expected=(1, 2, 3), present=(1, 2), cleanup=[record(1, 9, 1400)])
    assert bad.status == "warning"
    assert "label(s) 3 missing" in bad.message and "label 1: 99% outside its largest part" in bad.message


def test_run_page_lists_cases_failures_and_summary(tmp_path: Path) -> None:
    cases = pd.DataFrame(
        {
            "case_id": ["a", "b"],
            "status": ["ok", "failed"],
            "error": ["", "b_water.nii.gz: cannot read NIfTI"],
            "report": ["a/a_report.html", ""],
        }
    )
    summary = pd.DataFrame({"case_id": ["a"], "structure": ["multifidus"], "side": ["left"], "volume_mL": [12.5]})
    page = render_run_report(
        tmp_path / "report.html",
        cases=cases,
        summary=summary,
        summary_csv="summary.csv",
        distribution_images=[],
        segmentation="none",
        info=[("Options", "x=<1>")],
    )
    html = page.read_text(encoding="utf-8")
    parsed = parse_page(page)
    assert parsed.scripts == 0
    assert "a/a_report.html" in parsed.links
    assert_frame_table_matches(parsed.tables["summary"], summary)
    assert_frame_table_matches(parsed.tables["cases"], cases.drop(columns="report"))
    assert "b_water.nii.gz: cannot read NIfTI" in html
    assert "x=&lt;1&gt;" in html  # escaped
    assert not re.search(r"(src|href)=\"(https?:)?//", html)
