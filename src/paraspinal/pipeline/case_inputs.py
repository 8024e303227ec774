"""Reading a case's inputs for ``run``: images and label map on one grid, DICOM series by role."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from paraspinal.io import Image, check_same_grid, image_suffix, read_image, read_label_map
from paraspinal.io.dicom import is_dicom_path
from paraspinal.io.dicom_select import SeriesChoice, choice_for_role
from paraspinal.pipeline.cases import Case

if TYPE_CHECKING:
    from paraspinal.pipeline.options import RunOptions


def read_case_images(case: Case, options: RunOptions) -> tuple[dict[str, Image], Image | None]:
    """Read a case's images (and label map), all on one grid: the label map's, else the segmented image's."""
    images = {
        role: read_image(path, series=series_choice(path, role, options))
        for role, path in case.inputs().items()
        if role in ("image", "water", "fat")
    }
    labels = (
        read_label_map(case.labels, series=series_choice(case.labels, "labels", options))
        if case.labels is not None
        else None
    )
    reference = labels if labels is not None else images[case.segmentation_input]
    for role, img in images.items():
        if img is not reference:
            images[role] = check_same_grid(reference, img, assume_aligned=options.assume_aligned)
    return images, labels


def series_choice(path: Path, role: str, options: RunOptions) -> SeriesChoice | None:
    """The DICOM series choice for one input (None for NIfTI/NRRD/MHA files)."""
    if image_suffix(path) is not None or not is_dicom_path(path):
        return None
    return choice_for_role(
        options.series,
        role=role,
        plane=options.plane,
        contrast=options.contrast,
        resample_uneven=options.resample_uneven,
        keep_descriptions=options.keep_descriptions,
    )


def with_series(labels: Image, source: Image) -> Image:
    """``labels`` carrying the DICOM series identity of the image it was made from (for DICOM-SEG)."""
    keys = ("series_key", "series_instance_uid")
    series = {k: source.metadata[k] for k in keys if k in source.metadata}
    return Image(labels.array, labels.affine, source=labels.source, metadata={**labels.metadata, **series})
