"""``paraspinal measure``: measure a case from an existing label map."""

from __future__ import annotations

from pathlib import Path

import typer

from paraspinal.cli.console import console, print_frame
from paraspinal.cli.main import app
from paraspinal.cli.options import parse_methods
from paraspinal.cli.series_cmd import (
    case_id_from_option,
    contrast_option,
    keep_descriptions_option,
    plane_option,
    resample_uneven_option,
    series_option,
)
from paraspinal.errors import InputError
from paraspinal.measurement import INFILTRATION_METHODS
from paraspinal.pipeline.measure import MeasureRequest, measure_request, sample_request
from paraspinal.reporting import summary_frame


@app.command("measure")
def measure_command(
    image: Path | None = typer.Argument(
        None, help="T1/T2 image (fat bright) for the fat-infiltration methods; a file, or a DICOM folder/zip."
    ),
    labels: Path | None = typer.Option(None, "--labels", "-l", help="Label map on the image grid."),
    water: Path | None = typer.Option(None, "--water", help="Dixon water image."),
    fat: Path | None = typer.Option(None, "--fat", help="Dixon fat image."),
    levels: Path | None = typer.Option(
        None, "--levels", help="Levels CSV (LPM pid/slice_start/slice_stop, or level/slice)."
    ),
    scheme: str = typer.Option(
        "lpm4", "--scheme", "-s", help="Label scheme key or TOML/JSON file (see `paraspinal labels`)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    case_id: str | None = typer.Option(None, "--case-id", help="Case id (default: from the file name)."),
    case_id_from: str = case_id_from_option(),
    series: list[str] | None = series_option(),
    plane: str | None = plane_option(),
    contrast: str | None = contrast_option(),
    resample_uneven: bool = resample_uneven_option(),
    image_name: str = typer.Option("image", "--image-name", help="Name of IMAGE in the table, e.g. t1 or t2."),
    methods: str = typer.Option(
        ",".join(INFILTRATION_METHODS), "--methods", help="Fat-infiltration methods, comma-separated (empty for none)."
    ),
    assume_aligned: bool = typer.Option(
        False, "--assume-aligned", help="Accept images whose header differs from the labels' on the same grid."
    ),
    keep_descriptions: bool = keep_descriptions_option(),
    sample: bool = typer.Option(False, "--sample", help="Measure the bundled TUM01 sample (manual labels)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
) -> None:
    """Measure CSA, volume, fat fraction and fat infiltration from a label map; write CSV and Parquet."""
    out_console = console(quiet=quiet)
    method_list = parse_methods(methods)
    if sample:
        request = sample_request(out, infiltration_methods=method_list)
    else:
        if labels is None:
            raise typer.BadParameter("a label map is required (or use --sample)", param_hint="--labels")
        if image is None and water is None and fat is None:
            out_console.print("[yellow]no image given: measuring areas and volumes only[/]")
        request = MeasureRequest(
            labels=labels,
            image=image,
            image_name=image_name,
            water=water,
            fat=fat,
            levels=levels,
            scheme=scheme,
            case_id=case_id,
            out_dir=out,
            assume_aligned=assume_aligned,
            infiltration_methods=method_list,
            series=tuple(series or ()),
            plane=plane,
            contrast=contrast,
            resample_uneven=resample_uneven,
            case_id_from=case_id_from,
            keep_descriptions=keep_descriptions,
        )
    if out.exists() and not out.is_dir():
        raise InputError("output path exists and is not a folder", path=out)
    result = measure_request(request)
    for warning in result.measurements.warnings:
        typer.echo(f"paraspinal: warning: {warning}", err=True)
    print_frame(
        out_console,
        summary_frame(result.measurements.table).drop(columns=["case_id"]),
        title=f"{result.case_id}: summary (volume mL, fat fraction %, CSA mm2)",
    )
    out_console.print(f"wrote {len(result.measurements.table)} rows to {result.files['csv']} (+ .parquet)")
