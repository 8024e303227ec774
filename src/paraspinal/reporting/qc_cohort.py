"""A run's cohort files: case list, summary and measurement tables, distribution plots, the run report."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from paraspinal.reporting.files import AtomicOutputs
from paraspinal.reporting.qc import QcImage, save_figure
from paraspinal.safe_text import write_csv

__all__ = ["distribution_columns", "plot_distributions", "write_cohort_outputs"]

_SIDE_COLOURS = {"right": "#E69F00", "left": "#0072B2", "none": "#009E73"}
_MAX_PANELS = 12


def distribution_columns(summary: pd.DataFrame) -> list[str]:
    """Summary columns worth plotting: volume, signal-weighted fat fraction, then CSA per level."""
    wanted = [c for c in ("volume_mL", "ff_signal_weighted_%") if c in summary.columns]
    wanted += [c for c in summary.columns if c.startswith("csa_") and c.endswith("_mm2")]
    return wanted[:_MAX_PANELS]


def _title(column: str) -> str:
    if column == "volume_mL":
        return "Volume in the field of view (mL)"
    if column == "ff_signal_weighted_%":
        return "Dixon fat fraction, signal-weighted (%)"
    return f"CSA at {column[4:-4]} (mm²)"


def plot_distributions(summary: pd.DataFrame, *, path: Path, title: str) -> Path | None:
    """Box plots with every case as a point, per structure (x) and side (colour); None if nothing to plot.

    Sides ``both`` are left out (they repeat right + left). Points are spread deterministically
    within each box so equal values stay visible.
    """
    rows = summary[summary["side"] != "both"]
    columns = [c for c in distribution_columns(rows) if rows[c].notna().any()]
    if rows.empty or not columns:
        return None
    groups = list(dict.fromkeys(zip(rows["structure"], rows["side"], strict=True)))
    groups.sort(key=lambda g: (g[0], ["right", "left", "none"].index(g[1]) if g[1] in _SIDE_COLOURS else 9))
    n = len(columns)
    cols = min(3, n)
    grid_rows = int(np.ceil(n / cols))
    fig = Figure(figsize=(5.0 * cols, 3.6 * grid_rows + 0.7), facecolor="white")
    fig.subplots_adjust(
        left=0.07, right=0.98, top=1 - 0.75 / (3.6 * grid_rows + 0.7), bottom=0.1, hspace=0.75, wspace=0.28
    )
    for i, column in enumerate(columns):
        ax = fig.add_subplot(grid_rows, cols, i + 1)
        data, positions, colours = [], [], []
        for x, (structure, side) in enumerate(groups):
            values = rows.loc[(rows["structure"] == structure) & (rows["side"] == side), column].dropna().to_numpy()
            data.append(values)
            positions.append(x)
            colours.append(_SIDE_COLOURS.get(side, "#777777"))
        boxes = ax.boxplot(
            [d if d.size else [np.nan] for d in data],
            positions=positions,
            widths=0.55,
            patch_artist=True,
            showfliers=False,
        )
        for patch, colour in zip(boxes["boxes"], colours, strict=True):
            patch.set_facecolor(colour)
            patch.set_alpha(0.25)
        for x, values, colour in zip(positions, data, colours, strict=True):
            offsets = np.linspace(-0.16, 0.16, values.size) if values.size > 1 else np.zeros(values.size)
            ax.scatter(x + offsets, values, s=16, color=colour, edgecolor="black", linewidth=0.4, zorder=3)
        ax.set_xticks(positions)
        ax.set_xticklabels([f"{s.replace('_', ' ')}\n{side}" for s, side in groups], fontsize=8)
        ax.set_title(_title(column), fontsize=10, loc="left")
        ax.grid(axis="y", alpha=0.3)
        ax.tick_params(axis="y", labelsize=8)
    n_cases = summary["case_id"].nunique() if "case_id" in summary.columns else len(summary)
    fig.suptitle(f"{title} ({n_cases} cases; patient sides from the affine)", x=0.01, ha="left", fontsize=12)
    return save_figure(fig, path)


def write_cohort_outputs(
    outputs: AtomicOutputs,
    *,
    cases: pd.DataFrame,
    summaries: Sequence[pd.DataFrame],
    tables: Sequence[Path],
    report: bool,
    segmentation: str,
    info: Sequence[tuple[str, str]],
) -> dict[str, Path]:
    """Stage the run's cohort files in ``outputs``: ``cases.csv``, ``summary.csv``, ``measurements.csv``
    and ``.parquet`` (every case's table, concatenated from ``tables``), ``distributions.png`` (two or more
    cases) and ``report.html``. Returns final paths by kind.
    """
    written: dict[str, Path] = {}

    def stage(kind: str, name: str) -> Path:
        written[kind] = outputs.out_dir / name
        return outputs.path(name)

    write_csv(cases, stage("cases", "cases.csv"))
    summary = pd.concat(list(summaries), ignore_index=True) if summaries else pd.DataFrame()
    write_csv(summary, stage("summary", "summary.csv"))
    if tables:
        measurements = pd.concat([pd.read_parquet(p) for p in tables], ignore_index=True)
        write_csv(measurements, stage("measurements_csv", "measurements.csv"))
        measurements.to_parquet(stage("measurements_parquet", "measurements.parquet"), index=False)
    if not report:
        return written
    from paraspinal.reporting.html import render_run_report, report_image

    images = []
    if len(summaries) >= 2:
        plot = stage("distributions", "distributions.png")
        if plot_distributions(summary, path=plot, title="Cohort distributions") is not None:
            qc = QcImage(
                "distributions",
                plot.relative_to(outputs.out_dir),
                "Cohort distributions",
                "Boxes: quartiles; points: cases; colour: patient side.",
            )
            images.append(report_image(qc, base_dir=outputs.out_dir, embed=True))
        else:
            written.pop("distributions")
    render_run_report(
        stage("report", "report.html"),
        cases=cases,
        summary=summary if len(summary) else None,
        summary_csv="summary.csv",
        distribution_images=images,
        segmentation=segmentation,
        info=info,
    )
    return written
