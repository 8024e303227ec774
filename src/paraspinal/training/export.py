"""Save a trained network: ONNX for inference (no torch needed), safetensors for reuse; never pickles."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from paraspinal.training.unet import UNet2D

ONNX_OPSET = 17


def export_onnx(model: UNet2D, path: Path) -> Path:
    """Write ``model`` as ONNX with input ``image`` (batch, 1, H, W) and output ``logits``; H, W and batch dynamic."""
    model = model.eval()
    size = 2 * model.config.size_multiple
    example = torch.zeros(1, model.config.in_channels, size, size)
    dynamic = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        # The TorchScript exporter warns that it is legacy, and that instance norm uses input statistics
        # (which is what instance norm does at inference too); neither changes the exported graph.
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=UserWarning)
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": dynamic, "logits": dynamic},
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    return path


def save_safetensors(model: UNet2D, path: Path) -> Path:
    """Write the state dict as safetensors (tensors only: safe to load, unlike pickles)."""
    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def load_safetensors(model: UNet2D, path: Path) -> UNet2D:
    """Load weights saved by :func:`save_safetensors` into ``model`` (same architecture)."""
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(path)))
    return model
