"""QC images of one case: axial overlays per level, a sagittal/coronal locator, a montage, fat maps.

Every image is a PNG drawn with matplotlib's Agg canvas on an explicit :class:`Figure` (no pyplot
state, safe in batch jobs). Views follow the radiological convention (patient's right on the
viewer's left; see :mod:`paraspinal.reporting.qc_views`), with the patient directions printed at
the image edges and the convention stated on every image. Sides come from the affine.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from scipy import ndimage

from paraspinal.anatomy import AnatomyRegistry, LabelScheme, load_registry
from paraspinal.io.image import Image
from paraspinal.io.orientation import axial_frame, slice_positions_mm
from paraspinal.levels import LevelTable
from paraspinal.reporting.qc_views import PlaneView, can_contour, crop_box, display_window, plane_view

__all__ = [
    "CONVENTION_NOTE",
    "QcImage",
    "QcSlice",
    "label_colours",
    "plot_axial_overlay",
    "plot_locator",
    "plot_montage",
    "qc_slices",
    "safe_name",
]

CONVENTION_NOTE = "Radiological view: patient's right (R) on the viewer's left; sides from the image affine."
# Okabe-Ito colours (colour-blind safe), then tab20 for schemes with many labels.
_PALETTE = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7")
DPI = 100
MONTAGE_MAX_TILES = 36


@dataclass(frozen=True)
class QcImage:
    """One written QC image; ``path`` is relative to the case's output folder."""

    kind: str
    path: Path
    title: str
    caption: str = ""
    slice_index: int | None = None  # the axial slice an ``axial`` image shows


@dataclass(frozen=True)
class QcSlice:
    """An axial slice chosen for QC: its index, z position (mm) and what it shows."""

    index: int
    z_mm: float
    level: str | None
    label: str


def safe_name(text: str) -> str:
    """File-name-safe text (``L4/L5`` -> ``L4-L5``)."""
    return re.sub(r"[^A-Za-z0-9_.+-]+", "-", text.replace("/", "-")).strip("-") or "x"


def qc_slices(labels: Image, levels: LevelTable | None, *, n_even: int = 5) -> list[QcSlice]:
    """Slices to show: each level's disc slice (or the middle of its range), else ``n_even`` evenly spaced.

    Evenly spaced slices lie strictly inside the labelled slice range. Slices are returned from
    superior to inferior.
    """
    z = slice_positions_mm(labels)
    chosen: list[QcSlice] = []
    if levels is not None and len(levels):
        for level in levels:
            if level.disc_slice is not None:
                index, what = level.disc_slice, "disc slice"
            else:
                index, what = (level.slice_start + level.slice_stop - 1) // 2, "middle slice"
            chosen.append(QcSlice(index, float(z[index]), level.name, f"{level.name} {what} {index}"))
    else:
        axis = axial_frame(labels).slice_axis
        present = np.flatnonzero(np.any(labels.array > 0, axis=tuple(a for a in range(3) if a != axis)))
        if present.size:
            first, last = int(present[0]), int(present[-1])
            picks = np.unique(np.rint(np.linspace(first, last, n_even + 2)[1:-1]).astype(int))
            if picks.size == 0:
                picks = np.array([first])
            chosen = [QcSlice(int(k), float(z[k]), None, f"slice {int(k)}") for k in picks]
    return sorted(chosen, key=lambda s: -s.z_mm)


def label_colours(scheme: LabelScheme, *, registry: AnatomyRegistry | None = None) -> dict[int, str]:
    """A fixed colour per label value of ``scheme``: the registry's colour of its structure (or of the nearest
    structure above it), lighter on the patient's left, so a structure looks the same whichever model labelled it;
    values without one take Okabe-Ito, then tab20 colours in value order."""
    from matplotlib import colormaps, colors

    registry = registry if registry is not None else load_registry()
    tab20 = [colors.to_hex(c) for c in colormaps["tab20"].colors]  # type: ignore[attr-defined]
    palette = list(_PALETTE) + tab20
    out: dict[int, str] = {}
    for i, value in enumerate(scheme.values):
        entry = scheme.labels[value]
        base = _registry_colour(registry, entry.structure)
        if base is None:
            out[value] = palette[i % len(palette)]
        else:
            out[value] = _tint(base, share=0.45) if entry.side == "left" else base.upper()
    return out


def _registry_colour(registry: AnatomyRegistry, key: str) -> str | None:
    structure = registry[key]
    while structure.colour is None and structure.parent is not None:
        structure = registry[structure.parent]
    return structure.colour


def _tint(colour: str, *, share: float) -> str:
    """``colour`` mixed with white (``share`` of white, 0-1), as #RRGGBB."""
    rgb = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(c + (255 - c) * share):02X}" for c in rgb)


