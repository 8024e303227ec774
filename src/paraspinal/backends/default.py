"""The default segmentation backend: the bundled ``tum01_muscle`` U-Net (lpm4 scheme), offline."""

from __future__ import annotations

from importlib.resources import as_file, files
from pathlib import Path

from paraspinal.backends.unet_onnx import UNetOnnxBackend

DEFAULT_MODEL = "tum01_muscle"


def bundled_model_dir(name: str = DEFAULT_MODEL) -> Path:
    """Folder of a model shipped inside the package (``paraspinal/models/<name>``)."""
    with as_file(files("paraspinal").joinpath("models", name)) as folder:
        return Path(folder)


def default_backend(*, device: str = "cpu", test_time_flip: bool = True, threads: int | None = None) -> UNetOnnxBackend:
    """The bundled muscle model as a loaded backend (weights read and checked once)."""
    return UNetOnnxBackend(bundled_model_dir(), device=device, test_time_flip=test_time_flip, threads=threads)
