"""The HTML reports in a real browser: Debian's chromium driven by Playwright (never Playwright's own build).

Each page must load from disk with no console errors and no request leaving the machine, its tables
must equal the CSV files, and every image must decode (naturalWidth > 0). Full-page screenshots are
kept in ``test-artifacts/``. Outside CI the test skips when chromium or playwright is missing; with
CI=true it fails instead.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from paraspinal.backends.catalog import Models
from paraspinal.batch import run_batch
from paraspinal.io import read_label_map
from paraspinal.pipeline.case import Case
from paraspinal.pipeline.discovery import discover_cases
from paraspinal.pipeline.options import RunOptions
from paraspinal.reporting.quality_html import worst_first
from paraspinal.sample import sample_case
from tests.conftest import in_ci
from tests.phantoms import save_nifti, two_muscle_phantom
from tests.pipeline.test_case_run import FixedMaskBackend, make_cohort
from tests.reporting.test_html import (
    HtmlCell,
    HtmlRow,
    assert_frame_table_matches,
    assert_level_and_structure_tables_match,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
_TABLE_JS = """(name) => Array.from(document.querySelectorAll(`table[data-table="${name}"] tbody tr`)).map(tr => ({
    attrs: Object.assign({}, tr.dataset),
    cells: Array.from(tr.cells).map(td => ({text: td.innerText.trim(), attrs: Object.assign({}, td.dataset)}))
}))"""
_IMAGES_JS = """() => Array.from(document.images).map(i => ({
    src: i.getAttribute('src').slice(0, 40), complete: i.complete, width: i.naturalWidth, height: i.naturalHeight
}))"""


def _require_browser() -> None:
    problems = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problems.append("the playwright package is not installed (pip install -e '.[test]')")
    if not CHROMIUM.exists():
        problems.append(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    if problems:
        reason = "; ".join(problems)
        if in_ci():
            pytest.fail(f"the browser test must run in CI (CI=true) but cannot: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture(scope="module")
def tum01_run(tmp_path_factory) -> Path:
    sample = sample_case()
    backend = FixedMaskBackend(read_label_map(sample.labels).array, stray=False)
    case = Case("TUM01", water=sample.water, fat=sample.fat, levels=sample.levels)
    out = tmp_path_factory.mktemp("tum01") / "out"
    result = run_batch([case], options=RunOptions(assume_aligned=True), out_dir=out, models=Models(muscle=backend))
    assert result.n_failed == 0
    return out


def _open(browser, path: Path, screenshot: Path):
    """Load ``path``; return the page and every console error, page error, failed or non-local request."""
    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    page.on("request", lambda r: None if r.url.startswith(("file:", "data:")) else problems.append(f"network: {r.url}"))
    page.goto(path.as_uri(), wait_until="load")
    page.screenshot(path=str(screenshot), full_page=True)
    return page, problems


def _tables(page, *names: str) -> SimpleNamespace:
    tables = {}
    for name in names:
        rows = page.evaluate(_TABLE_JS, name)
        tables[name] = [HtmlRow(r["attrs"], [HtmlCell(c["text"], c["attrs"]) for c in r["cells"]]) for r in rows]
    return SimpleNamespace(tables=tables)


def _assert_images_loaded(page, *, expected: int) -> None:
    images = page.evaluate(_IMAGES_JS)
    assert len(images) == expected, images
    for image in images:
        assert image["complete"] and image["width"] > 0 and image["height"] > 0, image


def test_case_report_in_chromium(browser, tum01_run: Path, artifacts_dir: Path) -> None:
    folder = tum01_run / "TUM01"
    page, problems = _open(browser, folder / "TUM01_report.html", artifacts_dir / "report_case_TUM01.png")
    assert problems == []
    _assert_images_loaded(page, expected=len(list((folder / "qc").glob("*.png"))))  # flagged slices get images too
    compared = assert_level_and_structure_tables_match(
        _tables(page, "levels", "structures"), pd.read_csv(folder / "TUM01_measurements.csv")
    )
    assert compared > 100
    checks = page.eval_on_selector_all("[data-check]", "els => els.map(e => e.dataset.check)")
    assert checks == ["segmentation", "fov_truncated", "fat_water_swap", "laterality"]
    assert "patient's right (R) on the viewer's left" in page.inner_text("#images ~ p.note")
    page.close()


def test_run_report_in_chromium(browser, tum01_run: Path, tmp_path: Path, artifacts_dir: Path) -> None:
    page, problems = _open(browser, tum01_run / "report.html", artifacts_dir / "report_run_TUM01.png")
    assert problems == []
    assert_frame_table_matches(_tables(page, "summary").tables["summary"], pd.read_csv(tum01_run / "summary.csv"))
    page.click("text=TUM01")  # the case link opens the case page
    assert page.url.endswith("TUM01/TUM01_report.html")
    page.close()

    # a cohort with a failed case, and case pages that link their images instead of embedding them
    labels, water, fat, affine = two_muscle_phantom()
    src = tmp_path / "src"
    src.mkdir()
    phantom = {
        "water": save_nifti(src / "p_water.nii.gz", water.astype("float32"), affine),
        "fat": save_nifti(src / "p_fat.nii.gz", fat.astype("float32"), affine),
        "t2": save_nifti(src / "p_t2.nii.gz", (water + fat).astype("float32"), affine),
        "dseg": save_nifti(src / "p_dseg.nii.gz", labels, affine),
    }
    cases = discover_cases([make_cohort(phantom, tmp_path)]).cases
    out = tmp_path / "cohort_out"
    options = RunOptions(embed_images=False, infiltration_methods=("otsu",))
    result = run_batch(cases, out_dir=out, options=options, models=Models(muscle=None, spine=None))
    assert [c.status for c in result.cases] == ["ok", "ok", "failed"]
    page, problems = _open(browser, out / "report.html", artifacts_dir / "report_run_cohort.png")
    assert problems == []
    _assert_images_loaded(page, expected=3)  # the distribution plots and the two finished cases' thumbnails
    tables = _tables(page, "summary", "cases").tables
    assert_frame_table_matches(tables["summary"], pd.read_csv(out / "summary.csv"))
    cases_csv = pd.read_csv(out / "cases.csv", keep_default_na=False)
    assert [r.cells[0].text for r in tables["cases"]] == list(worst_first(cases_csv)["case_id"])  # failed first
    assert "C_water.nii.gz: cannot read NIfTI" in page.inner_text("[data-section=failures]")
    page.close()
    page, problems = _open(browser, out / "B" / "B_report.html", artifacts_dir / "report_case_linked_B.png")
    assert problems == []
    _assert_images_loaded(page, expected=len(list((out / "B" / "qc").glob("*.png"))))
    assert page.evaluate("() => document.images[0].getAttribute('src')").startswith("qc/")
    page.close()
    shutil.rmtree(out)
