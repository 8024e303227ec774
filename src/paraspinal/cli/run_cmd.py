"""``paraspinal run``: MRI in; label maps, measurements, QC images and an HTML report out.

Exit codes: 0 every case ok; 1 error (nothing run, or every case failed); 2 usage; 3 finished,
but some cases failed (each listed on stderr with its error).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from paraspinal.cli.app import app
from paraspinal.cli.backend_options import (
    backend_factory,
    backend_option,
    checkpoint_option,
    device_option,
    folds_option,
    model_option,
    native_scheme_option,
    store_option,
    task_option,
    threads_option,
    tta_option,
)
from paraspinal.cli.console import console, print_frame
from paraspinal.cli.ct_options import CT_FLAGS, modality_option, with_ct_flags
from paraspinal.cli.options import parse_methods
from paraspinal.cli.series_cmd import (
    check_output_format,
    contrast_option,
    keep_descriptions_option,
    output_format_option,
    plane_option,
    resample_uneven_option,
    seg_patient_option,
    series_option,
)
from paraspinal.errors import ParaspinalError
from paraspinal.measurement.infiltration_methods import METHODS as INFILTRATION_METHODS

if TYPE_CHECKING:
    from rich.progress import Progress

    from paraspinal.backends.catalog import BackendFactory, Models
    from paraspinal.batch.runner import BatchOptions, BatchProgress
    from paraspinal.measurement.ct_options import CtOptions
    from paraspinal.pipeline.case import Case
    from paraspinal.pipeline.options import RunOptions
    from paraspinal.pipeline.results import RunResult

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_SOME_FAILED = 0, 1, 2, 3


class RunLog:
    """Where a run's progress goes: a rich progress bar, JSON lines on stderr, or nothing (quiet)."""

    def __init__(self, *, quiet: bool, log_json: bool) -> None:
        self.quiet = quiet
        self.log_json = log_json
        self.out = console(quiet=quiet)
        self._err = Console(stderr=True, highlight=False)
        self._progress: Progress | None = None
        self._task = None

    def json(self, event: str, **fields: object) -> None:
        if self.log_json:
            sys.stderr.write(json.dumps({"event": event, **fields}, default=str) + "\n")
            sys.stderr.flush()

    def warning(self, message: str) -> None:
        if self.log_json:
            self.json("warning", message=message)
        elif not self.quiet:
            typer.echo(f"paraspinal: warning: {message}", err=True)

    def error(self, message: str, **fields: object) -> None:
        if self.log_json:
            self.json("error", message=message, **fields)
        else:
            typer.echo(f"paraspinal: error: {message}", err=True)

    def start(self, n_cases: int) -> None:
        if not (self.quiet or self.log_json) and self._err.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self._err,
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task("cases", total=n_cases)

    def progress(self, p: BatchProgress) -> None:
        """One case finished: advance the bar (done/failed/remaining, rate, ETA) and log it."""
        result = p.last
        if self._progress is not None and self._task is not None:
            eta = f", ETA {p.eta_s / 60:.1f} min" if p.eta_s is not None else ""
            self._progress.update(
                self._task,
                completed=p.done + p.failed + p.skipped,
                total=p.total,
                description=f"done {p.done + p.skipped}, failed {p.failed}, left {p.remaining}; "
                f"{p.rate_per_min:.1f}/min{eta}",
            )
        if result is not None:
            self.json(
                "case_end",
                case_id=result.case_id,
                status=result.status,
                quality=(result.quality or {}).get("status"),
                quality_score=(result.quality or {}).get("score"),
                error=result.error,
                seconds=round(sum(result.timings_s.values()), 3),
                warnings=list(result.warnings),
                checks={c.name: c.status for c in result.checks},
                done=p.done,
                failed=p.failed,
                skipped=p.skipped,
                remaining=p.remaining,
                rate_per_min=round(p.rate_per_min, 2),
                eta_s=None if p.eta_s is None else round(p.eta_s, 1),
            )

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def execute(
    cases: Sequence[Case],
    *,
    out: Path,
    options: RunOptions,
    models: Models,
    batch: BatchOptions,
    log: RunLog,
    command: Sequence[str],
    failed_inputs: Sequence[tuple[str, str]] = (),
) -> tuple[int, RunResult | None]:
    """Run ``cases`` (resumable, in parallel when asked) with progress; returns the exit code and result."""
    from paraspinal.batch.runner import run_batch

    log.json(
        "run_start",
        n_cases=len(cases) + len(failed_inputs),
        out=str(out),
        workers=batch.workers,
        scheduler=batch.scheduler,
        part=f"{batch.part_id + 1}/{batch.num_parts}",
    )
    log.start(len(cases) + len(failed_inputs))
    try:
        result = run_batch(
            cases,
            options=options,
            out_dir=out,
            batch=batch,
            models=models,
            on_progress=log.progress,
            command=command,
            failed_inputs=failed_inputs,
            on_wait=log.warning,
        )
    except ParaspinalError as exc:
        log.stop()
        log.error(str(exc))
        return EXIT_ERROR, None
    finally:
        log.stop()
    for case in result.cases:
        for warning in case.warnings:
            log.warning(f"{case.case_id}: {warning}")
    for case in result.cases:
        if not case.ok:
            log.error(f"{case.case_id}: {case.error}", case_id=case.case_id)
    rows = [
        {
            "case": c.case_id,
            "status": c.status,
            "quality": f"{c.quality['status']} {float(c.quality['score']):.2f}" if c.quality else "",  # type: ignore[arg-type]
            "time_s": round(sum(c.timings_s.values()), 1),
            "checks": ", ".join(f"{k.name}: {k.status}" for k in c.checks if k.status == "warning") or "",
        }
        for c in result.cases
    ]
    if not log.log_json:
        import pandas as pd

        print_frame(log.out, pd.DataFrame(rows), title=f"{result.n_ok} of {len(result.cases)} case(s) ok")
    if result.n_failed == 0:
        code = EXIT_OK
    elif result.n_ok == 0:
        code = EXIT_ERROR
    else:
        code = EXIT_SOME_FAILED
    report = result.files.get("report")
    log.json(
        "run_end",
        n_ok=result.n_ok,
        n_failed=result.n_failed,
        report=str(report) if report else None,
        manifest=str(result.files.get("manifest")),
        exit_code=code,
    )
    if report is not None:
        log.out.print(f"report: {report}")
    return code, result


