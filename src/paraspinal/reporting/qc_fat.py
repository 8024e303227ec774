"""Fat QC maps: the Dixon fat-fraction map and the voxels each threshold method calls fat.

Both are drawn on axial QC slices in the radiological convention (see :mod:`.qc_views`), restricted
to muscle labels, with each muscle outlined. Thresholds are read back from the measurement table
(``metric == "fat_threshold"``), so the picture shows exactly what was measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from paraspinal.anatomy import LabelScheme, load_registry
from paraspinal.io.image import Image
from paraspinal.io.orientation import axial_frame
from paraspinal.measurement.regions import region_voxels
from paraspinal.reporting.qc import CONVENTION_NOTE, QcSlice, draw_plane, edge_letters, save_figure
from paraspinal.reporting.qc_views import can_contour, crop_box, display_window, plane_view

__all__ = ["FF_MAX_PCT", "fat_fraction_map", "muscle_values", "plot_fat_fraction_map", "plot_threshold_map"]

FF_MAX_PCT = 50.0
MUSCLE_CATEGORIES = ("muscle", "muscle_group")
_MAX_COLUMNS = 4


def muscle_values(scheme: LabelScheme) -> tuple[int, ...]:
    """Label values of ``scheme`` that are muscles or muscle groups."""
    registry = load_registry()
    return tuple(v for v, e in scheme.labels.items() if registry[e.structure].category in MUSCLE_CATEGORIES)


def fat_fraction_map(water: np.ndarray, fat: np.ndarray) -> np.ndarray:
    """Voxel fat fraction 100·F/(F+W) in %, NaN where F+W <= 0 (computed in float64)."""
    f, w = fat.astype(np.float64), water.astype(np.float64)
    total = f + w
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 100.0 * f / total, np.nan)


def _grid(n: int) -> tuple[int, int]:
    cols = min(max(n, 1), _MAX_COLUMNS)
    return int(np.ceil(max(n, 1) / cols)), cols


def _outline(ax, view, labels: Image, values: Sequence[int], *, colour: str = "white") -> None:
    plane = view.take(labels.array)
    if not can_contour(plane):
        return
    for value in values:
        mask = plane == value
        if mask.any():
            ax.contour(
                mask.astype(np.float32),
                levels=[0.5],
                colors=[colour],
                linewidths=0.9,
                extent=view.extent_mm,
                origin="upper",
            )


def plot_fat_fraction_map(
    water: Image,
    fat: Image,
    labels: Image,
    *,
    scheme: LabelScheme,
    slices: Sequence[QcSlice],
    title: str,
    path: Path,
    max_pct: float = FF_MAX_PCT,
) -> Path:
    """Dixon fat fraction (%) inside the muscle labels on each QC slice, over the water image."""
    muscles = muscle_values(scheme)
    crop = crop_box(labels, "axial", margin_mm=20.0)
    window = display_window(water.array)
    rows, cols = _grid(len(slices))
    probe = plane_view(labels, "axial", slices[0].index if slices else 0, crop=crop)
    aspect = probe.extent_mm[2] / probe.extent_mm[1]
    tile_w = 3.2
    height = rows * ((tile_w - 0.1) * aspect + 0.35) + 1.0
    fig = Figure(figsize=(cols * tile_w + 0.9, height), facecolor="white")
    width = cols * tile_w + 0.9
    image_artist = None
    for i, s in enumerate(slices):
        r, c = divmod(i, cols)
        bottom = height - 0.45 - (r + 1) * ((tile_w - 0.1) * aspect + 0.35)
        ax = fig.add_axes(
            (c * tile_w / width + 0.01, bottom / height, (tile_w - 0.1) / width, (tile_w - 0.1) * aspect / height)
        )
        view = plane_view(labels, "axial", s.index, crop=crop)
        draw_plane(ax, view, water, window=window)
        ff = fat_fraction_map(view.take(water.array), view.take(fat.array))
        ff[~np.isin(view.take(labels.array), muscles)] = np.nan
        image_artist = ax.imshow(
            ff,
            cmap="inferno",
            vmin=0.0,
            vmax=max_pct,
            extent=view.extent_mm,
            origin="upper",
            interpolation="nearest",
        )
        _outline(ax, view, labels, muscles)
        edge_letters(ax, view, size=9)
        ax.set_title(s.label, fontsize=9, loc="left", pad=3)
    if image_artist is not None:
        cax = fig.add_axes((1 - 0.7 / width, 0.55 / height, 0.18 / width, 1 - 1.2 / height))
        bar = fig.colorbar(image_artist, cax=cax, extend="max")
        bar.set_label(f"fat fraction 100·F/(F+W) (%), capped at {max_pct:g}", fontsize=8)
        bar.ax.tick_params(labelsize=8)
    fig.suptitle(title, x=0.01, y=1 - 0.1 / height, ha="left", va="top", fontsize=11)
    fig.text(
        0.01, 0.12 / height, "Muscle voxels only, white outlines. " + CONVENTION_NOTE, fontsize=7.5, color="#444444"
    )
    return save_figure(fig, path)


def plot_threshold_map(
    image: Image,
    labels: Image,
    *,
    scheme: LabelScheme,
    table: pd.DataFrame,
    image_name: str,
    methods: Sequence[str],
    slices: Sequence[QcSlice],
    title: str,
    path: Path,
    max_slices: int = _MAX_COLUMNS,
) -> Path:
    """Voxels above each muscle's fat threshold (yellow) vs below (blue), one row per method.

    Thresholds come from ``table`` rows ``metric == "fat_threshold"`` for ``image_name``, per
    structure and side; voxels are assigned to sides exactly as in the measurement.
    """
    registry = load_registry()
    frame = axial_frame(labels)
    voxels = region_voxels(labels, scheme=scheme, registry=registry, frame=frame)
    region_map = np.zeros(labels.shape, dtype=np.int32)
    region_map.ravel()[voxels.flat_index] = voxels.region
    muscles = muscle_values(scheme)
    chosen = list(slices)[:max_slices]
    crop = crop_box(labels, "axial", margin_mm=20.0)
    window = display_window(image.array)
    rows, cols = max(len(methods), 1), max(len(chosen), 1)
    probe = plane_view(labels, "axial", chosen[0].index if chosen else 0, crop=crop)
    aspect = probe.extent_mm[2] / probe.extent_mm[1]
    tile_w = 2.9
    height = rows * ((tile_w - 0.1) * aspect + 0.4) + 1.3
    width = cols * tile_w + 0.2
    fig = Figure(figsize=(width, height), facecolor="white")
    rows_of = table[(table["metric"] == "fat_threshold") & (table["image"] == image_name)]
    for r, method in enumerate(methods):
        thresholds = np.full(len(voxels.regions) + 1, np.inf)
        picked = rows_of[rows_of["method"] == method].set_index(["structure", "side"])["value"]
        for region in voxels.regions:
            value = picked.get((region.structure, region.side), np.nan)
            thresholds[region.index] = value if np.isfinite(value) else np.inf
        for c, s in enumerate(chosen):
            bottom = height - 0.45 - (r + 1) * ((tile_w - 0.1) * aspect + 0.4)
            ax = fig.add_axes(
                (c * tile_w / width + 0.01, bottom / height, (tile_w - 0.1) / width, (tile_w - 0.1) * aspect / height)
            )
            view = plane_view(labels, "axial", s.index, crop=crop)
            draw_plane(ax, view, image, window=window)
            region_plane = view.take(region_map)
            in_muscle = np.isin(view.take(labels.array), muscles) & (region_plane > 0)
            above = in_muscle & (view.take(image.array) > thresholds[region_plane])
            overlay = np.zeros((*region_plane.shape, 4), dtype=np.float32)
            overlay[in_muscle & ~above] = (0.34, 0.71, 0.91, 0.35)
            overlay[above] = (0.94, 0.89, 0.26, 0.95)
            ax.imshow(overlay, extent=view.extent_mm, origin="upper", interpolation="nearest")
            _outline(ax, view, labels, muscles)
            if c == 0 and r == 0:
                edge_letters(ax, view, size=8)
            share = 100.0 * above.sum() / max(int(in_muscle.sum()), 1)
            ax.set_title(f"{method} · {s.label} · {share:.1f}% fat", fontsize=8, loc="left", pad=2)
    fig.suptitle(title, x=0.01, y=1 - 0.1 / height, ha="left", va="top", fontsize=11)
    fig.text(
        0.01,
        0.35 / height,
        "Yellow: above the muscle's threshold (fat); blue: below (lean). Percentages: this slice's muscle voxels.",
        fontsize=7.5,
        color="#444444",
    )
    fig.text(0.01, 0.1 / height, CONVENTION_NOTE, fontsize=7.5, color="#444444")
    return save_figure(fig, path)
