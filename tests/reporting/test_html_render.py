"""Shared HTML rendering: the page module re-exports the shared types and tables; numbers keep their full value."""

from __future__ import annotations

import pandas as pd

from paraspinal.reporting import html, html_render, html_tables


def test_page_module_re_exports_the_shared_names() -> None:
    for name in ("Cell", "HtmlTable", "ReportImage", "Row", "format_value", "frame_table", "report_image"):
        assert getattr(html, name) is getattr(html_render, name)
    for name in ("level_table", "structure_table"):
        assert getattr(html, name) is getattr(html_tables, name)
    assert set(html.__all__) >= set(html_render.__all__) - {"Column"} | set(html_tables.__all__)


def test_frame_table_rounds_by_unit_and_keeps_the_full_value() -> None:
    table = html_render.frame_table(
        pd.DataFrame({"case_id": ["A"], "csa_L4_mm2": [123.456], "n": [3], "ff_L4_%": [float("nan")]}), name="t"
    )
    assert [c.title for c in table.columns] == ["case id", "CSA L4 (mm²)", "n", "FF L4 (%)"]
    cells = table.rows[0].cells
    assert (cells[1].text, cells[1].attrs["value"], cells[1].attrs["unit"]) == ("123.5", "123.456", "mm2")
    assert cells[2].text == "3"
    assert (cells[3].text, cells[3].attrs["value"]) == ("\u2013", "nan")
    assert table.rows[0].attrs == {"case_id": "A"}
