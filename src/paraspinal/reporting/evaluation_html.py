"""HTML for ``paraspinal evaluate``: a standalone ``evaluation.html`` and a section in a run's report.

The section is built from the files ``paraspinal evaluate`` wrote (``overlap.csv``,
``agreement.csv``, ``summary.json``, ``plots/*.png``), so every number on the page is the one in
those files; each cell carries its full-precision value in ``data-value`` like the other reports.
A run report (``report.html`` of ``paraspinal run``) has an empty slot between
:data:`SLOT_START` and :data:`SLOT_END`; :func:`add_to_run_report` fills or replaces what is
between them, leaving every other byte of the page as it was, and writes the page atomically.
"""

from __future__ import annotations

import base64
import json
import math
import os
from pathlib import Path

import pandas as pd

from paraspinal import __version__
from paraspinal.evaluation.overlap import ALL_LEVELS, FOREGROUND
from paraspinal.io.files import temp_file_for
from paraspinal.reporting.html_render import Cell, Column, HtmlTable, ReportImage, Row, _environment

__all__ = [
    "SLOT_END",
    "SLOT_START",
    "add_to_run_report",
    "evaluation_context",
    "render_evaluation_section",
    "replace_slot",
    "write_evaluation_page",
]

SLOT_START = "<!-- paraspinal:evaluation -->"
SLOT_END = "<!-- /paraspinal:evaluation -->"
TEMPLATE = "evaluation.html.j2"
AGREEMENT_TEMPLATE = "model_agreement.html.j2"
MODEL_AGREEMENT = "model_agreement"
PAGE_NAME = "evaluation.html"

# (metric, column title, unit, decimals)
_OVERLAP_METRICS = (("dice", "Dice", "", 3), ("hd95", "HD95 (mm)", "mm", 2), ("assd", "ASSD (mm)", "mm", 2))
_AGREEMENT_METRICS = ("volume", "fat_fraction")
_UNIT_TEXT = {"mm2": "mm²", "mL": "mL", "%": "%"}
_MAX_WARNINGS = 50


