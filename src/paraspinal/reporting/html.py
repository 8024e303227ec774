"""Self-contained HTML reports (Jinja2): one page per case, one page per run.

Pages carry their CSS inline, run no scripts and load nothing from the network. Images are either
embedded as base64 ``data:`` URIs (one file to share) or referenced by relative paths. Every
number in a table carries its full-precision value in ``data-value`` next to the rounded text, and
the metric, method and image it came from, so a page can be checked against the CSV it mirrors.
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
from paraspinal.io.label_map import LabelMap
from paraspinal.measurement import Measurements
from paraspinal.quality import CaseQuality
from paraspinal.reporting.qc import CONVENTION_NOTE, QcImage
from paraspinal.reporting.qc_case import SINGLE_SLICE_NOTE
from paraspinal.reporting.qc_checks import Check
from paraspinal.reporting.quality_html import row_qc, slice_notes, structure_reasons, summarise, worst_first

__all__ = [
    "Cell",
    "HtmlTable",
    "ReportImage",
    "Row",
    "describe_model",
    "format_value",
    "frame_table",
    "level_table",
    "render_case_report",
    "render_run_report",
    "report_image",
    "structure_table",
    "write_case_page",
]

_SIDE_ORDER = {"right": 0, "left": 1, "both": 2, "none": 3}
_DECIMALS = {"mm2": 1, "mL": 2, "%": 1, "ratio": 3, "voxels": 0, "HU": 1}
_UNIT_TEXT = {"mm2": "mm²", "mL": "mL", "%": "%", "ratio": "ratio", "s": "s", "HU": "HU"}
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


def render_case_report(
    path: Path,
    *,
    case_id: str,
    table: pd.DataFrame,
    checks: Sequence[Check],
    warnings: Sequence[str],
    images: Sequence[ReportImage],
    segmentation: str,
    levels_source: str,
    info: Sequence[tuple[str, str]],
    inputs: pd.DataFrame,
    outputs: Sequence[tuple[str, str]],
    run_report: str | None = None,
    qc_notes: Sequence[str] = (),
    quality: CaseQuality | None = None,
) -> Path:
    """Write one case's page: its quality (status, score, reasons; when assessed), checks, per-level and
    per-structure tables (with a QC column when the table has ``qc``), QC images (with ``qc_notes`` under the
    section title, and the reasons under each flagged slice), provenance."""
    return _write(
        path,
        "case.html.j2",
        title=f"{case_id} · paraspinal report",
        case_id=case_id,
        checks=checks,
        warnings=warnings,
        quality=summarise(quality) if quality is not None else None,
        level_table=level_table(table),
        structure_table=structure_table(table, reasons=structure_reasons(quality)),
        images=images,
        qc_notes=qc_notes,
        convention=CONVENTION_NOTE,
        segmentation=segmentation,
        levels_source=levels_source,
        info=info,
        inputs_table=frame_table(inputs, name="inputs"),
        outputs=outputs,
        run_report=run_report,
    )


def render_run_report(
    path: Path,
    *,
    cases: pd.DataFrame,
    summary: pd.DataFrame | None,
    summary_csv: str,
    distribution_images: Sequence[ReportImage],
    segmentation: str,
    info: Sequence[tuple[str, str]],
) -> Path:
    """Write the run's page: every case with its status and link, failures, the summary table, distributions.

    ``cases`` needs columns ``case_id``, ``status`` and ``error``; a ``report`` column (relative
    link to the case page) turns case ids (and thumbnails) into links and is not shown; ``quality`` is shown as
    a badge, ``thumbnail`` (a relative image path) as a small image.
    """
    cases = worst_first(cases)
    shown = cases.drop(columns=[c for c in ("report",) if c in cases.columns])
    reports = dict(zip(cases["case_id"], cases["report"], strict=True)) if "report" in cases.columns else {}

    def link(record: Mapping[str, object]) -> str | None:
        href = reports.get(record["case_id"])
        return str(href) if isinstance(href, str) and href else None

    failures = [
        (str(c), str(e))
        for c, s, e in zip(cases["case_id"], cases["status"], cases["error"], strict=True)
        if s == "failed"
    ]
    return _write(
        path,
        "run.html.j2",
        title=f"paraspinal run · {len(cases)} case{'s' if len(cases) != 1 else ''}",
        n_cases=len(cases),
        n_ok=int((cases["status"] == "ok").sum()),
        n_failed=len(failures),
        n_pending=int((cases["status"] == "pending").sum()),
        n_quality={q: int((cases["quality"] == q).sum()) for q in ("fail", "review")} if "quality" in cases else {},
        cases_table=frame_table(
            shown, name="cases", links={"case_id": link}, badges=("status", "quality"), images=("thumbnail",)
        ),
        failures=failures,
        summary_table=None if summary is None or summary.empty else frame_table(summary, name="summary"),
        summary_csv=summary_csv,
        distribution_images=distribution_images,
        segmentation=segmentation,
        info=info,
    )


def describe_model(provenance: Mapping[str, object]) -> str:
    """``model version (backend backend), weights <hash prefix>`` from a segmentation backend's provenance."""
    label = str(provenance.get("model") or provenance.get("name") or "model")
    if provenance.get("version"):
        label += f" {provenance['version']}"
    backend = provenance.get("backend") or (provenance.get("name") if provenance.get("model") else None)
    if backend and backend != label:
        label += f" ({backend} backend)"
    weights = provenance.get("weights_sha256")
    return label + (f", weights {str(weights)[:12]}" if weights else "")


