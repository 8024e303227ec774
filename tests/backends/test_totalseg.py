"""TotalSegmentator backend: same labels as TotalSegmentator's own API, on the input grid, no downloads.

Weights are tiny nnU-Net models laid out as TotalSegmentator's home folder (tests/totalseg_support.py).
TotalSegmentator's ``totalsegmentator(...)`` API runs once per module in a subprocess, offline, with
usage statistics switched off in its ``config.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")
pytest.importorskip("nnunetv2")
pytest.importorskip("totalsegmentator")

import nibabel as nib

from paraspinal.backends.catalog import BackendOptions, create_backend
from paraspinal.backends.totalseg import TotalSegmentatorBackend, task_settings
from paraspinal.errors import InputError
from paraspinal.io import read_image
from tests import totalseg_support

SHAPE = (24, 20, 16)
SPACING = (2.0, 1.8, 2.5)


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A weights home for both tasks, the same volume stored RAS and LPS, and TotalSegmentator's own outputs."""
    root = tmp_path_factory.mktemp("totalseg")
    home = root / "home"
    totalseg_support.write_config(home)
    totalseg_support.make_weights_folder(home, task="total_mr", seed=1)
    totalseg_support.make_weights_folder(home, task="vertebrae_mr", seed=5)
    totalseg_support.make_weights_folder(home, task="total", seed=9)
    volume = totalseg_support.smooth_volume(SHAPE, seed=3)
    ras = np.diag([*SPACING, 1.0])
    ras[:3, 3] = [-20.0, -15.0, 10.0]
    lps = ras.copy()  # same world content, array stored with x and y reversed
    lps[:3, 0] *= -1
    lps[:3, 1] *= -1
    lps[:3, 3] += ras[:3, 0] * (SHAPE[0] - 1) + ras[:3, 1] * (SHAPE[1] - 1)
    nib.save(nib.Nifti1Image(volume, ras), root / "ras.nii.gz")
    nib.save(nib.Nifti1Image(np.ascontiguousarray(volume[::-1, ::-1]), lps), root / "lps.nii.gz")
    jobs = [
        [str(root / "lps.nii.gz"), str(root / "ts_total_mr_lps.nii.gz"), "total_mr"],
        [str(root / "ras.nii.gz"), str(root / "ts_vertebrae_mr_ras.nii.gz"), "vertebrae_mr"],
        [str(root / "lps.nii.gz"), str(root / "ts_total_lps.nii.gz"), "total"],
    ]
    env = {**os.environ, "TOTALSEG_HOME_DIR": str(home), "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [sys.executable, totalseg_support.__file__, json.dumps(jobs)],
        env=env,
        check=True,
        capture_output=True,
        cwd=Path(totalseg_support.__file__).parents[1],
    )
    return {"root": root, "home": home}


@pytest.fixture(scope="module")
def backends(case: dict[str, Path]) -> dict[str, TotalSegmentatorBackend]:
    return {
        task: create_backend("totalsegmentator", model=case["home"], options=BackendOptions(task=task, threads=1))
        for task in ("total_mr", "vertebrae_mr", "total")
    }


@pytest.mark.parametrize(
    ("task", "orientation", "reference"),
    [
        ("total_mr", "lps", "ts_total_mr_lps.nii.gz"),
        ("vertebrae_mr", "ras", "ts_vertebrae_mr_ras.nii.gz"),
        ("total", "lps", "ts_total_lps.nii.gz"),
    ],
)
def test_matches_totalsegmentator_api(case, backends, task, orientation, reference) -> None:
    image = read_image(case["root"] / f"{orientation}.nii.gz")
    result = backends[task].segment(image)
    expected = nib.load(case["root"] / reference)
    assert result.labels.shape == image.shape == expected.shape
    np.testing.assert_allclose(result.labels.affine, image.affine)
    np.testing.assert_allclose(expected.affine, image.affine, atol=1e-5)
    np.testing.assert_array_equal(result.labels.array, np.asarray(expected.dataobj))
    assert len(np.unique(result.labels.array)) >= 4  # the tiny models give non-trivial label maps


@pytest.mark.parametrize("task", ["total_mr", "vertebrae_mr", "total"])
def test_ras_and_lps_inputs_give_the_same_world_labels(case, backends, task) -> None:
    ras = backends[task].segment(read_image(case["root"] / "ras.nii.gz"))
    lps = backends[task].segment(read_image(case["root"] / "lps.nii.gz"))
    np.testing.assert_array_equal(lps.labels.array, ras.labels.array[::-1, ::-1])
    assert lps.scheme.key == {"total_mr": "total_mr", "vertebrae_mr": "total_vertebrae_mr", "total": "total"}[task]
    lps.scheme.check_values(np.unique(lps.labels.array), path=None)


def test_total_mr_merges_both_models(case, backends) -> None:
    labels = backends["total_mr"].segment(read_image(case["root"] / "ras.nii.gz")).labels.array
    values = set(np.unique(labels).tolist())
    assert values & set(range(1, 30)), "no label of the organs model (dataset 850) survived the merge"
    assert values & set(range(30, 51)), "no label of the muscles model (dataset 851)"


