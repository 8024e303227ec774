"""The ``quality`` stage's work: a case's :class:`~paraspinal.quality.CaseQuality` and the ``qc`` column.

A case is assessed from its muscles (:func:`paraspinal.quality.muscle.assess_muscles`, on the image the label
map lies on), its levels (``CaseLevels.quality``, filled where the levels are found) and its laterality
(:func:`paraspinal.quality.laterality.check_laterality`). A given label map is assessed too, from its anatomy
and intensities (it has no model confidence): a hand-drawn map can be wrong as well, and one drawn by another
tool often is. A label map measured without any image (``paraspinal measure --labels`` alone) is not assessed:
its case is ``ok`` with the reason saying so.

Every measurement row gets a ``qc`` column (``ok``/``review``/``fail``, see
:meth:`~paraspinal.quality.CaseQuality.row_status`): structure rows take their structure's status, slice rows
their slice's, level rows the worse of their structure's and the levels'.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from paraspinal.io import LabelMap
from paraspinal.pipeline.read import CaseImages
from paraspinal.quality import CaseQuality, combine
from paraspinal.quality.laterality import check_laterality
from paraspinal.quality.muscle import assess_muscles

if TYPE_CHECKING:  # segment runs this stage: no pandas or matplotlib for it
    import pandas as pd

    from paraspinal.pipeline.levels import CaseLevels
    from paraspinal.reporting.qc import QcImage

__all__ = ["NO_IMAGE_REASON", "assess_case", "manifest_quality", "quality_file_name", "thumbnail", "with_qc"]

NO_IMAGE_REASON = "no image given: the label map was not assessed"
QC_SLICE_AXIS = 2  # quality slices are indices along the label grid's third axis


def assess_case(*, images: CaseImages, label_map: LabelMap, levels: CaseLevels | None) -> CaseQuality:
    """The case's quality from its muscles, levels and laterality (see the module docstring)."""
    level_quality = levels.quality if levels is not None else None
    image = images.to_segment
    if image is None or image.shape != label_map.labels.shape:
        return combine(levels=level_quality, extra_reasons=(NO_IMAGE_REASON,))
    structures = assess_muscles(label_map=label_map, image=image)
    fat = images.fat if images.fat is not None and images.fat.shape == image.shape else None
    laterality = check_laterality(image=image, label_map=label_map, fat=fat, ct=images.ct is not None)
    return combine(structures=structures, levels=level_quality, laterality=laterality)


def with_qc(table: pd.DataFrame, quality: CaseQuality, *, slice_axis: int) -> pd.DataFrame:
    """``table`` with its ``qc`` column (last). Slice rows take their slice's status only when the table's
    slices are the quality's (``slice_axis`` = the label grid's third axis), else their structure's."""
    import pandas as pd

    per_slice = slice_axis == QC_SLICE_AXIS
    keys = table[["structure", "side", "scope", "slice"]].drop_duplicates()
    status: dict[tuple[object, ...], str] = {}
    for structure, side, scope, index in keys.itertuples(index=False, name=None):
        has_slice = scope == "slice" and per_slice and not pd.isna(index)
        status[(structure, side, scope, index)] = quality.row_status(
            structure=str(structure),
            side=str(side),
            slice_index=int(index) if has_slice else None,
            level=scope == "level",
        )
    rows = table[["structure", "side", "scope", "slice"]].itertuples(index=False, name=None)
    column = [status[key] for key in rows]
    return table.drop(columns=["qc"], errors="ignore").assign(qc=column)


def quality_file_name(labels_name: str) -> str:
    """``<name>_quality.json`` for ``segment``'s label map ``<name>_dseg.nii.gz`` (or ``<name>.nii.gz``)."""
    stem = labels_name
    for suffix in (".nii.gz", ".nii"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    if stem.endswith("_dseg"):
        stem = stem[: -len("_dseg")]
    return f"{stem}_quality.json"


def thumbnail(images: Sequence[QcImage], quality: CaseQuality | None) -> Path | None:
    """The QC image a cohort page shows for the case: the axial image of its worst flagged slice, else its
    first axial image (None without one)."""
    axial = [img for img in images if img.kind == "axial"]
    if not axial:
        return None
    if quality is not None:
        flagged = {k: a.score for k, a in quality.slices().items() if a.status != "ok"}
        shown = [img for img in axial if img.slice_index in flagged]
        if shown:
            return Path(min(shown, key=lambda img: flagged[img.slice_index]).path)  # type: ignore[index]
    return Path(axial[0].path)


def manifest_quality(quality: CaseQuality, *, thumbnail_path: Path | None) -> Mapping[str, object]:
    """What the case manifest keeps of its quality (for cohort tables): status, score, reasons, thumbnail."""
    return {
        **quality.assessment.to_json(),
        "thumbnail": thumbnail_path.as_posix() if thumbnail_path is not None else None,
    }
