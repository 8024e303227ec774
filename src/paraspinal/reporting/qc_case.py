"""All QC images of one case, written into a folder: the set a case report shows."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from paraspinal.io.image import Image
from paraspinal.io.label_map import LabelMap
from paraspinal.io.orientation import axial_frame, slice_positions_mm
from paraspinal.levels import LevelTable
from paraspinal.reporting.qc import (
    QcImage,
    QcSlice,
    plot_axial_overlay,
    plot_locator,
    plot_montage,
    qc_slices,
    safe_name,
)
from paraspinal.reporting.qc_fat import plot_fat_fraction_map, plot_threshold_map

__all__ = ["SINGLE_SLICE_NOTE", "write_case_qc"]

SINGLE_SLICE_NOTE = (
    "Single-slice image: no sagittal/coronal locator, since one axial slice has no extent along the spine to show."
)


def write_case_qc(
    folder: Path,
    *,
    case_id: str,
    label_map: LabelMap,
    levels: LevelTable | None,
    background: Image,
    table: pd.DataFrame,
    water: Image | None = None,
    fat: Image | None = None,
    image: Image | None = None,
    image_name: str = "image",
    infiltration_methods: Sequence[str] = (),
    n_even: int = 5,
    prefix: str = "qc",
    extra_slices: Sequence[int] = (),
) -> list[QcImage]:
    """Write the case's QC PNGs under ``folder / prefix`` and describe them (paths relative to ``folder``).

    Images: one axial overlay per level (disc slice, else the level's middle slice) or ``n_even``
    evenly spaced slices; a sagittal/coronal locator (left out for a single-slice stack, where it would be a
    1-voxel strip: :data:`SINGLE_SLICE_NOTE`); a montage of every labelled slice; the Dixon fat-fraction
    map (water + fat); threshold fat maps (``image`` + methods). ``extra_slices`` (e.g. the slices quality
    flagged) get an axial overlay each too, after the others.
    """
    labels, scheme = label_map.labels, label_map.scheme
    name = safe_name(case_id)
    slices: list[QcSlice] = qc_slices(labels, levels, n_even=n_even)
    chosen = {s.index for s in slices}
    z = slice_positions_mm(labels)
    extras = [
        QcSlice(k, float(z[k]), None, f"flagged slice {k}") for k in dict.fromkeys(extra_slices) if k not in chosen
    ]
    written: list[QcImage] = []

    def rel(stem: str) -> Path:
        return Path(prefix) / f"{name}_{stem}.png"

    for s in [*slices, *extras]:
        path = rel(f"axial_{safe_name(s.level)}" if s.level else f"axial_slice{s.index:03d}")
        title = f"{case_id} · {s.label} · z = {s.z_mm:.1f} mm"
        plot_axial_overlay(background, labels, scheme=scheme, qc_slice=s, title=title, path=folder / path)
        written.append(QcImage("axial", path, title, f"Axial slice {s.index} with label outlines.", s.index))
    if axial_frame(labels).n_slices > 1:
        path = rel("locator")
        title = f"{case_id} · where the axial QC slices sit"
        plot_locator(background, labels, scheme=scheme, slices=slices, levels=levels, title=title, path=folder / path)
        written.append(QcImage("locator", path, title, "Sagittal and coronal reformats with the QC slices marked."))
    path = rel("montage")
    title = f"{case_id} · every labelled axial slice"
    plot_montage(background, labels, scheme=scheme, levels=levels, title=title, path=folder / path)
    written.append(QcImage("montage", path, title, "All labelled axial slices, superior first."))
    if water is not None and fat is not None and slices:
        path = rel("fat_fraction")
        title = f"{case_id} · Dixon fat fraction in muscle"
        plot_fat_fraction_map(water, fat, labels, scheme=scheme, slices=slices, title=title, path=folder / path)
        written.append(QcImage("fat_fraction", path, title, "Voxel fat fraction 100·F/(F+W) inside the muscles."))
    if image is not None and infiltration_methods and slices:
        path = rel("fat_threshold")
        title = f"{case_id} · fat voxels by threshold method ({image_name} image)"
        plot_threshold_map(
            image,
            labels,
            scheme=scheme,
            table=table,
            image_name=image_name,
            methods=infiltration_methods,
            slices=slices,
            title=title,
            path=folder / path,
        )
        written.append(QcImage("fat_threshold", path, title, "Voxels above each muscle's threshold, per method."))
    return written
