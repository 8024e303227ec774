"""``paraspinal segment``: label one image with the bundled model or any backend of the catalog (``--backend``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

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
from paraspinal.cli.console import console
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
from paraspinal.errors import InputError

if TYPE_CHECKING:
    import numpy as np


def output_paths(image: Path, out: Path) -> tuple[Path, Path]:
    """Label-map and sidecar paths: ``OUT/{stem}_dseg.nii.gz``, or ``OUT`` itself when it names a NIfTI file."""
    from paraspinal.io.readers import strip_image_suffix

    name = out.name.lower()
    if name.endswith((".nii.gz", ".nii")):
        if "_dseg" not in out.name:
            raise typer.BadParameter(
                "the label map's file name must contain _dseg, e.g. case_dseg.nii.gz", param_hint="--out"
            )
        stem = out.name[: -len(".nii.gz")] if name.endswith(".nii.gz") else out.name[: -len(".nii")]
        return out, out.with_name(stem + ".json")
    if out.exists() and not out.is_dir():
        raise InputError("output path exists and is not a folder", path=out)
    stem = strip_image_suffix(image)
    return out / f"{stem}_dseg.nii.gz", out / f"{stem}_dseg.json"


@app.command("segment")
def segment_command(
    image: Path = typer.Argument(..., help="Axial image to segment (NIfTI, NRRD, MHA/MHD or a DICOM folder)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder, or a file name like case_dseg.nii.gz."),
    backend_name: str = backend_option(),
    model: Path | None = model_option(),
    store: Path | None = store_option(),
    device: str = device_option(),
    flip: bool = tta_option(),
    cleanup: bool = typer.Option(
        True, "--cleanup/--no-cleanup", help="Keep only the largest connected component of each label."
    ),
    threads: int | None = threads_option(),
    folds: str | None = folds_option(),
    checkpoint: str | None = checkpoint_option(),
    task: str | None = task_option(),
    native_scheme: str | None = native_scheme_option("--scheme", "--model-scheme"),
    series: list[str] | None = series_option(),
    plane: str | None = plane_option(),
    contrast: str | None = contrast_option(),
    resample_uneven: bool = resample_uneven_option(),
    output_format: str = output_format_option(),
    seg_patient: str = seg_patient_option(),
    keep_descriptions: bool = keep_descriptions_option(),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
) -> None:
    """Segment the paraspinal muscles; write the label map (NIfTI, _dseg) and a JSON sidecar with provenance
    (backend, model, options, weights hash)."""
    from paraspinal.io.dicom import is_dicom_path
    from paraspinal.io.readers import image_suffix, strip_image_suffix

    out_console = console(quiet=quiet)
    check_output_format(output_format, seg_patient=seg_patient)
    factory = backend_factory(
        backend=backend_name,
        model=model,
        device=device,
        threads=threads,
        tta=flip,
        folds=folds,
        checkpoint=checkpoint,
        task=task,
        scheme=native_scheme,
        store=store,
    )
    factory.check()  # unknown backend, missing extra or --model: one line, before any image is read
    dicom_input = image_suffix(image) is None and is_dicom_path(image)
    if not dicom_input and (series or plane or contrast or resample_uneven or output_format == "dicom-seg"):
        raise typer.BadParameter("series options and DICOM-SEG output need a DICOM input", param_hint="IMAGE")
    labels_path, sidecar_path = output_paths(image, out)
    from paraspinal.backends.catalog import Models
    from paraspinal.pipeline.case import Case
    from paraspinal.pipeline.options import RunOptions
    from paraspinal.pipeline.outputs import write_segmentation
    from paraspinal.pipeline.stages import CaseState, StageContext, run_stages

    options = RunOptions(
        largest_component=cleanup,
        series=tuple(series or ()),
        plane=plane,
        contrast=contrast,
        resample_uneven=resample_uneven,
        keep_descriptions=keep_descriptions,
        study_roles=False,
    )
    case = Case(_segment_case_id(strip_image_suffix(image)), image=image)
    state = run_stages(
        CaseState(case, options), ("read", "segment", "clean", "quality"), StageContext(models=Models(muscle=factory))
    )
    write_segmentation(
        state, labels_path=labels_path, sidecar_path=sidecar_path, output_format=output_format, seg_patient=seg_patient
    )
    label_map = state.label_map
    assert label_map is not None
    labels = label_map.labels
    _print_volumes(
        out_console, labels.array, label_map.scheme, voxel_mm3=labels.voxel_volume_mm3, title=str(labels_path)
    )
    if state.quality is not None:
        from rich.markup import escape

        from paraspinal.pipeline.quality_stage import quality_file_name

        reasons = "; ".join(state.quality.assessment.reasons[:3])
        out_console.print(
            f"quality: {state.quality.status} (score {state.quality.score:.2f})"
            + (f": {escape(reasons)}" if reasons else "")
            + f" -> {escape(str(labels_path.with_name(quality_file_name(labels_path.name))))}"
        )


def _segment_case_id(stem: str) -> str:
    """A case id for the image being segmented (only used inside the command: names of outputs come from the
    file name): the stem when it is a valid case id, else a neutral one."""
    from paraspinal.io.case_names import check_case_id

    try:
        check_case_id(stem)
    except InputError:
        return "image"
    return stem


def _print_volumes(out_console, array: np.ndarray, scheme, *, voxel_mm3: float, title: str) -> None:
    import numpy as np
    from rich.markup import escape
    from rich.table import Table

    counts = np.bincount(array.ravel().astype(np.int64), minlength=max(scheme.values) + 1)
    table = Table(title=f"wrote {escape(title)}", title_justify="left")  # a path is text, not markup
    for column in ("label", "name", "voxels", "volume mL"):
        table.add_column(column, justify="left" if column == "name" else "right")
    for value in scheme.values:
        table.add_row(
            str(value), scheme.entry(value).name, str(int(counts[value])), f"{counts[value] * voxel_mm3 / 1000:.1f}"
        )
    out_console.print(table)
