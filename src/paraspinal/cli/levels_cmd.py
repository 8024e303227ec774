"""``paraspinal levels``: spinal levels from a sagittal image, optionally placed on an axial stack."""

from __future__ import annotations

from pathlib import Path

import typer

from paraspinal.anatomy import load_scheme
from paraspinal.cli.console import console, print_frame
from paraspinal.cli.main import app
from paraspinal.errors import InputError
from paraspinal.io import image_suffix, read_image, read_label_map
from paraspinal.io.dicom import is_dicom_path
from paraspinal.io.dicom_select import SeriesChoice
from paraspinal.levels.axial_match import DEFAULT_TOLERANCE_MM
from paraspinal.pipeline.sagittal import levels_frame, sagittal_levels, spine_backend, write_levels_outputs
from paraspinal.reporting import AtomicOutputs


def _plane_choice(path: Path, plane: str) -> SeriesChoice | None:
    """For a DICOM folder/zip: take the series in ``plane``; files need no choice."""
    return SeriesChoice(plane=plane) if image_suffix(path) is None and is_dicom_path(path) else None


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
    image = read_image(sagittal, series=_plane_choice(sagittal, "sagittal"))
    stack = read_image(axial, series=_plane_choice(axial, "axial")) if axial is not None else None
    if labels is not None:
        label_map = read_label_map(labels, series=_plane_choice(labels, "sagittal"))
        result = sagittal_levels(
            image,
            labels=label_map,
            scheme=load_scheme(scheme),
            axial=stack,
            assume_aligned=assume_aligned,
            tolerance_mm=tolerance_mm,
        )
    else:
        backend = spine_backend(device=device, threads=threads)
        result = sagittal_levels(image, backend=backend, axial=stack, tolerance_mm=tolerance_mm)
    with AtomicOutputs(out) as outputs:
        files = write_levels_outputs(outputs, result)
    for note in result.notes:
        typer.echo(f"paraspinal: note: {note}", err=True)
    frame = levels_frame(result)
    shown = [c for c in ("level", "confidence", "estimated", "disc_slice", "distance_mm", "angle_deg") if c in frame]
    print_frame(
        out_console,
        frame[shown].round({"confidence": 2}),  # a share of votes: two decimals (the CSV keeps full precision)
        title=f"levels ({result.spine.method}; naming confidence {result.spine.naming_confidence:.2f})",
    )
    out_console.print(f"wrote {', '.join(p.name for p in files.values())} to {out}")
