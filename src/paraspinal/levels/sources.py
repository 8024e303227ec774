"""Build level tables from a CSV (LPM or per-level form), a mapping, a disc label map or named vertebrae.

CSV forms
---------
* **LPM_Segmentator**: columns ``pid`` (or ``CT_id``), ``slice_start``, ``slice_stop`` (half-open,
  as LPM crops ``array[slice_start:slice_stop]``), other columns ignored. One row per case; the
  range becomes one level named ``L2-L5`` (LPM's crop) unless a ``level`` column names it.
* **Per level**: columns ``level`` and either ``slice`` (the disc slice) or ``slice_start`` +
  ``slice_stop`` (half-open), optionally ``disc_slice`` and ``case_id``.

Rows are matched to a case by their id (``case_id``, ``pid`` or ``CT_id``) exactly, or when the id is a
file name that names the case by the file-name rules of :mod:`paraspinal.io.case_names` (LPM's
``01_water_img`` is case ``01``); a prefix never matches (``P10``'s rows are not ``P1``'s). A CSV that
names cases but has no rows for a case gives that case no levels, with a note (:func:`resolve_levels`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from paraspinal.anatomy import AnatomyRegistry, LabelScheme, load_registry
from paraspinal.errors import LevelsError
from paraspinal.io.case_names import case_id_from_name
from paraspinal.io.image import Image
from paraspinal.io.label_map import LabelMap
from paraspinal.io.orientation import axial_frame
from paraspinal.levels.table import Level, LevelTable, level_sort_key, normalise_level_name

LPM_DEFAULT_LEVEL = "L2-L5"
_ID_COLUMNS = ("case_id", "pid", "CT_id")


@dataclass(frozen=True)
class LevelsResult:
    """The levels found for a label map (None: per slice only), where they came from, and notes for the
    case's warnings (e.g. a levels CSV with no rows for the case)."""

    table: LevelTable | None
    source: str
    notes: tuple[str, ...] = ()


def read_levels_csv(path: str | Path, *, n_slices: int, case_id: str | None = None) -> LevelTable:
    """Read a levels CSV in LPM or per-level form (see module docstring) and validate it.

    ``case_id`` picks the rows of one case when the file holds several (LPM ``pid``/``CT_id`` or a
    ``case_id`` column); a file with rows for a single case needs none. A CSV that names cases but has
    no rows for ``case_id`` is a :class:`LevelsError` here (:func:`resolve_levels` makes it a note).
    """
    table = _levels_csv(path, n_slices=n_slices, case_id=case_id)
    if table is None:
        raise LevelsError(f"no rows for case {case_id}", path=path)
    return table


def _levels_csv(path: str | Path, *, n_slices: int, case_id: str | None) -> LevelTable | None:
    """:func:`read_levels_csv`, but None when the CSV names cases and none of its rows is ``case_id``'s."""
    p = Path(path)
    if not p.is_file():
        raise LevelsError("levels file not found", path=p)
    try:
        frame = pd.read_csv(p, dtype=dict.fromkeys(_ID_COLUMNS, str))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise LevelsError(f"cannot parse levels CSV ({' '.join(str(exc).split())[:120]})", path=p) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    frame = frame.loc[:, [c for c in frame.columns if c and not c.startswith("Unnamed")]]
    id_column = next((c for c in _ID_COLUMNS if c in frame.columns), None)
    if id_column is not None:
        rows = _rows_for_case(frame, id_column=id_column, case_id=case_id, path=p)
        if rows is None:
            return None
        frame = rows
    if frame.empty:
        raise LevelsError("levels CSV has no rows", path=p)
    if "level" in frame.columns:
        table = _per_level(frame, path=p)
    elif {"slice_start", "slice_stop"} <= set(frame.columns):
        table = _lpm(frame, path=p)
    else:
        raise LevelsError(
            "levels CSV needs columns level + slice (or slice_start, slice_stop), or LPM's pid, slice_start, "
            f"slice_stop; found {', '.join(frame.columns)}",
            path=p,
        )
    return table.validated(n_slices=n_slices, path=p)


