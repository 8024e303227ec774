"""What the pages show of quality: QC badges per table row, reasons per structure and slice, cases worst first."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from paraspinal.anatomy import load_scheme
from paraspinal.io import Image
from paraspinal.io.label_map import LabelMap
from paraspinal.levels import levels_from_mapping
from paraspinal.measurement import measure_case
from paraspinal.pipeline.quality_stage import with_qc
from paraspinal.quality import Assessment, LateralityCheck, StructureQuality, combine
from paraspinal.reporting.html import ReportImage, level_table, render_case_report, structure_table
from paraspinal.reporting.quality_html import row_qc, slice_notes, structure_reasons, summarise, worst_first
from tests.phantoms import two_muscle_phantom
from tests.reporting.test_html import parse_page


def _quality():
    right = StructureQuality(
        "erector_spinae",
        "right",
        Assessment("review", 0.6, ("2 of 10 slices flagged (20 %)",)),
        {4: Assessment("fail", 0.2, ("missing on slice 4",)), 5: Assessment("ok", 1.0)},
    )
    left = StructureQuality("erector_spinae", "left", Assessment("ok", 1.0), {4: Assessment("ok", 1.0)})
    laterality = LateralityCheck("not checked", ("no liver in view",))
    return combine(structures=[right, left], levels=Assessment("ok", 0.9), laterality=laterality)


def _table():
    labels, water, fat, affine = two_muscle_phantom()
    label_map = LabelMap.given(Image(labels, affine), load_scheme("lpm4"))
    levels = levels_from_mapping({"L4/L5": 3}, n_slices=10)
    table = measure_case(label_map, case_id="ph", water=Image(water, affine), fat=Image(fat, affine), levels=levels)
    return with_qc(table.table, _quality(), slice_axis=2)


def test_tables_carry_a_qc_badge_and_the_structure_reasons() -> None:
    table = _table()
    quality = _quality()
    structures = structure_table(table, reasons=structure_reasons(quality))
    assert [c.key for c in structures.columns][2] == "qc" and structures.columns[-1].key == "qc_reasons"
    by_row = {(r.attrs["structure"], r.attrs["side"]): r.cells for r in structures.rows}
    right = by_row[("erector_spinae", "right")]
    assert (right[2].text, right[2].badge) == ("review", "review")
    assert right[-1].text == "2 of 10 slices flagged (20 %)"
    assert by_row[("erector_spinae", "left")][-1].text == ""
    levels = level_table(table)
    assert levels is not None and levels.columns[3].key == "qc"
    assert {(r.attrs["side"], r.cells[3].text) for r in levels.rows} == {
        ("right", "review"),
        ("left", "ok"),
        ("both", "review"),
    }
    # a table written before quality existed renders as before: no QC column
    assert "qc" not in [c.key for c in structure_table(table.drop(columns="qc")).columns]
    assert row_qc(table.drop(columns="qc"), ("structure",)) == {}


def test_summary_and_slice_notes() -> None:
    quality = _quality()
    summary = summarise(quality)
    assert (summary.status, summary.score) == ("review", 0.6)
    assert summary.reasons == ("erector_spinae (right): 2 of 10 slices flagged (20 %)",)
    assert summary.parts[-1] == ("levels", "ok", 0.9)
    assert summary.laterality == "not checked: no liver in view"
    assert slice_notes(quality) == {4: ("fail", ("erector_spinae (right): missing on slice 4",))}


def test_case_page_puts_reasons_under_the_flagged_slice(tmp_path: Path) -> None:
    pixel = "data:image/png;base64,iVBORw0KGgo="
    images = [
        ReportImage(
            "axial", "slice 4", "", pixel, slice_index=4, quality="fail", notes=("erector_spinae (right): gap",)
        ),
        ReportImage("axial", "slice 5", "", pixel, slice_index=5),
    ]
    path = render_case_report(
        tmp_path / "ph_report.html",
        case_id="ph",
        table=_table(),
        checks=[],
        warnings=[],
        images=images,
        segmentation="label map given",
        levels_source="csv",
        info=[],
        inputs=pd.DataFrame(columns=["role", "file"]),
        outputs=[],
        quality=_quality(),
    )
    html = path.read_text(encoding="utf-8")
    assert 'data-section="quality" data-status="review" data-score="0.6"' in html
    assert html.count('class="qc-reasons"') == 1
    assert '<ul class="qc-reasons" data-slice="4"><li>erector_spinae (right): gap</li></ul>' in html
    page = parse_page(path)
    qc = [c.text for r in page.tables["structures"] for c in r.cells if c.attrs.get("column") == "qc"]
    assert qc == ["review", "ok", "review"]  # erector spinae right, left, both


def test_cases_worst_first() -> None:
    cases = pd.DataFrame(
        {
            "case_id": ["a", "b", "c", "d", "e", "f"],
            "status": ["ok", "ok", "failed", "pending", "ok", "ok"],
            "quality": ["ok", "review", "", "", "fail", "review"],
            "quality_score": [1.0, 0.6, np.nan, np.nan, 0.1, 0.4],
        }
    )
    assert list(worst_first(cases)["case_id"]) == ["c", "e", "f", "b", "a", "d"]
    assert list(worst_first(cases.drop(columns=["quality"]))["case_id"]) == list("abcdef")
