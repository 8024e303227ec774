"""The helpers the backends share: model files read with one-line errors, the torch device, provenance."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from paraspinal import __version__
from paraspinal.backends.base import compact_labels, model_provenance
from paraspinal.backends.model_files import load_failure, model_folder, needs_model, read_json_object
from paraspinal.errors import InputError, ParaspinalError
from paraspinal.io.files import file_sha256


def test_file_sha256_is_the_sha256_of_the_bytes(tmp_path) -> None:
    path = tmp_path / "w.bin"
    path.write_bytes(b"x" * (3 << 20) + b"tail")
    assert file_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_model_files_errors_are_one_line(tmp_path) -> None:
    with pytest.raises(InputError, match="backend 'nnunet' needs --model: a folder"):
        needs_model(None, backend="nnunet", what="a folder")
    assert needs_model(tmp_path, backend="nnunet", what="a folder") == tmp_path
    with pytest.raises(InputError, match="model folder not found"):
        model_folder(tmp_path / "absent")
    card = tmp_path / "model.json"
    with pytest.raises(InputError) as info:
        read_json_object(card, what="model.json", missing="no model.json: not a model folder")
    assert str(info.value) == f"{tmp_path}: no model.json: not a model folder"
    card.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(InputError, match="must hold a JSON object"):
        read_json_object(card, what="model.json")
    card.write_text("{", encoding="utf-8")
    with pytest.raises(InputError, match="is not valid JSON"):
        read_json_object(card, what="model.json")
    card.write_text('{"a": 1}', encoding="utf-8")
    assert read_json_object(card, what="model.json") == {"a": 1}
    error = load_failure("the model", KeyError(), path=card)
    assert str(error) == f"{card}: cannot load the model (KeyError: KeyError)"


def test_compact_labels_and_provenance() -> None:
    assert compact_labels(np.array([0, 3], dtype=np.int64)).dtype == np.uint8
    assert compact_labels(np.array([0, 300], dtype=np.int64)).dtype == np.uint16
    assert compact_labels(np.zeros(0, dtype=np.int64)).dtype == np.uint8
    record = model_provenance("x", {"device": "cpu"}, libraries=("numpy",))
    assert list(record) == ["backend", "device", "numpy_version", "paraspinal_version"]
    assert record["numpy_version"] == np.__version__ and record["paraspinal_version"] == __version__


def test_torch_device_by_name() -> None:
    torch = pytest.importorskip("torch")
    from paraspinal.backends.torch_support import torch_device, torch_threads

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    assert torch_device("cpu").type == "cpu"
    assert torch_device("auto").type == ("cuda" if count else "cpu")
    with pytest.raises(ParaspinalError, match="unknown device 'tpu' \\(choose from cpu, cuda, auto\\)"):
        torch_device("tpu")
    with pytest.raises(InputError) as info:
        torch_device(f"cuda:{count}", instead="device = 'cpu'")
    expected = f"device 'cuda:{count}' is not available here ({count} CUDA device(s)); use device = 'cpu'"
    assert str(info.value) == expected
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