def _number(value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return number


def _cell(value: object, decimals: int, **attrs: str) -> Cell:
    number = _number(value)
    if math.isnan(number):
        return Cell("\u2013", numeric=True, attrs={**attrs, "value": "nan"})
    return Cell(f"{number:.{decimals}f}", numeric=True, attrs={**attrs, "value": repr(number)})


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        return pd.DataFrame()
    try:
        return pd.read_csv(path, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def _whole_volume(overlap: pd.DataFrame) -> pd.DataFrame:
    if overlap.empty or not {"level", "name", "metric", "value"} <= set(overlap.columns):
        return pd.DataFrame(columns=["level", "name", "structure", "side", "metric", "value"])  # every case failed
    rows = overlap[overlap["level"].astype(str) == ALL_LEVELS].copy()
    rows["value"] = pd.to_numeric(rows["value"], errors="coerce")
    return rows


_VOLUME_METRICS = (
    ("volume_a", "Volume A (mL)", "mL", 2),
    ("volume_b", "Volume B (mL)", "mL", 2),
    ("volume_diff", "A - B (mL)", "mL", 2),
    ("volume_diff_pct", "A - B (% of B)", "%", 1),
)


def _label_table(
    whole: pd.DataFrame, *, metrics: tuple[tuple[str, str, str, int], ...] = _OVERLAP_METRICS
) -> HtmlTable | None:
    """Per label: the mean of each metric over cases (NaN skipped; mL columns from the table's mm3), and the
    number of cases with a Dice. Accuracy uses the overlap metrics; model agreement adds :data:`_VOLUME_METRICS`."""
    labels = whole[whole["name"] != FOREGROUND]
    if labels.empty:
        return None
    columns = [Column("Label", "name"), Column("Structure", "structure"), Column("Side", "side")]
    columns += [Column(f"Mean {title}", metric) for metric, title, _unit, _d in metrics]
    columns.append(Column("Cases", "n"))
    rows = []
    for name, group in labels.groupby("name", sort=False):
        first = group.iloc[0]
        cells = [Cell(str(name)), Cell(_text(first.get("structure"))), Cell(_text(first.get("side")))]
        for metric, _title, unit, decimals in metrics:
            values = group.loc[group["metric"] == metric, "value"].dropna()
            if unit == "mL":  # the table holds mm3
                values = values / 1000.0
            mean = float(values.mean()) if len(values) else math.nan
            cells.append(_cell(mean, decimals, metric=metric, unit=unit, n=str(len(values))))
        n = int(group.loc[group["metric"] == "dice", "value"].notna().sum())
        cells.append(Cell(str(n), numeric=True, attrs={"value": str(n)}))
        rows.append(Row(cells, {"label": str(name)}))
    return HtmlTable("evaluation-labels", columns, rows)


def _common_table(rows_in: list[dict[str, object]]) -> HtmlTable | None:
    """How the two schemes were merged: common label, structure, side, and the values of A and B."""
    if not rows_in:
        return None
    columns = [
        Column("Common label", "name"),
        Column("Structure", "structure"),
        Column("Side", "side"),
        Column("Scheme A", "scheme_a"),
        Column("Values A", "values_a"),
        Column("Scheme B", "scheme_b"),
        Column("Values B", "values_b"),
    ]
    rows = []
    for record in rows_in:
        cells = [
            Cell(_text(record.get(key)) if not isinstance(record.get(key), list) else " ".join(map(str, record[key])))
            for key in ("name", "structure", "side", "scheme_a", "values_a", "scheme_b", "values_b")
        ]
        rows.append(Row(cells, {"label": _text(record.get("name"))}))
    return HtmlTable("evaluation-common-labels", columns, rows)


def _case_table(whole: pd.DataFrame) -> HtmlTable | None:
    """Dice per case (rows) and label (columns), the foreground last."""
    dice = whole[whole["metric"] == "dice"]
    if dice.empty or "case_id" not in dice.columns:
        return None
    names = [n for n in dict.fromkeys(dice["name"]) if n != FOREGROUND]
    if FOREGROUND in set(dice["name"]):
        names.append(FOREGROUND)
    values = {(str(c), str(n)): v for c, n, v in dice[["case_id", "name", "value"]].itertuples(index=False)}
    columns = [Column("Case", "case_id"), *(Column(str(n), f"dice:{n}") for n in names)]
    rows = []
    for case_id in dict.fromkeys(dice["case_id"].astype(str)):
        cells = [Cell(case_id)]
        cells += [_cell(values.get((case_id, str(n)), math.nan), 3, metric="dice", label=str(n)) for n in names]
        rows.append(Row(cells, {"case_id": case_id}))
    return HtmlTable("evaluation-cases", columns, rows)


def _global_dice(whole: pd.DataFrame) -> dict[str, object] | None:
    if whole.empty:
        return None
    values = whole.loc[(whole["name"] == FOREGROUND) & (whole["metric"] == "dice"), "value"].dropna()
    if values.empty:
        return None
    mean = float(values.mean())
    spread = f"{values.min():.3f}\u2013{values.max():.3f}" if len(values) > 1 else ""
    return {"value": repr(mean), "text": f"{mean:.3f}", "n": len(values), "range": spread}


def _agreement_table(agreement: pd.DataFrame) -> HtmlTable | None:
    """ICC(2,1), bias and limits of agreement for volume and fat fraction at structure scope."""
    needed = {"scope", "metric", "structure", "side", "method", "n", "icc21", "ba_bias", "ba_loa_low", "ba_loa_high"}
    if agreement.empty or not needed <= set(agreement.columns):
        return None
    rows_in = agreement[(agreement["scope"] == "structure") & agreement["metric"].isin(_AGREEMENT_METRICS)]
    if rows_in.empty:
        return None
    columns = [
        Column("Metric", "metric"),
        Column("Method", "method"),
        Column("Structure", "structure"),
        Column("Side", "side"),
        Column("Unit", "unit"),
        Column("n", "n"),
        Column("ICC(2,1)", "icc21"),
        Column("Bias", "ba_bias"),
        Column("LoA low", "ba_loa_low"),
        Column("LoA high", "ba_loa_high"),
    ]
    rows = []
    for record in rows_in.to_dict(orient="records"):
        unit = _text(record.get("unit"))
        decimals = 2 if unit == "mL" else 1 if unit in ("%", "mm2") else 3
        n = _number(record["n"])
        cells = [
            Cell(_text(record["metric"])),
            Cell(_text(record["method"])),
            Cell(_text(record["structure"])),
            Cell(_text(record["side"])),
            Cell(_UNIT_TEXT.get(unit, unit)),
            Cell("" if math.isnan(n) else str(int(n)), numeric=True, attrs={"value": repr(n)}),
            _cell(record["icc21"], 3, column="icc21"),
            _cell(record["ba_bias"], decimals, column="ba_bias", unit=unit),
            _cell(record["ba_loa_low"], decimals, column="ba_loa_low", unit=unit),
            _cell(record["ba_loa_high"], decimals, column="ba_loa_high", unit=unit),
        ]
        attrs = {k: _text(record.get(k)) for k in ("metric", "method", "structure", "side")}
        rows.append(Row(cells, attrs))
    return HtmlTable("evaluation-agreement", columns, rows)


def _text(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def _href(path: Path, page_dir: Path) -> str:
    try:
        return Path(os.path.relpath(path.resolve(), page_dir.resolve())).as_posix()
    except ValueError:  # another drive (Windows): no relative path exists
        return path.resolve().as_uri()


def _images(out: Path, page_dir: Path, *, embed: bool) -> list[ReportImage]:
    folder = out / "plots"
    if not folder.is_dir():
        return []
    plots = sorted(folder.glob("*.png"), key=lambda p: (not p.name.startswith("dice"), p.name))
    images = []
    for path in plots:
        if embed:
            src = "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
        else:
            src = _href(path, page_dir)
        title = path.stem.replace("_", " ")
        images.append(ReportImage("evaluation", title[:1].upper() + title[1:], "", src))
    return images


def _file_links(out: Path, page_dir: Path) -> list[tuple[str, str]]:
    files = sorted(p for p in out.iterdir() if p.is_file() and not p.name.startswith("."))
    if (out / "plots").is_dir():
        files += sorted((out / "plots").glob("*.png"))
    return [(p.relative_to(out).as_posix(), _href(p, page_dir)) for p in files]


def evaluation_context(out_dir: str | Path, page_dir: str | Path, *, embed: bool = True) -> dict[str, object]:
    """Template variables for the evaluation written to ``out_dir``, links relative to ``page_dir``."""
    out, page = Path(out_dir), Path(page_dir)
    summary_path = out / "summary.json"
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.is_file() else {}
    whole = _whole_volume(_read_csv(out / "overlap.csv"))
    warnings = [*(f"error: {e}" for e in summary.get("errors", [])), *summary.get("warnings", [])]
    if len(warnings) > _MAX_WARNINGS:
        warnings = [*warnings[:_MAX_WARNINGS], f"... and {len(warnings) - _MAX_WARNINGS} more in summary.json"]
    agreement_mode = summary.get("kind") == MODEL_AGREEMENT
    options = summary.get("options") or {}
    metrics = (*_OVERLAP_METRICS, *_VOLUME_METRICS) if agreement_mode else _OVERLAP_METRICS
    label_table = _label_table(whole, metrics=metrics)
    return {
        "kind": summary.get("kind", "accuracy"),
        "model_a": str(options.get("a", "")),
        "model_b": str(options.get("b", "")),
        "common_table": _common_table(list(summary.get("common_labels") or [])),
        "n_matched": int(summary.get("n_cases_matched", 0)),
        "n_evaluated": int(summary.get("n_cases_evaluated", 0)),
        "n_failed": int(summary.get("n_cases_failed", 0)),
        "global_dice": _global_dice(whole),
        "label_table": label_table if not whole.empty else None,
        "case_table": _case_table(whole) if not whole.empty else None,
        "agreement_table": _agreement_table(_read_csv(out / "agreement.csv")),
        "images": _images(out, page, embed=embed),
        "warnings": warnings,
        "files": {name: _href(out / f"{name}.csv", page) for name in ("overlap", "agreement", "common_labels")},
        "file_links": _file_links(out, page),
    }


def render_evaluation_section(out_dir: str | Path, page_dir: str | Path, *, embed: bool = True) -> str:
    """The ``<section id="evaluation">`` HTML for a page in ``page_dir``."""
    values = evaluation_context(out_dir, page_dir, embed=embed)
    template = _environment().get_template(_template_name(values))
    context = template.new_context({"version": __version__, **values})
    return "".join(template.blocks["evaluation"](context)).strip("\n")


def _template_name(context: dict[str, object]) -> str:
    return AGREEMENT_TEMPLATE if context.get("kind") == MODEL_AGREEMENT else TEMPLATE


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = temp_file_for(path)  # the umask's mode, not mkstemp's 0600
    try:
        tmp.write_bytes(data)
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_evaluation_page(out_dir: str | Path, *, embed: bool = True) -> Path:
    """Write ``out_dir/evaluation.html``: a standalone page with the evaluation section."""
    out = Path(out_dir)
    context = evaluation_context(out, out, embed=embed)
    context["file_links"] = [(n, h) for n, h in context["file_links"] if n != PAGE_NAME]  # type: ignore[attr-defined]
    agreement_mode = context["kind"] == MODEL_AGREEMENT
    title = "paraspinal evaluation against reference masks"
    if agreement_mode:
        title = "paraspinal agreement between two models (no reference)"
    html = _environment().get_template(_template_name(context)).render(version=__version__, title=title, **context)
    path = out / PAGE_NAME
    _write_atomic(path, html.encode("utf-8"))
    return path


def replace_slot(html: str, section: str) -> str | None:
    """``html`` with ``section`` between the slot markers (replacing what was there), or None without a slot.

    A page with no slot (a report written before the slot existed) gets one just before ``</main>``.
    """
    filled = f"{SLOT_START}\n{section}\n{SLOT_END}"
    start = html.find(SLOT_START)
    end = html.find(SLOT_END, start + len(SLOT_START)) if start >= 0 else -1
    if start >= 0 and end >= 0:
        return html[:start] + filled + html[end + len(SLOT_END) :]
    if start < 0 and html.find(SLOT_END) < 0:
        main_end = html.rfind("</main>")
        if main_end >= 0:
            return html[:main_end] + filled + "\n" + html[main_end:]
    return None


def add_to_run_report(report: str | Path, out_dir: str | Path, *, embed: bool = True) -> bool:
    """Fill the evaluation slot of a run's ``report.html`` with the evaluation in ``out_dir``.

    Idempotent: a second call replaces the section. The page is rewritten atomically (temporary
    file and rename). Returns False, leaving the page alone, when the page has no usable slot.
    """
    path = Path(report)
    html = path.read_bytes().decode("utf-8")
    updated = replace_slot(html, render_evaluation_section(out_dir, path.parent, embed=embed))
    if updated is None:
        return False
    _write_atomic(path, updated.encode("utf-8"))
    return True
