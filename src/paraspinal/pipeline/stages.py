"""One case, one staged pipeline: read -> segment -> clean -> levels -> measure -> check -> quality -> write -> qc
-> report.

Each stage is a function of the case's :class:`CaseState` (and the :class:`StageContext` it runs in) that
returns the next state; :func:`run_stages` runs the ones a command picks, in order, timing each. ``run`` uses
them all (:func:`paraspinal.pipeline.case_run.run_case` adds the case folder and its manifest), ``segment``
stops after ``clean``, ``measure`` takes ``read, levels, measure``, ``levels`` takes ``read, levels`` on a
sagittal case; ``segment`` and ``measure`` add ``quality`` (:mod:`paraspinal.pipeline.quality_stage`). Which level
source wins is decided once, in :mod:`paraspinal.pipeline.levels`; which model runs
comes from the run's :class:`~paraspinal.backends.catalog.Models`, each loaded at most once per process.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from paraspinal.backends.base import segment_on_grid
from paraspinal.backends.catalog import Models
from paraspinal.errors import InputError
from paraspinal.io.image import Image
from paraspinal.io.label_map import LabelMap
from paraspinal.pipeline.case import Case
from paraspinal.pipeline.options import RunOptions
from paraspinal.pipeline.read import CaseImages, read_case, resolve_roles, series_summary

if TYPE_CHECKING:  # the later stages' modules (pandas, scipy, scikit-learn, matplotlib) load when they run
    from paraspinal.measurement.case import Measurements
    from paraspinal.pipeline.levels import CaseLevels
    from paraspinal.postprocessing.components import CleanupRecord
    from paraspinal.quality import CaseQuality
    from paraspinal.reporting.qc import QcImage
    from paraspinal.reporting.qc_checks import Check

__all__ = ["RUN_STAGES", "STAGES", "CaseState", "StageContext", "run_stages", "segmentation_record"]


@dataclass(frozen=True)
class StageContext:
    """What the stages of one case run with: the run's models and, for the writing stages, the folder."""

    models: Models = field(default_factory=Models)
    folder: Path | None = None  # where ``write``, ``qc`` and ``report`` put the case's files
    on_step: Callable[[str], None] | None = None


@dataclass(frozen=True)
class CaseState:
    """One case as it goes through the stages; each stage fills in its part."""

    case: Case
    options: RunOptions
    images: CaseImages | None = None
    label_map: LabelMap | None = None
    cleanup: tuple[CleanupRecord, ...] = ()
    levels: CaseLevels | None = None
    measurements: Measurements | None = None
    checks: tuple[Check, ...] = ()
    quality: CaseQuality | None = None  # the quality stage's assessment (its ``qc`` column is in the table)
    notes: tuple[str, ...] = ()  # warnings from the stages (DICOM reading, levels, clean-up)
    inputs: Mapping[str, Mapping[str, object]] = field(default_factory=dict)  # input files: path, bytes, sha256
    files: Mapping[str, Path] = field(default_factory=dict)
    qc_images: tuple[QcImage, ...] = ()
    timings_s: Mapping[str, float] = field(default_factory=dict)

    @property
    def warnings(self) -> tuple[str, ...]:
        """Every warning of the case: the measurements', then the stages'."""
        measured = self.measurements.warnings if self.measurements is not None else ()
        return (*measured, *self.notes)

    @property
    def measurements_with_warnings(self) -> Measurements:
        """The measurements carrying every warning of the case (as ``case.json`` records them)."""
        if self.measurements is None:
            raise RuntimeError("no measurements yet: run the measure stage first")
        return dataclasses.replace(self.measurements, warnings=self.warnings)

    def need(self, attribute: str, stage: str) -> object:
        value = getattr(self, attribute)
        if value is None:
            raise RuntimeError(f"stage {stage} needs {attribute}: run the stage that makes it first")
        return value


Stage = Callable[[CaseState, StageContext], CaseState]


def _read(state: CaseState, ctx: StageContext) -> CaseState:
    options = state.options
    sagittal_wanted = state.case.levels is None and options.levels_csv is None
    case = state.case
    if options.study_roles:
        case = resolve_roles(case, options=options, with_sagittal=sagittal_wanted)
    images = read_case(case, options=options, sagittal=sagittal_wanted)
    return dataclasses.replace(state, case=case, images=images, label_map=images.labels, notes=images.notes)


def _segment(state: CaseState, ctx: StageContext) -> CaseState:
    if state.label_map is not None:
        return state  # a given label map is measured as drawn
    images: CaseImages = state.need("images", "segment")  # type: ignore[assignment]
    image = images.to_segment
    if image is None:
        raise InputError(f"case {state.case.case_id} has no axial image to segment")
    return dataclasses.replace(state, label_map=segment_on_grid(ctx.models.get("muscle"), image))


