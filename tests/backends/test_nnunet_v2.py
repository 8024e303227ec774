"""nnU-Net v2 and v1 backends against nnU-Net's own file-based prediction, on real model folders we make.

The model folders come from nnU-Net's own planning on a tiny synthetic dataset with seeded weights
(tests/nnunet_support.py). The references are nnU-Net v2's ``predict_from_files_sequential`` and
nnU-Net v1's ``predict_from_folder`` on NIfTI files; our backends run on the same images read with
paraspinal's reader, and must agree voxel for voxel and sit on the input grid, for RAS and LPS files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("nnunetv2")

from paraspinal.backends.catalog import BackendOptions, create_backend
from paraspinal.errors import InputError
from paraspinal.io.readers import read_image, read_label_map
from tests.nnunet_support import affine_lps, affine_ras, build_model, phantom, write_nifti

OPTIONS = BackendOptions(threads=1)


@pytest.fixture(scope="module")
def v2_model(tmp_path_factory) -> Path:
    return build_model("v2", tmp_path_factory.mktemp("nnunet_v2"))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """A folder with the same voxels stored RAS-style and LPS-style, named as nnU-Net expects."""
    folder = tmp_path_factory.mktemp("nnunet_inputs")
    image, _ = phantom(seed=7)
    write_nifti(image, affine_ras(), folder / "ras_0000.nii.gz")
    write_nifti(image, affine_lps(), folder / "lps_0000.nii.gz")
    return folder


def _v2_reference(model: Path, inputs: Path, out: Path) -> None:
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    predictor = nnUNetPredictor(device=torch.device("cpu"), allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(model), use_folds=(0,))
    predictor.predict_from_files_sequential(str(inputs), str(out))


def _check_against(backend, inputs: Path, reference: Path) -> dict[str, np.ndarray]:
    results = {}
    for name in ("ras", "lps"):
        image = read_image(inputs / f"{name}_0000.nii.gz")
        seg = backend.segment(image)
        expected = read_label_map(reference / f"{name}.nii.gz")
        assert seg.labels.shape == image.shape
        np.testing.assert_array_equal(seg.labels.affine, image.affine)
        np.testing.assert_allclose(expected.affine, image.affine, atol=1e-4)
        np.testing.assert_array_equal(seg.labels.array, expected.array)
        values, counts = np.unique(seg.labels.array, return_counts=True)
        big = values[counts > 0.01 * seg.labels.array.size]
        found = dict(zip(values.tolist(), counts.tolist(), strict=True))
        assert len(big) >= 3, f"output too uniform to be a meaningful comparison: {found}"
        assert set(values) <= {0, *backend.scheme.values}
        results[name] = seg.labels.array
    return results


def test_v2_equals_nnunet_predict_for_ras_and_lps(v2_model, inputs, tmp_path):
    _v2_reference(v2_model, inputs, tmp_path / "ref")
    backend = create_backend("nnunet", model=v2_model, options=OPTIONS)
    assert backend.scheme.key == "lpm4"  # ES1, MF1, ES2, MF2 is LPM_Segmentator's Task515 list
    results = _check_against(backend, inputs, tmp_path / "ref")
    # SimpleITKIO models see the array as stored: the same voxels give the same label array.
    np.testing.assert_array_equal(results["ras"], results["lps"])
    info = backend.provenance
    assert info["folds"] == ["0"] and info["checkpoint"] == "checkpoint_final.pth"
    assert len(info["weights_sha256"]["0"]) == 64 and info["scheme"] == "lpm4"


def test_v2_reorienting_reader_equals_nnunet_predict(v2_model, inputs, tmp_path):
    model = tmp_path / "reorient_model"
    shutil.copytree(v2_model, model)
    plans = json.loads((model / "plans.json").read_text(encoding="utf-8"))
    plans["image_reader_writer"] = "NibabelIOWithReorient"
    (model / "plans.json").write_text(json.dumps(plans))
    folder = tmp_path / "inputs"
    shutil.copytree(inputs, folder)
    # The RAS image's anatomy stored LPS-style: voxels flipped in i and j, affine flipped to match.
    ras = read_image(inputs / "ras_0000.nii.gz")
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[:2, 3] = [n - 1 for n in ras.shape[:2]]
    write_nifti(ras.array[::-1, ::-1, :].copy(), ras.affine @ flip, folder / "same_0000.nii.gz")
    _v2_reference(model, folder, tmp_path / "ref")
    backend = create_backend("nnunet", model=model, options=OPTIONS)
    results = _check_against(backend, folder, tmp_path / "ref")
    same = backend.segment(read_image(folder / "same_0000.nii.gz")).labels.array
    np.testing.assert_array_equal(same, read_label_map(tmp_path / "ref" / "same.nii.gz").array)
    # This reader turns every file to RAS first: the same anatomy gives the same labels in world space.
    np.testing.assert_array_equal(same, results["ras"][::-1, ::-1, :])
    assert not np.array_equal(results["lps"], results["ras"])  # the stored voxel order now matters


def _copy_without(model: Path, tmp_path: Path, relative: str) -> Path:
    copy = tmp_path / "model"
    shutil.copytree(model, copy)
    target = copy / relative
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    return copy


def test_v2_missing_files_give_one_line_errors(v2_model, tmp_path):
    with pytest.raises(InputError) as err:
        create_backend("nnunet", model=v2_model, options=BackendOptions(folds=("3",)))
    assert str(err.value) == f"{v2_model}: fold folder fold_3 not found"
    with pytest.raises(InputError) as err:
        create_backend("nnunet", model=v2_model, options=BackendOptions(checkpoint="checkpoint_best.pth"))
    assert str(err.value) == (
        f"{v2_model}: no fold_K folder holds checkpoint_best.pth (not a trained nnU-Net model folder?)"
    )
    with pytest.raises(InputError) as err:
        create_backend("nnunet", model=v2_model, options=BackendOptions(folds=("0",), checkpoint="best.pth"))
    assert str(err.value) == f"{v2_model / 'fold_0'}: checkpoint best.pth not found"
    no_dataset = _copy_without(v2_model, tmp_path / "a", "dataset.json")
    with pytest.raises(InputError) as err:
        create_backend("nnunet", model=no_dataset, options=OPTIONS)
    assert str(err.value) == f"{no_dataset}: no dataset.json in the model folder (not an nnU-Net v2 trainer folder?)"
    no_plans = _copy_without(v2_model, tmp_path / "b", "plans.json")
    with pytest.raises(InputError) as err:
        create_backend("nnunet", model=no_plans, options=OPTIONS)
    assert str(err.value) == f"{no_plans}: no plans.json in the model folder (not an nnU-Net v2 trainer folder?)"


def test_v2_unknown_labels_need_scheme(v2_model, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(v2_model, model)
    dataset = json.loads((model / "dataset.json").read_text(encoding="utf-8"))
    dataset["labels"] = {"background": 0, "a": 1, "b": 2, "c": 3, "d": 4}
    (model / "dataset.json").write_text(json.dumps(dataset))
    with pytest.raises(InputError) as err:
        create_backend("nnunet", model=model, options=OPTIONS)
    assert str(err.value) == (
        f"{model / 'dataset.json'}: no bundled label scheme matches the model's labels (1=a, 2=b, 3=c, 4=d); "
        "pass --scheme with a bundled scheme key or a scheme TOML file"
    )
    backend = create_backend("nnunet", model=model, options=BackendOptions(threads=1, scheme="lpm4"))
    assert backend.scheme.key == "lpm4"
    tiny = tmp_path / "tiny.toml"
    tiny.write_text(
        'key = "tiny"\nname = "two labels"\nlabels = [\n'
        '  { value = 1, name = "a", structure = "erector_spinae", side = "right" },\n'
        '  { value = 2, name = "b", structure = "erector_spinae", side = "left" },\n]\n'
    )
    with pytest.raises(InputError) as err:
        create_backend("nnunet", model=model, options=BackendOptions(scheme=str(tiny)))
    assert str(err.value) == (
        f"{model / 'dataset.json'}: scheme 'tiny' does not cover the model's label values [3, 4] (3=c, 4=d)"
    )


# --------------------------------------------------------------------------------------- nnU-Net v1


@pytest.fixture(scope="module")
def v1_model(tmp_path_factory) -> Path:
    pytest.importorskip("nnunet")
    return build_model("v1", tmp_path_factory.mktemp("nnunet_v1"))


def _v1_reference(model: Path, inputs: Path, out: Path) -> None:
    """nnU-Net v1's predict_from_folder in a child process (its torch.load predates weights_only)."""
    code = (
        "import torch; torch.set_num_threads(1); from nnunet.inference.predict import predict_from_folder; "
        f"predict_from_folder({str(model)!r}, {str(inputs)!r}, {str(out)!r}, (0,), False, 1, 1, None, 0, 1, True)"
    )
    env = dict(os.environ, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1", OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_v1_equals_nnunet_v1_predict_for_ras_and_lps(v1_model, inputs, tmp_path):
    _v1_reference(v1_model, inputs, tmp_path / "ref")
    backend = create_backend("nnunet-v1", model=v1_model, options=OPTIONS)
    assert backend.scheme.key == "lpm4"  # from the Task515_muscle folder name
    results = _check_against(backend, inputs, tmp_path / "ref")
    np.testing.assert_array_equal(results["ras"], results["lps"])
    assert backend.provenance["folds"] == ["fold_0"]


def test_v1_errors(v1_model, tmp_path):
    with pytest.raises(InputError) as err:
        create_backend("nnunet-v1", model=v1_model, options=BackendOptions(folds=("2",)))
    assert str(err.value) == f"{v1_model}: fold folder fold_2 not found"
    no_plans = _copy_without(v1_model, tmp_path / "a", "plans.pkl")
    with pytest.raises(InputError) as err:
        create_backend("nnunet-v1", model=no_plans, options=OPTIONS)
    assert str(err.value) == f"{no_plans}: no plans.pkl in the model folder (not an nnU-Net v1 trainer folder?)"
    no_pkl = _copy_without(v1_model, tmp_path / "b", "fold_0/model_final_checkpoint.model.pkl")
    with pytest.raises(InputError) as err:
        create_backend("nnunet-v1", model=no_pkl, options=OPTIONS)
    assert str(err.value) == f"{no_pkl / 'fold_0'}: checkpoint model_final_checkpoint.model.pkl not found"
    # Outside a Task515_muscle folder the v1 labels have no names: --scheme is required.
    renamed = tmp_path / "c" / "Task999_other" / v1_model.name
    shutil.copytree(v1_model, renamed)
    with pytest.raises(InputError) as err:
        create_backend("nnunet-v1", model=renamed, options=OPTIONS)
    assert str(err.value).startswith(f"{renamed}: no bundled label scheme matches the model's labels (1=class 1,")


def test_segment_command_runs_an_nnunet_model_folder(v2_model, inputs, tmp_path):
    from paraspinal.cli.main import main

    _v2_reference(v2_model, inputs, tmp_path / "ref")
    out = tmp_path / "out"
    args = ["segment", str(inputs / "lps_0000.nii.gz"), "-o", str(out), "--backend", "nnunet"]
    code = main([*args, "--model", str(v2_model), "--folds", "0", "--threads", "1", "--no-cleanup", "-q"])
    assert code == 0
    labels = read_label_map(out / "lps_0000_dseg.nii.gz")
    expected = read_label_map(tmp_path / "ref" / "lps.nii.gz")
    np.testing.assert_array_equal(labels.array, expected.array)
    np.testing.assert_allclose(labels.affine, read_image(inputs / "lps_0000.nii.gz").affine, atol=1e-6)
    sidecar = json.loads((out / "lps_0000_dseg.json").read_text(encoding="utf-8"))
    assert sidecar["scheme"] == "lpm4" and sidecar["backend"] == "nnunet"
