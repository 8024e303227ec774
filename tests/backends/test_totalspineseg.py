"""TotalSpineSeg: its labelling reproduced on raw class arrays, and both steps run from installed weights."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from paraspinal.backends.totalspineseg_labels import label_step2, odd_discs

AXES = {"superior_axis": 2, "superior_sign": -1}  # k runs inferior, as on TotalSpineSeg's LPI grid


def _spine(n_lumbar_discs: int) -> np.ndarray:
    """Step-2 raw classes: discs (T12/L1 landmark 4, L5/S landmark 5, others 1) between vertebrae (7/8)."""
    n_discs = n_lumbar_discs + 2  # T12/L1, the lumbar ones, L5/S
    raw = np.zeros((6, 6, 8 * n_discs + 8), dtype=np.uint8)
    for d in range(n_discs):
        top = 4 + 8 * d
        raw[1:5, 1:5, top : top + 5] = 7 + d % 2  # vertebra above disc d
        raw[1:5, 1:5, top + 6 : top + 8] = 4 if d == 0 else 5 if d == n_discs - 1 else 1
    raw[1:5, 1:5, 8 * n_discs + 4 :] = 9  # sacrum
    return raw


def _values_top_down(out: np.ndarray) -> list[int]:
    seen: list[int] = []
    for k in range(out.shape[2]):
        for v in np.unique(out[:, :, k]):
            if v and v not in seen:
                seen.append(int(v))
    return seen


def test_vertebrae_and_discs_are_numbered_from_the_landmark_discs() -> None:
    out = label_step2(_spine(4), **AXES)
    assert _values_top_down(out) == [32, 91, 41, 92, 42, 93, 43, 94, 44, 95, 45, 100, 50]


def test_a_sixth_lumbar_vertebra_is_reported_as_l6_not_forced_into_l5() -> None:
    out = label_step2(_spine(5), **AXES)
    assert _values_top_down(out) == [32, 91, 41, 92, 42, 93, 43, 94, 44, 95, 45, 96, 46, 100, 50]


def test_odd_discs_mask_every_other_disc_from_the_top() -> None:
    step1 = np.zeros((4, 4, 30), dtype=np.uint8)
    for index, k in enumerate(range(2, 30, 6)):
        step1[:, :, k : k + 2] = (91, 92, 93, 94, 95)[index]
    mask = odd_discs(step1, **AXES)
    assert [bool(mask[0, 0, k]) for k in range(2, 30, 6)] == [True, False, True, False, True]


def _cli(*args: object, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "paraspinal", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
    )


SAG_AFFINE = np.diag([4.0, 1.0, 1.0, 1.0])


def _sagittal() -> np.ndarray:
    """A sagittal image (4 mm slices along x), zero except a flat bright disc 4 mm thick at z 18-21 mm."""
    volume = np.zeros((8, 40, 40), dtype=np.float32)
    volume[:, 10:30, 18:22] = 500.0
    return volume


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both tiny steps zipped as the release zips are and installed with `models install` (a process)."""
    from tests import totalspineseg_support

    root = tmp_path_factory.mktemp("tss")
    results = totalspineseg_support.make_results(root / "dl")
    zips = [
        totalspineseg_support.zip_dataset(folder, root / f"{folder.name}.zip") for folder in sorted(results.iterdir())
    ]
    done = _cli("models", "install", *zips, "--store", root / "store", cwd=root)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("installed totalspineseg")
    return root / "store"