def levels_from_mapping(
    mapping: Mapping[str, int | tuple[int, int]], *, n_slices: int, source: str = "mapping"
) -> LevelTable:
    """Level table from ``{name: disc_slice}`` or ``{name: (slice_start, slice_stop)}`` (half-open)."""
    levels = []
    for name, value in mapping.items():
        if isinstance(value, tuple | list):
            start, stop = (int(v) for v in value)
            levels.append(Level(normalise_level_name(name), start, stop, None, None, source))
        else:
            levels.append(Level(normalise_level_name(name), int(value), int(value) + 1, int(value), None, source))
    levels.sort(key=lambda lv: level_sort_key(lv.name))
    return LevelTable(tuple(levels)).validated(n_slices=n_slices, path=None if source == "mapping" else source)


def levels_from_disc_mask(labels: Image, *, scheme: LabelScheme, registry: AnatomyRegistry | None = None) -> LevelTable:
    """One level per labelled disc: its name, the axial slices it crosses, and the nearest slice.

    ``disc_slice`` is the slice whose plane is nearest the disc's centroid and ``distance_mm`` the
    centroid's distance to that plane (along the slice normal, so exact for tilted stacks).
    Discs without a level name in the registry (generic ``disc`` labels) are skipped.
    """
    registry = registry or load_registry()
    frame = axial_frame(labels)
    axis = frame.slice_axis
    levels = []
    for value, entry in scheme.labels.items():
        structure = registry[entry.structure]
        if structure.category != "disc" or not structure.level:
            continue
        ijk = np.argwhere(labels.array == value)
        if ijk.size == 0:
            continue
        centre_slice = float(ijk[:, axis].mean())
        nearest = int(np.clip(np.rint(centre_slice), 0, frame.n_slices - 1))
        present = np.unique(ijk[:, axis])
        levels.append(
            Level(
                name=normalise_level_name(structure.level),
                slice_start=int(present.min()),
                slice_stop=int(present.max()) + 1,
                disc_slice=nearest,
                distance_mm=abs(centre_slice - nearest) * frame.slice_spacing_mm,
                source="disc mask",
            )
        )
    if not levels:
        raise LevelsError("label map holds no named intervertebral discs to derive levels from", path=labels.source)
    levels.sort(key=lambda lv: level_sort_key(lv.name))
    return LevelTable(tuple(levels))


def levels_from_vertebra_mask(
    labels: Image, *, scheme: LabelScheme, registry: AnatomyRegistry | None = None, core_share: float = 0.5
) -> LevelTable:
    """One vertebral level per labelled, level-named vertebra (``L3`` ...), as CT body composition uses.

    A level's slices are those where the vertebra's label covers at least ``core_share`` of its largest
    axial cross-section (the body and pedicles, not the thin tips of the posterior elements that reach
    into the neighbouring levels); no disc slice. Vertebrae touching the first or last axial slice are cut
    by the field of view and give no level.
    """
    registry = registry or load_registry()
    frame = axial_frame(labels)
    axis = frame.slice_axis
    others = tuple(a for a in range(3) if a != axis)
    levels = []
    for value, entry in scheme.labels.items():
        structure = registry[entry.structure]
        if structure.category != "vertebra" or not structure.level:
            continue
        per_slice = np.count_nonzero(labels.array == value, axis=others)
        present = np.flatnonzero(per_slice)
        if present.size == 0 or present[0] == 0 or present[-1] == frame.n_slices - 1:
            continue
        core = np.flatnonzero(per_slice >= core_share * per_slice.max())
        levels.append(Level(structure.level, int(core[0]), int(core[-1]) + 1, None, None, "vertebra mask"))
    if not levels:
        raise LevelsError("label map holds no whole level-named vertebra to derive levels from", path=labels.source)
    levels.sort(key=lambda lv: level_sort_key(lv.name))
    return LevelTable(tuple(levels))


