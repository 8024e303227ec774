"""The bundled U-Net through ONNX Runtime: accuracy guard on TUM01, geometry, sides, CLI, model folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

pytest.importorskip("onnxruntime")

import paraspinal.cli.segment_cmd  # noqa: F401
from paraspinal.anatomy import load_scheme
from paraspinal.backends import SegmentationBackend, UNetOnnxBackend, bundled_model_dir
from paraspinal.backends.catalog import BackendFactory
from paraspinal.backends.unet_onnx import smooth_across_slices
from paraspinal.cli.main import main
from paraspinal.errors import InputError, ParaspinalError
from paraspinal.io import Image, read_image, read_label_map
from paraspinal.io.files import file_sha256
from paraspinal.postprocessing import keep_largest_component
from paraspinal.sample import sample_case
from tests.phantoms import reorient, save_nifti

SWAP = np.array([0, 4, 3, 2, 1])  # lpm4: right ES <-> left ES, right MF <-> left MF


def _dice(a: np.ndarray, b: np.ndarray, value: int) -> float:
    x, y = a == value, b == value
    return 2.0 * np.count_nonzero(x & y) / (np.count_nonzero(x) + np.count_nonzero(y))


def _slab(image: Image, start: int, stop: int) -> Image:
    """Axial slices [start, stop) of an image, with the affine moved to match."""
    shift = np.eye(4)
    shift[2, 3] = start
    return Image(image.array[:, :, start:stop], image.affine @ shift, source=image.source)


@pytest.fixture(scope="module")
def backend() -> UNetOnnxBackend:
    return BackendFactory()()


@pytest.fixture(scope="module")
def tum01() -> dict[str, Image]:
    case = sample_case()
    labels = read_label_map(case.labels)
    water = read_image(case.water)
    water = Image(water.array, labels.affine, source=str(case.water))  # same voxels; see the sample README
    return {"labels": labels, "water": water, "fat": read_image(case.fat)}


@pytest.fixture(scope="module")
def water_labels(backend, tum01) -> np.ndarray:
    return keep_largest_component(backend.segment(tum01["water"]).labels)[0].array


def test_default_backend_is_the_bundled_model(backend) -> None:
    assert isinstance(backend, SegmentationBackend)
    onnx = bundled_model_dir() / "model.onnx"
    assert onnx.stat().st_size < 25 * 2**20
    provenance = backend.provenance
    assert provenance["weights_sha256"] == file_sha256(onnx)
    assert provenance["scheme"] == "lpm4" and provenance["device"] == "cpu" and provenance["model"] == "tum01_muscle"
    assert backend.scheme == load_scheme("lpm4")


def test_bundled_model_on_tum01_water_and_fat(backend, tum01, water_labels) -> None:
    """Regression guard on the model's own training case, not a claim of accuracy."""
    truth = tum01["labels"].array
    fat = keep_largest_component(backend.segment(tum01["fat"]).labels)[0].array
    for name, labels in (("water", water_labels), ("fat", fat)):
        scores = [_dice(labels, truth, v) for v in (1, 2, 3, 4)]
        assert np.mean(scores) > 0.9, (name, scores)
        assert min(scores) > 0.8, (name, scores)


def test_mirrored_affine_gives_labels_on_the_patients_sides(backend, tum01, water_labels) -> None:
    water = tum01["water"]
    mirrored = Image(water.array, np.diag([-1.0, 1.0, 1.0, 1.0]) @ water.affine)  # same array, patient mirrored
    labels = keep_largest_component(backend.segment(mirrored).labels)[0].array
    for value in (1, 2, 3, 4):
        assert _dice(labels, SWAP[water_labels], value) > 0.97, value  # sides swapped in the array...
        assert _dice(labels, SWAP[tum01["labels"].array], value) > 0.9, value

    def world_x(value: int) -> float:  # ...so that they stay on the patient's sides in world space
        ijk = np.argwhere(labels == value)
        return float(np.mean(ijk @ mirrored.affine[0, :3] + mirrored.affine[0, 3]))

    assert world_x(1) > world_x(2) > world_x(3) > world_x(4)  # +x = patient right: R ES, R MF, L MF, L ES


