"""``paraspinal train``: train the built-in 2-D U-Net on an nnU-Net v2 raw dataset (needs the train extra)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import typer

from paraspinal.cli.app import app
from paraspinal.cli.console import console
from paraspinal.errors import ParaspinalError


def _slices(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        start, stop = (int(part) for part in text.split(":"))
    except ValueError:
        raise typer.BadParameter(f"expected START:STOP (half-open), got {text!r}", param_hint="--val-slices") from None
    return start, stop


@app.command("train")
def train_command(
    dataset: Path = typer.Argument(..., help="nnU-Net v2 raw dataset folder (dataset.json, imagesTr/, labelsTr/)."),
    out: Path = typer.Option(..., "--out", "-o", help="Model folder to create (absent or empty)."),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="TOML config (e.g. recipes/tum01_muscle/config.toml)."
    ),
    scheme: str | None = typer.Option(
        None, "--scheme", "-s", help="Label scheme of the dataset's values: bundled key or TOML/JSON file."
    ),
    epochs: int | None = typer.Option(None, "--epochs", help="Epochs (overrides the config)."),
    steps_per_epoch: int | None = typer.Option(None, "--steps-per-epoch", help="Optimiser steps per epoch."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Slices per step."),
    seed: int | None = typer.Option(None, "--seed", help="Random seed (runs are reproducible for a seed)."),
    threads: int | None = typer.Option(None, "--threads", help="CPU threads for PyTorch."),
    device: str | None = typer.Option(
        None, "--device", help="Where to train: cpu, cuda or cuda:N (overrides the config)."
    ),
    precision: str | None = typer.Option(
        None, "--precision", help="float32, or bfloat16 for faster steps (weights stay float32; overrides the config)."
    ),
    val_slices: str | None = typer.Option(
        None, "--val-slices", help="Hold out axial slices START:STOP of every image."
    ),
    val_cases: str | None = typer.Option(None, "--val-cases", help="Hold out these cases (comma-separated ids)."),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Continue the unfinished run in OUT (its checkpoint.pt, written after every epoch); none: start afresh.",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
) -> None:
    """Train a 2-D U-Net segmentation model; writes model.json, model.onnx and model.safetensors."""
    missing = [name for name in ("torch", "onnx", "safetensors") if importlib.util.find_spec(name) is None]
    if missing:
        raise ParaspinalError(
            f"paraspinal train needs {', '.join(missing)} (not installed): pip install 'paraspinal[train]'"
        )
    from paraspinal.training import load_config
    from paraspinal.training.trainer import train

    cfg = load_config(
        config,
        scheme=scheme,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        batch_size=batch_size,
        seed=seed,
        threads=threads,
        device=device,
        precision=precision,
        validation_slices=_slices(val_slices),
        validation_cases=None if val_cases is None else [c.strip() for c in val_cases.split(",") if c.strip()],
    )
    out_console = console(quiet=quiet)
    if cfg.precision == "bfloat16":
        from paraspinal.backends.torch_support import torch_device
        from paraspinal.training.steps import bfloat16_problem

        problem = bfloat16_problem(torch_device(cfg.device))
        if problem is not None:  # a warning, not an error: the run is still correct, only slow
            typer.echo(f"paraspinal: warning: {problem}; use --precision float32", err=True)

    def report(epoch: int, loss: float, dice: dict[str, dict[int, float | None]]) -> None:
        parts = [f"epoch {epoch + 1}/{cfg.epochs}  loss {loss:.4f}"]
        for name, scores in dice.items():
            known = [v for v in scores.values() if v is not None]
            mean = sum(known) / len(known) if known else float("nan")
            values = " ".join(f"{k}:{'-' if v is None else f'{v:.3f}'}" for k, v in scores.items())
            parts.append(f"Dice {name} {values} mean {mean:.3f}")
        out_console.print("  |  ".join(parts))

    result = train(dataset, out, config=cfg, on_epoch=report, show_progress=not quiet, resume=resume)
    out_console.print(f"wrote model to {result.model_dir} ({len(result.losses)} epochs)")
