"""``paraspinal segment``: label one image with the bundled model or any backend of the catalog (``--backend``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer
from rich.table import Table

from paraspinal.cli.backend_options import (
    backend_factory,
    backend_option,
    checkpoint_option,
    device_option,
    folds_option,
    model_option,
    native_scheme_option,
    task_option,
    threads_option,
    tta_option,
)
from paraspinal.cli.console import console
from paraspinal.cli.main import app
from paraspinal.cli.series_cmd import (
    check_output_format,
    contrast_option,
    keep_descriptions_option,
    output_format_option,
    plane_option,
    resample_uneven_option,
    seg_patient_option,
    series_choice,
    series_option,
)
from paraspinal.errors import InputError
from paraspinal.io import Image, image_suffix, read_image, strip_image_suffix, write_label_map
from paraspinal.io.dicom import is_dicom_path
from paraspinal.io.dicom_seg import write_label_output
from paraspinal.postprocessing import keep_largest_component
from paraspinal.reporting import AtomicOutputs


def output_paths(image: Path, out: Path) -> tuple[Path, Path]:
    """Label-map and sidecar paths: ``OUT/{stem}_dseg.nii.gz``, or ``OUT`` itself when it names a NIfTI file."""
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
    )
    factory.check()  # unknown backend, missing extra or --model: one line, before any image is read
    dicom_input = image_suffix(image) is None and is_dicom_path(image)
    if not dicom_input and (series or plane or contrast or resample_uneven or output_format == "dicom-seg"):
        raise typer.BadParameter("series options and DICOM-SEG output need a DICOM input", param_hint="IMAGE")
    labels_path, sidecar_path = output_paths(image, out)
    choice = series_choice(
        series, plane=plane, contrast=contrast, resample_uneven=resample_uneven, keep_descriptions=keep_descriptions
    )
    source = read_image(image, series=choice if dicom_input else None)
    backend = factory()
    result = backend.segment(source)
    labels = result.labels
    records = []
    if cleanup:
        labels, records = keep_largest_component(labels)
    sidecar = {
        "source": str(image),
        "scheme": result.scheme.key,
        "backend": backend.name,
        "labels": {str(v): result.scheme.entry(v).name for v in result.scheme.values},
        "provenance": backend.provenance,
        "segmentation": {k: v for k, v in result.info.items() if k not in backend.provenance},
        "postprocessing": [
            {"label": r.label, "step": r.step, "components": r.components_before, "voxels_removed": r.voxels_removed}
            for r in records
        ],
    }
    with AtomicOutputs(labels_path.parent) as outputs:  # the label map and its JSON (and SEG): all or none
        write_label_map(labels, outputs.path(labels_path.name), compressed=labels_path.name.lower().endswith(".gz"))
        if output_format == "dicom-seg":
            write_label_output(
                Image(labels.array, labels.affine, source=labels.source, metadata=dict(source.metadata)),
                outputs.path(sidecar_path.with_suffix(".dcm").name),
                output_format="dicom-seg",
                scheme=result.scheme,
                source=image,
                patient=seg_patient,
                algorithm_name=f"paraspinal {backend.name}",
            )
        outputs.path(sidecar_path.name).write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")
    _print_volumes(out_console, labels.array, result.scheme, voxel_mm3=labels.voxel_volume_mm3, title=str(labels_path))


def _print_volumes(out_console, array: np.ndarray, scheme, *, voxel_mm3: float, title: str) -> None:
    from rich.markup import escape

    counts = np.bincount(array.ravel().astype(np.int64), minlength=max(scheme.values) + 1)
    table = Table(title=f"wrote {escape(title)}", title_justify="left")  # a path is text, not markup
    for column in ("label", "name", "voxels", "volume mL"):
        table.add_column(column, justify="left" if column == "name" else "right")
    for value in scheme.values:
        table.add_row(
            str(value), scheme.entry(value).name, str(int(counts[value])), f"{counts[value] * voxel_mm3 / 1000:.1f}"
        )
    out_console.print(table)
