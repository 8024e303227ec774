"""What the single-case commands write from a case's state: ``segment``'s label map, JSON sidecar and
``<name>_quality.json``, ``measure``'s tables and ``<case>_quality.json``.
Each set of files appears complete or not at all (staged, then renamed together)."""

from __future__ import annotations

import json
from pathlib import Path

from paraspinal.io.image import Image
from paraspinal.io.writers import write_label_map
from paraspinal.pipeline.quality_stage import quality_file_name
from paraspinal.pipeline.stages import CaseState, case_inputs, quality_text
from paraspinal.reporting.files import AtomicOutputs

__all__ = ["segmentation_sidecar", "write_segmentation", "write_tables"]


def segmentation_sidecar(state: CaseState) -> dict[str, object]:
    """The JSON beside ``segment``'s label map: source, scheme and label names, the model's provenance, what it
    did with this image, and the clean-up per label."""
    label_map = state.label_map
    assert label_map is not None
    provenance = label_map.provenance
    return {
        "source": str(state.case.image or state.case.water),
        "scheme": label_map.scheme.key,
        "backend": str(provenance.model.get("backend", provenance.model.get("name", ""))),
        "labels": {str(v): label_map.scheme.entry(v).name for v in label_map.scheme.values},
        "provenance": dict(provenance.model),
        "segmentation": dict(provenance.info),
        "postprocessing": [
            {"label": r.label, "step": r.step, "components": r.components_before, "voxels_removed": r.voxels_removed}
            for r in state.cleanup
        ],
    }


def write_segmentation(
    state: CaseState, *, labels_path: Path, sidecar_path: Path, output_format: str = "nifti", seg_patient: str
) -> None:
    """The label map (NIfTI; and DICOM-SEG beside it, referencing the DICOM source), its JSON sidecar and,
    when the state was assessed, ``<name>_quality.json`` beside it (see :func:`quality_file_name`)."""
    label_map, images = state.label_map, state.images
    assert label_map is not None and images is not None and images.to_segment is not None
    labels = label_map.labels
    if output_format == "dicom-seg":
        from paraspinal.io.dicom_seg import write_label_output
    with AtomicOutputs(labels_path.parent) as outputs:  # the label map and its JSON (and SEG): all or none
        write_label_map(labels, outputs.path(labels_path.name), compressed=labels_path.name.lower().endswith(".gz"))
        if output_format == "dicom-seg":
            source = images.to_segment
            write_label_output(
                Image(labels.array, labels.affine, source=labels.source, metadata=dict(source.metadata)),
                outputs.path(sidecar_path.with_suffix(".dcm").name),
                output_format="dicom-seg",
                scheme=label_map.scheme,
                source=state.case.image or state.case.water,  # type: ignore[arg-type]
                patient=seg_patient,
                algorithm_name=f"paraspinal {label_map.provenance.model.get('backend', '')}".strip(),
            )
        text = json.dumps(segmentation_sidecar(state), indent=2) + "\n"
        outputs.path(sidecar_path.name).write_text(text, encoding="utf-8")
        if state.quality is not None:
            outputs.path(quality_file_name(labels_path.name)).write_text(quality_text(state.quality), encoding="utf-8")


def write_tables(state: CaseState, out_dir: Path) -> dict[str, Path]:
    """``measure``'s files in ``out_dir``: ``{case}_measurements.csv/.parquet``, ``_summary.csv``, ``_levels.csv``
    and ``_case.json`` (and ``_quality.json`` when the state was assessed); returns their paths by kind."""
    from paraspinal.reporting.tables import write_measurements

    measurements = state.measurements_with_warnings
    levels = state.levels.table if state.levels is not None else None
    cid = state.case.case_id
    with AtomicOutputs(out_dir) as outputs:
        files = write_measurements(measurements, outputs, case_id=cid, levels=levels, inputs=case_inputs(state))
        if state.quality is not None:
            outputs.path(f"{cid}_quality.json").write_text(quality_text(state.quality), encoding="utf-8")
            files["quality"] = outputs.out_dir / f"{cid}_quality.json"
        return files