def _present_values(labels: Image) -> list[int]:
    array = labels.array
    if np.issubdtype(array.dtype, np.integer) and array.size and array.min() >= 0 and array.max() < 65536:
        return [int(v) for v in np.flatnonzero(np.bincount(array.ravel())) if v > 0]
    return [int(v) for v in np.unique(array) if v > 0]


def _legend_handles(scheme: LabelScheme, values: Sequence[int], colours: dict[int, str]) -> list[Line2D]:
    return [
        Line2D([0], [0], color=colours.get(v, "#ffffff"), lw=3, label=f"{v} {scheme.labels[v].name}")
        for v in values
        if v in scheme.labels
    ]


def draw_plane(ax, view: PlaneView, background: Image, *, window: tuple[float, float]) -> None:
    ax.imshow(
        view.take(background.array).astype(np.float32),
        cmap="gray",
        vmin=window[0],
        vmax=window[1],
        extent=view.extent_mm,
        origin="upper",
        interpolation="bilinear",
    )
    ax.set_xticks([])
    ax.set_yticks([])


def _draw_contours(ax, view: PlaneView, labels: Image, colours: dict[int, str], *, fill_alpha: float = 0.18) -> None:
    plane = view.take(labels.array)
    if not can_contour(plane):
        return
    for value in (int(v) for v in np.unique(plane) if v > 0):
        mask = (plane == value).astype(np.float32)
        colour = colours.get(value, "#ffffff")
        if fill_alpha > 0:
            ax.contourf(
                mask, levels=[0.5, 1.5], colors=[colour], alpha=fill_alpha, extent=view.extent_mm, origin="upper"
            )
        ax.contour(mask, levels=[0.5], colors=[colour], linewidths=1.4, extent=view.extent_mm, origin="upper")


def edge_letters(ax, view: PlaneView, *, size: int = 13) -> None:
    top, bottom, left, right = view.edge_letters
    style = {"color": "white", "fontsize": size, "fontweight": "bold", "transform": ax.transAxes}
    box = {"boxstyle": "round,pad=0.2", "facecolor": "black", "alpha": 0.55, "edgecolor": "none"}
    ax.text(0.5, 0.985, top, ha="center", va="top", bbox=box, **style)
    ax.text(0.5, 0.015, bottom, ha="center", va="bottom", bbox=box, **style)
    ax.text(0.012, 0.5, left, ha="left", va="center", bbox=box, **style)
    ax.text(0.988, 0.5, right, ha="right", va="center", bbox=box, **style)


def save_figure(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=DPI, format="png", facecolor=fig.get_facecolor(), pil_kwargs={"compress_level": 4})
    return path


def plot_axial_overlay(
    background: Image,
    labels: Image,
    *,
    scheme: LabelScheme,
    qc_slice: QcSlice,
    title: str,
    path: Path,
    margin_mm: float | None = 45.0,
) -> Path:
    """One axial slice with label contours, a legend, and R/L/A/P marked at the edges.

    The view is cropped to the labels' extent plus ``margin_mm`` (None shows the whole slice).
    """
    crop = None if margin_mm is None else crop_box(labels, "axial", margin_mm=margin_mm)
    view = plane_view(labels, "axial", qc_slice.index, crop=crop)
    colours = label_colours(scheme)
    window = display_window(background.array)
    n_rows, n_cols = view.shape
    aspect = (n_rows * view.row_spacing_mm) / (n_cols * view.col_spacing_mm)
    width = 6.4
    height = width * 0.96 * aspect + 1.45
    fig = Figure(figsize=(width, height), facecolor="white")
    ax = fig.add_axes((0.02, 1.0 / height, 0.96, width * 0.96 * aspect / height))
    draw_plane(ax, view, background, window=window)
    _draw_contours(ax, view, labels, colours)
    edge_letters(ax, view)
    _scale_bar(ax, view)
    ax.set_title(title, fontsize=11, loc="left")
    handles = _legend_handles(scheme, _present_values(labels), colours)
    if handles:
        fig.legend(
            handles=handles,
            loc="upper left",
            bbox_to_anchor=(0.02, 0.95 / height),
            ncol=min(len(handles), 2),
            fontsize=8.5,
            frameon=False,
            handlelength=1.5,
        )
    fig.text(0.02, 0.08 / height, CONVENTION_NOTE, fontsize=8, color="#444444")
    return save_figure(fig, path)


