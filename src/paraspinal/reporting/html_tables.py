"""The measurement tables of a case page: per level and per structure, each number with its metric, method and
image in ``data-*`` attributes, and a QC column when the table has ``qc``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from paraspinal.reporting.html_render import _UNIT_TEXT, Cell, Column, HtmlTable, Row, _value_cell
from paraspinal.reporting.quality_html import row_qc

__all__ = ["level_table", "structure_table"]

_SIDE_ORDER = {"right": 0, "left": 1, "both": 2, "none": 3}
# (metric, method, column title, unit); fat infiltration columns are added per method present
_LEVEL_METRICS = (
    ("csa", "disc_slice", "CSA at disc slice", "mm2"),
    ("csa", "level_mean", "CSA level mean", "mm2"),
    ("volume", "level_slices", "Volume in level", "mL"),
    ("rcsa", "disc_slice", "rCSA", "ratio"),
    ("fat_fraction", "signal_weighted", "FF signal-weighted", "%"),
    ("fat_fraction", "voxel_mean", "FF voxel mean", "%"),
)
_CT_METRICS = (
    ("hu_mean", "HU mean"),
    ("hu_median", "HU median"),
    ("imat_share", "IMAT"),
    ("muscle_share", "Muscle"),
    ("excluded_share", "Excluded"),
)
_STRUCTURE_METRICS = (
    ("volume", "voxel_count", "Volume", "mL"),
    ("n_voxels", "voxel_count", "Voxel count", "voxels"),
    ("fat_fraction", "signal_weighted", "FF signal-weighted", "%"),
    ("fat_fraction", "voxel_mean", "FF voxel mean", "%"),
)


def _image_column(table: pd.DataFrame) -> pd.Series:
    return table["image"].fillna("").astype(str)


def _metric_specs(
    rows: pd.DataFrame, base: Sequence[tuple[str, str, str, str]]
) -> list[tuple[str, str, str, str, str]]:
    """(metric, method, image, title, unit) for each base metric present, then fat infiltration per method."""
    images = _image_column(rows)
    specs = []
    for metric, method, title, unit in base:
        hit = rows[(rows["metric"] == metric) & (rows["method"] == method)]
        for image in dict.fromkeys(images[hit.index]):
            specs.append((metric, method, image, title, unit))
    infiltration = rows[rows["metric"] == "fat_infiltration"]
    for method, image in dict.fromkeys(zip(infiltration["method"], images[infiltration.index], strict=True)):
        specs.append(("fat_infiltration", method, image, f"Fat infiltration {method} ({image})", "%"))
    for metric, title in _CT_METRICS:  # CT: one column per window or parenchyma rule present
        hit = rows[rows["metric"] == metric]
        for method, image, unit in dict.fromkeys(zip(hit["method"], images[hit.index], hit["unit"], strict=True)):
            specs.append((metric, method, image, f"{title} {method}", str(unit)))
    return specs


def _lookup(rows: pd.DataFrame, keys: Sequence[str]) -> dict[tuple, float]:
    frame = rows.assign(image=_image_column(rows))
    index = [*keys, "metric", "method", "image"]
    return {tuple(k): v for *k, v in frame[[*index, "value"]].itertuples(index=False, name=None)}


def level_table(table: pd.DataFrame) -> HtmlTable | None:
    """Per level, structure and side: CSA, volume, rCSA, fat fraction, fat infiltration (None without levels)."""
    rows = table[table["scope"] == "level"]
    if rows.empty:
        return None
    specs = _metric_specs(rows, _LEVEL_METRICS)
    values = _lookup(rows, ("level", "structure", "side"))
    qc = row_qc(rows, ("level", "structure", "side"))
    columns = [Column("Level", "level"), Column("Structure", "structure"), Column("Side", "side")]
    columns += [Column("QC", "qc")] if qc else []
    columns += [
        Column(_titled(title, unit), f"{metric}:{method}:{image}") for metric, method, image, title, unit in specs
    ]
    keys = rows[["level", "structure", "side"]].drop_duplicates()
    keys = keys.assign(
        _lv=keys["level"].map({lv: i for i, lv in enumerate(dict.fromkeys(rows["level"]))}),
        _sd=keys["side"].map(_SIDE_ORDER),
    )
    out: list[Row] = []
    previous = None
    for level, structure, side in keys.sort_values(["_lv", "structure", "_sd"])[
        ["level", "structure", "side"]
    ].itertuples(index=False, name=None):
        cells = [Cell(str(level)), Cell(str(structure)), Cell(str(side))]
        cells += [_qc_cell(qc[(level, structure, side)])] if qc else []
        for metric, method, image, _title, unit in specs:
            value = values.get((level, structure, side, metric, method, image))
            cells.append(
                Cell("", numeric=True)
                if value is None
                else _value_cell(value, unit, metric=metric, method=method, image=image)
            )
        out.append(
            Row(
                cells,
                {"level": str(level), "structure": str(structure), "side": str(side)},
                "group-start" if previous is not None and previous != level else "",
            )
        )
        previous = level
    return HtmlTable("levels", columns, out)


def structure_table(table: pd.DataFrame, *, reasons: Mapping[tuple[str, str], str] | None = None) -> HtmlTable:
    """Per structure and side over the whole field of view: its ``qc`` (when the table has the column), volume,
    voxels, fat fraction, infiltration, flags, and the quality ``reasons`` of the flagged structures."""
    rows = table[table["scope"] == "structure"]
    specs = _metric_specs(rows, _STRUCTURE_METRICS)
    values = _lookup(rows, ("structure", "side"))
    flags = rows[rows["metric"] == "volume"].set_index(["structure", "side"])["flags"].fillna("")
    qc = row_qc(rows, ("structure", "side"))
    columns = [Column("Structure", "structure"), Column("Side", "side")]
    columns += [Column("QC", "qc")] if qc else []
    columns += [
        Column(_titled(title, unit), f"{metric}:{method}:{image}") for metric, method, image, title, unit in specs
    ]
    columns.append(Column("Flags", "flags"))
    columns += [Column("Quality reasons", "qc_reasons")] if qc else []
    keys = rows[["structure", "side"]].drop_duplicates()
    keys = keys.assign(_sd=keys["side"].map(_SIDE_ORDER)).sort_values(["structure", "_sd"])
    out = []
    for structure, side in keys[["structure", "side"]].itertuples(index=False, name=None):
        cells = [Cell(str(structure)), Cell(str(side))]
        cells += [_qc_cell(qc[(structure, side)])] if qc else []
        for metric, method, image, _title, unit in specs:
            value = values.get((structure, side, metric, method, image))
            cells.append(
                Cell("", numeric=True)
                if value is None
                else _value_cell(value, unit, metric=metric, method=method, image=image)
            )
        cells.append(Cell(str(flags.get((structure, side), "")).replace(";", ", ")))
        if qc:
            cells.append(Cell((reasons or {}).get((structure, side), ""), attrs={"column": "qc_reasons"}))
        out.append(Row(cells, {"structure": str(structure), "side": str(side)}))
    return HtmlTable("structures", columns, out)


def _qc_cell(status: str) -> Cell:
    return Cell(status, badge=status, attrs={"column": "qc", "qc": status})


def _titled(title: str, unit: str) -> str:
    """``Volume (mL)``; units that are words (voxels) are left out."""
    return title if unit == "voxels" else f"{title} ({_UNIT_TEXT.get(unit, unit)})"
