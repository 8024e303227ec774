"""``paraspinal evaluate --pred RUN``: pairing with a run folder, evaluation.html, the section in the run report."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

import paraspinal.cli.evaluate_cmd  # noqa: F401  (registers the command until main imports it)
from paraspinal.cli.main import main
from paraspinal.evaluation.pairing import is_run_folder, pair_cases
from paraspinal.reporting.evaluation_html import SLOT_END, SLOT_START, replace_slot
from tests.batch_support import write_cohort

LABEL = "right erector spinae"  # lpm4 label 1 of the phantom: i 24..31, j 5..14, all 10 slices


def _strip_slot(html: str) -> str:
    return re.sub(re.escape(SLOT_START) + r".*?" + re.escape(SLOT_END), "SLOT", html, flags=re.S)


def _cell_value(html: str, table: str, row_attr: str, cell_attr: str) -> float:
    body = re.search(rf'data-table="{table}">(.*?)</table>', html, flags=re.S)
    assert body, f"no table {table}"
    row = re.search(rf"<tr {row_attr}>(.*?)</tr>", body.group(1), flags=re.S)
    assert row, f"no row {row_attr} in {table}"
    cell = re.search(rf'<td class="num" {cell_attr}[^>]*data-value="([^"]+)"', row.group(1))
    assert cell, f"no cell {cell_attr}"
    return float(cell.group(1))


@pytest.fixture
def run_and_refs(tmp_path: Path) -> tuple[Path, Path, float]:
    """A two-case `paraspinal run` with given masks, and references where case C001 lost two slices of label 1."""
    ids = write_cohort(tmp_path / "in", 2)
    run = tmp_path / "run"
    assert main(["run", str(tmp_path / "in"), "-o", str(run), "--no-qc", "-q"]) == 0
    refs = tmp_path / "refs"
    refs.mkdir()
    for case_id in ids:
        shutil.copy(tmp_path / "in" / f"{case_id}_dseg.nii.gz", refs / f"{case_id}_ref.nii.gz")
    path = refs / "C001_ref.nii.gz"
    img = nib.load(str(path))
    labels = np.asarray(img.dataobj).copy()
    n_pred = int((labels == 1).sum())
    labels[:, :, :2][labels[:, :, :2] == 1] = 0  # erase slices 0 and 1 of label 1
    n_ref = int((labels == 1).sum())
    assert (n_pred, n_ref) == (800, 640)
    nib.save(nib.Nifti1Image(labels, img.affine, img.header), str(path))
    return run, refs, 2 * n_ref / (n_pred + n_ref)  # prediction contains the reference: Dice = 2|R| / (|P| + |R|)


def test_run_folder_is_paired_by_case_folder(run_and_refs: tuple[Path, Path, float]) -> None:
    run, refs, _ = run_and_refs
    assert is_run_folder(run) and not is_run_folder(refs)
    pairing = pair_cases(run, refs)
    assert [(c.case_id, c.pred.relative_to(run).as_posix()) for c in pairing.pairs] == [
        ("C000", "C000/C000_dseg.nii.gz"),
        ("C001", "C001/C001_dseg.nii.gz"),
    ]
    assert pairing.pred_only == () and pairing.ref_only == ()


def test_evaluate_run_adds_section_once_and_leaves_the_rest(run_and_refs: tuple[Path, Path, float]) -> None:
    run, refs, dice_c001 = run_and_refs
    report = run / "report.html"
    before = report.read_text(encoding="utf-8")
    assert before.count(SLOT_START) == 1 and 'id="evaluation"' not in before
    out = run.parent / "eval"
    args = ["evaluate", "-p", str(run), "-r", str(refs), "-o", str(out), "-q"]
    assert main(args) == 0
    first = report.read_text(encoding="utf-8")
    assert main(args) == 0  # a second run replaces the section, never duplicates it
    after = report.read_text(encoding="utf-8")
    assert after == first
    for html in (after, (out / "evaluation.html").read_text(encoding="utf-8")):
        assert html.count('<section id="evaluation"') == 1
        assert html.count("Evaluation against reference masks") >= 1
        assert "http://" not in html.replace("http://www.w3.org", "") and "<script" not in html
    assert after.count(SLOT_START) == 1 and after.count(SLOT_END) == 1
    assert _strip_slot(after) == _strip_slot(before)  # nothing outside the slot changed

    overlap = pd.read_csv(out / "overlap.csv")
    dice = overlap[(overlap["name"] == LABEL) & (overlap["level"] == "all") & (overlap["metric"] == "dice")]
    per_case = dict(zip(dice["case_id"], dice["value"], strict=True))
    assert per_case == {"C000": 1.0, "C001": pytest.approx(dice_c001)}
    assert dice_c001 == pytest.approx(8 / 9)
    mean = dice["value"].mean()
    assert mean == pytest.approx((1 + 8 / 9) / 2)
    shown = _cell_value(after, "evaluation-labels", f'data-label="{LABEL}"', 'data-metric="dice"')
    assert shown == mean
    shown_case = _cell_value(
        after, "evaluation-cases", 'data-case_id="C001"', f'data-metric="dice" data-label="{LABEL}"'
    )
    assert shown_case == per_case["C001"]
    section = after[after.index(SLOT_START) : after.index(SLOT_END)]
    assert f">{mean:.3f}<" in section
    assert 'data-metric="global_dice"' in section and 'data-table="evaluation-agreement"' in section
    assert "ICC(2,1)" in section and "LoA low" in section
    assert "data:image/png;base64," in section  # plots embedded
    assert 'href="../eval/overlap.csv"' in section and 'href="../eval/summary.json"' in section


def test_evaluation_page_without_run_report_and_slot_edge_cases(run_and_refs: tuple[Path, Path, float]) -> None:
    run, refs, _ = run_and_refs
    (run / "report.html").unlink()
    out = run.parent / "eval"
    assert main(["evaluate", "-p", str(run), "-r", str(refs), "-o", str(out), "--no-plots", "-q"]) == 0
    page = (out / "evaluation.html").read_text(encoding="utf-8")
    assert page.count('<section id="evaluation"') == 1 and 'href="overlap.csv"' in page
    assert not (run / "report.html").exists()
    legacy = "<html><main><h2>x</h2></main></html>"
    filled = replace_slot(legacy, "<section>S</section>")
    assert filled == f"<html><main><h2>x</h2>{SLOT_START}\n<section>S</section>\n{SLOT_END}\n</main></html>"
    assert replace_slot(filled, "<section>T</section>") == filled.replace(">S<", ">T<")
    assert replace_slot("<html>no main</html>", "S") is None
