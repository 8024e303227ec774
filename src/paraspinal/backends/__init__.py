"""Segmentation backends: one small protocol, many models (bundled ONNX U-Net, nnU-Net, ...).

The catalog (:mod:`paraspinal.backends.catalog`) is the one place that turns a backend name and model
folder (or nothing: the bundled model of a role: muscle or spine) into a loaded backend. Importing this package loads no
model runtime; :class:`UNetOnnxBackend` and friends are imported when first named.
"""

from paraspinal.backends.base import BackendInfo, SegmentationBackend, segment_on_grid, segmentation
from paraspinal.backends.bundled import BUNDLED_MODELS, ROLES, Role, bundled_model_dir

__all__ = [
    "BUNDLED_MODELS",
    "ROLES",
    "BackendInfo",
    "ModelCard",
    "Role",
    "SegmentationBackend",
    "UNetOnnxBackend",
    "bundled_model_dir",
    "read_model_card",
    "segment_on_grid",
    "segmentation",
]

_LAZY = {"ModelCard", "UNetOnnxBackend", "read_model_card"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        from paraspinal.backends import unet_onnx

        return getattr(unet_onnx, name)
    raise AttributeError(f"module 'paraspinal.backends' has no attribute {name!r}")
