"""Building the tidy measurement table: row groups, slice spans and the row accumulator."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from paraspinal.levels import LevelTable
from paraspinal.measurement.regions import Region

COLUMNS = (
    "case_id",
    "structure",
    "side",
    "scope",
    "level",
    "slice",
    "z_mm",
    "metric",
    "method",
    "image",
    "value",
    "unit",
    "flags",
)


@dataclass(frozen=True)
class Group:
    """Rows of the sum matrices reported together (one region, or both sides of a structure)."""

    structure: str
    side: str
    rows: tuple[int, ...]
    category: str


def groups_of(regions: tuple[Region, ...]) -> list[Group]:
    groups = [Group(r.structure, r.side, (r.index,), r.category) for r in regions]
    by_structure: dict[str, list[Region]] = {}
    for r in regions:
        if r.side in ("left", "right"):
            by_structure.setdefault(r.structure, []).append(r)
    for structure, pair in by_structure.items():
        if len(pair) == 2:
            groups.append(Group(structure, "both", tuple(r.index for r in pair), pair[0].category))
    return groups


def rows_of(matrix: np.ndarray, group: Group) -> np.ndarray:
    """Sum of the matrix rows that make up ``group``."""
    return matrix[list(group.rows)].sum(axis=0)


def spans(counts: np.ndarray, levels: LevelTable | None) -> list[tuple[slice, dict[str, object]]]:
    """Slice ranges to report an additive metric over: the structure, each slice it spans, each level."""
    touched = np.flatnonzero(counts)
    out: list[tuple[slice, dict[str, object]]] = [(slice(None), {"scope": "structure"})]
    out += [(slice(s, s + 1), {"scope": "slice", "slice_": s}) for s in range(touched[0], touched[-1] + 1)]
    out += [(slice(lv.slice_start, lv.slice_stop), {"scope": "level", "level": lv.name}) for lv in levels or ()]
    return out


class RowBuilder:
    """Accumulates tidy rows with consistent columns and flags."""

    def __init__(
        self, *, case_id: str, z_mm: np.ndarray, laterality: set[str], metric_flags: dict[str, tuple[str, ...]]
    ) -> None:
        self.case_id = case_id
        self.z_mm = z_mm
        self.laterality = laterality
        self.metric_flags = metric_flags
        self.rows: list[tuple] = []
        self.structure_flags: dict[tuple[str, str], list[str]] = {}

    def add(
        self,
        group: Group,
        *,
        scope: str,
        metric: str,
        method: str,
        value: float,
        unit: str,
        level: str | None = None,
        slice_: int | None = None,
        image: str = "",
        extra: str = "",
    ) -> None:
        flags = list(self.metric_flags.get(metric, ()))
        if group.structure in self.laterality:
            flags.append("laterality_mismatch")
        if scope == "structure":
            flags.extend(self.structure_flags.get((group.structure, group.side), ()))
        if extra:
            flags.append(extra)
        z = float(self.z_mm[slice_]) if slice_ is not None else np.nan
        self.rows.append(
            (
                self.case_id,
                group.structure,
                group.side,
                scope,
                level,
                slice_,
                z,
                metric,
                method,
                image,
                float(value),
                unit,
                ";".join(flags),
            )
        )

    def frame(self) -> pd.DataFrame:
        table = pd.DataFrame.from_records(self.rows, columns=list(COLUMNS))
        table["slice"] = table["slice"].astype("Int64")
        return table