def resolve_levels(
    label_map: LabelMap,
    *,
    csv: str | Path | None = None,
    case_id: str | None = None,
    registry: AnatomyRegistry | None = None,
) -> LevelsResult:
    """The levels for a label map and where they came from: ``csv`` when given, else the named discs
    of the label map, else none (then measurements are per slice only).

    A ``csv`` that names cases but has no rows for ``case_id`` gives no levels (not the discs: the CSV
    was meant to apply) and the note ``levels CSV <csv> has no rows for case <id>: measured per slice only``.
    """
    labels, scheme = label_map.labels, label_map.scheme
    if csv is not None:
        table = _levels_csv(csv, n_slices=axial_frame(labels).n_slices, case_id=case_id)
        if table is None:
            note = f"levels CSV {csv} has no rows for case {case_id}: measured per slice only"
            source = f"none ({csv} has no rows for this case; per slice over the whole stack)"
            return LevelsResult(None, source, (note,))
        return LevelsResult(table, str(csv))
    registry = registry or load_registry()
    present = {int(v) for v in np.unique(labels.array)} & set(scheme.values)
    if any(
        registry[scheme.entry(v).structure].category == "disc" and registry[scheme.entry(v).structure].level
        for v in present
    ):
        return LevelsResult(levels_from_disc_mask(labels, scheme=scheme, registry=registry), "discs in the label map")
    return LevelsResult(None, "none (per slice over the whole stack)")


def _rows_for_case(frame: pd.DataFrame, *, id_column: str, case_id: str | None, path: Path) -> pd.DataFrame | None:
    """The rows whose id is ``case_id`` or a file name naming it (module docstring); None when there are none."""
    ids = frame[id_column].fillna("").astype(str).str.strip()
    unique = list(dict.fromkeys(ids))
    if case_id is None:
        if len(unique) > 1:
            raise LevelsError(
                f"levels CSV holds {len(unique)} cases ({', '.join(unique[:5])}{', ...' if len(unique) > 5 else ''}); "
                "name the case",
                path=path,
            )
        return frame
    wanted = str(case_id)
    names = {i for i in unique if i == wanted or (i and case_id_from_name(i) == wanted)}
    if len(names) > 1:
        raise LevelsError(
            f"case {wanted} matches the rows of several ids ({', '.join(sorted(names))}, column {id_column})",
            path=path,
        )
    if not names:
        return None
    return frame.loc[ids.isin(names)]


def _int_column(frame: pd.DataFrame, column: str, *, path: Path) -> list[int | None]:
    values = pd.to_numeric(frame[column], errors="coerce")
    raw = frame[column]
    bad = values.isna() & raw.notna() & (raw.astype(str).str.strip() != "")
    if bad.any() or (values.dropna() % 1 != 0).any():
        raise LevelsError(f"column {column} must hold whole slice numbers", path=path)
    return [None if pd.isna(v) else int(v) for v in values]


def _lpm(frame: pd.DataFrame, *, path: Path) -> LevelTable:
    starts = _int_column(frame, "slice_start", path=path)
    stops = _int_column(frame, "slice_stop", path=path)
    if len(starts) != 1:
        raise LevelsError(f"LPM levels CSV has {len(starts)} rows for this case; expected one", path=path)
    if starts[0] is None or stops[0] is None:
        raise LevelsError("slice_start and slice_stop must not be empty", path=path)
    return LevelTable((Level(LPM_DEFAULT_LEVEL, starts[0], stops[0], None, None, str(path)),))


def _per_level(frame: pd.DataFrame, *, path: Path) -> LevelTable:
    names = [normalise_level_name(n) for n in frame["level"].astype(str)]
    if "slice" in frame.columns:
        discs = _int_column(frame, "slice", path=path)
        starts: list[int | None] = list(discs)
        stops: list[int | None] = [None if d is None else d + 1 for d in discs]
    elif {"slice_start", "slice_stop"} <= set(frame.columns):
        starts = _int_column(frame, "slice_start", path=path)
        stops = _int_column(frame, "slice_stop", path=path)
        discs = _int_column(frame, "disc_slice", path=path) if "disc_slice" in frame.columns else [None] * len(names)
    else:
        raise LevelsError("per-level CSV needs a slice column or slice_start and slice_stop", path=path)
    levels = []
    for name, start, stop, disc in zip(names, starts, stops, discs, strict=True):
        if start is None or stop is None:
            raise LevelsError(f"level {name} has no slice", path=path)
        levels.append(Level(name, start, stop, disc, None, str(path)))
    levels.sort(key=lambda lv: level_sort_key(lv.name))
    return LevelTable(tuple(levels))
