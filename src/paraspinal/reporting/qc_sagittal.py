"""Sagittal QC image of spinal levels: bodies, disc planes and (optionally) the axial slice planes.

A mid-sagittal view (through the mean of the named bodies' or discs' centres) of the sagittal image
with the body labels outlined and named, each disc's centre and plane drawn and named, and, when an
axial stack was matched, every axial slice plane's intersection with the view (thin lines) and the
chosen disc slices (bold, named). Superior at the top, anterior on the viewer's left (see
:mod:`paraspinal.reporting.qc_views`). Drawn on an explicit matplotlib Figure (no pyplot state).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from paraspinal.io.image import Image
from paraspinal.io.orientation import slice_axis
from paraspinal.levels import AxialLevels, SpineLevels
from paraspinal.reporting.qc import draw_plane, edge_letters, save_figure
from paraspinal.reporting.qc_views import PlaneView, can_contour, display_window, plane_view

__all__ = ["plot_sagittal_levels"]

_DISC_COLOUR = "#F0E442"
_ESTIMATED_COLOUR = "#E69F00"
_SLICE_COLOUR = "#56B4E9"
_CHOSEN_COLOUR = "#D55E00"
_BODY_COLOURS = ("#009E73", "#0072B2", "#CC79A7", "#56B4E9", "#E69F00", "#F0E442")
_PLANE_HALF_LENGTH_MM = 28.0
_LABEL_GAP_FRACTION = 0.045  # of the view height: disc labels in the margin never overlap


def plot_sagittal_levels(
    sagittal: Image,
    *,
    spine: SpineLevels,
    labels: Image | None = None,
    axial: Image | None = None,
    matched: AxialLevels | None = None,
    title: str,
    path: Path,
) -> Path:
    """Write the sagittal levels QC PNG to ``path`` (see module docstring); returns ``path``."""
    centres = [d.centre_mm for d in spine.discs] + [b.centroid_mm for b in spine.bodies]
    mean = np.mean(np.asarray(centres, dtype=np.float64), axis=0)
    probe = plane_view(sagittal, "sagittal", 0)
    voxel = _to_voxel(sagittal, mean[None, :])[0]
    index = int(np.clip(np.rint(voxel[probe.fixed_axis]), 0, sagittal.shape[probe.fixed_axis] - 1))
    view = plane_view(sagittal, "sagittal", index)
    n_rows, n_cols = view.shape
    aspect = (n_rows * view.row_spacing_mm) / (n_cols * view.col_spacing_mm)
    panel_w = 6.0
    panel_h = panel_w * aspect
    if panel_h > 9.0:
        panel_h, panel_w = 9.0, 9.0 / aspect
    height = panel_h + 1.3
    fig = Figure(figsize=(panel_w / 0.94, height), facecolor="white")
    ax = fig.add_axes((0.03, 0.75 / height, 0.94, panel_h / height))
    draw_plane(ax, view, sagittal, window=display_window(sagittal.array))
    left, right, bottom, top = view.extent_mm
    if labels is not None:
        _draw_bodies(ax, view, labels)
    for body in spine.bodies:
        x, y = _display(sagittal, view, np.asarray(body.centroid_mm))
        ax.text(x, y, body.name, color="white", fontsize=9, fontweight="bold", ha="center", va="center")
    if axial is not None and matched is not None:
        _draw_axial_planes(ax, view, sagittal, axial, matched)
    low, high = sorted((bottom, top))
    planes = []
    for disc in spine.discs:
        centre = np.asarray(disc.centre_mm)
        segment = _plane_segment(sagittal, view, centre, np.asarray(disc.normal))
        planes.append((disc, segment, _display(sagittal, view, centre)))
    label_ys = spread_labels(  # labels follow the disc centres, so their cranio-caudal order is kept
        [float(np.clip(cy, low, high)) for _, _, (_, cy) in planes],
        min_gap=_LABEL_GAP_FRACTION * (high - low), low=low, high=high,
    )  # fmt: skip
    for (disc, ((x0, y0), (x1, y1)), (cx, cy)), y_label in zip(planes, label_ys, strict=True):
        colour = _ESTIMATED_COLOUR if disc.estimated else _DISC_COLOUR
        ax.plot([x0, x1], [y0, y1], color=colour, lw=2.0, ls="--" if disc.estimated else "-")
        ax.plot([cx], [cy], marker="o", color=colour, ms=5)
        end = (x1, y1) if x1 >= x0 else (x0, y0)
        ax.plot([end[0], right - 2.0], [end[1], y_label], color=colour, lw=0.6, ls=":")  # plane to its label
        label = f"{disc.name}{' (est.)' if disc.estimated else ''} {disc.confidence:.2f}"
        ax.text(
            right - 2.0, y_label, label, color="black", fontsize=8, ha="right", va="center",
            bbox={"boxstyle": "round,pad=0.15", "facecolor": colour, "edgecolor": "none", "alpha": 0.9},
        )  # fmt: skip
    ax.set_xlim(left, right)
    ax.set_ylim(bottom, top)
    edge_letters(ax, view, size=11)
    ax.set_title(f"{title} (sagittal voxel {view.index})", fontsize=10.5, loc="left")
    note = (
        "Discs: centre and plane (yellow; orange dashed = estimated), with naming confidence. "
        + ("Axial slice planes: blue; chosen disc slices: red. " if matched is not None else "")
        + "Anterior on the viewer's left."
    )
    fig.text(0.03, 0.3 / height, note, fontsize=7.5, color="#444444", wrap=True)
    return save_figure(fig, path)


def _to_voxel(image: Image, points_mm: np.ndarray) -> np.ndarray:
    return (points_mm - image.affine[:3, 3]) @ np.linalg.inv(image.affine[:3, :3]).T


def _display(image: Image, view: PlaneView, point_mm: np.ndarray) -> tuple[float, float]:
    """Display (column mm, row mm) of a world point projected onto the view along its fixed axis."""
    v = _to_voxel(image, point_mm[None, :])[0]
    return view.col_mm(float(v[view.col_axis])), view.row_mm(float(v[view.row_axis]))


def spread_labels(ys: list[float], *, min_gap: float, low: float, high: float) -> list[float]:
    """Label heights as close to ``ys`` as possible, order kept, at least ``min_gap`` apart, inside
    [``low``, ``high``] (display units; when they cannot fit, the gap shrinks to fit them evenly)."""
    if not ys:
        return []
    order = np.argsort(ys, kind="stable")
    gap = min(min_gap, (high - low) / max(len(ys) - 1, 1))
    placed = np.asarray(ys, dtype=float)[order]
    placed[0] = max(placed[0], low)
    for i in range(1, len(placed)):
        placed[i] = max(placed[i], placed[i - 1] + gap)
    placed[-1] = min(placed[-1], high)
    for i in range(len(placed) - 2, -1, -1):
        placed[i] = min(placed[i], placed[i + 1] - gap)
    out = np.empty_like(placed)
    out[order] = placed
    return [float(y) for y in out]


def _y_at(x: float, a: tuple[float, float], b: tuple[float, float]) -> float:
    """Display row of the line through ``a`` and ``b`` at display column ``x``."""
    (x0, y0), (x1, y1) = a, b
    return y0 if abs(x1 - x0) < 1e-9 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)


def _view_normal(image: Image, view: PlaneView) -> np.ndarray:
    """Unit world normal of the displayed voxel plane."""
    normal = np.cross(image.affine[:3, view.row_axis], image.affine[:3, view.col_axis])
    return normal / np.linalg.norm(normal)


def _in_plane_direction(image: Image, view: PlaneView, normal: np.ndarray) -> np.ndarray:
    """Unit world direction, within the displayed plane, perpendicular to ``normal``."""
    fixed = _view_normal(image, view)
    direction = np.cross(normal, fixed)
    length = float(np.linalg.norm(direction))
    return direction / length if length > 1e-9 else np.cross(fixed, [0.0, 0.0, 1.0])


def _plane_segment(
    image: Image, view: PlaneView, point: np.ndarray, normal: np.ndarray, *, half_mm: float = _PLANE_HALF_LENGTH_MM
) -> tuple[tuple[float, float], tuple[float, float]]:
    direction = _in_plane_direction(image, view, normal)
    return _display(image, view, point - half_mm * direction), _display(image, view, point + half_mm * direction)


def _onto_view(image: Image, view: PlaneView, point: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """Move ``point`` within its plane (unit ``normal``) onto the displayed plane, when they are not parallel."""
    fixed = _view_normal(image, view)
    ijk = np.zeros(3)
    ijk[view.fixed_axis] = view.index
    shift = float((image.affine[:3, :3] @ ijk + image.affine[:3, 3] - point) @ fixed)
    along = fixed - float(fixed @ normal) * normal
    denominator = float(along @ fixed)
    return point + along * (shift / denominator) if abs(denominator) > 1e-6 else point


def _draw_bodies(ax, view: PlaneView, labels: Image) -> None:
    plane = view.take(labels.array)
    if not can_contour(plane):
        return
    for i, value in enumerate(int(v) for v in np.unique(plane) if v > 0):
        mask = (plane == value).astype(np.float32)
        colour = _BODY_COLOURS[i % len(_BODY_COLOURS)]
        ax.contourf(mask, levels=[0.5, 1.5], colors=[colour], alpha=0.22, extent=view.extent_mm, origin="upper")
        ax.contour(mask, levels=[0.5], colors=[colour], linewidths=1.2, extent=view.extent_mm, origin="upper")


def _draw_axial_planes(ax, view: PlaneView, sagittal: Image, axial: Image, matched: AxialLevels) -> None:
    """Each axial slice plane where it cuts the view: thin lines; the chosen disc slices bold and named."""
    axis = slice_axis(axial.affine)
    m = axial.affine[:3, :3]
    in_plane = [a for a in range(3) if a != axis]
    normal = np.cross(m[:, in_plane[0]], m[:, in_plane[1]])
    normal /= np.linalg.norm(normal)
    centre = (np.asarray(axial.shape, dtype=np.float64) - 1) / 2
    chosen = {r.disc_slice: r.name for r in matched.records}
    left = view.extent_mm[0]
    half = 0.5 * float(np.linalg.norm(m[:, in_plane[0]]) * axial.shape[in_plane[0]])
    for s in range(axial.shape[axis]):
        ijk = centre.copy()
        ijk[axis] = s
        point = _onto_view(sagittal, view, m @ ijk + axial.affine[:3, 3], normal)
        (x0, y0), (x1, y1) = _plane_segment(sagittal, view, point, normal, half_mm=half)
        if s in chosen:
            ax.plot([x0, x1], [y0, y1], color=_CHOSEN_COLOUR, lw=1.6)
            ax.text(
                left + 2.0, _y_at(left + 2.0, (x0, y0), (x1, y1)), f"slice {s} ({chosen[s]})", color="white",
                fontsize=7.5, ha="left", va="bottom",
                bbox={"boxstyle": "round,pad=0.12", "facecolor": _CHOSEN_COLOUR, "edgecolor": "none", "alpha": 0.85},
            )  # fmt: skip
        else:
            ax.plot([x0, x1], [y0, y1], color=_SLICE_COLOUR, lw=0.5, alpha=0.6)