def backend_arguments(factory: BackendFactory) -> list[str]:
    """The command-line flags that rebuild ``factory`` (none for the default), for the run manifest."""
    if factory.is_default:
        return []
    o = factory.options
    values = {
        "--backend": factory.name,
        "--model": factory.model,
        "--device": None if o.device == "cpu" else o.device,
        "--threads": o.threads,
        "--folds": None if o.folds is None else ",".join(o.folds),
        "--checkpoint": o.checkpoint,
        "--task": o.task,
        "--model-scheme": o.scheme,
    }
    flags = [f"{flag}={value}" for flag, value in values.items() if value is not None]
    return flags + ([] if o.test_time_flip else ["--no-tta"])


@app.command("run")
@with_ct_flags()
def run_command(
    inputs: list[Path] = typer.Argument(
        ...,
        help="Image files and/or folders of cases, matched by name: P01.nii.gz or P01_t2.nii.gz (one image), "
        "P01_water + P01_fat (Dixon), P01_dseg (existing mask: measured, not segmented), P01_levels.csv.",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    labels: Path | None = typer.Option(
        None, "--labels", "-l", help="Existing label map for a single case: re-measure it instead of segmenting."
    ),
    levels: Path | None = typer.Option(
        None, "--levels", help="Levels CSV for all cases (LPM pid/slice_start/slice_stop, or case_id/level/slice)."
    ),
    scheme: str = typer.Option("lpm4", "--scheme", "-s", help="Label scheme of given label maps."),
    sagittal_scheme: str = typer.Option(
        "lumbar_bodies", "--sagittal-scheme", help="Label scheme of given sagittal label maps (<case>_sag_dseg)."
    ),
    backend_name: str = backend_option(),
    model: Path | None = model_option(),
    store: Path | None = store_option(),
    device: str = device_option(),
    flip: bool = tta_option(),
    threads: int | None = threads_option(),
    folds: str | None = folds_option(),
    checkpoint: str | None = checkpoint_option(),
    task: str | None = task_option(),
    model_scheme: str | None = native_scheme_option("--model-scheme"),
    spine_model: str | None = typer.Option(
        None,
        "--spine-model",
        help="Spine model for sagittal images without a label map: the key of an installed published model "
        "(totalspineseg) or a model folder (default: the bundled lumbar_spine).",
    ),
    methods: str = typer.Option(
        ",".join(INFILTRATION_METHODS), "--methods", help="Fat-infiltration methods on T1/T2 images (empty: none)."
    ),
    assume_aligned: bool = typer.Option(
        False, "--assume-aligned", help="Accept images whose header differs on the same voxel grid."
    ),
    largest_component: bool = typer.Option(
        True, "--largest-component/--no-largest-component", help="Keep each label's largest component (segmentations)."
    ),
    qc: bool = typer.Option(True, "--qc/--no-qc", help="Write QC images."),
    report: bool = typer.Option(True, "--report/--no-report", help="Write HTML reports."),
    embed_images: bool = typer.Option(
        True, "--embed-images/--link-images", help="Case reports embed their images (one file) or link to them."
    ),
    workers: int = typer.Option(
        1, "--workers", "-w", min=1, help="Local worker processes (each loads the model once)."
    ),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="Dask scheduler address (tcp://host:8786); workers must see the output folder."
    ),
    num_parts: int = typer.Option(1, "--num-parts", min=1, help="Split the cohort into this many parts (array jobs)."),
    part_id: int = typer.Option(0, "--part-id", min=0, help="Which part (0-based) this process runs."),
    resume: bool = typer.Option(
        True, "--resume/--no-resume", help="Skip cases already finished in OUT (their folder is complete)."
    ),
    wait: bool = typer.Option(
        False, "--wait", help="If another run is writing OUT, wait for it to end instead of refusing."
    ),
    series: list[str] | None = series_option(),
    plane: str | None = plane_option(),
    contrast: str | None = contrast_option(),
    resample_uneven: bool = resample_uneven_option(),
    output_format: str = output_format_option(),
    seg_patient: str = seg_patient_option(),
    keep_descriptions: bool = keep_descriptions_option(),
    modality: str = modality_option(),
    ct_options: CtOptions = CT_FLAGS,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
    log_json: bool = typer.Option(False, "--log-json", help="Log progress as JSON lines on stderr."),
) -> int:
    """Segment, measure and report one case or a cohort: label maps, tables, QC images, HTML.

    INPUT may be image files, folders of cases matched by name, or a cases CSV (columns case_id, image,
    image_name, water, fat, labels, levels, sagittal, sagittal_labels). Runs resume by default: finished
    cases are skipped.
    """
    from paraspinal.backends.catalog import BackendFactory, BackendOptions, Models, model_factory
    from paraspinal.batch.runner import BatchOptions
    from paraspinal.pipeline.discovery import discover_cases, read_cases_csv
    from paraspinal.pipeline.options import RunOptions

    check_output_format(output_format, seg_patient=seg_patient)
    if part_id >= num_parts:
        raise typer.BadParameter(f"must be below --num-parts ({num_parts})", param_hint="--part-id")
    log = RunLog(quiet=quiet, log_json=log_json)
    factory = backend_factory(
        backend=backend_name,
        model=model,
        device=device,
        threads=threads,
        tta=flip,
        folds=folds,
        checkpoint=checkpoint,
        task=task,
        scheme=model_scheme,
        store=store,
    )
    spine = BackendFactory(role="spine")
    if spine_model is not None:
        spine = model_factory(
            model=spine_model,
            store=store,
            role="spine",
            options=BackendOptions(device=device, threads=threads, test_time_flip=False),
        )
        spine.check()  # a model installed nowhere, a missing extra: one line, before any image is read
    options = RunOptions(
        scheme=scheme,
        sagittal_scheme=sagittal_scheme,
        levels_csv=levels,
        assume_aligned=assume_aligned,
        largest_component=largest_component,
        infiltration_methods=parse_methods(methods),
        qc=qc,
        report=report,
        embed_images=embed_images,
        series=tuple(series or ()),
        plane=plane,
        contrast=contrast,
        resample_uneven=resample_uneven,
        output_format=output_format,
        seg_patient=seg_patient,
        keep_descriptions=keep_descriptions,
        modality=modality,
        ct=ct_options,
    )
    csvs = [p for p in inputs if p.suffix.lower() == ".csv"]
    try:
        if csvs and len(csvs) != len(inputs):
            raise typer.BadParameter("give either cases CSV files or images/folders, not both", param_hint="INPUT")
        found = [read_cases_csv(csv) for csv in csvs] if csvs else [discover_cases(inputs)]
        cases = [c for d in found for c in d.cases]
        failed_inputs = [f for d in found for f in d.failed]
        notes = [w for d in found for w in d.warnings]
    except ParaspinalError as exc:
        if not log_json:
            raise
        log.error(str(exc))
        return EXIT_ERROR
    if labels is not None:
        if len(cases) + len(failed_inputs) != 1 or failed_inputs:
            found_n = len(cases) + len(failed_inputs)
            raise typer.BadParameter(f"--labels needs exactly one case, found {found_n}", param_hint="--labels")
        cases = [dataclasses.replace(cases[0], labels=labels)]
    try:
        if any(c.needs_segmentation for c in cases):
            factory.check()  # unknown backend, missing extra or --model: one line, before any output
    except ParaspinalError as exc:
        if not log_json:
            raise
        log.error(str(exc))
        return EXIT_ERROR
    for warning in notes:
        log.warning(warning)
    command = ["paraspinal", "run", *map(str, inputs), "-o", str(out)]
    command += [f"--labels={labels}"] * (labels is not None) + [f"--levels={levels}"] * (levels is not None)
    command += backend_arguments(factory) + [f"--spine-model={spine_model}"] * (spine_model is not None)
    batch = BatchOptions(
        workers=workers, scheduler=scheduler, num_parts=num_parts, part_id=part_id, resume=resume, wait=wait
    )
    code, result = execute(
        cases,
        out=out,
        options=options,
        models=Models(muscle=factory, spine=spine),
        batch=batch,
        log=log,
        command=command,
        failed_inputs=failed_inputs,
    )
    if result is not None and len(result.cases) == 1 and "report" in result.cases[0].files:
        log.out.print(f"case report: {result.cases[0].files['report']}")
    return code
