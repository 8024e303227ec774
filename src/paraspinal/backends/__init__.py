"""Segmentation backends: one small protocol, many models (bundled ONNX U-Net, nnU-Net, ...).

The catalog (:mod:`paraspinal.backends.catalog`) is the one place that turns a backend name and model
folder (or nothing: the bundled model of a role: muscle or spine) into a loaded backend. Importing this package
imports nothing (lazy re-exports); no model runtime loads until a backend is built.
"""

from paraspinal._lazy import lazy_exports

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

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "BackendInfo": "paraspinal.backends.base",
        "SegmentationBackend": "paraspinal.backends.base",
        "segment_on_grid": "paraspinal.backends.base",
        "segmentation": "paraspinal.backends.base",
        "BUNDLED_MODELS": "paraspinal.backends.bundled",
        "ROLES": "paraspinal.backends.bundled",
        "Role": "paraspinal.backends.bundled",
        "bundled_model_dir": "paraspinal.backends.bundled",
        "ModelCard": "paraspinal.backends.unet_onnx",
        "UNetOnnxBackend": "paraspinal.backends.unet_onnx",
        "read_model_card": "paraspinal.backends.unet_onnx",
    },
)
