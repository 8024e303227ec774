"""The ``run`` job: MRI in; label maps, tidy tables, QC images, HTML reports and a manifest out.

Per case (:func:`run_case`, pure and reusable by batch runners): read -> segment (unless a label map
is given) -> keep the largest component per label -> levels (CSV, else the sagittal image, else named
discs, else per slice only) -> measure -> write ``<out>/<case>/``: ``<case>_dseg.nii.gz``, the measurement tables (CSV,
Parquet, summary, levels, JSON), ``qc/*.png``, ``<case>_report.html`` and ``<case>_manifest.json``.
A case's folder is staged under a hidden name and swapped in whole, so it appears complete or not
at all; a failed case leaves nothing behind (and an earlier successful result stays).

Per run (:func:`run_cases`): every case in turn, one failing case never stops the others, then the
cohort files: ``cases.csv``, ``summary.csv``, ``measurements.csv``/``.parquet``, ``report.html``
and ``manifest.json``. The segmentation backend is injected; the bundled default is created only
when some case needs segmenting.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from paraspinal.anatomy import LabelScheme, load_scheme
from paraspinal.backends import SegmentationBackend
from paraspinal.errors import GeometryError, InputError, ParaspinalError
from paraspinal.io import Image, image_suffix, write_label_map
from paraspinal.io.dicom_seg import write_label_output
from paraspinal.io.files import temp_folder_in
from paraspinal.levels import LevelTable
from paraspinal.measurement import INFILTRATION_METHODS, Measurements, measure_case
from paraspinal.pipeline.case_inputs import read_case_images, with_series
from paraspinal.pipeline.cases import Case, check_levels_csv, levels_for_case, uses_sagittal_levels
from paraspinal.pipeline.manifest import case_manifest, file_info, jsonable, utc_now, write_json
from paraspinal.pipeline.run_outputs import write_run_outputs
from paraspinal.pipeline.sagittal import (
    SagittalLevels,
    case_sagittal_levels,
    sagittal_qc_image,
    spine_backend,
    write_levels_outputs,
)
from paraspinal.postprocessing import keep_largest_component
from paraspinal.reporting import AtomicOutputs, summary_frame, write_measurements
from paraspinal.reporting.html import write_case_page
from paraspinal.reporting.qc_case import write_case_qc
from paraspinal.reporting.qc_checks import Check, case_checks, segmentation_check

__all__ = [
    "CaseResult",
    "RunEvent",
    "RunOptions",
    "RunResult",
    "default_backend",
    "default_spine_backend",
    "run_case",
    "run_cases",
    "write_run_outputs",
]


@dataclass(frozen=True)
class RunOptions:
    """How cases are processed (the same for every case of a run)."""

    scheme: str = "lpm4"  # scheme of given label maps (segmented ones use the backend's)
    sagittal_scheme: str = "lumbar_bodies"  # scheme of given sagittal label maps (<case>_sag_dseg)
    levels_csv: Path | None = None  # one CSV for all cases (case_id/pid column), unless a case has its own
    assume_aligned: bool = False
    largest_component: bool = True  # applied to segmentations, never to given label maps
    infiltration_methods: tuple[str, ...] = INFILTRATION_METHODS  # on the T1/T2 image, when there is one
    qc: bool = True
    report: bool = True
    embed_images: bool = True  # case pages embed their PNGs (one file to share)
    qc_slices: int = 5  # evenly spaced QC slices when there are no levels
    seed: int = 0
    # DICOM inputs: which series (``UID`` or ``ROLE=UID`` words), plane/contrast rules, uneven spacing
    series: tuple[str, ...] = ()
    plane: str | None = None
    contrast: str | None = None
    resample_uneven: bool = False
    output_format: str = "nifti"  # "dicom-seg" adds <case>_dseg.dcm next to the NIfTI label map
    seg_patient: str = "pseudonymise"
    keep_descriptions: bool = False  # DICOM series descriptions (free text) into error messages


@dataclass(frozen=True)
class CaseResult:
    """What happened to one case. ``files`` are final paths; ``summary`` is its summary table."""

    case_id: str
    status: Literal["ok", "failed"]
    out_dir: Path | None = None
    files: dict[str, Path] = field(default_factory=dict)
    error: str | None = None
    detail: str | None = None  # traceback of an unexpected error
    warnings: tuple[str, ...] = ()
    checks: tuple[Check, ...] = ()
    timings_s: dict[str, float] = field(default_factory=dict)
    summary: pd.DataFrame | None = None
    segmented: bool = False
    inputs: dict[str, dict[str, object]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class RunResult:
    out_dir: Path
    cases: tuple[CaseResult, ...]
    files: dict[str, Path]
    backend: dict[str, object] | None

    @property
    def n_failed(self) -> int:
        return sum(not c.ok for c in self.cases)

    @property
    def n_ok(self) -> int:
        return sum(c.ok for c in self.cases)


@dataclass(frozen=True)
class RunEvent:
    """Progress: ``case_start`` / ``step`` (``step`` set) / ``case_end`` (``result`` set)."""

    kind: Literal["case_start", "step", "case_end"]
    case_id: str
    index: int
    total: int
    step: str | None = None
    result: CaseResult | None = None


def default_backend() -> SegmentationBackend:
    """The bundled segmentation model; a one-line error when it is not installed."""
    try:
        from paraspinal.backends.default import default_backend as bundled  # type: ignore[import-not-found]
    except ImportError as exc:
        raise InputError(
            f"the bundled segmentation model is not installed ({exc}); give label maps (<case>_dseg files or "
            "--labels) to measure existing masks"
        ) from None
    return bundled()


def default_spine_backend() -> SegmentationBackend:
    """The bundled sagittal vertebral-body model (``lumbar_spine``); a one-line error when not installed."""
    return spine_backend()


def _provenance(backend: SegmentationBackend) -> dict[str, object]:
    provenance = dict(getattr(backend, "provenance", {}) or {})
    provenance.setdefault("name", getattr(backend, "name", type(backend).__name__))
    return provenance


class _Clock:
    """Times named steps into ``timings`` (seconds) and reports each start."""

    def __init__(self, on_step: Callable[[str], None] | None) -> None:
        self.timings: dict[str, float] = {}
        self._on_step = on_step

    @contextlib.contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        if self._on_step is not None:
            self._on_step(step)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[step] = self.timings.get(step, 0.0) + time.perf_counter() - start


@contextlib.contextmanager
def _staged_folder(final: Path) -> Iterator[Path]:
    """A hidden folder next to ``final`` to write into; swapped in as ``final`` only on success."""
    final.parent.mkdir(parents=True, exist_ok=True)
    stage = temp_folder_in(final.parent, prefix=f".{final.name}.partial-")  # the umask's mode, not 0700
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    old = None
    if final.exists():
        old = temp_folder_in(final.parent, prefix=f".{final.name}.old-")
        os.replace(final, old / final.name)
    os.replace(stage, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _segment(backend: SegmentationBackend, source: Image) -> tuple[Image, LabelScheme, dict[str, object]]:
    segmentation = backend.segment(source)
    labels = segmentation.labels
    if labels.shape != source.shape or not np.allclose(labels.affine, source.affine, atol=1e-4):
        raise GeometryError(
            f"segmentation backend {getattr(backend, 'name', '?')} returned labels of shape {labels.shape} "
            f"not on the input grid {source.shape}",
            path=source.source,
        )
    array = labels.array
    if not np.issubdtype(array.dtype, np.integer):
        array = np.rint(array).astype(np.int32)
    labels = Image(array=array, affine=source.affine.copy(), source=f"{source.source} (segmented)")
    return labels, segmentation.scheme, dict(segmentation.info)


def run_case(
    case: Case,
    *,
    backend: SegmentationBackend | None,
    options: RunOptions,
    out_dir: str | Path,
    on_step: Callable[[str], None] | None = None,
    spine_backend: SegmentationBackend | str | None = None,
) -> CaseResult:
    """Process one case into ``out_dir/<case_id>/`` (see module docstring); never raises for a bad case.

    ``backend`` is needed only when the case has no label map. ``spine_backend`` segments the case's
    sagittal image when its levels come from one without a sagittal label map; a string there is the
    reason there is none (the sagittal image is then not used, with a warning). Errors become a failed
    :class:`CaseResult` with a one-line message, and no output for the case.
    """
    clock = _Clock(on_step)
    final = Path(out_dir).absolute() / case.case_id
    inputs: dict[str, dict[str, object]] = {}
    try:
        with clock("read"):
            images, labels = read_case_images(case, options)
            inputs = {role: file_info(path) for role, path in case.inputs().items()}
        if labels is None:
            if backend is None:
                raise InputError(f"case {case.case_id} needs segmentation but no segmentation backend was given")
            with clock("segment"):
                labels, scheme, seg_info = _segment(backend, images[case.segmentation_input])
            segmentation = {"source": "backend", "backend": _provenance(backend), "info": seg_info}
            cleanup: list[dict[str, object]] = []
            if options.largest_component:
                with clock("clean"):
                    labels, records = keep_largest_component(labels)
                cleanup = [jsonable(r) for r in records if r.voxels_removed]
        else:
            scheme = load_scheme(options.scheme)
            segmentation = {"source": "given", "labels": str(case.labels)}
            cleanup = []
        with clock("levels"):
            spine, spine_notes = case_sagittal_levels(
                case,
                labels=labels,
                axial=images[case.segmentation_input],
                levels_csv=options.levels_csv,
                sagittal_scheme=options.sagittal_scheme,
                assume_aligned=options.assume_aligned,
                backend=spine_backend,
            )
            levels, levels_source = levels_for_case(
                case,
                labels=labels,
                scheme=scheme,
                levels_csv=options.levels_csv,
                sagittal=(spine.matched.table, spine.source) if spine is not None and spine.matched else None,
            )
        image = images.get("image")
        with clock("measure"):
            measurements = measure_case(
                labels,
                scheme=scheme,
                case_id=case.case_id,
                water=images.get("water"),
                fat=images.get("fat"),
                image=image,
                image_name=case.image_name,
                levels=levels,
                infiltration_methods=options.infiltration_methods if image is not None else (),
                seed=options.seed,
            )
        warnings = list(measurements.warnings) + list(spine_notes)
        warnings += [
            f"largest component kept: removed {r['voxels_removed']} voxels of label {r['label']}" for r in cleanup
        ]
        present = sorted({value for region in measurements.regions for value in region.labels})
        seg_check = segmentation_check(
            segmented=case.labels is None, expected=scheme.values, present=present, cleanup=cleanup
        )
        checks = (seg_check, *case_checks(measurements, dixon="water" in images))
        with _staged_folder(final) as stage:
            files = _write_case(
                stage,
                case=case,
                labels=labels,
                scheme=scheme,
                levels=levels,
                levels_source=levels_source,
                images=images,
                measurements=measurements,
                options=options,
                clock=clock,
                checks=checks,
                warnings=warnings,
                segmentation=segmentation,
                inputs=inputs,
                spine=spine,
            )
            outputs = sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file())
            manifest = case_manifest(
                case_id=case.case_id,
                options=options,
                segmentation=segmentation,
                scheme=scheme.key,
                cleanup=cleanup,
                levels=levels_source,
                inputs=inputs,
                outputs=outputs,
                warnings=warnings,
                checks=checks,
                timings_s=clock.timings,
            )
            write_json(manifest, stage / f"{case.case_id}_manifest.json")
            files["manifest"] = stage / f"{case.case_id}_manifest.json"
    except ParaspinalError as exc:
        return CaseResult(case.case_id, "failed", error=str(exc), timings_s=clock.timings, inputs=inputs)
    except Exception as exc:  # noqa: BLE001 - one broken case must not stop a cohort; the traceback is kept
        message = " ".join(str(exc).split())[:300]
        return CaseResult(
            case.case_id,
            "failed",
            error=f"unexpected {type(exc).__name__}: {message}",
            detail=traceback.format_exc(),
            timings_s=clock.timings,
            inputs=inputs,
        )
    return CaseResult(
        case.case_id,
        "ok",
        out_dir=final,
        files={kind: final / path.relative_to(stage) for kind, path in files.items()},
        warnings=tuple(warnings),
        checks=checks,
        timings_s=clock.timings,
        summary=summary_frame(measurements.table),
        segmented=case.labels is None,
        inputs=inputs,
    )


def _write_case(
    stage: Path,
    *,
    case: Case,
    labels: Image,
    scheme: LabelScheme,
    levels: LevelTable | None,
    levels_source: str,
    images: dict[str, Image],
    measurements: Measurements,
    options: RunOptions,
    clock: _Clock,
    checks: Sequence[Check],
    warnings: Sequence[str],
    segmentation: dict[str, object],
    inputs: dict[str, dict[str, object]],
    spine: SagittalLevels | None = None,
) -> dict[str, Path]:
    """Write every file of one case into ``stage``; returns paths by kind."""
    cid = case.case_id
    with clock("write"):
        dseg = write_label_map(labels, stage / f"{cid}_dseg.nii.gz")
        if options.output_format == "dicom-seg":
            dicom_input = case.inputs()[case.segmentation_input]
            if image_suffix(dicom_input) is not None:
                raise InputError("DICOM-SEG output needs a DICOM input series to reference", path=dicom_input)
            write_label_output(
                with_series(labels, images[case.segmentation_input]),
                stage / f"{cid}_dseg.dcm",
                output_format="dicom-seg",
                scheme=scheme,
                source=dicom_input,
                patient=options.seg_patient,
                algorithm_name="paraspinal",
            )
        with AtomicOutputs(stage) as outputs:
            written = write_measurements(
                measurements, outputs, case_id=cid, levels=levels, inputs={k: str(v) for k, v in case.inputs().items()}
            )
            if spine is not None:
                written.update(
                    write_levels_outputs(
                        outputs, spine, prefix=f"{cid}_sagittal_", dseg_name=f"{cid}_sag_dseg.nii.gz", qc=options.qc
                    )
                )
    files: dict[str, Path] = {"dseg": dseg, **written}
    qc_images = []
    if options.qc:
        with clock("qc"):
            background = images.get("water", images.get("image"))
            assert background is not None
            qc_images = write_case_qc(
                stage,
                case_id=cid,
                labels=labels,
                scheme=scheme,
                levels=levels,
                background=background,
                table=measurements.table,
                water=images.get("water"),
                fat=images.get("fat"),
                image=images.get("image"),
                image_name=case.image_name,
                infiltration_methods=options.infiltration_methods,
                n_even=options.qc_slices,
            )
        files.update({f"qc_{i:02d}_{img.kind}": stage / img.path for i, img in enumerate(qc_images)})
        sagittal_qc = sagittal_qc_image(written, spine) if spine is not None else None
        qc_images = [*qc_images, *([sagittal_qc] if sagittal_qc else [])]
    if options.report:
        with clock("report"):
            files["report"] = write_case_page(
                stage,
                case_id=cid,
                labels=labels,
                scheme=scheme,
                measurements=measurements,
                segmentation=segmentation,
                levels_source=levels_source,
                files=files,
                qc_images=qc_images,
                embed=options.embed_images,
                checks=checks,
                warnings=warnings,
                inputs=inputs,
                timings=clock.timings,
            )
    return files


def run_cases(
    cases: Sequence[Case],
    *,
    backend: SegmentationBackend | None,
    options: RunOptions,
    out_dir: str | Path,
    backend_factory: Callable[[], SegmentationBackend] | None = None,
    on_event: Callable[[RunEvent], None] | None = None,
    command: Sequence[str] | None = None,
    spine_backend: SegmentationBackend | None = None,
    spine_backend_factory: Callable[[], SegmentationBackend] | None = None,
) -> RunResult:
    """Run every case, then write the run's files; see the module docstring.

    ``backend`` None: ``backend_factory()`` (default: :func:`default_backend`) is called once, and only
    if some case needs segmenting; its error (e.g. the bundled model not being installed) stops the run
    before any output. ``spine_backend`` None: ``spine_backend_factory()`` (default:
    :func:`default_spine_backend`) is called once, only if some case's levels come from a sagittal image
    without a sagittal label map; when it fails (the model not installed), those cases keep the other
    level sources and say so in a warning.
    """
    out = Path(out_dir).absolute()
    if out.exists() and not out.is_dir():
        raise InputError("output path exists and is not a folder", path=out)
    ids = [c.case_id for c in cases]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise InputError(f"case ids must be unique; repeated: {', '.join(duplicates)}")
    if len(cases) > 1 and options.levels_csv is not None:
        check_levels_csv(options.levels_csv, n_cases=len(cases))
    if backend is None and any(c.needs_segmentation for c in cases):
        backend = (backend_factory or default_backend)()
    spine: SegmentationBackend | str | None = spine_backend
    if spine is None and any(
        uses_sagittal_levels(c, levels_csv=options.levels_csv) and c.sagittal_labels is None for c in cases
    ):
        try:
            spine = (spine_backend_factory or default_spine_backend)()
        except ParaspinalError as exc:
            spine = exc.message
    started = utc_now()
    start = time.perf_counter()
    results: list[CaseResult] = []
    for index, case in enumerate(cases):
        if on_event is not None:
            on_event(RunEvent("case_start", case.case_id, index, len(cases)))

        def step(name: str, case_id: str = case.case_id, i: int = index) -> None:
            if on_event is not None:
                on_event(RunEvent("step", case_id, i, len(cases), step=name))

        result = run_case(case, backend=backend, options=options, out_dir=out, on_step=step, spine_backend=spine)
        results.append(result)
        if on_event is not None:
            on_event(RunEvent("case_end", case.case_id, index, len(cases), result=result))
    provenance = _provenance(backend) if backend is not None else None
    files = write_run_outputs(
        out,
        results=results,
        options=options,
        provenance=provenance,
        started_at=started,
        seconds=time.perf_counter() - start,
        command=command,
    )
    return RunResult(out, tuple(results), files, provenance)
