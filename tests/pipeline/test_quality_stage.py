"""The quality stage and where its verdict is written: ``<case>_quality.json``, the ``qc`` column of every
measurement row, the case manifest, ``cases.csv``, the case and cohort reports, ``segment``'s sidecar."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import paraspinal.cli.measure_cmd  # noqa: F401  (registers `paraspinal measure`)
from paraspinal.anatomy import load_scheme
from paraspinal.backends.catalog import BackendFactory, Models
from paraspinal.batch import run_batch
from paraspinal.batch.cohort import rebuild_cohort
from paraspinal.cli.main import main
from paraspinal.io import Image
from paraspinal.io.label_map import LabelMap
from paraspinal.levels import levels_from_mapping
from paraspinal.measurement import measure_case
from paraspinal.pipeline.case import Case
from paraspinal.pipeline.options import RunOptions
from paraspinal.pipeline.outputs import write_segmentation
from paraspinal.pipeline.quality_stage import NO_IMAGE_REASON, quality_file_name, with_qc
from paraspinal.pipeline.stages import RUN_STAGES, CaseState, StageContext, run_stages
from paraspinal.quality import Assessment, StructureQuality, combine
from paraspinal.sample import sample_case
from tests.fake_backends import FAKE_MASK, write_model
from tests.phantoms import ras_affine, save_nifti
from tests.reliability.support import run_cli
from tests.reporting.test_html import parse_page

AFFINE = ras_affine((1.0, 1.0, 4.0), (-20.0, -15.0, 0.0))
RIGHT_ES = ("erector_spinae", "right")


def four_muscles(*, shrunk: tuple[int, ...] = (), missing: tuple[int, ...] = ()) -> np.ndarray:
    """lpm4 labels on 40 x 30 x 10 voxels: right ES (1) i 24..31, right MF (2) 20..23, left MF (3) 16..19, left
    ES (4) 8..15, j 5..14 on every slice; right ES cut to 3 x 5 voxels (19 % of 80) on ``shrunk`` slices and
    left out on ``missing`` ones."""
    labels = np.zeros((40, 30, 10), dtype=np.int16)
    for value, (lo, hi) in {1: (24, 32), 2: (20, 24), 3: (16, 20), 4: (8, 16)}.items():
        labels[lo:hi, 5:15, :] = value
    for k in (*shrunk, *missing):
        labels[24:32, 5:15, k] = 0
    for k in shrunk:
        labels[24:27, 5:10, k] = 1
    return labels


def _write_case(folder: Path, case_id: str, labels: np.ndarray) -> None:
    water = np.where(labels > 0, 300.0, 10.0).astype(np.float32)
    fat = np.where(labels > 0, 100.0, 10.0).astype(np.float32)
    save_nifti(folder / f"{case_id}_water.nii.gz", water, AFFINE)
    save_nifti(folder / f"{case_id}_fat.nii.gz", fat, AFFINE)
    save_nifti(folder / f"{case_id}_dseg.nii.gz", labels, AFFINE)


def test_qc_column_takes_structure_slice_and_level_status() -> None:
    labels = four_muscles()
    label_map = LabelMap.given(Image(labels, AFFINE), load_scheme("lpm4"))
    levels = levels_from_mapping({"L4/L5": 3, "L3/L4": (5, 8)}, n_slices=10)
    table = measure_case(label_map, case_id="q", levels=levels).table
    right = StructureQuality(
        *RIGHT_ES,
        Assessment("review", 0.6, ("2 of 10 slices flagged",)),
        {k: Assessment("fail", 0.2, ("gap",)) if k == 4 else Assessment("ok", 1.0) for k in range(10)},
    )
    left = StructureQuality(
        "erector_spinae", "left", Assessment("ok", 1.0), {k: Assessment("ok", 1.0) for k in range(10)}
    )
    quality = combine(structures=[right, left], levels=Assessment("review", 0.5, ("vote margin 0.1",)))
    marked = with_qc(table, quality, slice_axis=2)
    assert list(marked.columns) == [*table.columns, "qc"]
    pd.testing.assert_frame_equal(marked.drop(columns="qc"), table)

    def qc(structure: str, side: str, scope: str, index: int | None = None) -> set[str]:
        rows = marked[(marked["structure"] == structure) & (marked["side"] == side) & (marked["scope"] == scope)]
        if index is not None:
            rows = rows[rows["slice"] == index]
        return set(rows["qc"])

    assert qc(*RIGHT_ES, "structure") == {"review"}
    assert qc("erector_spinae", "left", "structure") == {"ok"}
    assert qc(*RIGHT_ES, "slice", 4) == {"fail"} and qc(*RIGHT_ES, "slice", 3) == {"ok"}  # its own slice
    assert qc("erector_spinae", "left", "slice", 4) == {"ok"}
    assert qc("erector_spinae", "left", "level") == {"review"}  # the levels' review
    assert qc("erector_spinae", "both", "structure") == {"review"} and qc("erector_spinae", "both", "slice", 4) == {
        "fail"
    }
    assert qc("multifidus", "left", "structure") == {"ok"}  # not assessed here: nothing against it
    # slices along another axis than the grid's third are not the quality's slices: the structure's status
    assert set(
        with_qc(table, quality, slice_axis=0).query(
            "scope == 'slice' and side == 'right' and structure == 'erector_spinae'"
        )["qc"]
    ) == {"review"}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    """A (clean), B (right ES shrunk to a fifth on slices 4 and 5) and C (right ES missing on 3..6), given
    label maps, run in full."""
    folder = tmp_path_factory.mktemp("cohort")
    _write_case(folder, "A", four_muscles())
    _write_case(folder, "B", four_muscles(shrunk=(4, 5)))
    _write_case(folder, "C", four_muscles(missing=(3, 4, 5, 6)))
    out = folder / "out"
    cases = [
        Case(c, water=folder / f"{c}_water.nii.gz", fat=folder / f"{c}_fat.nii.gz", labels=folder / f"{c}_dseg.nii.gz")
        for c in "ABC"
    ]
    result = run_batch(cases, options=RunOptions(qc_slices=1), out_dir=out, models=Models(muscle=None, spine=None))
    assert [c.status for c in result.cases] == ["ok", "ok", "ok"]
    return out


def test_case_quality_json_manifest_and_tables(cohort: Path) -> None:
    folder = cohort / "B"
    document = json.loads((folder / "B_quality.json").read_text(encoding="utf-8"))
    assert document["status"] == "fail" and 0.0 < document["score"] < 1.0
    assert document["reasons"][0] == "erector_spinae (right): 2 of 10 slices flagged (4, 5)"
    right = next(s for s in document["structures"] if (s["structure"], s["side"]) == RIGHT_ES)
    assert sorted(right["slices"]) == ["4", "5"]  # only flagged slices are listed per structure
    assert "slice 4: area 15 mm² vs 80 mm² on neighbouring slices" in right["slices"]["4"]["reasons"]
    assert sorted(document["slices"], key=int) == [str(k) for k in range(10)]
    assert document["slices"]["5"]["status"] == "fail"
    assert (
        "erector_spinae (right): slice 5: area 15 mm² vs 80 mm² on the other side" in document["slices"]["5"]["reasons"]
    )
    assert {document["slices"][str(k)]["status"] for k in (0, 1, 2, 3, 6, 7, 8, 9)} == {"ok"}
    assert document["levels"] is None and document["laterality"]["result"] in ("agrees", "contradicted", "not checked")
    manifest = json.loads((folder / "B_manifest.json").read_text(encoding="utf-8"))
    assert "B_quality.json" in manifest["outputs"]
    assert manifest["quality"]["status"] == "fail" and manifest["quality"]["thumbnail"] == "qc/B_axial_slice004.png"
    assert (folder / "qc" / "B_axial_slice005.png").is_file()  # a flagged slice gets its own QC image
    table = pd.read_parquet(folder / "B_measurements.parquet")
    slice_qc = table[
        (table["scope"] == "slice") & (table["structure"] == "erector_spinae") & (table["side"] == "right")
    ]
    assert set(slice_qc[slice_qc["slice"].isin([4, 5])]["qc"]) == {"fail"}
    assert set(slice_qc[~slice_qc["slice"].isin([4, 5])]["qc"]) == {"ok"}
    assert set(table[table["structure"] == "multifidus"]["qc"]) == {"ok"}
    assert pd.read_csv(folder / "B_measurements.csv")["qc"].tolist() == table["qc"].tolist()
    summary = pd.read_csv(folder / "B_summary.csv").set_index(["structure", "side"])["qc"]
    assert summary[RIGHT_ES] == "fail" and summary[("erector_spinae", "both")] == "fail"
    assert summary[("multifidus", "left")] == "ok"
    # a fail is written in full, never dropped
    c = json.loads((cohort / "C" / "C_quality.json").read_text(encoding="utf-8"))
    assert c["status"] == "fail" and c["score"] < document["score"]  # four slices lost is worse than two shrunk
    assert (
        "erector_spinae (right): slice 3: no voxels on this slice, inside the labelled extent"
        in c["slices"]["3"]["reasons"]
    )
    assert (cohort / "C" / "C_dseg.nii.gz").is_file() and (cohort / "C" / "C_measurements.parquet").is_file()


def test_case_report_shows_quality_by_rows_and_flagged_slices(cohort: Path) -> None:
    path = cohort / "B" / "B_report.html"
    html = path.read_text(encoding="utf-8")
    assert re.search(r'data-section="quality" data-status="fail" data-score="0.5', html)
    assert html.index('id="quality"') < html.index('id="checks"')  # at the top
    page = parse_page(path)
    rows = {(r.attrs["structure"], r.attrs["side"]): r for r in page.tables["structures"]}
    cells = {c.attrs.get("column"): c.text for c in rows[RIGHT_ES].cells}
    assert cells["qc"] == "fail" and cells["qc_reasons"] == "2 of 10 slices flagged (4, 5)"
    assert {c.attrs.get("column"): c.text for c in rows[("multifidus", "left")].cells}["qc"] == "ok"
    flagged = dict(re.findall(r'<ul class="qc-reasons" data-slice="(\d+)"><li>([^<]*)</li>', html))
    assert flagged == {
        "4": "erector_spinae (right): slice 4: area 15 mm² vs 80 mm² on the other side",
        "5": "erector_spinae (right): slice 5: area 15 mm² vs 80 mm² on the other side",
    }


def test_cohort_lists_cases_worst_first_with_thumbnails_and_collect_keeps_them(cohort: Path) -> None:
    cases = pd.read_csv(cohort / "cases.csv", keep_default_na=False)
    assert list(cases["case_id"]) == ["A", "B", "C"]
    assert list(cases["quality"]) == ["ok", "fail", "fail"]
    scores = list(cases["quality_score"])
    assert scores[0] > 0.99 and scores[0] > scores[1] > scores[2]
    assert cases["quality_reasons"][2].startswith("erector_spinae (right): 4 of 10 slices flagged (3, 4, 5, 6)")
    assert cases["thumbnail"][1] == "B/qc/B_axial_slice004.png"
    assert set(pd.read_csv(cohort / "summary.csv")["qc"]) == {"ok", "fail"}
    assert "qc" in pd.read_parquet(cohort / "measurements.parquet").columns
    page = parse_page(cohort / "report.html")
    shown = [r.cells[0].text for r in page.tables["cases"]]
    assert shown == ["C", "B", "A"]
    thumbs = [i["src"] for i in page.images if i.get("class") == "thumb"]
    assert thumbs == [cases["thumbnail"][2], "B/qc/B_axial_slice004.png", cases["thumbnail"][0]]
    assert all((cohort / t).is_file() for t in thumbs)
    before = cases
    (cohort / "cases.csv").unlink()
    rebuild_cohort(
        cohort, options=None, command=None, started_at="2026-01-01T00:00:00+00:00", start_s=time.perf_counter()
    )
    after = pd.read_csv(cohort / "cases.csv", keep_default_na=False)
    columns = ["case_id", "quality", "quality_score", "quality_reasons", "thumbnail"]
    pd.testing.assert_frame_equal(after[columns], before[columns])


def test_segment_writes_quality_beside_its_label_map(tmp_path: Path) -> None:
    labels = four_muscles(shrunk=(4, 5))
    image = save_nifti(tmp_path / "s_water.nii.gz", np.where(labels > 0, 300.0, 10.0).astype(np.float32), AFFINE)
    model = write_model(tmp_path / "model", labels, "lpm4")
    factory = BackendFactory(name="fake_mask", model=str(model), spec=FAKE_MASK)
    stages = ("read", "segment", "clean", "quality")
    state = run_stages(
        CaseState(Case("s", image=image), RunOptions()), stages, StageContext(models=Models(muscle=factory))
    )
    assert "quality" in state.timings_s and state.measurements is None
    labels_path = tmp_path / "out" / "s_dseg.nii.gz"
    write_segmentation(
        state, labels_path=labels_path, sidecar_path=labels_path.with_name("s_dseg.json"), seg_patient="keep"
    )
    assert quality_file_name(labels_path.name) == "s_quality.json" and quality_file_name("x.nii") == "x_quality.json"
    document = json.loads((tmp_path / "out" / "s_quality.json").read_text(encoding="utf-8"))
    right = next(s for s in document["structures"] if (s["structure"], s["side"]) == RIGHT_ES)
    assert document["status"] == "fail" and sorted(right["slices"]) == ["4", "5"]


def test_quality_stage_sits_between_check_and_write() -> None:
    assert RUN_STAGES.index("check") + 1 == RUN_STAGES.index("quality") == RUN_STAGES.index("write") - 1


def test_measure_of_a_label_map_alone_has_a_qc_column_and_says_it_was_not_assessed(tmp_path: Path) -> None:
    dseg = save_nifti(tmp_path / "m_dseg.nii.gz", four_muscles(missing=(3, 4, 5, 6)), AFFINE)
    assert main(["measure", "--labels", str(dseg), "--scheme", "lpm4", "-o", str(tmp_path / "out"), "-q"]) == 0
    (quality,) = (tmp_path / "out").glob("*_quality.json")
    document = json.loads(quality.read_text(encoding="utf-8"))
    assert (document["status"], document["reasons"], document["structures"]) == ("ok", [NO_IMAGE_REASON], [])
    (table,) = (tmp_path / "out").glob("*_measurements.csv")
    assert set(pd.read_csv(table)["qc"]) == {"ok"}


@pytest.mark.slow
def test_run_on_the_bundled_sample_as_a_process(tmp_path: Path) -> None:
    sample = sample_case()
    folder = tmp_path / "in"
    folder.mkdir()
    for path in (sample.water, sample.fat, sample.levels):
        shutil.copy(path, folder / Path(path).name)
    out = tmp_path / "out"
    done = run_cli(["run", folder, "-o", out, "--assume-aligned", "-q"], timeout_s=600)
    assert done.returncode == 0, done.stderr
    document = json.loads((out / "TUM01" / "TUM01_quality.json").read_text(encoding="utf-8"))
    assert document["status"] in ("ok", "review", "fail") and 0.0 <= document["score"] <= 1.0
    assert {(s["structure"], s["side"]) for s in document["structures"]} == {
        (m, side) for m in ("erector_spinae", "multifidus") for side in ("left", "right")
    }
    table = pd.read_csv(out / "TUM01" / "TUM01_measurements.csv")
    assert set(table["qc"]) <= {"ok", "review", "fail"} and table["qc"].notna().all()
    slice_rows = table[table["scope"] == "slice"]
    assert {str(int(k)) for k in slice_rows["slice"]} <= set(document["slices"])
    html = (out / "TUM01" / "TUM01_report.html").read_text(encoding="utf-8")
    assert f'data-section="quality" data-status="{document["status"]}"' in html
    cases = pd.read_csv(out / "cases.csv")
    assert cases["quality"].tolist() == [document["status"]] and cases["quality_score"].tolist() == [document["score"]]
