"""Load a recipe script (recipes/ is not a package) as a module for its tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def load_recipe(relative: str) -> ModuleType:
    """The module of ``recipes/<relative>`` (e.g. ``"lumbar_spine/add_t2_bodies.py"``)."""
    path = RECIPES / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
