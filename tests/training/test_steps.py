"""`paraspinal train` number format and device: bfloat16 autocast steps, float32 weights and model out."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from paraspinal.backends import UNetOnnxBackend  # noqa: E402
from paraspinal.errors import InputError  # noqa: E402
from paraspinal.io.files import file_sha256  # noqa: E402
from paraspinal.training import load_config  # noqa: E402
from paraspinal.training.trainer import train  # noqa: E402
from tests.training.test_trainer import TINY, _dataset  # noqa: E402


@pytest.fixture()
def tiny_config(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


def test_bfloat16_steps_learn_and_write_a_float32_model(tmp_path, tiny_config) -> None:
    dataset = _dataset(tmp_path / "ds")
    fp32 = train(dataset, tmp_path / "fp32", config=load_config(tiny_config, validation_cases=["case1"]))
    config = load_config(tiny_config, validation_cases=["case1"], precision="bfloat16")
    bf16 = train(dataset, tmp_path / "bf16", config=config)
    again = train(dataset, tmp_path / "again", config=config)
    # autocast is active (other numbers than float32), deterministic on the CPU, and it still learns
    assert bf16.losses != fp32.losses and bf16.losses == again.losses
    assert bf16.losses[-1] < bf16.losses[0]
    assert abs(bf16.losses[0] - fp32.losses[0]) < 0.05  # same first batch: bfloat16 rounding only
    assert file_sha256(tmp_path / "bf16" / "model.onnx") == file_sha256(tmp_path / "again" / "model.onnx")
    assert bf16.card["training"]["config"]["precision"] == "bfloat16"
    graph = onnx.load(str(tmp_path / "bf16" / "model.onnx")).graph
    assert {init.data_type for init in graph.initializer} == {onnx.TensorProto.FLOAT}
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    # validation Dice is measured in float32 and the model runs through the ONNX backend unchanged
    assert set(bf16.dice[-1]["case1/ch0"]) == {1, 2, 3, 4}
    assert UNetOnnxBackend(tmp_path / "bf16").provenance["model"] == "paraspinal_unet"


def test_a_run_is_not_resumed_in_another_precision(tmp_path, tiny_config) -> None:
    dataset = _dataset(tmp_path / "ds", cases=1)

    class Stop(Exception):
        pass

    def stop(epoch: int, loss: float, dice: object) -> None:
        raise Stop

    cut = tmp_path / "cut"
    with pytest.raises(Stop):
        train(dataset, cut, config=load_config(tiny_config), on_epoch=stop)
    with pytest.raises(InputError) as info:
        train(dataset, cut, config=load_config(tiny_config, precision="bfloat16"), resume=True)
    assert str(info.value) == (
        f"{cut / 'checkpoint.pt'}: was written by a different run (precision: 'float32' -> 'bfloat16')"
    )


def test_an_absent_gpu_is_named_before_training(tmp_path, tiny_config) -> None:
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    out = tmp_path / "m"
    with pytest.raises(InputError) as info:
        train(_dataset(tmp_path / "ds", cases=1), out, config=load_config(tiny_config, device=f"cuda:{count}"))
    assert str(info.value) == (
        f"device 'cuda:{count}' is not available here ({count} CUDA device(s)); use device = 'cpu'"
    )
    assert not out.exists()


def test_cli_train_takes_precision_and_device(tmp_path, tiny_config, capsys) -> None:
    import paraspinal.cli.train_cmd  # noqa: F401
    from paraspinal.cli.main import main
    from paraspinal.training.steps import bfloat16_problem

    dataset = _dataset(tmp_path / "ds", cases=1)
    args = ["train", str(dataset), "-o", str(tmp_path / "m"), "-c", str(tiny_config), "--epochs", "1", "-q"]
    assert main([*args, "--precision", "bfloat16", "--device", "cpu"]) == 0
    problem = bfloat16_problem(torch.device("cpu"))  # this machine's CPU: emulated (AVX2) or native (AVX-512 BF16)
    warning = f"paraspinal: warning: {problem}; use --precision float32\n"
    assert capsys.readouterr().err == ("" if problem is None else warning)
    card = json.loads((tmp_path / "m" / "model.json").read_text(encoding="utf-8"))
    assert card["training"]["config"]["precision"] == "bfloat16" and card["training"]["config"]["device"] == "cpu"
    x = np.zeros((1, 1, 32, 32), dtype=np.float32)
    import onnxruntime as ort

    session = ort.InferenceSession(str(tmp_path / "m" / "model.onnx"), providers=["CPUExecutionProvider"])
    assert session.run(None, {"image": x})[0].dtype == np.float32


def test_bfloat16_problem_follows_what_the_cpu_supports() -> None:
    from paraspinal.training.steps import bfloat16_problem

    native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    problem = bfloat16_problem(torch.device("cpu"))
    assert (problem is None) == native
    if problem is not None:
        assert torch.backends.cpu.get_cpu_capability() in problem and "10x slower than float32" in problem
    assert bfloat16_problem(torch.device("meta")) is None  # no CPU or GPU to ask


def test_class_weights_raise_the_cost_of_missing_the_weighted_class() -> None:
    from paraspinal.training.steps import segmentation_loss

    target = torch.zeros((1, 4, 4), dtype=torch.int64)
    target[0, :2] = 2
    logits = torch.zeros((1, 3, 4, 4))
    logits[0, 0] = 3.0  # predicts background everywhere: the class-2 half is wrong
    plain = segmentation_loss(logits, target)
    weighted = segmentation_loss(logits, target, class_weights=torch.tensor([1.0, 1.0, 3.0]))
    assert float(weighted) > float(plain) + 0.5


def test_synthesised_contrasts_and_class_weights_train_and_are_recorded(tmp_path, tiny_config) -> None:
    dataset = _dataset(tmp_path / "ds", channels=2)
    extra = "\nsynth_probability = 1.0\nthick_slice_probability = 0.5\nsynth_tissue_classes = 3\n"
    path = tmp_path / "synth.toml"
    path.write_text(
        tiny_config.read_text(encoding="utf-8")
        .replace("[augment]\n", "[augment]" + extra)
        .replace('scheme = "lpm4"\n', 'scheme = "lpm4"\nclass_weights = { "2" = 1.5, "3" = 1.5 }\n'),
        encoding="utf-8",
    )
    result = train(dataset, tmp_path / "model", config=load_config(path))
    config = json.loads((result.model_dir / "model.json").read_text(encoding="utf-8"))["training"]["config"]
    assert config["augment"]["synth_probability"] == 1.0 and config["class_weights"] == [[2, 1.5], [3, 1.5]]
    assert result.losses[-1] < result.losses[0]


def test_class_weights_for_labels_the_dataset_lacks_are_refused(tmp_path, tiny_config) -> None:
    dataset = _dataset(tmp_path / "ds")
    path = tmp_path / "w.toml"
    path.write_text(
        tiny_config.read_text(encoding="utf-8").replace(
            'scheme = "lpm4"\n', 'scheme = "lpm4"\nclass_weights = { "7" = 2 }\n'
        ),
        encoding="utf-8",
    )
    with pytest.raises(InputError, match=r"class_weights names label values \[7\] that the dataset does not declare"):
        train(dataset, tmp_path / "model", config=load_config(path))
