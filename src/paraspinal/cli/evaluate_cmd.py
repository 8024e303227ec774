"""``paraspinal evaluate``: segmentation accuracy and measurement agreement against manual masks
(``--pred``/``--ref``), or agreement between two models' label maps with no reference (``--a``/``--b``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from paraspinal.cli.app import app
from paraspinal.cli.console import console, print_frame
from paraspinal.cli.ct_options import CT_FLAGS, with_ct_flags
from paraspinal.cli.options import parse_methods
from paraspinal.errors import InputError
from paraspinal.measurement.infiltration_methods import METHODS as INFILTRATION_METHODS

if TYPE_CHECKING:
    from paraspinal.measurement.ct_options import CtOptions


def _parse_margins(items: list[str]) -> dict[str, float]:
    """``["fat_fraction=2"]`` -> ``{"fat_fraction": 2.0}``; anything else is a usage error."""
    margins: dict[str, float] = {}
    for item in items:
        metric, sep, value = item.partition("=")
        try:
            number = float(value) if sep else float("nan")
        except ValueError:
            number = float("nan")
        if not metric.strip() or not number > 0:
            raise typer.BadParameter(f"expected METRIC=POSITIVE_NUMBER, got {item!r}", param_hint="--tost-margin")
        margins[metric.strip()] = number
    return margins


@app.command("evaluate")
@with_ct_flags(bmi=False)
def evaluate_command(
    pred: Path | None = typer.Option(
        None,
        "--pred",
        "-p",
        help="Predicted label map, a folder of them, or a `paraspinal run` output folder (its report gains a section).",
    ),
    ref: Path | None = typer.Option(
        None, "--ref", "-r", help="Reference (manual) label map, or a folder matched by case id."
    ),
    model_a: Path | None = typer.Option(
        None,
        "--a",
        help="Model agreement, no reference: label map of model A, a folder of them, or a `paraspinal run` folder.",
    ),
    model_b: Path | None = typer.Option(
        None, "--b", help="Model agreement: label map(s) of model B (file, folder or run folder), matched by case id."
    ),
    scheme_a: str | None = typer.Option(
        None, "--scheme-a", help="Label scheme of --a (default: from the segment sidecar or run manifest)."
    ),
    scheme_b: str | None = typer.Option(
        None, "--scheme-b", help="Label scheme of --b (default: from the segment sidecar or run manifest)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    levels: Path | None = typer.Option(
        None, "--levels", help="Levels CSV (LPM pid/slice_start/slice_stop, or level/slice)."
    ),
    image: Path | None = typer.Option(
        None,
        "--image",
        help="T1/T2 image (fat bright), or a folder of <case>_* images: fat infiltration and fat-voxel classification.",
    ),
    water: Path | None = typer.Option(None, "--water", help="Dixon water image or folder (fat fraction)."),
    fat: Path | None = typer.Option(None, "--fat", help="Dixon fat image or folder (fat fraction)."),
    ct: Path | None = typer.Option(
        None, "--ct", help="CT image in HU, or a folder of <case>_* CTs: both masks measured in HU (IMAT, organs)."
    ),
    manual_values: Path | None = typer.Option(
        None,
        "--manual-values",
        help="CSV of manual ROI values (case_id,structure,side,metric,value[,level,method,unit]) vs automatic ones.",
    ),
    ct_options: CtOptions = CT_FLAGS,
    image_name: str = typer.Option("image", "--image-name", help="Name of --image in the tables, e.g. t1 or t2."),
    scheme: str | None = typer.Option(
        None,
        "--scheme",
        "-s",
        help="Label scheme key or TOML/JSON file (default lpm4; with --a/--b: for maps whose scheme is not recorded).",
    ),
    methods: str = typer.Option(
        ",".join(INFILTRATION_METHODS), "--methods", help="Fat-infiltration methods, comma-separated."
    ),
    tost_margin_pct: float = typer.Option(
        5.0, "--tost-margin-pct", min=0.0, help="TOST equivalence margin, % of the manual mean (LPM: 5)."
    ),
    tost_margin: list[str] = typer.Option(
        [],
        "--tost-margin",
        help="Absolute TOST margin for one metric, METRIC=VALUE in its unit (e.g. fat_fraction=2); repeatable.",
    ),
    alpha: float = typer.Option(0.05, "--alpha", min=1e-6, max=0.5, help="Significance level of TOST."),
    assume_aligned: bool = typer.Option(
        False, "--assume-aligned", help="Accept files whose header differs from the reference's on the same grid."
    ),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Write PNG plots."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but warnings and errors."),
) -> int:
    """Dice, IoU, HD95, ASSD and volume error per case, label and level; ICC, Bland-Altman, TOST and
    kappa for measurements on automatic vs manual masks. Writes CSV, summary.json, plots and
    evaluation.html; with a `paraspinal run` folder as --pred, adds the evaluation to its report.html.

    With --a and --b instead of --pred and --ref: agreement between two models (no reference), both
    merged to the labels their schemes share in the anatomy registry (e.g. lpm4 erector spinae +
    multifidus vs total_mr autochthon, per side)."""
    from paraspinal.evaluation.evaluate import evaluate, write_outputs
    from paraspinal.evaluation.pairing import is_run_folder
    from paraspinal.reporting.evaluation_html import add_to_run_report, write_evaluation_page

    out_console = console(quiet=quiet)
    if model_a is not None or model_b is not None:
        return _model_agreement(
            model_a,
            model_b,
            pred=pred,
            ref=ref,
            out=out,
            scheme_a=scheme_a,
            scheme_b=scheme_b,
            scheme=scheme,
            levels=levels,
            measurement_inputs={"--water": water, "--fat": fat, "--image": image},
            assume_aligned=assume_aligned,
            plots=plots,
            out_console=out_console,
        )
    if pred is None or ref is None:
        raise typer.BadParameter(
            "give --pred and --ref (accuracy against a reference) or --a and --b (agreement of two models)",
            param_hint="--pred/--ref",
        )
    if scheme_a is not None or scheme_b is not None:
        raise typer.BadParameter("--scheme-a and --scheme-b go with --a and --b; use --scheme", param_hint="--scheme-a")
    method_list = parse_methods(methods)
    margins = _parse_margins(tost_margin)
    if out.exists() and not out.is_dir():
        raise InputError("output path exists and is not a folder", path=out)

    progress = _progress_printer(out_console)
    result = evaluate(
        pred,
        ref,
        scheme=scheme or "lpm4",
        levels_csv=levels,
        water=water,
        fat=fat,
        image=image,
        ct=ct,
        manual_values=manual_values,
        ct_options=ct_options,
        image_name=image_name,
        infiltration_methods=method_list,
        tost_margin_pct=tost_margin_pct,
        tost_margins=margins,
        alpha=alpha,
        assume_aligned=assume_aligned,
        progress=progress,
    )
    for warning in result.warnings:
        typer.echo(f"paraspinal: warning: {warning}", err=True)
    files = write_outputs(result, out, plots=plots)
    files.append(write_evaluation_page(out))
    run_report = pred / "report.html"
    if is_run_folder(pred) and run_report.is_file():
        if add_to_run_report(run_report, out):
            out_console.print(f"added the evaluation to {run_report}")
        else:
            typer.echo(f"paraspinal: warning: {run_report} has no evaluation slot; left unchanged", err=True)

    if not result.overlap.empty:
        whole = result.overlap[(result.overlap["level"] == "all") & result.overlap["metric"].isin(["dice", "hd95"])]
        table = whole.pivot_table(index="name", columns="metric", values="value", aggfunc="mean", sort=False)
        print_frame(out_console, table.reset_index(), title="mean over cases (whole volume)")
    out_console.print(f"wrote {len(files)} files to {out}")
    if result.n_failed:
        typer.echo(
            f"paraspinal: error: {result.n_failed} of {len(result.cases)} case(s) failed; see {out / 'summary.json'}",
            err=True,
        )
        return 1
    return 0


def _progress_printer(out_console):
    def progress(record) -> None:
        for warning in record.warnings:
            typer.echo(f"paraspinal: warning: {record.case_id}: {warning}", err=True)
        for error in record.errors:
            typer.echo(f"paraspinal: error: {record.case_id}: {error}", err=True)
        out_console.print(f"{record.case_id}: {record.status}")

    return progress


def _model_agreement(
    model_a: Path | None,
    model_b: Path | None,
    *,
    pred: Path | None,
    ref: Path | None,
    out: Path,
    scheme_a: str | None,
    scheme_b: str | None,
    scheme: str | None,
    levels: Path | None,
    measurement_inputs: dict[str, Path | None],
    assume_aligned: bool,
    plots: bool,
    out_console,
) -> int:
    """``--a``/``--b``: agreement of two models' label maps at their common labels (no reference)."""
    from paraspinal.evaluation.evaluate import write_outputs
    from paraspinal.evaluation.model_agreement import compare_models
    from paraspinal.reporting.evaluation_html import write_evaluation_page

    if pred is not None or ref is not None:
        raise typer.BadParameter("give --a/--b (two models) or --pred/--ref (against a reference), not both")
    if model_a is None or model_b is None:
        raise typer.BadParameter("model agreement needs both --a and --b", param_hint="--a/--b")
    given = [option for option, path in measurement_inputs.items() if path is not None]
    if given:
        raise typer.BadParameter(
            "model agreement compares label maps only; images go with --pred/--ref", param_hint=given[0]
        )
    if out.exists() and not out.is_dir():
        raise InputError("output path exists and is not a folder", path=out)
    result = compare_models(
        model_a,
        model_b,
        scheme_a=scheme_a,
        scheme_b=scheme_b,
        fallback_scheme=scheme,
        levels_csv=levels,
        assume_aligned=assume_aligned,
        progress=_progress_printer(out_console),
    )
    for warning in result.warnings:
        typer.echo(f"paraspinal: warning: {warning}", err=True)
    files = write_outputs(result, out, plots=plots)
    files.append(write_evaluation_page(out))
    if not result.overlap.empty:
        whole = result.overlap[result.overlap["level"] == "all"]
        table = whole[whole["metric"].isin(["dice", "hd95", "assd", "volume_diff_pct"])].pivot_table(
            index="name", columns="metric", values="value", aggfunc="mean", sort=False
        )
        print_frame(out_console, table.reset_index(), title="agreement of models A and B (no reference)")
    out_console.print(f"wrote {len(files)} files to {out}")
    if result.n_failed:
        typer.echo(
            f"paraspinal: error: {result.n_failed} of {len(result.cases)} case(s) failed; see {out / 'summary.json'}",
            err=True,
        )
        return 1
    return 0