@pytest.mark.parametrize(("flips", "order"), [((True, False, False), (1, 0, 2)), ((False, True, True), (2, 1, 0))])
def test_storage_order_does_not_change_labels_in_world_space(backend, tum01, flips, order) -> None:
    slab = _slab(tum01["water"], 12, 16)
    reference = backend.segment(slab).labels.array
    array, affine = reorient(slab.array, slab.affine, flips=flips, order=order)
    labels = backend.segment(Image(array, affine)).labels
    assert labels.shape == array.shape
    np.testing.assert_array_equal(labels.affine, affine)
    expected, _ = reorient(reference, slab.affine, flips=flips, order=order)
    np.testing.assert_array_equal(labels.array, expected)


def test_coarser_input_is_resampled_and_mapped_back_onto_its_grid(backend, tum01) -> None:
    slab = _slab(tum01["water"], 10, 16)
    coarse = Image(slab.array[::2, ::2], slab.affine @ np.diag([2.0, 2.0, 1.0, 1.0]))  # 2.04 mm pixels
    seg = backend.segment(coarse)
    assert seg.provenance.info["resampled_inplane"] is True
    assert seg.labels.shape == (200, 200, 6)
    np.testing.assert_array_equal(seg.labels.affine, coarse.affine)
    truth = tum01["labels"].array[::2, ::2, 10:16]
    assert np.mean([_dice(seg.labels.array, truth, v) for v in (1, 2, 3, 4)]) > 0.8


# --- averaging neighbouring slices ---------------------------------------------------------------


def test_slice_smoothing_is_a_gaussian_in_mm() -> None:
    impulse = np.zeros((2, 11, 3), dtype=np.float32)
    impulse[:, 5, 1] = 1.0
    out = smooth_across_slices(impulse, slice_spacing_mm=4.0, sigma_mm=3.0, axis=1)[0, :, 1]
    # sigma 0.75 slices, reaching 2 sigma = 1.5 -> 2 slices either side
    weights = np.exp(-0.5 * (4.0 * np.arange(-2, 3) / 3.0) ** 2)
    np.testing.assert_allclose(out[3:8], weights / weights.sum(), rtol=1e-5)
    assert out[:3].sum() == 0 and out[8:].sum() == 0
    # the kernel is set in mm: half the spacing and half the sigma give the same weights per slice
    np.testing.assert_allclose(smooth_across_slices(impulse, slice_spacing_mm=2.0, sigma_mm=1.5, axis=1)[0, :, 1], out)
    assert smooth_across_slices(impulse, slice_spacing_mm=4.0, sigma_mm=0.0, axis=1) is impulse
    probs = np.random.default_rng(0).dirichlet(np.ones(5), size=(3, 4, 9))  # (x, y, z, C), sums to 1
    smoothed = smooth_across_slices(probs, slice_spacing_mm=1.0, sigma_mm=4.0, axis=2)
    np.testing.assert_allclose(smoothed.sum(axis=-1), 1.0)


def test_slice_smoothing_leaves_a_stack_of_identical_slices_alone(tum01) -> None:
    one = _slab(tum01["water"], 14, 15)
    stack = Image(np.repeat(one.array, 5, axis=2), one.affine)
    plain = UNetOnnxBackend(bundled_model_dir(), slice_sigma_mm=0.0).segment(stack).labels.array
    smoothed = UNetOnnxBackend(bundled_model_dir(), slice_sigma_mm=8.0).segment(stack)
    assert smoothed.provenance.model["slice_sigma_mm"] == 8.0
    np.testing.assert_array_equal(smoothed.labels.array, plain)
    assert np.all(plain == plain[:, :, :1])