def _clean(state: CaseState, ctx: StageContext) -> CaseState:
    label_map: LabelMap = state.need("label_map", "clean")  # type: ignore[assignment]
    if not label_map.provenance.segmented or not state.options.largest_component:
        return state  # a given label map is never changed
    from paraspinal.postprocessing.components import clean_label_map

    cleaned, records = clean_label_map(label_map)
    notes = [
        f"largest component kept: removed {r.voxels_removed} voxels of label {r.label}"
        for r in records
        if r.voxels_removed
    ]
    return dataclasses.replace(state, label_map=cleaned, cleanup=tuple(records), notes=(*state.notes, *notes))


def _levels(state: CaseState, ctx: StageContext) -> CaseState:
    from paraspinal.pipeline.levels import find_levels

    images: CaseImages = state.need("images", "levels")  # type: ignore[assignment]
    found = find_levels(state.case, images, state.label_map, options=state.options, models=ctx.models)
    return dataclasses.replace(state, levels=found, notes=(*state.notes, *found.notes))


def _measure(state: CaseState, ctx: StageContext) -> CaseState:
    from paraspinal.measurement.case import measure_case

    images: CaseImages = state.need("images", "measure")  # type: ignore[assignment]
    label_map: LabelMap = state.need("label_map", "measure")  # type: ignore[assignment]
    options = state.options
    ct = images.ct  # a CT is measured in HU, never by the MRI fat-infiltration thresholds
    mr_image = images.image if ct is None else None
    measurements = measure_case(
        label_map,
        case_id=state.case.case_id,
        water=images.water,
        fat=images.fat,
        image=mr_image,
        image_name=state.case.image_name,
        levels=state.levels.table if state.levels is not None else None,
        infiltration_methods=options.infiltration_methods if mr_image is not None else (),
        seed=options.seed,
        ct=ct,
        ct_options=options.ct,
    )
    return dataclasses.replace(state, measurements=measurements)


def _check(state: CaseState, ctx: StageContext) -> CaseState:
    from paraspinal.reporting.qc_checks import case_checks, segmentation_check

    measurements: Measurements = state.need("measurements", "check")  # type: ignore[assignment]
    label_map: LabelMap = state.need("label_map", "check")  # type: ignore[assignment]
    images: CaseImages = state.need("images", "check")  # type: ignore[assignment]
    present = sorted({value for region in measurements.regions for value in region.labels})
    cleanup = [dataclasses.asdict(r) for r in state.cleanup if r.voxels_removed]
    seg_check = segmentation_check(
        segmented=label_map.provenance.segmented, expected=label_map.scheme.values, present=present, cleanup=cleanup
    )
    return dataclasses.replace(state, checks=(seg_check, *case_checks(measurements, dixon=images.water is not None)))


def _quality(state: CaseState, ctx: StageContext) -> CaseState:
    """The case's quality (muscles, levels, laterality) and the ``qc`` column of its measurement table."""
    from paraspinal.pipeline.quality_stage import assess_case, with_qc

    images: CaseImages = state.need("images", "quality")  # type: ignore[assignment]
    label_map: LabelMap = state.need("label_map", "quality")  # type: ignore[assignment]
    quality = assess_case(images=images, label_map=label_map, levels=state.levels)
    measurements = state.measurements
    if measurements is not None:
        table = with_qc(measurements.table, quality, slice_axis=measurements.frame.slice_axis)
        measurements = dataclasses.replace(measurements, table=table)
    checks = state.checks
    if measurements is not None and quality.laterality is not None and checks:
        from paraspinal.reporting.qc_checks import case_checks

        # the report's laterality check says what anatomy says, beside the affine's
        anatomical = case_checks(measurements, dixon=images.water is not None, anatomy=quality.laterality)
        by_name = {c.name: c for c in anatomical}
        checks = tuple(by_name.get(c.name, c) if c.name == "laterality" else c for c in checks)
    return dataclasses.replace(state, quality=quality, measurements=measurements, checks=checks)


def quality_text(quality: CaseQuality) -> str:
    """``<case>_quality.json``'s text: :meth:`CaseQuality.to_json`, indented."""
    return json.dumps(quality.to_json(), indent=2, allow_nan=False) + "\n"


