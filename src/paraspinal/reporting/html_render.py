"""Shared rendering for the HTML pages: table and image types, number formatting, any DataFrame as a table,
QC images as a page shows them, and the Jinja2 environment that writes a page.

Every number in a table carries its full-precision value in ``data-value`` next to the rounded text, so a page
can be checked against the CSV it mirrors.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined

from paraspinal import __version__
from paraspinal.reporting.qc import QcImage

__all__ = ["Cell", "Column", "HtmlTable", "ReportImage", "Row", "format_value", "frame_table", "report_image"]

_DECIMALS = {"mm2": 1, "mL": 2, "%": 1, "ratio": 3, "voxels": 0, "HU": 1}
_UNIT_TEXT = {"mm2": "mm²", "mL": "mL", "%": "%", "ratio": "ratio", "s": "s", "HU": "HU"}


@dataclass(frozen=True)
class Cell:
    """One table cell: the text shown, plus ``data-*`` attributes (full-precision value and origin)."""

    text: str
    numeric: bool = False
    attrs: Mapping[str, str] = field(default_factory=dict)
    href: str | None = None
    badge: str | None = None
    image: str | None = None  # a thumbnail's src, shown instead of the text


@dataclass(frozen=True)
class Row:
    cells: Sequence[Cell]
    attrs: Mapping[str, str] = field(default_factory=dict)
    css: str = ""


@dataclass(frozen=True)
class Column:
    title: str
    key: str = ""


@dataclass(frozen=True)
class HtmlTable:
    """A table for the templates; ``name`` becomes its ``data-table`` attribute."""

    name: str
    columns: Sequence[Column]
    rows: Sequence[Row]


@dataclass(frozen=True)
class ReportImage:
    """An image as a page shows it: ``src`` is a data URI or a relative path; ``quality`` and ``notes`` the
    status and reasons of the slice it shows, when quality flagged it."""

    kind: str
    title: str
    caption: str
    src: str
    quality: str = ""
    notes: tuple[str, ...] = ()
    slice_index: int | None = None


def format_value(value: float, unit: str) -> str:
    """Rounded text for a number in ``unit`` (mm² 1 decimal, mL 2, % 1, ratio 3); NaN shows as a dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "\u2013"
    decimals = _DECIMALS.get(unit)
    return f"{value:.{decimals}f}" if decimals is not None else f"{value:.4g}"


def _value_cell(value: float, unit: str, **attrs: str) -> Cell:
    number = float(value)
    return Cell(format_value(number, unit), numeric=True, attrs={**attrs, "value": repr(number), "unit": unit})


def _text(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    return str(value)


def _unit_of_column(name: str) -> str:
    for suffix, unit in (("_mm2", "mm2"), ("_mL", "mL"), ("_%", "%"), ("_s", "s"), ("_HU", "HU")):
        if name.endswith(suffix):
            return unit
    return ""


def _column_title(name: str) -> str:
    unit = _unit_of_column(name)
    base = name[: -len(unit) - 1] if unit else name
    base = base.replace("ff_", "FF ").replace("csa_", "CSA ").replace("_", " ")
    return f"{base} ({_UNIT_TEXT.get(unit, unit)})" if unit else base


def frame_table(
    frame: pd.DataFrame,
    *,
    name: str,
    links: Mapping[str, Callable[[Mapping[str, object]], str | None]] | None = None,
    badges: Iterable[str] = (),
    images: Iterable[str] = (),
) -> HtmlTable:
    """Any DataFrame as a table: numbers rounded by the unit in their column name, full value in ``data-value``;
    ``images`` are columns of image paths, shown as thumbnails (linked as their row's ``links`` say)."""
    links = links or {}
    badges, images = set(badges), set(images)
    columns = [Column(_column_title(str(c)), str(c)) for c in frame.columns]
    numeric = {c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c]) and frame[c].dtype != bool}
    out = []
    for record in frame.to_dict(orient="records"):
        cells = []
        for column in frame.columns:
            value = record[column]
            if column in numeric and value is not None and not pd.isna(value):
                cell = _value_cell(float(value), _unit_of_column(str(column)), column=str(column))
                if pd.api.types.is_integer_dtype(frame[column]):
                    cell = dataclasses.replace(cell, text=str(int(value)))
                cells.append(cell)
            elif column in numeric:
                cells.append(Cell("\u2013", numeric=True, attrs={"value": "nan", "column": str(column)}))
            else:
                text = _text(value)
                link = links.get(column) or (next(iter(links.values())) if column in images and links else None)
                href = link(record) if link is not None else None
                cells.append(
                    Cell(
                        text,
                        href=href,
                        badge=text if column in badges and text else None,
                        image=text if column in images and text else None,
                        attrs={"column": str(column)},
                    )
                )
        attrs = {k: _text(record[k]) for k in ("case_id", "structure", "side") if k in record}
        out.append(Row(cells, attrs))
    return HtmlTable(name, columns, out)


def report_image(image: QcImage, *, base_dir: Path, embed: bool, relative_to: Path | None = None) -> ReportImage:
    """A QC image for a page: embedded as a base64 PNG data URI, or as a path relative to the page."""
    path = base_dir / image.path
    if embed:
        src = "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
    else:
        src = _relative(path, relative_to or base_dir)
    return ReportImage(image.kind, image.title, image.caption, src, slice_index=image.slice_index)


def _relative(path: Path, start: Path) -> str:
    import os

    return Path(os.path.relpath(path, start)).as_posix()


@functools.cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("paraspinal.reporting", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return env


def _write(path: Path, template: str, **context: object) -> Path:
    html = _environment().get_template(template).render(version=__version__, **context)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path