def test_slice_smoothing_changes_only_uncertain_voxels_on_tum01(backend, tum01) -> None:
    slab = _slab(tum01["water"], 8, 20)
    plain = UNetOnnxBackend(bundled_model_dir(), slice_sigma_mm=0.0).segment(slab).labels.array
    smoothed = UNetOnnxBackend(bundled_model_dir(), slice_sigma_mm=4.0).segment(slab).labels.array
    changed = np.count_nonzero(plain != smoothed) / np.count_nonzero(plain | smoothed)
    assert 0.0 < changed < 0.05, changed
    truth = tum01["labels"].array[:, :, 8:20]
    for value in (1, 2, 3, 4):
        assert _dice(smoothed, truth, value) > _dice(plain, truth, value) - 0.01, value


# --- CLI -----------------------------------------------------------------------------------------


@pytest.fixture()
def slab_file(tmp_path, tum01) -> Path:
    slab = _slab(tum01["water"], 12, 15)
    return save_nifti(tmp_path / "sub-01_water.nii.gz", slab.array.astype(np.float32), slab.affine)


def test_cli_segment_writes_dseg_and_sidecar(tmp_path, slab_file, backend, capsys) -> None:
    out = tmp_path / "out"
    assert main(["segment", str(slab_file), "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "sub-01_water_dseg.json",
        "sub-01_water_dseg.nii.gz",
        "sub-01_water_quality.json",
    ]
    written = nib.load(out / "sub-01_water_dseg.nii.gz")
    source = read_image(slab_file)
    np.testing.assert_allclose(written.affine, source.affine, atol=1e-5)
    expected = keep_largest_component(backend.segment(source).labels)[0].array
    np.testing.assert_array_equal(np.asarray(written.dataobj), expected)
    sidecar = json.loads((out / "sub-01_water_dseg.json").read_text(encoding="utf-8"))
    assert (
        sidecar["scheme"] == "lpm4" and sidecar["provenance"]["weights_sha256"] == backend.provenance["weights_sha256"]
    )
    assert "right erector spinae" in capsys.readouterr().out
    named = tmp_path / "case_dseg.nii.gz"
    assert main(["segment", str(slab_file), "-o", str(named), "--no-tta", "-q"]) == 0
    assert named.is_file() and (tmp_path / "case_dseg.json").is_file()


def test_cli_segment_errors_are_one_line(tmp_path, slab_file, capsys) -> None:
    missing = tmp_path / "nope.nii.gz"
    assert main(["segment", str(missing), "-o", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err.strip() == f"paraspinal: error: {missing}: file not found"
    assert not (tmp_path / "out").exists()
    assert main(["segment", str(slab_file), "-o", str(tmp_path / "labels.nii.gz")]) == 2
    assert "_dseg" in capsys.readouterr().err
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert main(["segment", str(slab_file), "-o", str(tmp_path / "o2"), "--device", "cuda"]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("paraspinal: error: device 'cuda' requested but ONNX Runtime has no CUDA provider")
        assert "\n" not in err and not (tmp_path / "o2").exists()


# --- model folders -------------------------------------------------------------------------------


def test_model_folder_problems_are_one_line_errors(tmp_path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(bundled_model_dir(), folder)
    with (folder / "model.onnx").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(InputError) as info:
        UNetOnnxBackend(folder)
    assert str(info.value) == (
        f"{folder / 'model.onnx'}: weights do not match the sha256 in model.json (corrupt or replaced file)"
    )
    (folder / "model.json").unlink()
    with pytest.raises(InputError) as info:
        UNetOnnxBackend(folder)
    assert str(info.value) == f"{folder}: no model.json: not a paraspinal model folder"
    with pytest.raises(ParaspinalError, match="unknown device 'tpu'"):
        UNetOnnxBackend(bundled_model_dir(), device="tpu")
    shutil.rmtree(folder)
    shutil.copytree(bundled_model_dir(), folder)
    card = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    card["output"]["slice_sigma_mm"] = -2
    (folder / "model.json").write_text(json.dumps(card))
    with pytest.raises(InputError) as info:
        UNetOnnxBackend(folder)
    assert str(info.value) == f"{folder / 'model.json'}: output.slice_sigma_mm must be between 0 and 20 mm, got -2"
