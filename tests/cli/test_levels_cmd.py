"""``paraspinal levels`` and levels from a sagittal image inside ``paraspinal run``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from paraspinal.anatomy import LabelScheme, load_scheme
from paraspinal.backends import segmentation
from paraspinal.backends.catalog import Models
from paraspinal.batch import run_batch
from paraspinal.cli.main import main
from paraspinal.io.image import Image
from paraspinal.io.label_map import LabelMap
from paraspinal.pipeline.discovery import discover_cases, parse_case_name
from paraspinal.pipeline.options import RunOptions
from paraspinal.pipeline.sagittal import sagittal_levels, write_levels_outputs
from paraspinal.reporting import AtomicOutputs
from tests.levels.test_spine import _expected_slice
from tests.phantoms import save_nifti
from tests.spine_phantoms import NAMES, axial_stack, spine_phantom


@pytest.fixture(scope="module")
def phantom():
    return spine_phantom(tilt_deg=10.0)


def _not_constant(shape: tuple[int, ...]) -> np.ndarray:
    """An image of 100s with one brighter voxel: constant images are refused on reading (a blank export)."""
    image = np.full(shape, 100.0, np.float32)
    image.flat[0] = 200.0
    return image


def _write_inputs(folder: Path, phantom, *, case: str = "P1") -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    labels = phantom.encode({n: i + 1 for i, n in enumerate(NAMES)})
    sag = np.where(labels.array > 0, 400.0, 60.0).astype(np.float32)
    stack = axial_stack(tilt_deg=3.0, z0_mm=-95.0, n_slices=36, n_pixels=40)
    axial_labels = np.zeros(stack.shape, dtype=np.uint8)
    axial_labels[5:12, 20:30, :] = 1  # lpm4: right erector spinae / left erector spinae, all slices
    axial_labels[28:35, 20:30, :] = 4
    return {
        "sag": save_nifti(folder / f"{case}_sag.nii.gz", sag, phantom.affine),
        "sag_dseg": save_nifti(folder / f"{case}_sag_dseg.nii.gz", labels.array, phantom.affine),
        "t2": save_nifti(folder / f"{case}_t2.nii.gz", _not_constant(stack.shape), stack.affine),
        "dseg": save_nifti(folder / f"{case}_dseg.nii.gz", axial_labels, stack.affine),
    }


def test_levels_cli_writes_the_table_json_and_qc(tmp_path: Path, phantom, capsys) -> None:
    files = _write_inputs(tmp_path / "in", phantom)
    out = tmp_path / "out"
    code = main(
        ["levels", str(files["sag"]), "--labels", str(files["sag_dseg"]), "--axial", str(files["t2"]), "-o", str(out)]
    )
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["levels.csv", "levels.json", "levels_qc.png"]
    table = pd.read_csv(out / "levels.csv")
    assert list(table.columns) == [
        "level", "centre_x_mm", "centre_y_mm", "centre_z_mm", "normal_x", "normal_y", "normal_z", "confidence",
        "estimated", "disc_slice", "distance_mm", "signed_distance_mm", "angle_deg", "slice_start", "slice_stop",
    ]  # fmt: skip
    assert list(table["level"]) == ["L2/L3", "L3/L4", "L4/L5", "L5/S1"]
    np.testing.assert_allclose(table["angle_deg"], 7.0, atol=0.7)
    for row in table.itertuples():
        assert np.linalg.norm([row.centre_x_mm, row.centre_y_mm, row.centre_z_mm] - phantom.centres[row.level]) < 0.3
    assert list(table["estimated"]) == [False, False, False, True]
    document = json.loads((out / "levels.json").read_text(encoding="utf-8"))
    assert document["method"] == "vertebral bodies" and document["scheme"] == "lumbar_bodies"
    assert [b["name"] for b in document["bodies"]] == list(NAMES)
    assert any("assumed to share scanner coordinates" in note for note in document["notes"])
    assert (out / "levels_qc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_levels_cli_without_axial_lists_disc_planes(tmp_path: Path, phantom) -> None:
    files = _write_inputs(tmp_path / "in", phantom)
    out = tmp_path / "out"
    assert main(["levels", str(files["sag"]), "-l", str(files["sag_dseg"]), "-o", str(out), "-q"]) == 0
    table = pd.read_csv(out / "levels.csv")
    assert list(table["level"]) == ["L1/L2", "L2/L3", "L3/L4", "L4/L5", "L5/S1"]
    assert "disc_slice" not in table.columns


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--scheme", "total_mr"], "P1_sag_dseg.nii.gz: label map holds no vertebral body of at least 1000 mm³"),
        (["--axial", "FAR"], "none of the 5 disc centres found on the sagittal image lies within 10 mm"),
        (["--axial", "MISSING"], "missing.nii.gz: file not found"),
    ],
)
def test_levels_cli_fails_cleanly(tmp_path: Path, phantom, capsys, extra, message) -> None:
    files = _write_inputs(tmp_path / "in", phantom)
    far = axial_stack(tilt_deg=0.0, z0_mm=600.0, n_slices=5, n_pixels=20)
    far_path = save_nifti(tmp_path / "in" / "far.nii.gz", _not_constant(far.shape), far.affine)
    extra = [{"FAR": str(far_path), "MISSING": str(tmp_path / "missing.nii.gz")}.get(e, e) for e in extra]
    out = tmp_path / "out"
    code = main(["levels", str(files["sag"]), "-l", str(files["sag_dseg"]), "-o", str(out), *extra])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("paraspinal: error: ") and message in err and err.count("\n") == 1
    assert not out.exists()


class FakeSpineModel:
    """Returns the phantom's body labels, with L2 voted L3 on a third of its voxels (model-like noise)."""

    name = "fake-spine"

    def __init__(self, phantom) -> None:
        self.phantom = phantom
        self.calls = 0

    @property
    def scheme(self) -> LabelScheme:
        return load_scheme("lumbar_bodies")

    @property
    def provenance(self) -> dict[str, object]:
        return {"name": self.name, "version": "0"}

    def segment(self, image: Image) -> LabelMap:
        self.calls += 1
        labels = self.phantom.encode({n: i + 1 for i, n in enumerate(NAMES)}).array
        l2 = self.phantom.bodies["L2"]
        z = np.indices(labels.shape)[2]
        labels[l2 & (z < np.percentile(z[l2], 33))] = 3
        return segmentation(image, labels, scheme=self.scheme, model=self.provenance, source=image.source)


