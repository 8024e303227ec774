"""`paraspinal run` as a process takes a case's levels from its unlabelled sagittal image with the bundled spine
model (it never did before the pipeline had one place that resolves models)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from paraspinal.backends import bundled_model_dir
from tests.reliability.support import run_cli

SPINES = Path(__file__).resolve().parents[3] / "shared" / "data" / "spine-sagittal" / "myosegmentum-vertebrae"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (bundled_model_dir("spine") / "model.json").is_file(), reason="no bundled spine model"),
    pytest.mark.skipif(not (SPINES / "01_img.nii.gz").is_file(), reason="../shared/data/spine-sagittal not present"),
]


def _case(folder: Path) -> None:
    """P1: a sagittal spine (subject 01) and, as its axial stack, the same volume (slices are taken along the voxel
    axis closest to superior-inferior, whatever the storage order) with a box mask as its given label map."""
    folder.mkdir()
    shutil.copy(SPINES / "01_img.nii.gz", folder / "P1_sag.nii.gz")
    image = nib.load(SPINES / "01_img.nii.gz")
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj).astype(np.float32), image.affine), folder / "P1_t2.nii.gz")
    mask = np.zeros(image.shape, dtype=np.int16)
    mask[20:200, 150:180, 30:38] = 1  # a column of "right erector spinae" behind the bodies
    mask[20:200, 150:180, 40:48] = 4
    nib.save(nib.Nifti1Image(mask, image.affine), folder / "P1_dseg.nii.gz")


def test_run_segments_the_sagittal_image_with_the_bundled_spine_model(tmp_path: Path) -> None:
    _case(tmp_path / "in")
    out = tmp_path / "out"
    done = run_cli(["run", tmp_path / "in", "-o", out, "--no-qc", "--no-report"])
    assert done.returncode == 0, done.stderr
    assert "no spine model" not in done.stderr and "not used for levels" not in done.stderr
    folder = out / "P1"
    assert (folder / "P1_sag_dseg.nii.gz").is_file()  # the spine model's named bodies, written with the case
    levels = pd.read_csv(folder / "P1_levels.csv")
    assert list(levels["level"]) == ["L1/L2", "L2/L3", "L3/L4", "L4/L5", "L5/S1"]
    assert levels["source"].str.startswith("sagittal P1_sag.nii.gz (model lumbar_spine").all()
    manifest = json.loads((folder / "P1_manifest.json").read_text(encoding="utf-8"))
    assert manifest["levels"].startswith("sagittal P1_sag.nii.gz (model lumbar_spine")
    measured = pd.read_csv(folder / "P1_measurements.csv")
    assert set(measured.loc[measured["scope"] == "level", "level"]) == set(levels["level"])
