"""Resumable training: the run's state, written to ``OUT/checkpoint.pt`` after every epoch.

A run that stops early (a cluster job's time limit, Ctrl-C, a crash) leaves its output folder
holding only ``checkpoint.pt``; ``paraspinal train ... --resume`` continues it from the last
completed epoch and gives the same weights as an uninterrupted run (the weights, the optimiser,
the weight average and the sampling ``Generator`` are all restored). The checkpoint is deleted
when the model folder is written. It records the config and the dataset it was made with, and
refuses to continue a different run.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from paraspinal.errors import InputError
from paraspinal.training.config import TrainConfig
from paraspinal.training.dataset import DatasetInfo

CHECKPOINT_NAME = "checkpoint.pt"
PARTIAL_NAME = f".{CHECKPOINT_NAME}.tmp"  # a checkpoint being written (left behind if killed mid-write)
_IGNORED_KEYS = ("threads", "device")  # may change between sessions without changing the run


@dataclass(frozen=True)
class TrainingState:
    """Everything needed to continue a run after ``epochs_done`` epochs (``elapsed_s`` of training so far)."""

    epochs_done: int
    step: int
    losses: list[float]
    history: list[dict[str, dict[int, float | None]]]
    elapsed_s: float
    rng_state: dict[str, Any]
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    averaged: dict[str, torch.Tensor] | None


def run_fingerprint(config: TrainConfig, info: DatasetInfo) -> dict[str, Any]:
    """What makes two runs the same run: the config (but the thread count and device) and the dataset's cases."""
    settings = {k: v for k, v in config.to_dict().items() if k not in _IGNORED_KEYS}
    return json.loads(json.dumps({"config": settings, "dataset": info.name, "cases": [c.case_id for c in info.cases]}))


def check_output_folder(out_dir: Path, *, resume: bool) -> bool:
    """Whether ``out_dir`` holds a run to continue; an ``InputError`` if it may not be written to."""
    if not out_dir.exists():
        return False
    if not out_dir.is_dir():
        raise InputError("output folder exists and is not empty", path=out_dir)
    names = {p.name for p in out_dir.iterdir()} - {PARTIAL_NAME}
    if not names:
        return False
    if names == {CHECKPOINT_NAME}:
        if resume:
            return True
        raise InputError(
            f"output folder holds an unfinished training ({CHECKPOINT_NAME}): continue it with --resume, "
            "or choose another folder",
            path=out_dir,
        )
    raise InputError("output folder exists and is not empty", path=out_dir)


def save_checkpoint(out_dir: Path, state: TrainingState, *, fingerprint: dict[str, Any]) -> None:
    """Write ``out_dir/checkpoint.pt`` atomically (a temporary file renamed into place)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "fingerprint": json.dumps(fingerprint, sort_keys=True),
        "epochs_done": state.epochs_done,
        "step": state.step,
        "losses": list(state.losses),
        "history": json.dumps([{n: {str(k): v for k, v in s.items()} for n, s in d.items()} for d in state.history]),
        "elapsed_s": state.elapsed_s,
        "rng_state": json.dumps(state.rng_state),
        "model": state.model,
        "optimizer": state.optimizer,
        "averaged": state.averaged,
    }
    tmp = out_dir / PARTIAL_NAME
    torch.save(payload, tmp)
    os.replace(tmp, out_dir / CHECKPOINT_NAME)


def load_checkpoint(out_dir: Path, *, fingerprint: dict[str, Any]) -> TrainingState:
    """Read ``out_dir/checkpoint.pt``; an ``InputError`` if it is unreadable or from a different run."""
    path = out_dir / CHECKPOINT_NAME
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        saved = json.loads(payload["fingerprint"])
    except Exception as exc:  # noqa: BLE001 - torch.load raises many types for a damaged file
        raise InputError(f"cannot read the checkpoint ({type(exc).__name__}: {exc})", path=path) from None
    if saved != json.loads(json.dumps(fingerprint, sort_keys=True)):
        raise InputError(f"was written by a different run ({_difference(saved, fingerprint)})", path=path)
    history = [{n: {int(k): v for k, v in s.items()} for n, s in d.items()} for d in json.loads(payload["history"])]
    return TrainingState(
        epochs_done=int(payload["epochs_done"]),
        step=int(payload["step"]),
        losses=[float(v) for v in payload["losses"]],
        history=history,
        elapsed_s=float(payload["elapsed_s"]),
        rng_state=json.loads(payload["rng_state"]),
        model=payload["model"],
        optimizer=payload["optimizer"],
        averaged=payload["averaged"],
    )


def _difference(saved: dict[str, Any], current: dict[str, Any]) -> str:
    """The first settings that differ, as ``key: saved -> current``."""
    if saved.get("dataset") != current["dataset"] or saved.get("cases") != current["cases"]:
        return f"dataset {saved.get('dataset')!r} with {len(saved.get('cases', []))} cases, now {current['dataset']!r}"
    old, new = saved.get("config", {}), current["config"]
    changes = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            if isinstance(old.get(key), dict) and isinstance(new.get(key), dict):
                changes += [
                    f"{key}.{k}: {old[key].get(k)!r} -> {new[key].get(k)!r}"
                    for k in sorted(set(old[key]) | set(new[key]))
                    if old[key].get(k) != new[key].get(k)
                ]
            else:
                changes.append(f"{key}: {old.get(key)!r} -> {new.get(key)!r}")
    return "; ".join(changes[:3]) or "settings differ"