def test_segmented_sagittal_writes_its_label_map(tmp_path: Path, phantom) -> None:
    files = _write_inputs(tmp_path / "in", phantom)
    from paraspinal.io import read_image

    result = sagittal_levels(read_image(files["sag"]), backend=FakeSpineModel(phantom))
    assert result.segmented and [b.name for b in result.spine.bodies] == list(NAMES)
    # the model voted L3 on a third of L2; the written map carries each body's final name, the
    # confidence keeps the vote share
    assert np.all(result.labels.array[phantom.bodies["L2"]] == 2)
    assert np.all(result.labels.array[phantom.bodies["L3"]] == 3)
    assert 0.6 < {b.name: b.confidence for b in result.spine.bodies}["L2"] < 0.8
    with AtomicOutputs(tmp_path / "out") as outputs:
        write_levels_outputs(outputs, result)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "levels.csv", "levels.json", "levels_qc.png", "sagittal_dseg.nii.gz",
    ]  # fmt: skip
    written = read_image(tmp_path / "out" / "sagittal_dseg.nii.gz")
    np.testing.assert_array_equal(written.array, result.labels.array)


NO_MODELS = Models(muscle=None, spine=None)  # the cases carry every label map they need


def test_sagittal_role_words() -> None:
    assert parse_case_name("P1_sag.nii.gz") == ("P1", "sagittal", "")
    assert parse_case_name("P1_SAGITTAL.nii.gz") == ("P1", "sagittal", "")
    assert parse_case_name("P1_sag_dseg.nii.gz") == ("P1", "sagittal_labels", "")
    assert parse_case_name("P1-sagittal-labels.nii") == ("P1", "sagittal_labels", "")
    assert parse_case_name("P1_dseg.nii.gz") == ("P1", "labels", "")


