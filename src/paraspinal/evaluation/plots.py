"""Evaluation figures: Bland-Altman plots and per-label Dice box plots (PNG, matplotlib Agg).

Figures are drawn with :class:`matplotlib.figure.Figure` on an explicit Agg canvas, so no pyplot
state or interactive backend is touched and the functions are safe in batch jobs and threads.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from paraspinal.evaluation.agreement import bland_altman

__all__ = ["BlandAltmanPanel", "plot_bland_altman", "plot_dice_boxplot", "safe_filename"]

_MAX_PANELS = 16


def safe_filename(text: str) -> str:
    """A file-name-safe version of ``text`` (``L4/L5`` -> ``L4-L5``)."""
    return re.sub(r"[^A-Za-z0-9_.+-]+", "-", text.replace("/", "-")).strip("-") or "x"


@dataclass(frozen=True)
class BlandAltmanPanel:
    """One Bland-Altman panel: paired values of one measurement group."""

    title: str
    auto: np.ndarray
    manual: np.ndarray


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=100)
    return path


def plot_bland_altman(
    panels: Sequence[BlandAltmanPanel], *, path: str | Path, unit: str, title: str = "", loa_z: float = 1.96
) -> Path:
    """Bland-Altman grid: difference (auto - manual) against the pair mean, one panel per group.

    Each panel draws its bias and limits of agreement (bias ± ``loa_z``·SD). At most 16 panels are
    drawn (the first 16 given; the title says so). Returns the written path.
    """
    panels = list(panels)
    n_given = len(panels)
    panels = panels[:_MAX_PANELS]
    n = max(len(panels), 1)
    cols = min(4, n)
    rows = math.ceil(n / cols)
    height = 3.0 * rows + 0.7
    fig = Figure(figsize=(3.6 * cols, height))  # fixed margins: constrained layout costs ~1 s per figure
    fig.subplots_adjust(
        left=0.24 / cols if cols < 4 else 0.06,
        right=0.98,
        bottom=0.4 / height,
        top=1 - 0.75 / height,
        wspace=0.35,
        hspace=0.45,
    )
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax, panel in zip(axes.flat, panels, strict=False):
        ba = bland_altman(panel.auto, panel.manual, loa_z=loa_z)
        ax.scatter(ba.means, ba.differences, s=14, alpha=0.75, color="tab:blue", edgecolor="none")
        if np.isfinite(ba.bias):
            ax.axhline(ba.bias, color="tab:red", lw=1.2, label=f"bias {ba.bias:.3g}")
        if np.isfinite(ba.sd):
            for y in (ba.loa_low, ba.loa_high):
                ax.axhline(y, color="tab:gray", lw=1.0, ls="--")
            ax.text(
                0.02,
                0.02,
                f"LoA [{ba.loa_low:.3g}, {ba.loa_high:.3g}]",
                transform=ax.transAxes,
                fontsize=7,
                va="bottom",
            )
        ax.axhline(0.0, color="black", lw=0.5)
        ax.set_title(f"{panel.title} (n={ba.n})", fontsize=8)
        ax.set_xlabel(f"mean of auto and manual ({unit})", fontsize=7)
        ax.set_ylabel(f"auto - manual ({unit})", fontsize=7)
        ax.tick_params(labelsize=7)
        if np.isfinite(ba.bias):
            ax.legend(fontsize=7, loc="upper right")
    if n_given > len(panels):
        title = f"{title} (first {len(panels)} of {n_given} groups)".strip()
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, Path(path))


def plot_dice_boxplot(
    overlap: pd.DataFrame, *, path: str | Path, metric: str = "dice", level: str = "all", title: str = ""
) -> Path:
    """Box plot of ``metric`` per label (one box per label name, cases as points) at one level.

    ``overlap`` is the table of :func:`paraspinal.evaluation.overlap.overlap_table`; NaN values
    (e.g. labels absent in both masks) are left out. Returns the written path.
    """
    rows = overlap[(overlap["metric"] == metric) & (overlap["level"] == level)].dropna(subset=["value"])
    names = list(dict.fromkeys(rows["name"]))
    data = [rows.loc[rows["name"] == name, "value"].to_numpy(dtype=float) for name in names]
    fig = Figure(figsize=(max(4.0, 1.1 * len(names) + 1.5), 4.0), layout="constrained")
    ax = fig.subplots()
    if data:
        ax.boxplot(data, showfliers=False)
        ax.set_xticks(range(1, len(names) + 1), names, rotation=30, ha="right", fontsize=8)
        rng = np.random.default_rng(0)  # fixed jitter: identical figures for identical input
        for i, values in enumerate(data, start=1):
            ax.scatter(
                i + rng.uniform(-0.12, 0.12, values.size), values, s=10, alpha=0.6, color="tab:blue", edgecolor="none"
            )
    else:
        ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylabel(metric)
    if metric in ("dice", "iou"):
        ax.set_ylim(-0.02, 1.02)
    ax.set_title(title or f"{metric} per label ({'whole volume' if level == 'all' else level})", fontsize=10)
    return _save(fig, Path(path))