def case_inputs(state: CaseState) -> dict[str, str]:
    """The case's input paths by role, and how each DICOM series was read (no patient data), for case.json."""
    inputs = {role: str(path) for role, path in state.case.inputs().items()}
    images = state.images
    if images is not None:
        read = {"image": images.image, "water": images.water, "fat": images.fat}
        read["labels"] = images.labels.labels if images.labels is not None else None
        for role, image in read.items():
            if image is not None and image.metadata.get("format") == "dicom":
                inputs[f"{role}_series"] = series_summary(image)
    return inputs


def _write(state: CaseState, ctx: StageContext) -> CaseState:
    """The label map (NIfTI, and DICOM-SEG when asked), the measurement tables and the sagittal levels files."""
    from paraspinal.io.dicom_seg import write_label_output
    from paraspinal.io.writers import write_label_map
    from paraspinal.pipeline.sagittal import write_levels_outputs
    from paraspinal.reporting.files import AtomicOutputs
    from paraspinal.reporting.tables import write_measurements

    folder = _folder(ctx, "write")
    label_map: LabelMap = state.need("label_map", "write")  # type: ignore[assignment]
    measurements = state.measurements_with_warnings
    case, options = state.case, state.options
    cid = case.case_id
    files: dict[str, Path] = {"dseg": write_label_map(label_map.labels, folder / f"{cid}_dseg.nii.gz")}
    if options.output_format == "dicom-seg":
        source = case.inputs()[case.segmentation_input]
        images: CaseImages = state.need("images", "write")  # type: ignore[assignment]
        reference = images.to_segment
        if reference is None or reference.metadata.get("format") != "dicom":
            raise InputError("DICOM-SEG output needs a DICOM input series to reference", path=source)
        write_label_output(
            _with_series(label_map, reference),
            folder / f"{cid}_dseg.dcm",
            output_format="dicom-seg",
            scheme=label_map.scheme,
            source=source,
            patient=options.seg_patient,
            algorithm_name="paraspinal",
        )
    levels = state.levels
    with AtomicOutputs(folder) as outputs:
        table = levels.table if levels is not None else None
        files.update(write_measurements(measurements, outputs, case_id=cid, levels=table, inputs=case_inputs(state)))
        if state.quality is not None:
            outputs.path(f"{cid}_quality.json").write_text(quality_text(state.quality), encoding="utf-8")
            files["quality"] = folder / f"{cid}_quality.json"
        if levels is not None and levels.spine is not None:
            files.update(
                write_levels_outputs(
                    outputs, levels.spine, prefix=f"{cid}_sagittal_", dseg_name=f"{cid}_sag_dseg.nii.gz", qc=options.qc
                )
            )
    return dataclasses.replace(state, files={**state.files, **files})


def _with_series(label_map: LabelMap, source: Image) -> Image:
    """The label map's image carrying the DICOM series identity of ``source`` (for DICOM-SEG)."""
    keys = ("series_key", "series_instance_uid")
    series = {k: source.metadata[k] for k in keys if k in source.metadata}
    labels = label_map.labels
    return Image(labels.array, labels.affine, source=labels.source, metadata={**labels.metadata, **series})


def _qc(state: CaseState, ctx: StageContext) -> CaseState:
    if not state.options.qc:
        return state
    from paraspinal.pipeline.sagittal import sagittal_qc_image
    from paraspinal.reporting.qc_case import write_case_qc

    folder = _folder(ctx, "qc")
    images: CaseImages = state.need("images", "qc")  # type: ignore[assignment]
    measurements: Measurements = state.need("measurements", "qc")  # type: ignore[assignment]
    options = state.options
    made = write_case_qc(
        folder,
        case_id=state.case.case_id,
        label_map=state.need("label_map", "qc"),  # type: ignore[arg-type]
        levels=state.levels.table if state.levels is not None else None,
        background=images.background,  # type: ignore[arg-type]
        table=measurements.table,
        water=images.water,
        fat=images.fat,
        image=images.image if images.ct is None else None,  # no MRI fat thresholds drawn on a CT
        image_name=state.case.image_name,
        infiltration_methods=options.infiltration_methods,
        n_even=options.qc_slices,
        extra_slices=_flagged_slices(state),
    )
    if images.ct is not None:
        made = [*made, _ct_qc(folder, state)]
    files = {f"qc_{i:02d}_{img.kind}": folder / img.path for i, img in enumerate(made)}
    spine = state.levels.spine if state.levels is not None else None
    sagittal = sagittal_qc_image(state.files, spine) if spine is not None else None  # type: ignore[arg-type]
    qc_images = (*made, *([sagittal] if sagittal else []))
    return dataclasses.replace(state, files={**state.files, **files}, qc_images=qc_images)


MAX_FLAGGED_QC_SLICES = 3