@pytest.mark.slow
def test_levels_by_key_runs_both_installed_steps_on_a_sagittal_image(tmp_path, store) -> None:
    """`levels SAG --model totalspineseg` as a process: the disc plane, the label map on the input grid."""
    volume, affine = _sagittal(), SAG_AFFINE
    sag = tmp_path / "sag.nii.gz"
    nib.save(nib.Nifti1Image(volume, affine), str(sag))
    done = _cli("levels", sag, "-o", tmp_path / "out", "--model", "totalspineseg", "--store", store, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    levels = json.loads(next((tmp_path / "out").rglob("*levels.json")).read_text(encoding="utf-8"))
    assert levels["scheme"] == "totalspineseg"
    assert levels["model"]["backend"] == "totalspineseg"
    assert [(d["level"], d["centre_z_mm"], d["normal_z"]) for d in levels["levels"]] == [("L5/S1", 19.5, 1.0)]
    labels = nib.load(str(tmp_path / "out" / "sagittal_dseg.nii.gz"))
    assert labels.shape == volume.shape
    np.testing.assert_allclose(labels.affine, affine)
    values = np.asarray(labels.dataobj)
    assert set(np.unique(values)) == {0, 100}
    assert np.array_equal(values == 100, volume > 0)


@pytest.mark.slow
def test_run_takes_its_sagittal_levels_from_the_spine_model_by_key(tmp_path, store) -> None:
    """`run --spine-model totalspineseg`: the sagittal image is segmented and its disc placed on the axial stack."""
    cases = tmp_path / "in"
    cases.mkdir()
    nib.save(nib.Nifti1Image(_sagittal(), SAG_AFFINE), str(cases / "P1_sag.nii.gz"))
    axial = np.full((40, 40, 10), 100.0, np.float32)
    axial.flat[0] = 200.0
    axial_labels = np.zeros(axial.shape, dtype=np.uint8)
    axial_labels[5:12, 20:30, :] = 1
    axial_labels[28:35, 20:30, :] = 4
    axial_affine = np.diag([1.0, 1.0, 4.0, 1.0])
    nib.save(nib.Nifti1Image(axial, axial_affine), str(cases / "P1_t2.nii.gz"))
    nib.save(nib.Nifti1Image(axial_labels, axial_affine), str(cases / "P1_dseg.nii.gz"))
    out = tmp_path / "out"
    done = _cli(
        "run", cases, "-o", out, "--spine-model", "totalspineseg", "--store", store, "--no-report", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    levels = pd.read_csv(next(out.rglob("P1_levels.csv")))
    assert list(levels["level"]) == ["L5/S1"]
    assert list(levels["disc_slice"]) == [5]  # the plane z = 19.5 mm, axial slices every 4 mm from z = 0
    assert levels["source"].str.startswith("sagittal P1_sag.nii.gz (model totalspineseg").all()


def test_run_spine_model_errors_come_before_any_image_is_read(tmp_path) -> None:
    done = _cli(
        "run", tmp_path / "none", "-o", tmp_path / "o", "--spine-model", "spineps", "--store", tmp_path, cwd=tmp_path
    )
    assert done.returncode != 0
    assert "paraspinal has no backend that runs spineps yet" in done.stderr


def test_backends_lists_the_spine_backends(tmp_path) -> None:
    done = _cli("backends", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "totalspineseg" in done.stdout
    assert "spineps" in done.stdout


def test_spineps_is_a_one_line_error_naming_its_extra_or_what_to_do(tmp_path) -> None:
    (tmp_path / "models").mkdir()
    from paraspinal.backends.catalog import create_backend
    from paraspinal.backends.specs import BackendOptions
    from paraspinal.errors import InputError

    with pytest.raises(InputError) as caught:
        create_backend("spineps", model=tmp_path / "models", options=BackendOptions(), role="spine")
    message = str(caught.value)
    assert "\n" not in message
    assert 'pip install "paraspinal[spineps]"' in message or "--labels FILE --scheme spineps" in message


def test_an_l6_reaches_the_levels_under_its_own_names_with_a_warning() -> None:
    from paraspinal.anatomy import load_scheme
    from paraspinal.io.image import Image
    from paraspinal.io.label_map import LabelMap
    from paraspinal.levels import spine_levels_from_labels

    lpi = np.diag([-1.0, -1.0, -1.0, 1.0])
    levels = spine_levels_from_labels(
        LabelMap.given(Image(label_step2(_spine(5), **AXES), lpi), load_scheme("totalspineseg"))
    )
    assert [d.name for d in levels.discs] == ["T12/L1", "L1/L2", "L2/L3", "L3/L4", "L4/L5", "L5/L6", "L5/S1"]
    assert levels.warnings == (
        "the labels name transitional vertebra(e) L6: the discs keep the model's own names; check the QC image",
    )


def test_weights_without_both_steps_are_a_one_line_error(tmp_path) -> None:
    from paraspinal.backends.totalspineseg import results_folder, trainer_folder
    from paraspinal.errors import InputError

    (tmp_path / "nnUNet" / "results" / "Dataset101_TotalSpineSeg_step1").mkdir(parents=True)
    with pytest.raises(InputError) as caught:
        results_folder(tmp_path)
    assert str(caught.value) == (
        f"{tmp_path}: TotalSpineSeg weights need both Dataset101_TotalSpineSeg_step1 and "
        "Dataset102_TotalSpineSeg_step2 (nnUNet/results layout)"
    )
    (tmp_path / "nnUNet" / "results" / "Dataset102_TotalSpineSeg_step2").mkdir()
    assert results_folder(tmp_path) == tmp_path / "nnUNet" / "results"
    fold = tmp_path / "nnUNet" / "results" / "Dataset101_TotalSpineSeg_step1" / "T__P__3d_fullres" / "fold_0"
    fold.mkdir(parents=True)
    with pytest.raises(InputError, match=r"fold_0 holds neither checkpoint_final\.pth nor checkpoint_best\.pth"):
        trainer_folder(fold.parent.parent)
    (fold / "checkpoint_best.pth").write_bytes(b"")
    assert trainer_folder(fold.parent.parent) == (fold.parent, "checkpoint_best.pth")


@pytest.mark.parametrize("flips", [(1, 1, 1), (-1, -1, 1), (1, -1, -1)])
def test_the_lpi_grid_holds_the_image_and_maps_back_voxel_for_voxel(flips) -> None:
    from paraspinal.backends.totalspineseg import lpi_grid, sample
    from paraspinal.io.image import Image

    labels = np.random.default_rng(0).integers(0, 5, size=(6, 10, 12)).astype(np.uint8)
    affine = np.diag([4.0 * flips[0], 1.0 * flips[1], 2.0 * flips[2], 1.0])
    affine[:3, 3] = (10.0, -20.0, 30.0)
    grid, shape = lpi_grid(Image(labels, affine))
    assert np.all(np.diag(grid)[:3] == (-1.0, -1.0, -1.0))  # L, P, I at 1 mm
    assert shape == (24, 10, 24)
    on_grid = sample(labels, affine, grid, shape, order=0)
    np.testing.assert_array_equal(sample(on_grid, grid, affine, labels.shape, order=0), labels)
