"""CT QC image: one axial slice in a CT window with what the CT measurements used and left out.

* organ parenchyma (from :class:`~paraspinal.measurement.ParenchymaSelection`): the selected voxels in
  green, the eroded margin in orange and the HU outliers (vessels, lesions) in purple;
* muscles: outlined in white, their adipose-window (IMAT) voxels in yellow.

Drawn on an explicit :class:`Figure` (no pyplot), radiological convention with the patient directions at
the edges, as every QC image (:mod:`paraspinal.reporting.qc`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from paraspinal.anatomy import LabelScheme
from paraspinal.io.image import Image
from paraspinal.io.label_map import LabelMap
from paraspinal.io.orientation import slice_axis
from paraspinal.measurement.attenuation import ADIPOSE_WINDOW_HU, window_label
from paraspinal.measurement.parenchyma import ParenchymaSelection
from paraspinal.reporting.qc import CONVENTION_NOTE, draw_plane, edge_letters, save_figure
from paraspinal.reporting.qc_fat import muscle_values
from paraspinal.reporting.qc_views import can_contour, crop_box, plane_view

__all__ = ["COLOURS", "CT_DISPLAY_WINDOW_HU", "ct_qc_slice", "plot_ct_axial_qc"]

CT_DISPLAY_WINDOW_HU = (-160.0, 240.0)  # soft tissue: width 400, level 40
COLOURS = {
    "selected": (0.0, 0.62, 0.45),  # Okabe-Ito green
    "margin": (0.90, 0.62, 0.0),  # orange
    "outliers": (0.80, 0.47, 0.65),  # reddish purple
    "imat": (0.94, 0.89, 0.26),  # yellow
}


def ct_qc_slice(labels: Image | LabelMap, selections: Mapping[str, ParenchymaSelection]) -> int:
    """The axial slice with the most selected parenchyma (all organs), else with the most labelled voxels."""
    image = labels.labels if isinstance(labels, LabelMap) else labels
    axis = slice_axis(image.affine)
    others = tuple(a for a in range(3) if a != axis)
    counts = sum((np.count_nonzero(s.selected, axis=others) for s in selections.values()), np.zeros(1, int))
    if not np.any(counts):
        counts = np.count_nonzero(image.array, axis=others)
    return int(np.argmax(counts))


def plot_ct_axial_qc(
    ct: Image,
    labels: Image | LabelMap,
    *,
    scheme: LabelScheme | None = None,
    selections: Mapping[str, ParenchymaSelection],
    slice_index: int,
    title: str,
    path: Path,
    adipose_window_hu: tuple[float, float] = ADIPOSE_WINDOW_HU,
    display_window_hu: tuple[float, float] = CT_DISPLAY_WINDOW_HU,
    margin_mm: float | None = 30.0,
) -> Path:
    """One axial CT slice with the organs' selected, margin and outlier voxels and the muscles' IMAT voxels.

    ``labels`` is the case's label map (a :class:`LabelMap`, or an image with ``scheme``) on ``ct``'s grid;
    the view is cropped to the labels plus ``margin_mm`` (None: the whole slice).
    """
    if isinstance(labels, LabelMap):
        scheme = scheme or labels.scheme
        labels = labels.labels
    if scheme is None:
        raise ValueError("plot_ct_axial_qc needs the label scheme (pass a LabelMap or scheme=)")
    crop = None if margin_mm is None else crop_box(labels, "axial", margin_mm=margin_mm)
    view = plane_view(labels, "axial", slice_index, crop=crop)
    hu = view.take(ct.array).astype(np.float64)
    plane_labels = view.take(labels.array)
    muscles = np.isin(plane_labels, muscle_values(scheme))
    overlay = np.zeros((*hu.shape, 4), dtype=np.float32)
    for selection in selections.values():
        for part in ("margin", "outliers", "selected"):
            overlay[view.take(getattr(selection, part))] = (*COLOURS[part], 0.55)
    imat = muscles & (hu >= adipose_window_hu[0]) & (hu <= adipose_window_hu[1])
    overlay[imat] = (*COLOURS["imat"], 0.95)
    n_rows, n_cols = view.shape
    aspect = (n_rows * view.row_spacing_mm) / (n_cols * view.col_spacing_mm)
    width = 6.4
    height = width * 0.96 * aspect + 1.6
    fig = Figure(figsize=(width, height), facecolor="white")
    ax = fig.add_axes((0.02, 1.05 / height, 0.96, width * 0.96 * aspect / height))
    draw_plane(ax, view, ct, window=display_window_hu)
    ax.imshow(overlay, extent=view.extent_mm, origin="upper", interpolation="nearest")
    if can_contour(muscles):
        ax.contour(muscles.astype(np.float32), levels=[0.5], colors=["white"], linewidths=1.0,
                   extent=view.extent_mm, origin="upper")  # fmt: skip
    edge_letters(ax, view)
    ax.set_title(title, fontsize=11, loc="left")
    organs = ", ".join(selections) or "no organ"
    method = next(iter(selections.values())).method if selections else ""
    handles = [
        Patch(color=COLOURS["selected"], label=f"parenchyma measured ({organs}{'; ' + method if method else ''})"),
        Patch(color=COLOURS["margin"], label="excluded: eroded margin"),
        Patch(color=COLOURS["outliers"], label="excluded: HU outliers"),
        Patch(color=COLOURS["imat"], label=f"muscle voxels in {window_label(adipose_window_hu)} HU (IMAT)"),
    ]
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.02, 1.0 / height), ncol=2, fontsize=8,
               frameon=False, handlelength=1.2)  # fmt: skip
    low, high = display_window_hu
    note = f"CT window {low:g} to {high:g} HU, axial slice {slice_index}; muscles outlined white.\n{CONVENTION_NOTE}"
    fig.text(0.02, 0.08 / height, note, fontsize=7.5, color="#444444")
    return save_figure(fig, path)
