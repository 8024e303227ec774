"""``paraspinal demo``: the main job on the bundled TUM01 sample (Dixon water + fat, bundled levels)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from paraspinal.cli.app import app
from paraspinal.cli.run_cmd import EXIT_ERROR, RunLog, execute
from paraspinal.errors import InputError, ParaspinalError
from paraspinal.sample import sample_case

if TYPE_CHECKING:
    from paraspinal.backends.catalog import BackendFactory, Models


@app.command("demo")
def demo_command(
    out: Path = typer.Option(Path("paraspinal-demo"), "--out", "-o", help="Output folder."),
    manual_labels: bool = typer.Option(
        False, "--manual-labels", help="Measure the sample's manual labels instead of segmenting (no model needed)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
    log_json: bool = typer.Option(False, "--log-json", help="Log progress as JSON lines on stderr."),
) -> int:
    """Segment and measure the bundled TUM01 sample with the bundled model; print where the report is."""
    from paraspinal.batch.runner import BatchOptions
    from paraspinal.pipeline.case import Case
    from paraspinal.pipeline.options import RunOptions

    log = RunLog(quiet=quiet, log_json=log_json)
    sample = sample_case()
    case = Case(
        sample.case_id,
        water=sample.water,
        fat=sample.fat,
        levels=sample.levels,
        labels=sample.labels if manual_labels else None,
    )
    try:
        models = demo_models(manual_labels=manual_labels)
    except ParaspinalError as exc:
        if not log_json:
            raise
        log.error(str(exc))
        return EXIT_ERROR
    # The sample's water file has another header than its fat file (see sample/README.md): same voxels.
    options = RunOptions(assume_aligned=True, scheme=sample.scheme)
    command = ["paraspinal", "demo", "-o", str(out)] + (["--manual-labels"] if manual_labels else [])
    code, result = execute(
        [case],
        out=out,
        options=options,
        models=models,
        batch=BatchOptions(resume=False),
        log=log,
        command=command,
    )
    if result is not None and result.cases[0].ok and "report" in result.cases[0].files:
        log.out.print(f"[bold]demo report:[/] {result.cases[0].files['report']}")
    return code


def demo_models(*, manual_labels: bool, muscle: BackendFactory | None = None) -> Models:
    """The demo's models: none with ``manual_labels``, else the bundled muscle model (or ``muscle``), checked
    now, loading nothing: a one-line error that says how to run the demo without it."""
    from paraspinal.backends.catalog import BackendFactory, Models

    if manual_labels:
        return Models(muscle=None, spine=None)
    factory = muscle if muscle is not None else BackendFactory()
    try:
        factory.check()
    except ParaspinalError as exc:
        raise InputError(
            f"the bundled segmentation model is not installed or not usable ({exc}); "
            "`paraspinal demo --manual-labels` measures the sample's manual labels without it"
        ) from None
    return Models(muscle=factory, spine=None)
