"""``paraspinal levels``: spinal levels from a sagittal image, optionally placed on an axial stack."""

from __future__ import annotations

from pathlib import Path

import typer

from paraspinal.cli.app import app
from paraspinal.cli.console import console, print_frame
from paraspinal.errors import InputError
from paraspinal.levels.defaults import DEFAULT_TOLERANCE_MM


@app.command("levels")
def levels_command(
    sagittal: Path = typer.Argument(..., help="Sagittal image (NIfTI, NRRD, MHA/MHD, or a DICOM folder/zip)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    axial: Path | None = typer.Option(
        None, "--axial", help="Axial stack to place the levels on (nearest slice, distance, angle per disc)."
    ),
    labels: Path | None = typer.Option(
        None, "--labels", "-l", help="Sagittal label map (vertebral bodies or discs) instead of the bundled model."
    ),
    scheme: str = typer.Option(
        "lumbar_bodies",
        "--scheme",
        "-s",
        help="Scheme of --labels: spider, totalspineseg, total_mr, lumbar_bodies, ...",
    ),
    tolerance_mm: float = typer.Option(
        DEFAULT_TOLERANCE_MM, "--tolerance-mm", help="How far (mm) a disc centre may lie outside the axial stack."
    ),
    assume_aligned: bool = typer.Option(
        False, "--assume-aligned", help="Accept a label map whose header differs from the image's on the same grid."
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        "-m",
        help="Spine model instead of the bundled one: an installed published model's key (`paraspinal models`).",
    ),
    store: Path | None = typer.Option(None, "--store", help="Model store that --model KEY is read from."),
    device: str = typer.Option("cpu", "--device", help="Model device: cpu, cuda or auto."),
    threads: int | None = typer.Option(None, "--threads", help="CPU threads for the model (default: all cores)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
) -> None:
    """Find the L1/L2 ... L5/S1 discs on a sagittal image; write levels.csv/.json and a sagittal QC image."""
    out_console = console(quiet=quiet)
    if out.exists() and not out.is_dir():
        raise InputError("output path exists and is not a folder", path=out)
    if tolerance_mm < 0:
        raise typer.BadParameter("must be zero or more", param_hint="--tolerance-mm")
    from paraspinal.backends.catalog import BackendOptions, Models, model_factory
    from paraspinal.pipeline.case import Case
    from paraspinal.pipeline.options import RunOptions
    from paraspinal.pipeline.sagittal import levels_frame, write_levels_outputs
    from paraspinal.pipeline.stages import CaseState, StageContext, run_stages
    from paraspinal.reporting.files import AtomicOutputs

    spine = model_factory(
        model=model,
        store=store,
        role="spine",
        options=BackendOptions(device=device, threads=threads, test_time_flip=False),
    )
    if labels is None and model is not None:
        spine.check()  # a model installed nowhere, a missing extra: one line, before any image is read
    options = RunOptions(
        sagittal_scheme=scheme,
        assume_aligned=assume_aligned,
        plane="axial",
        levels_tolerance_mm=tolerance_mm,
        study_roles=False,
    )
    case = Case("levels", image=axial, sagittal=sagittal, sagittal_labels=labels)
    state = run_stages(
        CaseState(case, options), ("read", "levels"), StageContext(models=Models(muscle=None, spine=spine))
    )
    result = state.levels.spine if state.levels is not None else None
    if result is None:
        raise InputError("; ".join(state.notes) or "no levels found", path=sagittal)
    with AtomicOutputs(out) as outputs:
        files = write_levels_outputs(outputs, result)
    for note in state.notes:
        typer.echo(f"paraspinal: note: {note}", err=True)
    frame = levels_frame(result)
    quality = f"; quality {result.quality.status} {result.quality.score:.2f}" if result.quality is not None else ""
    shown = [c for c in ("level", "confidence", "estimated", "disc_slice", "distance_mm", "angle_deg") if c in frame]
    print_frame(
        out_console,
        frame[shown].round({"confidence": 2}),  # a share of votes: two decimals (the CSV keeps full precision)
        title=f"levels ({result.spine.method}; naming confidence {result.spine.naming_confidence:.2f}{quality})",
    )
    out_console.print(f"wrote {', '.join(p.name for p in files.values())} to {out}")
