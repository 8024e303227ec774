"""Self-contained HTML reports (Jinja2): one page per case, one page per run.

Pages carry their CSS inline, run no scripts and load nothing from the network. Images are either
embedded as base64 ``data:`` URIs (one file to share) or referenced by relative paths. Every
number in a table carries its full-precision value in ``data-value`` next to the rounded text, and
the metric, method and image it came from, so a page can be checked against the CSV it mirrors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from paraspinal.io.label_map import LabelMap
from paraspinal.measurement import Measurements
from paraspinal.quality import CaseQuality
from paraspinal.reporting.html_render import (
    Cell,
    HtmlTable,
    ReportImage,
    Row,
    _write,
    format_value,
    frame_table,
    report_image,
)
from paraspinal.reporting.html_tables import level_table, structure_table
from paraspinal.reporting.qc import CONVENTION_NOTE, QcImage
from paraspinal.reporting.qc_case import SINGLE_SLICE_NOTE
from paraspinal.reporting.qc_checks import Check
from paraspinal.reporting.quality_html import slice_notes, structure_reasons, summarise, worst_first

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
