"""`paraspinal train`: nnU-Net v2 raw datasets in, a self-describing model folder out."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from paraspinal.backends import UNetOnnxBackend, read_model_card  # noqa: E402
from paraspinal.errors import InputError, ParaspinalError  # noqa: E402
from paraspinal.io import Image  # noqa: E402
from paraspinal.io.files import file_sha256  # noqa: E402
from paraspinal.training import load_config  # noqa: E402
from paraspinal.training.dataset import read_dataset  # noqa: E402
from paraspinal.training.trainer import train  # noqa: E402
from tests.phantoms import ras_affine, save_nifti  # noqa: E402

TINY = """
[training]
scheme = "lpm4"
seed = 3
epochs = 3
steps_per_epoch = 8
batch_size = 4
learning_rate = 0.01
threads = 1
[model]
base_channels = 4
max_channels = 16
levels = 3
[augment]
crop_px = 32
"""
LABELS = {"background": 0, "ES_R": 1, "MF_R": 2, "MF_L": 3, "ES_L": 4}


def _phantom(seed: int, shape: tuple[int, int, int] = (40, 40, 3)) -> tuple[np.ndarray, np.ndarray]:
    """A body ellipse with four muscles, lpm4 values, RAS+ storage (high i = patient right)."""
    rng = np.random.default_rng(seed)
    i, j = np.mgrid[0 : shape[0], 0 : shape[1]]
    cx, cy = 20 + rng.integers(-2, 3), 20 + rng.integers(-2, 3)
    body = ((i - cx) / 17.0) ** 2 + ((j - cy) / 12.0) ** 2 < 1
    labels2d = np.zeros(shape[:2], dtype=np.int16)
    for value, dx in ((1, 9), (2, 3), (3, -3), (4, -9)):
        labels2d[(np.abs(i - cx - dx) < 3) & (np.abs(j - cy + 5) < 4)] = value
    image2d = 100.0 * body + 150.0 * (labels2d > 0) + 40.0 * (labels2d % 2)
    labels = np.repeat(labels2d[:, :, None], shape[2], axis=2)
    image = np.repeat(image2d[:, :, None], shape[2], axis=2) + rng.normal(0, 5, shape)
    return image.astype(np.float32), labels


def _dataset(root: Path, *, cases: int = 2, channels: int = 1) -> Path:
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    affine = ras_affine((1.0, 1.0, 4.0))
    for n in range(cases):
        image, labels = _phantom(n)
        for c in range(channels):
            save_nifti(root / "imagesTr" / f"case{n}_{c:04d}.nii.gz", image * (1 + c), affine)
        save_nifti(root / "labelsTr" / f"case{n}.nii.gz", labels, affine)
    meta = {"channel_names": {str(c): f"ch{c}" for c in range(channels)}, "labels": LABELS, "file_ending": ".nii.gz"}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


@pytest.fixture()
def tiny_config(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


def test_training_lowers_the_loss_and_writes_a_self_describing_folder(tmp_path, tiny_config) -> None:
    dataset = _dataset(tmp_path / "ds")
    config = load_config(tiny_config, validation_cases=["case1"])
    result = train(dataset, tmp_path / "model", config=config)
    assert result.losses[-1] < result.losses[0]
    assert sorted(p.name for p in result.model_dir.iterdir()) == [
        "model.json",
        "model.onnx",
        "model.safetensors",
        "training_log.json",
    ]
    card = json.loads((result.model_dir / "model.json").read_text(encoding="utf-8"))
    assert card["weights"]["onnx_sha256"] == file_sha256(result.model_dir / "model.onnx")
    assert card["weights"]["safetensors_sha256"] == file_sha256(result.model_dir / "model.safetensors")
    assert card["output"]["scheme"] == "lpm4" and card["output"]["class_values"] == [0, 1, 2, 3, 4]
    assert card["input"]["axcodes"] == ["R", "A", "S"] and card["input"]["spacing_mm"] == [1.0, 1.0]
    assert card["architecture"]["base_channels"] == 4 and card["training"]["cases"] == ["case0", "case1"]
    assert set(card["training"]["validation"]["final_dice"]) == {"case1/ch0"}
    assert len(result.dice) == 3 and set(result.dice[-1]["case1/ch0"]) == {1, 2, 3, 4}
    assert read_model_card(result.model_dir).class_values == (0, 1, 2, 3, 4)


def test_training_is_deterministic_for_a_seed(tmp_path, tiny_config) -> None:
    dataset = _dataset(tmp_path / "ds", cases=1)
    config = load_config(tiny_config, epochs=1)
    first = train(dataset, tmp_path / "a", config=config)
    second = train(dataset, tmp_path / "b", config=config)
    assert first.losses == second.losses
    assert file_sha256(tmp_path / "a" / "model.safetensors") == file_sha256(tmp_path / "b" / "model.safetensors")
    other = train(dataset, tmp_path / "c", config=load_config(tiny_config, epochs=1, seed=4))
    assert other.losses != first.losses


def test_a_stopped_run_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path, tiny_config) -> None:
    dataset = _dataset(tmp_path / "ds")
    config = load_config(tiny_config, validation_cases=["case1"], ema_decay=0.9)
    whole = train(dataset, tmp_path / "whole", config=config)

    class Stop(Exception):
        pass

    def stop_after_the_first_epoch(epoch: int, loss: float, dice: object) -> None:
        if epoch == 0:
            raise Stop  # a job killed by its time limit, say

    cut = tmp_path / "cut"
    with pytest.raises(Stop):
        train(dataset, cut, config=config, on_epoch=stop_after_the_first_epoch)
    assert [p.name for p in cut.iterdir()] == ["checkpoint.pt"]
    with pytest.raises(InputError) as info:
        train(dataset, cut, config=config)
    assert str(info.value) == (
        f"{cut}: output folder holds an unfinished training (checkpoint.pt): continue it with --resume, "
        "or choose another folder"
    )
    other = load_config(tiny_config, validation_cases=["case1"], ema_decay=0.9, learning_rate=0.02)
    with pytest.raises(InputError) as info:
        train(dataset, cut, config=other, resume=True)
    assert str(info.value) == f"{cut / 'checkpoint.pt'}: was written by a different run (learning_rate: 0.01 -> 0.02)"
    resumed = train(dataset, cut, config=config, resume=True)
    assert len(resumed.losses) == 3 and resumed.losses == whole.losses and resumed.dice == whole.dice
    assert file_sha256(cut / "model.safetensors") == file_sha256(tmp_path / "whole" / "model.safetensors")
    assert sorted(p.name for p in cut.iterdir()) == [
        "model.json",
        "model.onnx",
        "model.safetensors",
        "training_log.json",
    ]
    # --resume with nothing to resume starts afresh
    fresh = train(dataset, tmp_path / "fresh", config=config, resume=True)
    assert fresh.losses == whole.losses


def test_weight_averaging_leaves_training_alone_and_writes_the_averaged_weights(tmp_path, tiny_config) -> None:
    from safetensors.numpy import load_file

    dataset = _dataset(tmp_path / "ds", cases=1)
    plain = train(dataset, tmp_path / "plain", config=load_config(tiny_config, epochs=1))
    averaged = train(dataset, tmp_path / "ema", config=load_config(tiny_config, epochs=1, ema_decay=0.9))
    assert averaged.losses == plain.losses  # the average is kept beside the trajectory, not in it
    assert averaged.card["training"]["config"]["ema_decay"] == 0.9
    a = load_file(str(tmp_path / "plain" / "model.safetensors"))
    b = load_file(str(tmp_path / "ema" / "model.safetensors"))
    assert not all(np.allclose(a[k], b[k]) for k in a)
    # a decay of (almost) zero averages nothing: the written weights are the last step's
    train(dataset, tmp_path / "last", config=load_config(tiny_config, epochs=1, ema_decay=1e-12))
    c = load_file(str(tmp_path / "last" / "model.safetensors"))
    assert all(np.allclose(a[k], c[k], atol=1e-6) for k in a)


def test_a_validation_case_with_a_twin_in_training_is_reported(tmp_path, tiny_config) -> None:
    """One scan saved under two ids (as in the public sagittal spine set): validating on one copy while
    training on the other leaks; the trainer warns and the model card records the pair."""
    dataset = _dataset(tmp_path / "ds", cases=2)
    for folder, suffix in (("imagesTr", "_0000.nii.gz"), ("labelsTr", ".nii.gz")):
        shutil.copy(dataset / folder / f"case0{suffix}", dataset / folder / f"twin{suffix}")
    config = load_config(tiny_config, epochs=1, validation_cases=["twin"])
    with pytest.warns(UserWarning, match=r"validation case 'twin' holds the same image and labels as training "
                      r"case\(s\) \['case0'\]"):  # fmt: skip
        leaky = train(dataset, tmp_path / "leaky", config=config)
    assert leaky.card["training"]["validation"]["twins_in_training"] == {"twin": ["case0"]}
    together = train(
        dataset, tmp_path / "ok", config=load_config(tiny_config, epochs=1, validation_cases=["twin", "case0"])
    )
    assert together.card["training"]["validation"]["twins_in_training"] == {}


def test_bad_weight_averaging_decay_is_refused(tmp_path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[training]\nema_decay = 1.5\n")
    with pytest.raises(InputError, match=r"ema_decay must be between 0 and 1 \(exclusive\), got 1.5"):
        load_config(path)


def test_slice_smoothing_goes_from_the_config_into_the_model_card_and_the_backend(tmp_path, tiny_config) -> None:
    tiny_config.write_text(TINY + "[inference]\nslice_sigma_mm = 4.0\n")
    result = train(_dataset(tmp_path / "ds", cases=1), tmp_path / "m", config=load_config(tiny_config, epochs=1))
    assert result.card["output"]["slice_sigma_mm"] == 4.0
    assert read_model_card(result.model_dir).slice_sigma_mm == 4.0
    assert UNetOnnxBackend(result.model_dir).provenance["slice_sigma_mm"] == 4.0
    assert UNetOnnxBackend(result.model_dir, slice_sigma_mm=0).provenance["slice_sigma_mm"] == 0.0


def test_a_2_5d_model_is_trained_and_applied_on_each_slice_with_its_neighbours(tmp_path, tiny_config) -> None:
    import onnxruntime as ort

    from paraspinal.preprocessing import context_slices, percentile_scale

    tiny_config.write_text(TINY + "[input]\ncontext_mm = 4.0\n")
    result = train(_dataset(tmp_path / "ds", cases=1), tmp_path / "m", config=load_config(tiny_config, epochs=1))
    assert result.card["input"]["context_mm"] == 4.0 and result.card["architecture"]["in_channels"] == 3
    session = ort.InferenceSession(str(result.model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[1] == 3
    # 2 mm slices: the model's +-4 mm are two slices away. The phantom fills the crop box and needs no
    # padding or resampling, so the backend must give exactly the argmax of the ONNX model on the stack.
    image, _ = _phantom(7, shape=(40, 40, 6))
    image[:, :, 3] *= 2.5  # make the neighbours matter
    labels = (
        UNetOnnxBackend(result.model_dir, test_time_flip=False)
        .segment(Image(image, ras_affine((1.0, 1.0, 2.0))))
        .labels.array
    )
    scaled = percentile_scale(image, lower_percentile=0.5, upper_percentile=99.5)
    stack = context_slices(scaled, range(6), slice_spacing_mm=2.0, context_mm=4.0)
    np.testing.assert_array_equal(stack[1, :, 0, 0], scaled[0, 0, [0, 1, 3]])
    logits = session.run(None, {"image": stack})[0]
    np.testing.assert_array_equal(labels, np.moveaxis(logits.argmax(axis=1), 0, 2))
    # the same image with 4 mm slices: the neighbours are then the adjacent slices
    assert not np.allclose(
        logits, session.run(None, {"image": context_slices(scaled, range(6), slice_spacing_mm=4.0, context_mm=4.0)})[0]
    )


def test_bad_context_is_refused(tmp_path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[input]\ncontext_mm = 25.0\n")
    with pytest.raises(InputError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: context_mm must be between 0 and 20 mm, got 25"


def test_augmenting_a_slice_stack_changes_every_channel_alike() -> None:
    from paraspinal.training.augment import AugmentConfig, augment_slice

    image, labels = _phantom(1, shape=(40, 40, 1))
    flat = (image[:, :, 0] - image.min()) / np.ptp(image)
    config = AugmentConfig(  # noise is drawn per voxel, so per channel: off here
        crop_px=32, blur_probability=1.0, lowres_probability=1.0, bias_probability=1.0, noise_probability=0.0
    )
    one, classes = augment_slice(
        flat, labels[:, :, 0], rng=np.random.default_rng(5), config=config, swap_lut=np.arange(5), lr_axis=0
    )
    three, classes3 = augment_slice(
        np.stack([flat, flat, flat]),
        labels[:, :, 0],
        rng=np.random.default_rng(5),
        config=config,
        swap_lut=np.arange(5),
        lr_axis=0,
    )
    assert one.shape == (32, 32) and three.shape == (3, 32, 32)
    np.testing.assert_array_equal(classes, classes3)
    for channel in three:
        np.testing.assert_allclose(channel, one, atol=1e-6)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[inference]\nslice_sigma_mm = -1.0\n", "slice_sigma_mm must be between 0 and 20 mm, got -1"),
        ("[inference]\nsigma = 1.0\n", "unknown key(s) ['sigma'] in [inference] (known: slice_sigma_mm)"),
        (
            "[inferens]\nslice_sigma_mm = 1.0\n",
            "unknown table(s) ['inferens'] (known: training, model, input, augment, inference)",
        ),
        ('[training]\nprecision = "float16"\n', "precision must be one of ['float32', 'bfloat16'], got 'float16'"),
        ('[training]\ndevice = "gpu"\n', "device must be 'cpu', 'cuda' or 'cuda:N', got 'gpu'"),
        ("[augment]\nfov_cut_probability = 0.3\n", 'fov_cut_probability > 0 needs fov_cut_sides (e.g. ["S"])'),
        (
            '[input]\naxcodes = ["P", "S", "R"]\n[augment]\nfov_cut_probability = 0.3\nfov_cut_sides = ["R"]\n',
            "fov_cut_sides: 'R' runs across the slices (in-plane axes PS)",
        ),
        ('[augment]\nfov_cut_sides = ["up"]\n', "fov_cut_sides: 'up' is not one of R, L, A, P, S, I"),
        (
            "[augment]\nfov_cut_max_fraction = 1.5\n",
            "fov_cut_max_fraction must be between 0 and 1 (exclusive), got 1.5",
        ),
    ],
)
def test_bad_config_options_are_refused(tmp_path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: {message}"


def test_onnx_and_pytorch_outputs_agree(tmp_path, tiny_config) -> None:
    from paraspinal.training.export import load_safetensors
    from paraspinal.training.unet import UNet2D, UNetConfig

    result = train(_dataset(tmp_path / "ds", cases=1), tmp_path / "m", config=load_config(tiny_config, epochs=1))
    arch = {k: v for k, v in result.card["architecture"].items() if k != "name"}
    model = load_safetensors(UNet2D(UNetConfig(**arch)), result.model_dir / "model.safetensors").eval()
    x = np.random.default_rng(0).random((3, 1, 48, 64)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    import onnxruntime as ort

    session = ort.InferenceSession(str(result.model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    actual = session.run(None, {"image": x})[0]
    assert actual.shape == (3, 5, 48, 64)
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4)


def test_trained_model_runs_through_the_backend_on_the_input_grid(tmp_path, tiny_config) -> None:
    result = train(_dataset(tmp_path / "ds", cases=1), tmp_path / "m", config=load_config(tiny_config, epochs=1))
    image, _ = _phantom(7, shape=(44, 36, 2))
    affine = ras_affine((1.0, 1.0, 4.0), (3.0, 4.0, 5.0))
    seg = UNetOnnxBackend(result.model_dir).segment(Image(image, affine))
    assert seg.labels.shape == (44, 36, 2)
    np.testing.assert_array_equal(seg.labels.affine, affine)
    assert set(np.unique(seg.labels.array)) <= {0, 1, 2, 3, 4}
    assert seg.scheme.key == "lpm4" and seg.provenance.model["weights_sha256"] == result.card["weights"]["onnx_sha256"]


def test_existing_output_folder_is_refused(tmp_path, tiny_config) -> None:
    out = tmp_path / "m"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(InputError, match="output folder exists and is not empty"):
        train(_dataset(tmp_path / "ds", cases=1), out, config=load_config(tiny_config))
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_a_users_scheme_file_travels_with_the_model(tmp_path, tiny_config) -> None:
    from importlib.resources import files

    lpm4 = files("paraspinal.anatomy").joinpath("data", "schemes", "lpm4.toml").read_text(encoding="utf-8")
    scheme_file = tmp_path / "my_scheme.toml"
    scheme_file.write_text(lpm4.replace('key = "lpm4"', 'key = "my_muscles"'))
    config = load_config(tiny_config, epochs=1, scheme=str(scheme_file))
    result = train(_dataset(tmp_path / "ds", cases=1), tmp_path / "m", config=config)
    assert result.card["output"]["scheme_file"] == "scheme.toml"
    scheme_file.unlink()  # the model folder no longer needs the original
    assert UNetOnnxBackend(result.model_dir).scheme.key == "my_muscles"


# --- malformed datasets: one line each, exact messages ----------------------------------------


def _load(root: Path, tiny_config: Path, tmp_path: Path) -> str:
    with pytest.raises(ParaspinalError) as info:
        train(root, tmp_path / "never", config=load_config(tiny_config))
    assert not (tmp_path / "never").exists()
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_dataset_json(tmp_path, tiny_config) -> None:
    root = _dataset(tmp_path / "ds")
    (root / "dataset.json").unlink()
    assert _load(root, tiny_config, tmp_path) == (
        f"{root}: no dataset.json; expected an nnU-Net v2 raw dataset (dataset.json, imagesTr/, labelsTr/)"
    )


def test_undeclared_label_values(tmp_path, tiny_config) -> None:
    root = _dataset(tmp_path / "ds")
    _image, labels = _phantom(0)
    labels[0, 0, 0] = 7
    save_nifti(root / "labelsTr" / "case0.nii.gz", labels, ras_affine((1.0, 1.0, 4.0)))
    assert _load(root, tiny_config, tmp_path) == (
        f"{root / 'labelsTr' / 'case0.nii.gz'}: label values [7] are not declared in dataset.json labels "
        "(declared: 0, 1, 2, 3, 4)"
    )


def test_channel_count_mismatch(tmp_path, tiny_config) -> None:
    root = _dataset(tmp_path / "ds", channels=2)
    (root / "imagesTr" / "case1_0001.nii.gz").unlink()
    assert _load(root, tiny_config, tmp_path) == (
        f"{root / 'imagesTr'}: case 'case1' has 1 channel file(s) (_0000) but dataset.json declares 2 channel(s)"
    )


def test_image_label_shape_mismatch(tmp_path, tiny_config) -> None:
    root = _dataset(tmp_path / "ds")
    image, _ = _phantom(1, shape=(40, 36, 3))
    save_nifti(root / "imagesTr" / "case1_0000.nii.gz", image, ras_affine((1.0, 1.0, 4.0)))
    assert _load(root, tiny_config, tmp_path) == (
        f"{root / 'imagesTr' / 'case1_0000.nii.gz'}: image shape (40, 36, 3) does not match label shape "
        "(40, 40, 3) of case1.nii.gz"
    )


def test_labels_outside_the_scheme_and_missing_scheme(tmp_path, tiny_config) -> None:
    root = _dataset(tmp_path / "ds")
    meta = json.loads((root / "dataset.json").read_text(encoding="utf-8"))
    meta["labels"]["extra"] = 9
    (root / "dataset.json").write_text(json.dumps(meta))
    assert _load(root, tiny_config, tmp_path) == (
        f"{root / 'dataset.json'}: label values [9] are not in scheme 'lpm4' (known: 1, 2, 3, 4)"
    )
    no_scheme = tmp_path / "noscheme.toml"
    no_scheme.write_text(TINY.replace('scheme = "lpm4"', ""))
    with pytest.raises(InputError, match="label scheme is required"):
        train(root, tmp_path / "never", config=load_config(no_scheme))


def test_multichannel_cases_become_single_channel_images(tmp_path) -> None:
    info = read_dataset(_dataset(tmp_path / "ds", channels=2))
    assert info.channel_names == ("ch0", "ch1") and [c.case_id for c in info.cases] == ["case0", "case1"]
    assert all(len(c.images) == 2 for c in info.cases)


# --- CLI ---------------------------------------------------------------------------------------


def _interrupt(epoch: int, loss: float, dice: object) -> None:
    raise KeyboardInterrupt


def test_cli_train_end_to_end(tmp_path, tiny_config, capsys) -> None:
    import paraspinal.cli.train_cmd  # noqa: F401
    from paraspinal.cli.main import main

    dataset = _dataset(tmp_path / "ds")
    code = main(["train", str(dataset), "-o", str(tmp_path / "m"), "-c", str(tiny_config), "--epochs", "2", "-q"])
    assert code == 0
    assert json.loads((tmp_path / "m" / "model.json").read_text(encoding="utf-8"))["training"]["epochs_run"] == 2
    # a job stopped after its first epoch, finished by `paraspinal train --resume`
    with pytest.raises(KeyboardInterrupt):
        train(dataset, tmp_path / "r", config=load_config(tiny_config, epochs=2), on_epoch=_interrupt)
    code = main(["train", str(dataset), "-o", str(tmp_path / "r"), "-c", str(tiny_config), "--epochs", "2", "--resume"])
    assert code == 0 and "epoch 2/2" in capsys.readouterr().out
    assert file_sha256(tmp_path / "r" / "model.onnx") == file_sha256(tmp_path / "m" / "model.onnx")
    shutil.rmtree(dataset / "labelsTr")
    code = main(["train", str(dataset), "-o", str(tmp_path / "m2"), "-c", str(tiny_config)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip() == f"paraspinal: error: {dataset}: missing folder labelsTr/"


def test_cli_train_names_missing_training_packages(tmp_path, monkeypatch, capsys) -> None:
    import importlib.util

    import paraspinal.cli.train_cmd  # noqa: F401
    from paraspinal.cli.main import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "onnx" else real(name))
    assert main(["train", str(tmp_path), "-o", str(tmp_path / "m")]) == 1
    assert capsys.readouterr().err.strip() == (
        "paraspinal: error: paraspinal train needs onnx (not installed): pip install 'paraspinal[train]'"
    )
