"""``paraspinal measure``: measure a case from an existing label map."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from paraspinal.cli.app import app
from paraspinal.cli.console import console, print_frame
from paraspinal.cli.ct_options import CT_FLAGS, modality_option, with_ct_flags
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
from paraspinal.measurement.infiltration_methods import METHODS as INFILTRATION_METHODS

if TYPE_CHECKING:
    from paraspinal.measurement.ct_options import CtOptions

CASE_ID_SOURCES = ("path", "patient-id")


@app.command("measure")
@with_ct_flags()
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
    modality: str = modality_option(),
    ct_options: CtOptions = CT_FLAGS,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
) -> None:
    """Measure CSA, volume, fat fraction and fat infiltration from a label map; write CSV and Parquet."""
    out_console = console(quiet=quiet)
    method_list = parse_methods(methods)
    from paraspinal.io.case_names import case_id_from_name, check_case_id
    from paraspinal.pipeline.case import Case
    from paraspinal.pipeline.options import RunOptions
    from paraspinal.pipeline.outputs import write_tables
    from paraspinal.pipeline.read import check_series_options, patient_case_id
    from paraspinal.pipeline.stages import CaseState, StageContext, run_stages
    from paraspinal.reporting import summary_frame
    from paraspinal.sample import sample_case

    if case_id_from not in CASE_ID_SOURCES:
        raise InputError(f"unknown case id source '{case_id_from}'; choose from {', '.join(CASE_ID_SOURCES)}")
    options = RunOptions(
        scheme=scheme,
        assume_aligned=assume_aligned,
        infiltration_methods=method_list,
        series=tuple(series or ()),
        plane=plane,
        contrast=contrast,
        resample_uneven=resample_uneven,
        keep_descriptions=keep_descriptions,
        study_roles=False,
        modality=modality,
        ct=ct_options,
    )
    if sample:
        # TUM01 with its manual labels and levels; the fat image doubles as the bright-fat image for the
        # threshold methods; its water header differs from the labels' on the same voxels (sample/README.md)
        tum01 = sample_case()
        options = dataclasses.replace(options, scheme=tum01.scheme, assume_aligned=True)
        labels, water, fat, image, image_name, levels = (
            tum01.labels,
            tum01.water,
            tum01.fat,
            tum01.fat,
            "fat",
            tum01.levels,
        )
        case_id = tum01.case_id
    elif labels is None:
        raise typer.BadParameter("a label map is required (or use --sample)", param_hint="--labels")
    elif image is None and water is None and fat is None:
        out_console.print("[yellow]no image given: measuring areas and volumes only[/]")
    if (water is None) != (fat is None):
        raise InputError("Dixon fat fraction needs both --water and --fat", path=water or fat)
    if out.exists() and not out.is_dir():
        raise InputError("output path exists and is not a folder", path=out)
    paths = {"image": image, "water": water, "fat": fat, "labels": labels, "levels": levels}
    probe = Case("measure", image_name="image", **paths)  # the inputs, before the case id is known
    check_series_options(probe, options=options)
    if case_id is not None:
        check_case_id(case_id, fix="pass another --case-id")
    else:
        named = image or water or labels
        case_id = patient_case_id(probe, options=options) if case_id_from == "patient-id" else case_id_from_name(named)
        check_case_id(case_id, path=named, fix="rename the file or pass --case-id")
    case = Case(case_id, image_name=image_name, **paths)
    stages = ("read", "levels", "measure", "quality")
    state = run_stages(CaseState(case, options), stages, StageContext(models=_no_models()))
    files = write_tables(state, out)
    for warning in state.warnings:
        typer.echo(f"paraspinal: warning: {warning}", err=True)
    table = state.need("measurements", "measure").table  # type: ignore[attr-defined]
    print_frame(
        out_console,
        summary_frame(table).drop(columns=["case_id"]),
        title=f"{case_id}: summary (volume mL, fat fraction %, CSA mm2)",
    )
    out_console.print(f"wrote {len(table)} rows to {files['csv']} (+ .parquet)")


def _no_models():
    """``measure`` segments nothing and reads levels from CSVs or discs only: no model is ever loaded."""
    from paraspinal.backends.catalog import Models

    return Models(muscle=None, spine=None)
