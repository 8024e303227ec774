"""Segmentation backends: one small protocol, many models (bundled ONNX U-Net, nnU-Net, ...)."""

from paraspinal.backends.base import BackendInfo, Segmentation, SegmentationBackend
from paraspinal.backends.default import bundled_model_dir, default_backend
from paraspinal.backends.unet_onnx import ModelCard, UNetOnnxBackend, read_model_card

__all__ = [
    "BackendInfo",
    "ModelCard",
    "Segmentation",
    "SegmentationBackend",
    "UNetOnnxBackend",
    "bundled_model_dir",
    "default_backend",
    "read_model_card",
]