def write_case_page(
    folder: Path,
    *,
    case_id: str,
    label_map: LabelMap,
    measurements: Measurements,
    levels_source: str,
    files: Mapping[str, Path],
    qc_images: Sequence[QcImage],
    embed: bool,
    checks: Sequence[Check],
    warnings: Sequence[str],
    inputs: Mapping[str, Mapping[str, object]],
    timings: Mapping[str, float],
    quality: CaseQuality | None = None,
) -> Path:
    """Write ``<case>_report.html`` into the case's ``folder`` (files and QC images relative to it); the
    label map's provenance says whether it was segmented (and by which model) or given; ``quality`` (when
    assessed) is shown at the top, by the rows and under the images of the slices it flagged."""
    labels, scheme, provenance = label_map.labels, label_map.scheme, label_map.provenance
    model: Mapping[str, object] | None = None
    if provenance.segmented:
        model = dict(provenance.model)
        seg_text = f"segmented by {describe_model(model)}"
    else:
        seg_text = f"label map given ({Path(str(provenance.path)).name}), not segmented"
    frame = measurements.frame
    spacing = ", ".join(f"{s:.4g}" for s in labels.spacing_mm)
    info = [
        ("Case", case_id),
        ("Segmentation", seg_text),
        ("Label scheme", f"{scheme.key}: {scheme.name}"),
        ("Levels", levels_source),
        ("Grid", f"{' x '.join(map(str, labels.shape))} voxels of {spacing} mm, axes {''.join(frame.axis_codes)}"),
        ("Axial slices", f"{frame.n_slices}, {frame.slice_spacing_mm:.4g} mm apart, tilt {frame.tilt_deg:.2g}°"),
        ("Timings (s)", ", ".join(f"{k} {v:.2f}" for k, v in timings.items())),
    ]
    info += [
        (f"Model {k}", str(v)) for k, v in (model or {}).items() if k != "name" and isinstance(v, str | int | float)
    ]
    input_rows = pd.DataFrame(
        [
            {"role": role, "file": Path(str(i["path"])).name, "bytes": i["bytes"], "sha256": i["sha256"]}
            for role, i in inputs.items()
        ],
        columns=["role", "file", "bytes", "sha256"],
    )
    outputs = sorted(
        (path.name, path.relative_to(folder).as_posix()) for kind, path in files.items() if not kind.startswith("qc_")
    )
    outputs.append((f"{case_id}_manifest.json", f"{case_id}_manifest.json"))
    return render_case_report(
        folder / f"{case_id}_report.html",
        case_id=case_id,
        table=measurements.table,
        checks=checks,
        warnings=warnings,
        images=_with_slice_notes(
            [report_image(img, base_dir=folder, embed=embed) for img in qc_images],
            quality if frame.slice_axis == 2 else None,  # quality's slices run along the grid's third axis
        ),
        segmentation=seg_text,
        levels_source=levels_source,
        info=info,
        inputs=input_rows,
        outputs=outputs,
        run_report="../report.html",
        qc_notes=[SINGLE_SLICE_NOTE] if frame.n_slices == 1 and qc_images else [],
        quality=quality,
    )


def _with_slice_notes(images: Sequence[ReportImage], quality: CaseQuality | None) -> list[ReportImage]:
    """Axial images of slices that quality flagged, with the slice's status and reasons."""
    notes = slice_notes(quality)
    return [
        dataclasses.replace(img, quality=notes[img.slice_index][0], notes=notes[img.slice_index][1])
        if img.kind == "axial" and img.slice_index in notes
        else img
        for img in images
    ]