def _flagged_slices(state: CaseState) -> tuple[int, ...]:
    """The worst slices quality flagged (at most :data:`MAX_FLAGGED_QC_SLICES`, lowest score first), to draw
    too; none when the measurement slices are not the quality's (slice axis not the grid's third)."""
    quality, measurements = state.quality, state.measurements
    if quality is None or measurements is None or measurements.frame.slice_axis != 2:
        return ()
    flagged = [(a.score, k) for k, a in quality.slices().items() if a.status != "ok"]
    return tuple(k for _, k in sorted(flagged)[:MAX_FLAGGED_QC_SLICES])


def _ct_qc(folder: Path, state: CaseState) -> QcImage:
    """The CT QC image: the organs' selected parenchyma, margin and outliers, and the muscles' IMAT voxels."""
    from paraspinal.reporting.qc import QcImage
    from paraspinal.reporting.qc_ct import ct_qc_slice, plot_ct_axial_qc

    images: CaseImages = state.need("images", "qc")  # type: ignore[assignment]
    label_map: LabelMap = state.need("label_map", "qc")  # type: ignore[assignment]
    measurements: Measurements = state.need("measurements", "qc")  # type: ignore[assignment]
    assert images.ct is not None
    selections = measurements.parenchyma
    index = ct_qc_slice(label_map, selections)
    name = Path("qc") / f"{state.case.case_id}_ct_parenchyma.png"
    (folder / "qc").mkdir(parents=True, exist_ok=True)
    plot_ct_axial_qc(
        images.ct,
        label_map,
        selections=selections,
        slice_index=index,
        title=f"{state.case.case_id}: CT slice {index}",
        path=folder / name,
        adipose_window_hu=state.options.ct.adipose_window_hu,
    )
    caption = (
        "Organ parenchyma kept for the HU statistics, the eroded margin and the HU outliers left out, and the "
        "muscles' voxels in the adipose window (IMAT)"
    )
    return QcImage(kind="ct", path=name, title="CT attenuation", caption=caption)


def _report(state: CaseState, ctx: StageContext) -> CaseState:
    if not state.options.report:
        return state
    from paraspinal.reporting.html import write_case_page

    folder = _folder(ctx, "report")
    page = write_case_page(
        folder,
        case_id=state.case.case_id,
        label_map=state.need("label_map", "report"),  # type: ignore[arg-type]
        measurements=state.need("measurements", "report"),  # type: ignore[arg-type]
        levels_source=state.levels.source if state.levels is not None else "none",
        files=state.files,
        qc_images=state.qc_images,
        embed=state.options.embed_images,
        checks=state.checks,
        warnings=state.warnings,
        inputs=state.inputs,
        timings=state.timings_s,
        quality=state.quality,
    )
    return dataclasses.replace(state, files={**state.files, "report": page})


def _folder(ctx: StageContext, stage: str) -> Path:
    if ctx.folder is None:
        raise RuntimeError(f"stage {stage} writes files: give the context a folder")
    return ctx.folder


STAGES: dict[str, Stage] = {
    "read": _read,
    "segment": _segment,
    "clean": _clean,
    "levels": _levels,
    "measure": _measure,
    "check": _check,
    "quality": _quality,
    "write": _write,
    "qc": _qc,
    "report": _report,
}
RUN_STAGES: tuple[str, ...] = tuple(STAGES)


def run_stages(state: CaseState, stages: Sequence[str], ctx: StageContext) -> CaseState:
    """Run ``stages`` (names of :data:`STAGES`, in this order) on ``state``, each timed into ``timings_s`` (a stage
    with nothing to do returns the state it was given, and is not timed)."""
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown stage(s) {', '.join(unknown)}; stages are {', '.join(STAGES)}")
    for name in stages:
        if ctx.on_step is not None:
            ctx.on_step(name)
        start = time.perf_counter()
        before, state = state, STAGES[name](state, ctx)
        if state is before:
            continue  # nothing to do (a given label map is not segmented or cleaned): no time to record
        spent = time.perf_counter() - start
        state = dataclasses.replace(state, timings_s={**state.timings_s, name: state.timings_s.get(name, 0.0) + spent})
    return state


def segmentation_record(label_map: LabelMap) -> dict[str, object]:
    """How the case's label map came about, as manifests record it: ``{"source": "backend", "backend":
    provenance, "info": ...}`` for a segmentation, ``{"source": "given", "labels": path}`` for a given map."""
    provenance = label_map.provenance
    if provenance.segmented:
        return {"source": "backend", "backend": dict(provenance.model), "info": dict(provenance.info)}
    return {"source": "given", "labels": provenance.path}
