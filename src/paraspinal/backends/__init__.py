"""Segmentation backends: one small protocol, many models (bundled ONNX U-Net, nnU-Net, ...)."""

from paraspinal.backends.base import BackendInfo, SegmentationBackend, Segmentation

__all__ = ["BackendInfo", "SegmentationBackend", "Segmentation"]