def _scale_bar(ax, view: PlaneView, *, length_mm: float = 50.0) -> None:
    """A white 50 mm bar in the lower right corner."""
    _left, right, bottom, _top = view.extent_mm
    if right < 2.5 * length_mm:
        length_mm = 10.0
    x1 = right - 0.05 * right
    y = bottom - 0.06 * bottom
    ax.plot([x1 - length_mm, x1], [y, y], color="white", lw=2.5, solid_capstyle="butt")
    ax.text(
        x1 - length_mm / 2, y - 0.015 * bottom, f"{length_mm:g} mm", color="white", fontsize=8, ha="center", va="bottom"
    )


def plot_locator(
    background: Image,
    labels: Image,
    *,
    scheme: LabelScheme,
    slices: Sequence[QcSlice],
    levels: LevelTable | None,
    title: str,
    path: Path,
) -> Path:
    """Sagittal (through the labels' midline) and coronal (through the muscles) reformats.

    Lines mark the QC slices and shaded bands the level ranges, so one sees where the axial
    images sit along the spine.
    """
    colours = label_colours(scheme)
    window = display_window(background.array)
    labelled = np.argwhere(labels.array > 0)
    views = []
    for plane in ("sagittal", "coronal"):
        probe = plane_view(labels, plane, 0)
        fixed = probe.fixed_axis
        index = int(np.rint(labelled[:, fixed].mean())) if labelled.size else labels.shape[fixed] // 2
        box = crop_box(labels, plane, margin_mm=90.0 if plane == "sagittal" else 40.0)
        crop = None if box is None else (slice(0, probe.row_voxels), box[1])
        views.append(plane_view(labels, plane, index, crop=crop))
    widths = [v.extent_mm[1] for v in views]
    panel_h_mm = max(v.extent_mm[2] for v in views)
    width_in = 11.0
    panel_h_in = min(width_in * 0.92 * panel_h_mm / sum(widths), 6.0)
    height = panel_h_in + 1.3
    fig = Figure(figsize=(width_in, height), facecolor="white")
    grid = fig.add_gridspec(
        1, 2, width_ratios=widths, left=0.02, right=0.98, wspace=0.04, bottom=0.55 / height, top=1 - 0.75 / height
    )
    for i, view in enumerate(views):
        ax = fig.add_subplot(grid[0, i])
        draw_plane(ax, view, background, window=window)
        _draw_contours(ax, view, labels, colours, fill_alpha=0.25)
        edge_letters(ax, view, size=11)
        _mark_slices(ax, view, slices, levels, slice_axis=axial_frame(labels).slice_axis)
        where = "the labels' midline" if view.plane == "sagittal" else "the labelled muscles"
        ax.set_title(f"{view.plane} reformat through {where} (voxel {view.index})", fontsize=9.5, loc="left")
    fig.suptitle(title, x=0.02, y=1 - 0.12 / height, ha="left", va="top", fontsize=12)
    fig.text(
        0.02,
        0.15 / height,
        "Dashed lines: axial QC slices; shaded bands: level slice ranges. Coronal: " + CONVENTION_NOTE,
        fontsize=8,
        color="#444444",
    )
    return save_figure(fig, path)


def _mark_slices(ax, view: PlaneView, slices: Sequence[QcSlice], levels: LevelTable | None, *, slice_axis: int) -> None:
    """Draw each QC slice as a line and each level's range as a band on a sagittal/coronal view."""
    along_rows = view.row_axis == slice_axis
    _left, right, bottom, _top = view.extent_mm
    pos = view.row_mm if along_rows else view.col_mm
    half = (view.row_spacing_mm if along_rows else view.col_spacing_mm) / 2
    for level in levels or ():
        a, b = pos(level.slice_start), pos(level.slice_stop - 1)
        lo, hi = min(a, b) - half, max(a, b) + half
        if along_rows:
            ax.axhspan(lo, hi, color="white", alpha=0.14, lw=0)
        else:
            ax.axvspan(lo, hi, color="white", alpha=0.14, lw=0)
    for s in slices:
        p = pos(s.index)
        text = s.level or f"slice {s.index}"
        if along_rows:
            ax.axhline(p, color="#F0E442", lw=1.0, ls="--")
            ax.text(
                right * 0.985,
                p,
                f" {text} ",
                color="black",
                fontsize=8,
                ha="right",
                va="center",
                bbox={"boxstyle": "round,pad=0.15", "facecolor": "#F0E442", "edgecolor": "none"},
            )
        else:
            ax.axvline(p, color="#F0E442", lw=1.0, ls="--")
            ax.text(
                p,
                bottom * 0.985,
                f" {text} ",
                color="black",
                fontsize=8,
                ha="center",
                va="bottom",
                rotation=90,
                bbox={"boxstyle": "round,pad=0.15", "facecolor": "#F0E442", "edgecolor": "none"},
            )


