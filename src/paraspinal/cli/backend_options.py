"""Typer options that choose and configure a segmentation backend, shared by ``segment`` and ``run``.

Each builder returns a fresh ``typer.Option`` (a default value in a command's signature);
:func:`backend_factory` turns the parsed values into a picklable
:class:`~paraspinal.backends.catalog.BackendFactory`, checking what can be checked without loading
anything (known backend, folds syntax, native label scheme).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from paraspinal.anatomy import load_scheme
from paraspinal.backends.specs import BACKENDS, BackendOptions

if TYPE_CHECKING:
    from paraspinal.backends.catalog import BackendFactory

__all__ = [
    "backend_factory",
    "backend_option",
    "checkpoint_option",
    "device_option",
    "folds_option",
    "model_option",
    "native_scheme_option",
    "parse_folds",
    "store_option",
    "task_option",
    "threads_option",
    "tta_option",
]

_FOLD = re.compile(r"\d+\Z")


def backend_option() -> str:
    names = ", ".join(spec.name for spec in BACKENDS)
    return typer.Option(
        "unet_onnx", "--backend", "-b", help=f"Segmentation backend ({names}); `paraspinal backends` lists them."
    )


def model_option() -> Path | None:
    return typer.Option(
        None,
        "--model",
        "-m",
        help=(
            "Model folder for the backend (unet_onnx default: the bundled tum01_muscle), or the key of an installed "
            "published model (`paraspinal models`)."
        ),
    )


def store_option() -> Path | None:
    return typer.Option(
        None, "--store", help="Model store that --model KEY is read from (default: ~/.local/share/paraspinal/models)."
    )


def device_option() -> str:
    return typer.Option("cpu", "--device", help="cpu, cuda or auto.")


def tta_option() -> bool:
    return typer.Option(True, "--tta/--no-tta", help="Average with the left-right mirrored image (sides swapped).")


def threads_option() -> int | None:
    return typer.Option(None, "--threads", help="CPU threads for inference (default: the library's).")


def folds_option() -> str | None:
    return typer.Option(
        None, "--folds", help="Model folds to ensemble, e.g. 0,1 or all (nnU-Net; default: the model's)."
    )


def checkpoint_option() -> str | None:
    return typer.Option(
        None, "--checkpoint", help="Checkpoint file name in each fold folder (nnU-Net; default: the final one)."
    )


def task_option() -> str | None:
    return typer.Option(None, "--task", help="Task of a multi-task backend, e.g. total_mr or vertebrae_mr.")


def native_scheme_option(*names: str) -> str | None:
    """The label scheme (key or TOML/JSON file) of the model's native labels; ``names`` are the flags."""
    return typer.Option(
        None, *(names or ("--model-scheme",)), help="Label scheme of the model's native labels (key or file)."
    )


def parse_folds(text: str | None) -> tuple[str, ...] | None:
    """``"0,1"`` -> ``("0", "1")``; ``"all"`` -> ``("all",)``; None stays None; anything else is a usage error."""
    if text is None:
        return None
    items = tuple(item.strip() for item in text.split(","))
    if not items or any(not (_FOLD.match(item) or item == "all") for item in items) or len(set(items)) != len(items):
        raise typer.BadParameter(f"expected fold numbers like 0,1 or 'all', got {text!r}", param_hint="--folds")
    if "all" in items and len(items) > 1:
        raise typer.BadParameter("'all' is a fold of its own; give it alone", param_hint="--folds")
    return items


def backend_factory(
    *,
    backend: str,
    model: Path | None,
    device: str = "cpu",
    threads: int | None = None,
    tta: bool = True,
    folds: str | None = None,
    checkpoint: str | None = None,
    task: str | None = None,
    scheme: str | None = None,
    store: Path | None = None,
) -> BackendFactory:
    """The parsed backend options as a picklable factory (unknown backend and bad scheme: one-line errors)."""
    from paraspinal.backends.catalog import backend_spec, model_factory

    backend_spec(backend)  # an unknown name fails first, in one line
    if scheme is not None:
        load_scheme(scheme)  # a typo fails here, in one line, before any image is read
        if Path(scheme).is_file():  # batch workers may run elsewhere: absolute paths
            scheme = str(Path(scheme).resolve())
    options = BackendOptions(
        device=device,
        threads=threads,
        test_time_flip=tta,
        folds=parse_folds(folds),
        checkpoint=checkpoint,
        task=task,
        scheme=scheme,
    )
    return model_factory(backend=backend, model=model, options=options, store=store)
