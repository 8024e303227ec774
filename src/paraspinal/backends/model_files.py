"""A model's files read with one-line errors: ``--model`` itself, the model folder, its JSON documents (model
cards, configs, ``dataset.json``/``plans.json``), and a library's failure to load the weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from paraspinal.errors import InputError

_MESSAGE_CHARS = 160


def needs_model(model: Path | None, *, backend: str, what: str) -> Path:
    """``model`` (a backend's ``--model``); an :class:`InputError` saying ``what`` it must be when it is None."""
    if model is None:
        raise InputError(f"backend '{backend}' needs --model: {what}")
    return model


def model_folder(path: str | Path) -> Path:
    """``path`` as a folder; an :class:`InputError` when it is not one."""
    folder = Path(path)
    if not folder.is_dir():
        raise InputError("model folder not found", path=folder)
    return folder


def read_json_object(path: Path, *, what: str, missing: str | None = None) -> dict[str, Any]:
    """The JSON object in ``path`` (``what`` names the file in errors).

    One-line :class:`InputError` when the file is absent (``missing``, naming its folder; without it,
    "no <what> in the model folder"), is not JSON, or holds something else than an object.
    """
    if not path.is_file():
        raise InputError(missing or f"no {what} in the model folder", path=path.parent)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{what} is not valid JSON ({exc})", path=path) from None
    if not isinstance(document, dict):
        raise InputError(f"{what} must hold a JSON object", path=path)
    return document


def load_failure(what: str, exc: BaseException, *, path: str | Path) -> InputError:
    """``cannot load <what> (<error type>: <message>)`` in one line, for a library that failed to load a model."""
    text = " ".join(str(exc).split())[:_MESSAGE_CHARS] or type(exc).__name__
    return InputError(f"cannot load {what} ({type(exc).__name__}: {text})", path=path)
