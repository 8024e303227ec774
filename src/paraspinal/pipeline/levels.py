"""Which level source wins, decided in one place, and the case's levels from it.

In order: the case's own levels CSV (``<case>_levels.csv`` or the cases CSV's ``levels`` column), else the
run's shared CSV (``--levels``; a CSV that names cases gives each case its rows, matched exactly, and a case it
has no rows for gets no levels and a warning), else the case's sagittal image (its label map when given, else
the spine model; the discs are placed on the axial stack), else the named discs of the axial label map, else
none (measurements per slice only). A sagittal image that cannot give levels (no spine model, no disc on the
axial stack) says why in a note, and the next source is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from paraspinal.backends.catalog import Models
from paraspinal.errors import LevelsError, ParaspinalError
from paraspinal.io import Image, LabelMap
from paraspinal.levels import LevelTable, resolve_levels
from paraspinal.pipeline.case import Case
from paraspinal.pipeline.options import RunOptions
from paraspinal.pipeline.read import CaseImages
from paraspinal.pipeline.sagittal import SagittalLevels, sagittal_levels
from paraspinal.quality import Assessment

__all__ = ["CaseLevels", "LevelSource", "check_levels_csv", "find_levels", "level_source"]

LevelSource = Literal["csv", "sagittal", "label map"]


@dataclass(frozen=True)
class CaseLevels:
    """A case's levels (None: per slice only), where they came from, notes for its warnings, and the
    sagittal result when a sagittal image was used (its files go into the case folder)."""

    table: LevelTable | None
    source: str
    notes: tuple[str, ...] = ()
    spine: SagittalLevels | None = None
    quality: Assessment | None = None  # how far to trust the level names and positions (None: not assessed)


def level_source(case: Case, *, options: RunOptions) -> tuple[LevelSource, Path | None]:
    """Which source gives ``case`` its levels (and the CSV, for ``csv``): see the module docstring."""
    csv = case.levels or options.levels_csv
    if csv is not None:
        return "csv", Path(csv)
    if case.sagittal is not None:
        return "sagittal", None
    return "label map", None


def find_levels(
    case: Case, images: CaseImages, label_map: LabelMap | None, *, options: RunOptions, models: Models
) -> CaseLevels:
    """The case's levels from the source that wins (see the module docstring).

    ``label_map`` None (a sagittal-only case, as ``paraspinal levels`` makes) gives the sagittal levels alone,
    placed on the case's axial image when it has one.
    """
    source, csv = level_source(case, options=options)
    notes: list[str] = []
    spine = None
    if source == "sagittal" and images.sagittal is not None:
        spine, why_not = _sagittal(images, label_map, options=options, models=models)
        if why_not is not None:
            notes.append(f"sagittal image {Path(images.sagittal.source).name} not used for levels: {why_not}")
        else:
            assert spine is not None
            notes.extend(spine.notes)
            if spine.matched is not None:
                return CaseLevels(spine.matched.table, spine.source, tuple(notes), spine, quality=spine.quality)
    if label_map is None:
        quality = spine.quality if spine is not None else None
        return CaseLevels(None, spine.source if spine is not None else "none", tuple(notes), spine, quality=quality)
    found = resolve_levels(label_map, csv=csv, case_id=case.case_id)
    if found.table is None and csv is None and images.ct is not None:
        return _vertebra_levels(label_map, notes=(*notes, *found.notes), spine=spine) or CaseLevels(
            found.table, found.source, (*notes, *found.notes), spine
        )
    return CaseLevels(found.table, found.source, (*notes, *found.notes), spine)


def _vertebra_levels(label_map: LabelMap, *, notes: tuple[str, ...], spine: SagittalLevels | None) -> CaseLevels | None:
    """CT label maps name vertebrae, not discs (TotalSegmentator's ``total``): each whole vertebra in view is a
    level of its own (see :func:`paraspinal.levels.levels_from_vertebra_mask`); None when none is."""
    from paraspinal.levels import levels_from_vertebra_mask

    try:
        table = levels_from_vertebra_mask(label_map.labels, scheme=label_map.scheme)
    except LevelsError:
        return None
    return CaseLevels(table, "vertebrae in the label map", notes, spine)


def _sagittal(
    images: CaseImages, label_map: LabelMap | None, *, options: RunOptions, models: Models
) -> tuple[SagittalLevels | None, str | None]:
    """The sagittal levels, or why there are none (the spine model cannot be loaded)."""
    assert images.sagittal is not None
    backend = None
    if images.sagittal_labels is None:
        try:
            backend = models.get("spine")
        except ParaspinalError as exc:
            return None, exc.message
    axial = None
    if images.axial is not None:
        grid = label_map.labels if label_map is not None else images.axial
        source = images.axial
        axial = Image(grid.array, grid.affine, source=source.source, metadata=dict(source.metadata))
    spine = sagittal_levels(
        images.sagittal,
        labels=images.sagittal_labels,
        backend=backend,
        axial=axial,
        tolerance_mm=options.levels_tolerance_mm,
    )
    return spine, None


def check_levels_csv(path: str | Path, *, n_cases: int) -> None:
    """A levels CSV shared by several cases must say which rows are whose (``case_id``, ``pid`` or ``CT_id``)."""
    if not Path(path).is_file():
        raise LevelsError("levels file not found", path=path)
    try:
        columns = {str(c).strip() for c in pd.read_csv(path, nrows=0).columns}
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise LevelsError(f"cannot parse levels CSV ({' '.join(str(exc).split())[:120]})", path=path) from None
    if not columns & {"case_id", "pid", "CT_id"}:
        raise LevelsError(
            f"levels CSV has no case_id (or pid) column, so its rows cannot be matched to {n_cases} cases",
            path=path,
        )
