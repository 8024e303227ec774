"""A run's cohort files read back: case list, concatenated summary and measurement tables, the
distribution plot and the run report with every case, its status and the summary values."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pandas as pd
import pytest

from paraspinal.reporting import AtomicOutputs, summary_frame, write_measurements
from paraspinal.reporting.qc_cohort import distribution_columns, plot_distributions, write_cohort_outputs
from tests.reporting.support import VOLUME_ML, phantom_case
from tests.reporting.test_html import assert_frame_table_matches, parse_page

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_MAGIC
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Two phantom cases (``b`` with both signals doubled: same areas and fat fractions) and a failed one."""
    run = tmp_path_factory.mktemp("run")
    summaries, tables = [], []
    for case_id, scale in (("a", 1.0), ("b", 2.0)):
        case = phantom_case(case_id=case_id, scale=scale)
        with AtomicOutputs(run / case_id) as outputs:
            files = write_measurements(case.measurements, outputs, case_id=case_id, levels=case.levels)
        summaries.append(summary_frame(case.measurements.table))
        tables.append(files["parquet"])
    cases = pd.DataFrame(
        {
            "case_id": ["a", "b", "c"],
            "status": ["ok", "ok", "failed"],
            "error": ["", "", "c_water.nii.gz: not a NIfTI file"],
            "report": ["a/a_report.html", "b/b_report.html", ""],
        }
    )
    with AtomicOutputs(run) as outputs:
        written = write_cohort_outputs(
            outputs,
            cases=cases,
            summaries=summaries,
            tables=tables,
            report=True,
            segmentation="label maps given",
            info=[("Command", "paraspinal run in/ --out run/")],
        )
    return run, cases, summaries, written


def test_cohort_tables_concatenate_the_cases(cohort) -> None:
    run, cases, _summaries, written = cohort
    assert set(written) == {
        "cases",
        "summary",
        "measurements_csv",
        "measurements_parquet",
        "distributions",
        "report",
    }
    pd.testing.assert_frame_equal(pd.read_csv(written["cases"]).fillna(""), cases)
    summary = pd.read_csv(written["summary"])
    assert list(summary["case_id"]) == ["a"] * 6 + ["b"] * 6
    volumes = summary[summary["side"] != "both"].set_index(["case_id", "structure", "side"])["volume_mL"]
    for case_id in ("a", "b"):
        for (structure, side), volume in VOLUME_ML.items():
            assert volumes[(case_id, structure, side)] == pytest.approx(volume)
    measurements = pd.read_parquet(written["measurements_parquet"])
    assert len(measurements) == sum(len(pd.read_parquet(run / c / f"{c}_measurements.parquet")) for c in "ab")
    assert list(dict.fromkeys(measurements["case_id"])) == ["a", "b"]
    assert len(pd.read_csv(written["measurements_csv"])) == len(measurements)
    intensity = measurements[
        (measurements["metric"] == "intensity_mean") & (measurements["image"] == "water")
        & (measurements["scope"] == "structure") & (measurements["side"] == "right")
        & (measurements["structure"] == "erector_spinae")
    ].set_index("case_id")["value"]  # fmt: skip
    assert intensity.to_dict() == {"a": 300.0, "b": 600.0}


def test_distribution_plot_is_written(cohort) -> None:
    _run, _cases, _summaries, written = cohort
    width, height = _png_size(written["distributions"])
    assert width > 1000 and height > 500  # 3 panels per row: volume, FF, CSA L3/L4 / CSA L4/L5 below


def test_run_report_lists_cases_failures_summary_and_the_embedded_plot(cohort) -> None:
    _run, cases, summaries, written = cohort
    page = parse_page(written["report"])
    html = written["report"].read_text(encoding="utf-8")
    assert re.search(r"<h1>paraspinal run: 3 cases</h1>", html)
    assert '<span class="badge status-ok">2 ok</span>' in html
    assert '<span class="badge status-failed">1 failed</span>' in html
    assert '<li data-case="c"><strong>c</strong>: c_water.nii.gz: not a NIfTI file</li>' in html
    assert_frame_table_matches(page.tables["cases"], cases.drop(columns="report"))
    assert [link for link in page.links if link.endswith("_report.html")] == ["a/a_report.html", "b/b_report.html"]
    summary = pd.concat(summaries, ignore_index=True)
    assert_frame_table_matches(page.tables["summary"], summary)
    left_es = next(
        r for r in page.tables["summary"] if r.attrs == {"case_id": "b", "structure": "erector_spinae", "side": "left"}
    )
    shown = {c.attrs["column"]: c.text for c in left_es.cells}
    assert (shown["volume_mL"], shown["ff_signal_weighted_%"], shown["csa_L4/L5_mm2"]) == ("2.40", "50.0", "60.0")
    assert shown["flags"] == "fov_truncated"
    (image,) = page.images
    prefix = "data:image/png;base64,"
    assert image["src"].startswith(prefix)
    assert base64.b64decode(image["src"][len(prefix) :]) == written["distributions"].read_bytes()
    assert "<dt>Command</dt><dd>paraspinal run in/ --out run/</dd>" in html
    assert page.scripts == 0


def test_one_case_has_no_plot_and_no_report_when_not_asked(tmp_path: Path) -> None:
    case = phantom_case(case_id="a")
    summary = summary_frame(case.measurements.table)
    cases = pd.DataFrame({"case_id": ["a"], "status": ["ok"], "error": [""]})
    with AtomicOutputs(tmp_path / "one") as outputs:
        one = write_cohort_outputs(
            outputs, cases=cases, summaries=[summary], tables=[], report=True, segmentation="none", info=[]
        )
    assert set(one) == {"cases", "summary", "report"}  # no tables given: no concatenated measurements
    assert not (tmp_path / "one" / "distributions.png").exists()
    html = one["report"].read_text(encoding="utf-8")
    assert (
        "Distribution plots need at least two successful cases." in html and "<h1>paraspinal run: 1 case</h1>" in html
    )
    with AtomicOutputs(tmp_path / "quiet") as outputs:
        quiet = write_cohort_outputs(
            outputs, cases=cases, summaries=[summary, summary], tables=[], report=False, segmentation="", info=[]
        )
    assert set(quiet) == {"cases", "summary"}
    assert sorted(p.name for p in (tmp_path / "quiet").iterdir()) == ["cases.csv", "summary.csv"]


def test_distribution_columns_and_nothing_to_plot(tmp_path: Path) -> None:
    summary = summary_frame(phantom_case(case_id="a").measurements.table)
    assert distribution_columns(summary) == ["volume_mL", "ff_signal_weighted_%", "csa_L3/L4_mm2", "csa_L4/L5_mm2"]
    many = pd.DataFrame({f"csa_L{i}_mm2": [1.0] for i in range(20)} | {"volume_mL": [1.0]})
    assert distribution_columns(many)[:2] == ["volume_mL", "csa_L0_mm2"] and len(distribution_columns(many)) == 12
    only_both = summary[summary["side"] == "both"]
    assert plot_distributions(only_both, path=tmp_path / "d.png", title="x") is None  # both repeats right + left
    assert not (tmp_path / "d.png").exists()
    path = plot_distributions(summary, path=tmp_path / "d.png", title="x")
    assert path == tmp_path / "d.png" and _png_size(path)[0] > 1000
