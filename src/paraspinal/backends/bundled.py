"""The models shipped inside the package: one per role (what a model is for), each the catalog's default.

``muscle``: ``tum01_muscle`` (axial paraspinal muscles, scheme ``lpm4``); ``spine``: ``lumbar_spine`` (sagittal
vertebral bodies L1-L5, scheme ``lumbar_bodies``). Both run on the ``unet_onnx`` backend.
"""

from __future__ import annotations

from importlib.resources import as_file, files
from pathlib import Path
from typing import Literal

__all__ = ["BUNDLED_MODELS", "ROLES", "Role", "bundled_model_dir"]

Role = Literal["muscle", "spine"]
ROLES: tuple[Role, ...] = ("muscle", "spine")
BUNDLED_MODELS: dict[Role, str] = {"muscle": "tum01_muscle", "spine": "lumbar_spine"}


def bundled_model_dir(role: Role = "muscle") -> Path:
    """Folder of the model shipped for ``role`` (``paraspinal/models/<name>``)."""
    with as_file(files("paraspinal").joinpath("models", BUNDLED_MODELS[role])) as folder:
        return Path(folder)