def plot_montage(
    background: Image,
    labels: Image,
    *,
    scheme: LabelScheme,
    levels: LevelTable | None,
    title: str,
    path: Path,
    max_tiles: int = MONTAGE_MAX_TILES,
    columns: int = 6,
) -> Path:
    """Every labelled axial slice (at most ``max_tiles``, evenly subsampled), superior first, with outlines.

    The tiles are composed into one mosaic image (fast to draw); each is tagged with its slice
    index and level, and the first with the patient directions.
    """
    frame = axial_frame(labels)
    axis = frame.slice_axis
    present = np.flatnonzero(np.any(labels.array > 0, axis=tuple(a for a in range(3) if a != axis)))
    z = slice_positions_mm(labels)
    if present.size > max_tiles:
        present = present[np.unique(np.rint(np.linspace(0, present.size - 1, max_tiles)).astype(int))]
    order = sorted(present.tolist(), key=lambda k: -z[k]) or [0]
    crop = crop_box(labels, "axial", margin_mm=15.0)
    window = display_window(background.array)
    rgb_colours = {v: np.array(_hex_rgb(c)) for v, c in label_colours(scheme).items()}
    level_of = {k: lv.name for lv in (levels or ()) for k in lv.slices}
    views = [plane_view(labels, "axial", int(k), crop=crop) for k in order]
    tiles = [_outlined(v.take(background.array), v.take(labels.array), window, rgb_colours) for v in views]
    h, w = tiles[0].shape[:2]
    cols = min(columns, len(tiles))
    rows = int(np.ceil(len(tiles) / cols))
    pad = 4
    mosaic = np.ones((rows * (h + pad) - pad, cols * (w + pad) - pad, 3), dtype=np.float32)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        mosaic[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = tile
    dx, dy = views[0].col_spacing_mm, views[0].row_spacing_mm
    width_mm, height_mm = mosaic.shape[1] * dx, mosaic.shape[0] * dy
    fig_w = 11.4
    img_h = fig_w * 0.98 * height_mm / width_mm
    header, footer = 0.45, 0.3
    fig_h = img_h + header + footer
    fig = Figure(figsize=(fig_w, fig_h), facecolor="white")
    ax = fig.add_axes((0.01, footer / fig_h, 0.98, img_h / fig_h))
    ax.imshow(mosaic, extent=(0.0, width_mm, height_mm, 0.0), interpolation="antialiased")
    ax.set_axis_off()
    tag_box = {"boxstyle": "round,pad=0.15", "facecolor": "black", "alpha": 0.6, "edgecolor": "none"}
    for i, k in enumerate(order):
        r, c = divmod(i, cols)
        x0, y0 = c * (w + pad) * dx, r * (h + pad) * dy
        tag = f"{k}" + (f" · {level_of[int(k)]}" if int(k) in level_of else "")
        ax.text(x0 + 1.5 * dx, y0 + 1.5 * dy, tag, color="white", fontsize=8, ha="left", va="top", bbox=tag_box)
    top, bottom, left, right = views[0].edge_letters
    letters = (
        (w * dx / 2, h * dy - dy, bottom, "center", "bottom"),
        (dx, h * dy / 2, left, "left", "center"),
        (w * dx - dx, h * dy / 2, right, "right", "center"),
        (w * dx / 2, dy, top, "center", "top"),
    )
    for x, y, text, ha, va in letters:
        ax.text(x, y, text, color="white", fontsize=8, fontweight="bold", ha=ha, va=va, bbox=tag_box)
    fig.suptitle(title, x=0.01, y=1 - 0.1 / fig_h, ha="left", va="top", fontsize=11)
    fig.text(0.01, 0.08 / fig_h, "Tags: axial slice index · level. " + CONVENTION_NOTE, fontsize=7.5, color="#444444")
    return save_figure(fig, path)


def _outlined(
    grey: np.ndarray, plane_labels: np.ndarray, window: tuple[float, float], colours: dict[int, np.ndarray]
) -> np.ndarray:
    """RGB tile: the grey image with each label lightly tinted and its outline in the label colour."""
    low, high = window
    base = np.clip((grey.astype(np.float32) - low) / (high - low), 0.0, 1.0)
    rgb = np.repeat(base[..., None], 3, axis=2)
    inner = ndimage.grey_erosion(plane_labels, size=(3, 3))
    outer = ndimage.grey_dilation(plane_labels, size=(3, 3))
    edge = (plane_labels > 0) & ((inner != plane_labels) | (outer != plane_labels))
    for value, colour in colours.items():
        inside = plane_labels == value
        if not inside.any():
            continue
        rgb[inside] = 0.78 * rgb[inside] + 0.22 * colour
        rgb[inside & edge] = colour
    return rgb


def _hex_rgb(colour: str) -> tuple[float, float, float]:
    from matplotlib import colors

    return colors.to_rgb(colour)