def test_run_takes_levels_from_the_sagittal_label_map(tmp_path: Path, phantom) -> None:
    files = _write_inputs(tmp_path / "in", phantom)
    (case,) = discover_cases([tmp_path / "in"]).cases
    assert (case.sagittal, case.sagittal_labels) == (files["sag"], files["sag_dseg"])
    result = run_batch([case], options=RunOptions(report=False), out_dir=tmp_path / "out", models=NO_MODELS)
    (done,) = result.cases
    assert done.ok, done.error
    folder = done.out_dir
    levels = pd.read_csv(folder / "P1_levels.csv")
    assert list(levels["level"]) == ["L2/L3", "L3/L4", "L4/L5", "L5/S1"]
    assert levels["source"].str.startswith("sagittal P1_sag.nii.gz (labels (lumbar_bodies)").all()
    np.testing.assert_allclose(levels["angle_deg"], 7.0, atol=0.7)
    for row in levels.itertuples():
        nearest, signed = _expected_slice(
            phantom.centres[row.level], tilt_deg=3.0, z0_mm=-95.0, spacing_mm=4.0, reverse=False
        )
        assert (row.disc_slice, row.distance_mm) == (nearest, pytest.approx(abs(signed), abs=0.4))
    measurements = pd.read_csv(folder / "P1_measurements.csv")
    at_disc = measurements[(measurements["scope"] == "level") & (measurements["method"] == "disc_slice")]
    assert set(at_disc["level"]) == {"L2/L3", "L3/L4", "L4/L5", "L5/S1"}
    assert (folder / "P1_sagittal_levels.csv").is_file() and (folder / "P1_sagittal_levels_qc.png").is_file()
    manifest = json.loads((folder / "P1_manifest.json").read_text(encoding="utf-8"))
    assert manifest["levels"].startswith("sagittal P1_sag.nii.gz")


def test_the_case_page_shows_the_sagittal_levels_image(tmp_path: Path, phantom) -> None:
    _write_inputs(tmp_path / "in", phantom)
    (case,) = discover_cases([tmp_path / "in"]).cases
    result = run_batch([case], options=RunOptions(embed_images=False), out_dir=tmp_path / "out", models=NO_MODELS)
    (done,) = result.cases
    assert done.ok, done.error
    page = (done.out_dir / "P1_report.html").read_text(encoding="utf-8")
    figure = re.search(r'<figure class="full" data-kind="sagittal">\s*<img src="([^"]+)"', page)
    assert figure is not None and figure.group(1) == "P1_sagittal_levels_qc.png"
    assert "Sagittal levels. Mid-sagittal slice of P1_sag.nii.gz (labels in scheme lumbar_bodies)" in page
    no_qc = run_batch([case], options=RunOptions(qc=False), out_dir=tmp_path / "out_no_qc", models=NO_MODELS)
    assert 'data-kind="sagittal"' not in (no_qc.cases[0].out_dir / "P1_report.html").read_text(encoding="utf-8")


def test_run_segments_an_unlabelled_sagittal_image_with_the_spine_model(tmp_path: Path, phantom) -> None:
    files = _write_inputs(tmp_path / "in", phantom)
    files["sag_dseg"].unlink()
    (case,) = discover_cases([tmp_path / "in"]).cases
    model = FakeSpineModel(phantom)
    options = RunOptions(report=False, qc=False)
    result = run_batch([case], options=options, out_dir=tmp_path / "out", models=Models(muscle=None, spine=model))
    (done,) = result.cases
    assert done.ok, done.error and model.calls == 1
    assert (done.out_dir / "P1_sag_dseg.nii.gz").is_file()
    levels = pd.read_csv(done.out_dir / "P1_levels.csv")
    assert levels["source"].str.contains("model fake-spine").all()


def test_run_without_a_spine_model_keeps_other_level_sources(tmp_path: Path, phantom) -> None:
    files = _write_inputs(tmp_path / "in", phantom)
    files["sag_dseg"].unlink()
    (case,) = discover_cases([tmp_path / "in"]).cases

    def missing():
        from paraspinal.errors import InputError

        raise InputError("the bundled lumbar_spine model is not installed")

    options = RunOptions(report=False, qc=False)
    result = run_batch([case], options=options, out_dir=tmp_path / "out", models=Models(muscle=None, spine=missing))
    (done,) = result.cases
    assert done.ok, done.error
    assert (
        "sagittal image P1_sag.nii.gz not used for levels: the bundled lumbar_spine model is not installed"
        in done.warnings
    )
    assert not (done.out_dir / "P1_levels.csv").exists()
