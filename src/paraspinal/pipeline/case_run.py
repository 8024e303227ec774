"""One case of a ``run``: every stage, into ``<out>/<case>/``, with its manifest; never raises for a bad case.

The stages (:mod:`paraspinal.pipeline.stages`) write into the case's staging folder, which is checked
against the manifest written last and only then swapped in (:mod:`paraspinal.pipeline.case_folder`), so a
case folder appears complete or not at all and a failed case leaves nothing behind (an earlier successful
result stays). Per case: ``<case>_dseg.nii.gz``, the measurement tables (CSV, Parquet, summary, levels,
JSON), ``<case>_quality.json``, ``qc/*.png``, ``<case>_report.html`` and ``<case>_manifest.json``.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from pathlib import Path

from paraspinal.backends.catalog import Models
from paraspinal.errors import ParaspinalError
from paraspinal.pipeline.case import Case
from paraspinal.pipeline.case_folder import manifest_name, staged_case_folder
from paraspinal.pipeline.manifest import case_manifest, file_info, jsonable, write_json
from paraspinal.pipeline.options import RunOptions
from paraspinal.pipeline.quality_stage import manifest_quality, thumbnail
from paraspinal.pipeline.results import CaseResult
from paraspinal.pipeline.stages import RUN_STAGES, CaseState, StageContext, run_stages, segmentation_record
from paraspinal.reporting import summary_frame

__all__ = ["run_case"]


def run_case(
    case: Case,
    *,
    models: Models,
    options: RunOptions,
    out_dir: str | Path,
    on_step: Callable[[str], None] | None = None,
) -> CaseResult:
    """Process one case into ``out_dir/<case_id>/`` (see the module docstring).

    ``models`` gives the muscle model (only a case without a label map needs it) and the spine model (only a
    case whose levels come from an unlabelled sagittal image); each is loaded the first time it is needed.
    Errors become a failed :class:`CaseResult` with a one-line message, and no output for the case.
    """
    final = Path(out_dir).absolute() / case.case_id
    state = CaseState(case, options)
    inputs: dict[str, dict[str, object]] = {}
    try:
        inputs = {role: file_info(path) for role, path in case.inputs().items()}
        state = CaseState(case, options, inputs=inputs)
        with staged_case_folder(final, case_id=case.case_id) as stage:
            state = run_stages(state, RUN_STAGES, StageContext(models=models, folder=stage, on_step=on_step))
            label_map = state.label_map
            assert label_map is not None and state.levels is not None
            segmentation = segmentation_record(label_map)
            outputs = sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file())
            quality = None
            if state.quality is not None:
                axis = state.measurements.frame.slice_axis if state.measurements is not None else 2
                flagged = state.quality if axis == 2 else None  # quality's slices run along the grid's third axis
                quality = manifest_quality(state.quality, thumbnail_path=thumbnail(state.qc_images, flagged))
            manifest = case_manifest(
                case_id=case.case_id,
                options=options,
                segmentation=segmentation,
                scheme=label_map.scheme.key,
                cleanup=[jsonable(r) for r in state.cleanup if r.voxels_removed],
                levels=state.levels.source,
                inputs=inputs,
                outputs=outputs,
                warnings=state.warnings,
                checks=state.checks,
                timings_s=state.timings_s,
                quality=quality,
            )
            write_json(manifest, stage / manifest_name(case.case_id))
    except ParaspinalError as exc:
        return CaseResult(case.case_id, "failed", error=str(exc), timings_s=dict(state.timings_s), inputs=inputs)
    except Exception as exc:  # noqa: BLE001 - one broken case must not stop a cohort; the traceback is kept
        message = " ".join(str(exc).split())[:300]
        return CaseResult(
            case.case_id,
            "failed",
            error=f"unexpected {type(exc).__name__}: {message}",
            detail=traceback.format_exc(),
            timings_s=dict(state.timings_s),
            inputs=inputs,
        )
    files = {kind: final / path.relative_to(stage) for kind, path in state.files.items()}
    files["manifest"] = final / manifest_name(case.case_id)
    assert state.measurements is not None
    return CaseResult(
        case.case_id,
        "ok",
        out_dir=final,
        files=files,
        warnings=state.warnings,
        checks=state.checks,
        timings_s=dict(state.timings_s),
        summary=summary_frame(state.measurements.table),
        segmented=label_map.provenance.segmented,
        inputs=inputs,
        model=jsonable(dict(label_map.provenance.model)) if label_map.provenance.segmented else None,
        quality=quality,
    )
