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


def test_cli_train_takes_precision_and_device(tmp_path, tiny_config) -> None:
    import paraspinal.cli.train_cmd  # noqa: F401
    from paraspinal.cli.main import main

    dataset = _dataset(tmp_path / "ds", cases=1)
    args = ["train", str(dataset), "-o", str(tmp_path / "m"), "-c", str(tiny_config), "--epochs", "1", "-q"]
    assert main([*args, "--precision", "bfloat16", "--device", "cpu"]) == 0
    card = json.loads((tmp_path / "m" / "model.json").read_text(encoding="utf-8"))
    assert card["training"]["config"]["precision"] == "bfloat16" and card["training"]["config"]["device"] == "cpu"
    x = np.zeros((1, 1, 32, 32), dtype=np.float32)
    import onnxruntime as ort

    session = ort.InferenceSession(str(tmp_path / "m" / "model.onnx"), providers=["CPUExecutionProvider"])
    assert session.run(None, {"image": x})[0].dtype == np.float32