def test_ct_total_merges_its_five_models(case, backends) -> None:
    """The CT task's organs (1-24), vertebrae (25-50), cardiac (51-68), muscles (69-91) and ribs (92-117)."""
    labels = backends["total"].segment(read_image(case["root"] / "ras.nii.gz")).labels.array
    values = set(np.unique(labels).tolist())
    parts = [range(1, 25), range(25, 51), range(51, 69), range(69, 92), range(92, 118)]
    assert sum(bool(values & set(p)) for p in parts) >= 3, sorted(values)


def test_task_settings_follow_totalsegmentator_tables() -> None:
    ct = task_settings("total")
    assert (ct.dataset_ids, ct.trainer, ct.spacing_mm, ct.tile_step) == (
        (291, 292, 293, 294, 295),
        "nnUNetTrainerNoMirroring",
        (1.5, 1.5, 1.5),
        0.8,
    )
    total = task_settings("total_mr")
    assert total.dataset_ids == (850, 851)
    assert total.spacing_mm == (1.5, 1.5, 1.5)
    assert total.tile_step == 0.8
    vertebrae = task_settings("vertebrae_mr")
    assert (vertebrae.dataset_ids, vertebrae.trainer, vertebrae.tile_step) == (
        (756,),
        "nnUNetTrainer_DASegOrd0_NoMirroring",
        0.5,
    )


def test_missing_dataset_folder_is_a_one_line_error_naming_the_download(tmp_path) -> None:
    (tmp_path / "nnunet" / "results").mkdir(parents=True)
    with pytest.raises(InputError) as err:
        create_backend("totalsegmentator", model=tmp_path, options=BackendOptions(task="vertebrae_mr"))
    assert str(err.value) == (
        f"{tmp_path}: TotalSegmentator task 'vertebrae_mr' needs the weights folder Dataset756_mri_vertebrae_1076subj "
        f"under {tmp_path / 'nnunet' / 'results'} (download https://github.com/wasserth/TotalSegmentator/releases/"
        "download/v2.5.0-weights/Dataset756_mri_vertebrae_1076subj.zip and unzip it there)"
    )
    assert list((tmp_path / "nnunet" / "results").iterdir()) == []  # nothing downloaded or written


def test_incomplete_model_folder_is_a_one_line_error(tmp_path) -> None:
    folder = tmp_path / "nnunet" / "results" / "Dataset756_mri_vertebrae_1076subj"
    (folder / "nnUNetTrainer_DASegOrd0_NoMirroring__nnUNetPlans__3d_fullres" / "fold_0").mkdir(parents=True)
    with pytest.raises(InputError) as err:
        TotalSegmentatorBackend(tmp_path, task="vertebrae_mr")
    trainer_dir = "nnUNetTrainer_DASegOrd0_NoMirroring__nnUNetPlans__3d_fullres"
    assert str(err.value) == (
        f"{folder}: incomplete TotalSegmentator weights folder: missing {trainer_dir}/dataset.json, "
        f"{trainer_dir}/plans.json, {trainer_dir}/fold_0/checkpoint_final.pth (re-download "
        "https://github.com/wasserth/TotalSegmentator/releases/download/v2.5.0-weights/"
        "Dataset756_mri_vertebrae_1076subj.zip)"
    )


def test_unknown_task_and_missing_folder(tmp_path) -> None:
    with pytest.raises(InputError) as err:
        TotalSegmentatorBackend(tmp_path, task="total_v9")
    assert str(err.value) == ("unsupported TotalSegmentator task 'total_v9' (supported: total_mr, vertebrae_mr, total)")
    with pytest.raises(InputError) as err:
        create_backend("totalsegmentator", model=tmp_path / "nope", options=BackendOptions())
    assert str(err.value) == (
        f"{tmp_path / 'nope'}: model folder not found; backend 'totalsegmentator' expects "
        "TotalSegmentator's weights folder (the one holding nnunet/results/Dataset.../)"
    )


def test_missing_extra_is_a_one_line_error(monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "totalsegmentator" else real(name)
    )
    with pytest.raises(InputError) as err:
        create_backend("totalsegmentator", model=None, options=BackendOptions())
    assert str(err.value) == (
        "backend 'totalsegmentator' needs totalsegmentator, which is not installed: "
        'pip install "paraspinal[totalsegmentator]"'
    )


@pytest.mark.slow
def test_run_segments_a_ct_with_the_total_task_and_measures_it_in_hu(case, tmp_path) -> None:
    from tests.reliability.support import run_cli

    volume = np.full((30, 28, 12), 45.0, dtype=np.float32)
    volume[:4] = -1000.0  # air at one edge: a plausible HU image
    nib.save(nib.Nifti1Image(volume, np.diag([1.5, 1.5, 2.5, 1.0])), tmp_path / "ct.nii.gz")
    args = ["run", tmp_path / "ct.nii.gz", "-o", tmp_path / "out", "--modality", "ct", "--no-qc", "--no-report"]
    done = run_cli([*args, "--backend", "totalsegmentator", "--model", case["home"], "--task", "total"])
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(tmp_path / "out" / "measurements.csv")
    hu = table[table["metric"] == "hu_mean"]
    assert not hu.empty and set(hu["unit"]) == {"HU"}
    labels = nib.load(tmp_path / "out" / "ct" / "ct_dseg.nii.gz")
    assert labels.shape == volume.shape
    manifest = json.loads((tmp_path / "out" / "ct" / "ct_manifest.json").read_text(encoding="utf-8"))
    assert manifest["segmentation"]["backend"]["task"] == "total"
    assert manifest["label_scheme"] == "total"
