"""`run_batch` / `run_case` / `paraspinal run`: segment (test double) or re-measure, write every artefact atomically."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

import paraspinal.cli.run_cmd  # noqa: F401  (registers `paraspinal run`)
from paraspinal.anatomy import LabelScheme, load_scheme
from paraspinal.backends import SegmentationBackend, segmentation
from paraspinal.backends.catalog import BackendFactory, Models
from paraspinal.batch import run_batch
from paraspinal.cli.main import main
from paraspinal.errors import InputError
from paraspinal.io import Image
from paraspinal.io.label_map import LabelMap
from paraspinal.pipeline.case import Case
from paraspinal.pipeline.case_run import run_case
from paraspinal.pipeline.discovery import discover_cases
from paraspinal.pipeline.options import RunOptions
from tests.phantoms import save_nifti, two_muscle_phantom
from tests.reporting.test_html import assert_frame_table_matches, assert_level_and_structure_tables_match, parse_page


class FixedMaskBackend:
    """Test double for orchestration: 'segments' by returning a known mask on the input grid, plus a
    stray 8-voxel blob of label 1 that the largest-component step must remove."""

    name = "fixed-mask-double"

    def __init__(self, mask: np.ndarray, *, stray: bool = True) -> None:
        self.mask = mask
        self.stray = stray
        self.calls: list[str] = []

    @property
    def scheme(self) -> LabelScheme:
        return load_scheme("lpm4")

    @property
    def provenance(self) -> dict[str, object]:
        return {"name": self.name, "version": "0.0-test", "weights_sha256": "ab" * 32}

    def segment(self, image: Image) -> LabelMap:
        self.calls.append(image.source)
        array = self.mask.astype(np.uint8)
        if self.stray:
            array[0:2, 0:2, 0:2] = 1
        return segmentation(
            image, array, scheme=self.scheme, model=self.provenance, info={"test_double": True}, source=image.source
        )


class NeverBackend(FixedMaskBackend):
    def segment(self, image: Image) -> LabelMap:
        raise AssertionError("a case with a label map must not be segmented")


def _never_create() -> SegmentationBackend:
    raise AssertionError("no backend may be created when every case has a label map")


NO_MODELS = Models(muscle=_never_create, spine=_never_create)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def phantom(tmp_path: Path) -> dict[str, Path | np.ndarray]:
    labels, water, fat, affine = two_muscle_phantom()
    folder = tmp_path / "in"
    folder.mkdir()
    t2 = np.where(labels > 0, np.tile(np.linspace(100, 400, 10), (40, 30, 1)), 10.0).astype(np.float32)
    return {
        "labels_array": labels,
        "water": save_nifti(folder / "ph_water.nii.gz", water.astype(np.float32), affine),
        "fat": save_nifti(folder / "ph_fat.nii.gz", fat.astype(np.float32), affine),
        "t2": save_nifti(folder / "ph_t2.nii.gz", t2, affine),
        "dseg": save_nifti(folder / "ph_dseg.nii.gz", labels, affine),
        "folder": folder,
    }


def _worst_flagged(quality_json: Path) -> list[int]:
    slices = json.loads(quality_json.read_text(encoding="utf-8"))["slices"]
    ranked = sorted(((v["score"], int(k)) for k, v in slices.items() if v["status"] != "ok"))
    return [k for _, k in ranked[:3]]


def test_segmented_case_is_cleaned_measured_and_written_in_full(phantom, tmp_path: Path) -> None:
    backend = FixedMaskBackend(phantom["labels_array"])
    out = tmp_path / "out"
    case = Case("ph", water=phantom["water"], fat=phantom["fat"])
    result = run_batch([case], options=RunOptions(), out_dir=out, models=Models(muscle=backend, spine=_never_create))
    (res,) = result.cases
    assert res.ok, res.error
    assert backend.calls == [str(phantom["water"])]  # the water image of a Dixon pair is segmented
    folder = out / "ph"
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert names == sorted(
        [
            "ph_case.json",
            "ph_dseg.nii.gz",
            "ph_manifest.json",
            "ph_measurements.csv",
            "ph_measurements.parquet",
            "ph_quality.json",
            "ph_report.html",
            "ph_summary.csv",
            "qc/ph_fat_fraction.png",
            "qc/ph_locator.png",
            "qc/ph_montage.png",
            *[f"qc/ph_axial_slice{k:03d}.png" for k in {8, 6, 4, 3, 2, *_worst_flagged(folder / "ph_quality.json")}],
        ]
    )  # 5 evenly spaced slices, and the (at most 3) worst slices the quality assessment flagged
    dseg = nib.load(folder / "ph_dseg.nii.gz")
    np.testing.assert_array_equal(np.asarray(dseg.dataobj), phantom["labels_array"])  # stray blob removed
    np.testing.assert_allclose(dseg.affine, nib.load(phantom["water"]).affine)
    assert any("removed 8 voxels of label 1" in w for w in res.warnings)
    assert {c.name: c.status for c in res.checks} == {
        "segmentation": "warning",  # the double returns labels 1 and 4 only; lpm4 also has 2 and 3
        "fov_truncated": "warning",
        "fat_water_swap": "ok",
        "laterality": "ok",
    }
    assert "label(s) 2, 3 missing" in res.checks[0].message
    summary = pd.read_csv(folder / "ph_summary.csv").set_index(["structure", "side"])
    assert summary.loc[("erector_spinae", "right"), "volume_mL"] == pytest.approx(3.2)
    assert summary.loc[("erector_spinae", "right"), "ff_signal_weighted_%"] == pytest.approx(25.0)
    assert summary.loc[("erector_spinae", "left"), "ff_signal_weighted_%"] == pytest.approx(50.0)

    manifest = json.loads((folder / "ph_manifest.json").read_text(encoding="utf-8"))
    assert manifest["segmentation"]["source"] == "backend"
    assert manifest["segmentation"]["backend"]["weights_sha256"] == "ab" * 32
    assert manifest["inputs"]["water"]["sha256"] == _sha256(phantom["water"])
    assert manifest["inputs"]["fat"]["sha256"] == _sha256(phantom["fat"])
    assert {"read", "segment", "clean", "measure", "qc", "report"} <= set(manifest["timings_s"])
    assert manifest["cleanup"][0]["voxels_removed"] == 8
    assert "ph_manifest.json" in manifest["outputs"] and "qc/ph_montage.png" in manifest["outputs"]

    run = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert run["segmentation_backend"]["name"] == "fixed-mask-double"
    assert run["environment"]["paraspinal"] and run["options"]["largest_component"] is True
    assert run["cases"][0]["inputs"]["water"]["sha256"] == _sha256(phantom["water"])
    cohort = pd.read_csv(out / "summary.csv")
    pd.testing.assert_frame_equal(cohort, pd.read_csv(folder / "ph_summary.csv"))
    assert len(pd.read_parquet(out / "measurements.parquet")) == len(pd.read_csv(folder / "ph_measurements.csv"))
    assert not [p for p in out.iterdir() if p.name.startswith(".") and p.name != ".paraspinal"], "no staging left"


def test_image_plus_mask_is_remeasured_without_segmenting(phantom, tmp_path: Path) -> None:
    labels = phantom["labels_array"].copy()
    labels[0:2, 0:2, 0:2] = 1  # a stray blob in a corrected mask is measured as drawn, not cleaned
    mask = save_nifti(tmp_path / "edited_dseg.nii.gz", labels, nib.load(phantom["dseg"]).affine)
    case = Case("ph", image=phantom["t2"], image_name="t2", labels=mask)
    options = RunOptions(infiltration_methods=("otsu",))
    result = run_case(case, models=Models(muscle=NeverBackend(labels)), options=options, out_dir=tmp_path / "out")
    assert result.ok, result.error
    assert not result.segmented and "segment" not in result.timings_s
    assert result.checks[0].name == "segmentation" and result.checks[0].status == "not_applicable"
    folder = tmp_path / "out" / "ph"
    np.testing.assert_array_equal(np.asarray(nib.load(folder / "ph_dseg.nii.gz").dataobj), labels)
    manifest = json.loads((folder / "ph_manifest.json").read_text(encoding="utf-8"))
    assert manifest["segmentation"] == {"source": "given", "labels": str(mask)}
    assert manifest["inputs"]["labels"]["sha256"] == _sha256(mask)
    assert (folder / "qc" / "ph_fat_threshold.png").is_file()
    # the same numbers as `paraspinal measure` on the same files
    measured = ["measure", str(phantom["t2"]), "--labels", str(mask), "--image-name", "t2", "--case-id", "ph"]
    assert main([*measured, "--methods", "otsu", "-o", str(tmp_path / "m"), "-q"]) == 0
    reference = pd.read_parquet(tmp_path / "m" / "ph_measurements.parquet")
    ours = pd.read_parquet(folder / "ph_measurements.parquet")
    np.testing.assert_allclose(ours["value"].to_numpy(), reference["value"].to_numpy(), equal_nan=True)
    assert (ours["metric"] == reference["metric"]).all()
    assert (
        ours.loc[
            (ours["scope"] == "structure") & (ours["metric"] == "n_voxels") & (ours["side"] == "right"), "value"
        ].iloc[0]
        == 800 + 8
    )


def test_failed_case_leaves_nothing_and_keeps_an_earlier_result(phantom, tmp_path: Path) -> None:
    out = tmp_path / "out"
    case = Case("ph", water=phantom["water"], fat=phantom["fat"], labels=phantom["dseg"])
    options = RunOptions(qc=False)
    assert run_case(case, models=NO_MODELS, options=options, out_dir=out).ok
    before = sorted(p.name for p in (out / "ph").iterdir())
    data = phantom["fat"].read_bytes()
    phantom["fat"].write_bytes(data[: len(data) // 2])
    failed = run_case(case, models=NO_MODELS, options=options, out_dir=out)
    assert not failed.ok and "ph_fat.nii.gz: cannot read NIfTI" in failed.error and "\n" not in failed.error
    assert sorted(p.name for p in (out / "ph").iterdir()) == before
    assert not [p for p in out.iterdir() if p.name.startswith(".") and p.name != ".paraspinal"]
    missing = run_case(Case("new", image=tmp_path / "nope.nii.gz"), models=NO_MODELS, options=options, out_dir=out)
    assert not missing.ok and "file not found" in missing.error and not (out / "new").exists()


def test_backend_is_created_once_and_only_when_needed(phantom, tmp_path: Path) -> None:
    created: list[FixedMaskBackend] = []

    def factory() -> FixedMaskBackend:
        created.append(FixedMaskBackend(phantom["labels_array"]))
        return created[-1]

    cases = [
        Case("a", water=phantom["water"], fat=phantom["fat"]),
        Case("b", image=phantom["t2"], image_name="t2"),
        Case("c", image=phantom["t2"], labels=phantom["dseg"]),
    ]
    options = RunOptions(qc=False, report=False, infiltration_methods=())
    result = run_batch(cases, options=options, out_dir=tmp_path / "o", models=Models(muscle=factory))
    assert [c.status for c in result.cases] == ["ok"] * 3
    assert len(created) == 1 and len(created[0].calls) == 2
    run_batch(cases[2:], options=options, out_dir=tmp_path / "p", models=Models(muscle=_never_create))
    missing = BackendFactory(model=str(tmp_path / "no_model"))
    with pytest.raises(InputError, match="model folder not found"):
        run_batch(cases, options=options, out_dir=tmp_path / "q", models=Models(muscle=missing))
    assert not (tmp_path / "q").exists()


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def make_cohort(phantom, tmp_path: Path) -> Path:
    """A: Dixon + mask; B: T2 + mask; C: Dixon + mask with a truncated water image."""
    folder = tmp_path / "cohort"
    folder.mkdir()
    for case in ("A", "C"):
        shutil.copy(phantom["water"], folder / f"{case}_water.nii.gz")
        shutil.copy(phantom["fat"], folder / f"{case}_fat.nii.gz")
    for case in ("A", "B", "C"):
        shutil.copy(phantom["dseg"], folder / f"{case}_dseg.nii.gz")
    shutil.copy(phantom["t2"], folder / "B_t2.nii.gz")
    data = (folder / "C_water.nii.gz").read_bytes()
    (folder / "C_water.nii.gz").write_bytes(data[: len(data) // 3])
    return folder


def test_folder_with_a_corrupt_case_finishes_the_others_and_exits_3(phantom, tmp_path: Path, capsys) -> None:
    folder, out = make_cohort(phantom, tmp_path), tmp_path / "out"
    code, stdout, stderr = _cli(["run", str(folder), "-o", str(out), "--methods", "otsu"], capsys)
    assert code == 3
    errors = [line for line in stderr.splitlines() if line.startswith("paraspinal: error:")]
    assert len(errors) == 1 and "C: " in errors[0] and "C_water.nii.gz: cannot read NIfTI" in errors[0]
    assert (out / "A" / "A_report.html").is_file() and (out / "B" / "B_report.html").is_file()
    assert not (out / "C").exists()
    cases = pd.read_csv(out / "cases.csv", keep_default_na=False)
    assert list(cases["status"]) == ["ok", "ok", "failed"] and "cannot read NIfTI" in cases["error"][2]
    assert list(cases["segmented"]) == ["no", "no", ""]
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["n_failed"] == 1 and manifest["cases"][2]["error"] == cases["error"][2]
    page = parse_page(out / "report.html")
    assert_frame_table_matches(page.tables["summary"], pd.read_csv(out / "summary.csv"))
    assert "A/A_report.html" in page.links and "report:" in stdout
    assert (out / "distributions.png").is_file()


def test_exit_codes_usage_and_json_log(phantom, tmp_path: Path, capsys) -> None:
    folder = make_cohort(phantom, tmp_path)
    (folder / "C_water.nii.gz").unlink()
    (folder / "C_fat.nii.gz").unlink()
    (folder / "C_dseg.nii.gz").unlink()
    out = tmp_path / "ok"
    code, stdout, stderr = _cli(["run", str(folder), "-o", str(out), "--methods", "", "--no-qc", "-q"], capsys)
    assert (code, stdout) == (0, "")
    code, _, stderr = _cli(["run", str(folder), "-o", str(out), "--methods", "bogus"], capsys)
    assert code == 2 and "bogus" in stderr
    code, _, stderr = _cli(["run", str(folder), "-o", str(out), "--labels", str(phantom["dseg"])], capsys)
    assert code == 2 and "--labels needs exactly one case" in stderr
    code, _, stderr = _cli(["run", str(tmp_path / "missing"), "-o", str(out)], capsys)
    assert code == 1 and stderr.strip().splitlines() == [f"paraspinal: error: {tmp_path / 'missing'}: not found"]
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "Z_t2.nii.gz").write_bytes(b"not a nifti")
    (bad / "Z_dseg.nii.gz").write_bytes(b"not a nifti")
    code, _, stderr = _cli(["run", str(bad), "-o", str(tmp_path / "bad_out"), "--log-json"], capsys)
    assert code == 1  # every case failed
    events = [json.loads(line) for line in stderr.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "run_start" and kinds[-1] == "run_end" and "case_end" in kinds
    assert events[-1]["exit_code"] == 1 and events[-1]["n_failed"] == 1
    assert next(e for e in events if e["event"] == "case_end")["status"] == "failed"


def test_a_segmenting_run_records_its_model(phantom, tmp_path: Path) -> None:
    backend = FixedMaskBackend(phantom["labels_array"])
    (phantom["folder"] / "ph_dseg.nii.gz").unlink()
    (phantom["folder"] / "ph_t2.nii.gz").unlink()
    out = tmp_path / "out"
    cases = discover_cases([phantom["folder"]]).cases
    result = run_batch(cases, options=RunOptions(qc=False), out_dir=out, models=Models(muscle=backend))
    assert result.n_ok == 1 and len(backend.calls) == 1
    assert (
        json.loads((out / "manifest.json").read_text(encoding="utf-8"))["segmentation_backend"]["version"] == "0.0-test"
    )


def test_cli_on_tum01_writes_every_artefact_and_the_report_matches_the_table(tmp_path, capsys, monkeypatch) -> None:
    """`paraspinal demo --manual-labels` in-process: every artefact, and the report matches the table."""
    from paraspinal.io import read_label_map
    from paraspinal.sample import sample_case

    manual = read_label_map(sample_case().labels).array
    out = tmp_path / "demo"
    code, stdout, stderr = _cli(["demo", "-o", str(out), "--manual-labels"], capsys)
    assert code == 0, stderr
    folder = out / "TUM01"
    assert f"demo report: {folder / 'TUM01_report.html'}" in stdout
    qc = sorted(p.name for p in (folder / "qc").iterdir())
    quality = json.loads((folder / "TUM01_quality.json").read_text(encoding="utf-8"))
    flagged = sorted(quality["slices"].items(), key=lambda kv: kv[1]["score"])
    worst = [int(k) for k, v in flagged if v["status"] != "ok"][:3]  # the worst flagged slices get their own image
    fixed = ("axial_L2-L3", "axial_L3-L4", "axial_L4-L5", "fat_fraction", "locator", "montage")
    drawn = {f"TUM01_{n}.png" for n in fixed} | {f"TUM01_axial_slice{k:03d}.png" for k in worst}
    assert set(qc) <= drawn and {f"TUM01_{n}.png" for n in fixed} <= set(qc)
    for name in (
        "dseg.nii.gz",
        "measurements.csv",
        "measurements.parquet",
        "summary.csv",
        "levels.csv",
        "case.json",
        "manifest.json",
        "report.html",
    ):
        assert (folder / f"TUM01_{name}").is_file(), name
    for name in ("report.html", "manifest.json", "summary.csv", "cases.csv", "measurements.parquet"):
        assert (out / name).is_file(), name
    np.testing.assert_array_equal(np.asarray(nib.load(folder / "TUM01_dseg.nii.gz").dataobj), manual)
    page = parse_page(folder / "TUM01_report.html")
    csv = pd.read_csv(folder / "TUM01_measurements.csv")
    assert assert_level_and_structure_tables_match(page, csv) > 100
    assert len(page.images) == len(qc) and all(i["src"].startswith("data:image/png;base64,") for i in page.images)
    assert page.scripts == 0
    run_page = parse_page(out / "report.html")
    assert_frame_table_matches(run_page.tables["summary"], pd.read_csv(out / "summary.csv"))
    manifest = json.loads((folder / "TUM01_manifest.json").read_text(encoding="utf-8"))
    assert manifest["levels"].endswith("TUM01_levels.csv") and manifest["options"]["assume_aligned"] is True
    assert manifest["segmentation"] == {"source": "given", "labels": str(sample_case().labels)}


def test_demo_without_the_model_is_a_one_line_error(tmp_path) -> None:
    from paraspinal.cli.demo_cmd import demo_models

    missing = BackendFactory(model=str(tmp_path / "tum01_muscle"))
    with pytest.raises(InputError) as info:
        demo_models(manual_labels=False, muscle=missing)
    message = str(info.value)
    assert "\n" not in message and "bundled segmentation model is not installed" in message
    assert "model folder not found" in message and "--manual-labels" in message
    assert demo_models(manual_labels=True, muscle=missing).source("muscle") is None


def test_demo_runs_the_bundled_model_for_real(tmp_path, capsys) -> None:
    """The real default backend, end to end: provenance (weights hash) reaches the manifest and the page."""
    from paraspinal.errors import ParaspinalError

    try:
        model = BackendFactory()().provenance
    except ParaspinalError as exc:
        pytest.skip(f"the bundled segmentation model is not installed here: {exc}")
    out = tmp_path / "demo"
    code, stdout, stderr = _cli(["demo", "-o", str(out)], capsys)
    assert code == 0, stderr
    manifest = json.loads((out / "TUM01" / "TUM01_manifest.json").read_text(encoding="utf-8"))
    assert manifest["segmentation"]["source"] == "backend"
    assert manifest["segmentation"]["backend"]["weights_sha256"] == model["weights_sha256"]
    assert "segment" in manifest["timings_s"]
    html = (out / "TUM01" / "TUM01_report.html").read_text(encoding="utf-8")
    assert str(model["weights_sha256"])[:12] in html
    assert f"demo report: {out / 'TUM01' / 'TUM01_report.html'}" in stdout
