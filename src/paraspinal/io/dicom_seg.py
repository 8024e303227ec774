"""DICOM-SEG output: a label map written as a binary Segmentation referencing its source series.

Each label value present becomes one segment (numbered 1..N in label order). Segments are coded
from the anatomy registry: category SCT 91723000 "Anatomical structure", type the structure's
SNOMED CT code where the registry has one, otherwise a clearly-labelled fallback in the private
coding scheme ``99PARASPINAL`` (value = registry key, meaning = "<name> (no SNOMED code in
paraspinal registry)"). Patient sides are laterality modifiers on the type (SCT 24028007 Right,
7771000 Left, 51440002 Right and left for a bilateral structure labelled without a side).

Privacy: a DICOM-SEG copies the patient and study modules of its source (DICOM PS3.3). By default
(``patient="pseudonymise"``) the SEG is written without the patient's name, IDs, birth date,
address, accession number, study ID or physician names (``PatientIdentityRemoved`` = YES, with the
method in ``DeidentificationMethod``); it still references the source study, series and instances
by UID so viewers can overlay it, so it is pseudonymous, not anonymous. Pass ``patient="keep"`` to
copy the patient module unchanged, e.g. before sending the SEG back to the PACS.

Needs highdicom (``pip install 'paraspinal[dicom]'``); without it a one-line error says so.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from paraspinal import __version__
from paraspinal.anatomy import AnatomyRegistry, CodedConcept, LabelScheme, load_registry, load_scheme
from paraspinal.errors import GeometryError, InputError, ParaspinalError
from paraspinal.io.choices import LABEL_OUTPUT_FORMATS, SEG_PATIENT_POLICIES
from paraspinal.io.dicom import describe_datasets, discover_series, source_datasets
from paraspinal.io.dicom_select import select_series
from paraspinal.io.dicom_series import SeriesInfo
from paraspinal.io.files import ensure_folder, os_errors_name, temp_file_for
from paraspinal.io.geometry import grid_differences
from paraspinal.io.image import Image
from paraspinal.io.writers import write_label_map

FALLBACK_SCHEME = "99PARASPINAL"
ANATOMICAL_STRUCTURE = CodedConcept("SCT", "91723000", "Anatomical structure")
LATERALITY = {
    "right": CodedConcept("SCT", "24028007", "Right"),
    "left": CodedConcept("SCT", "7771000", "Left"),
    "both": CodedConcept("SCT", "51440002", "Right and left"),
}
# Removed (or emptied, when the SEG IOD requires them) in pseudonymised SEGs.
_EMPTIED = ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber", "ReferringPhysicianName", "StudyID")
_REMOVED = (
    "PatientBirthTime",
    "OtherPatientIDs",
    "OtherPatientIDsSequence",
    "OtherPatientNames",
    "IssuerOfPatientID",
    "IssuerOfPatientIDQualifiersSequence",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "PatientMotherBirthName",
    "MilitaryRank",
    "MedicalRecordLocator",
    "PatientComments",
    "RequestingPhysician",
    "PerformingPhysicianName",
    "NameOfPhysiciansReadingStudy",
    "OperatorsName",
    "InstitutionName",
    "InstitutionAddress",
)
DEIDENTIFICATION_METHOD = "paraspinal: names, IDs, birth date, accession removed"  # LO: 64 chars at most


@dataclass(frozen=True)
class SegmentSpec:
    """What one segment of the SEG says about its label value."""

    segment_number: int
    label_value: int
    label: str
    structure: str
    property_type: CodedConcept
    laterality: CodedConcept | None

    @property
    def coded(self) -> bool:
        """True when the type is a SNOMED CT code from the registry (not the private fallback)."""
        return self.property_type.scheme != FALLBACK_SCHEME


def segment_specs(
    values: Sequence[int], *, scheme: LabelScheme, registry: AnatomyRegistry | None = None
) -> list[SegmentSpec]:
    """Segment descriptions for the given label values (sorted, background 0 left out)."""
    registry = registry if registry is not None else load_registry()
    present = sorted({int(v) for v in values} - {0})
    scheme.check_values(present, path=scheme.source)
    specs = []
    for number, value in enumerate(present, start=1):
        entry = scheme.entry(value)
        structure = registry[entry.structure]
        code = structure.code or CodedConcept(
            FALLBACK_SCHEME, structure.key, f"{structure.name} (no SNOMED code in paraspinal registry)"
        )
        side = entry.side if entry.side != "none" else ("both" if structure.bilateral else None)
        specs.append(
            SegmentSpec(
                segment_number=number,
                label_value=value,
                label=entry.name,
                structure=structure.key,
                property_type=code,
                laterality=LATERALITY[side] if side else None,
            )
        )
    return specs


def write_dicom_seg(
    labels: Image,
    *,
    scheme: LabelScheme | str,
    source: str | Path | Sequence[Any],
    path: str | Path,
    series_uid: str | None = None,
    patient: str = "pseudonymise",
    algorithm_name: str | None = None,
    series_number: int = 9900,
    series_description: str | None = None,
) -> Path:
    """Write ``labels`` as a binary DICOM-SEG referencing the source series; returns ``path``.

    Args:
        labels: label map on the source series' grid (as read by :func:`~paraspinal.io.dicom.read_dicom`).
        scheme: label scheme (or its key) giving each value's structure and side.
        source: the source series as a DICOM folder/zip/file, or its pydicom datasets (headers suffice).
        series_uid: which series of a folder holding several; defaults to the one ``labels`` was read from.
        patient: ``pseudonymise`` (default) or ``keep`` the source's patient module (see module docs).
        algorithm_name: name of the segmentation algorithm (segments are AUTOMATIC); None means MANUAL.
    """
    out = Path(path)
    hd = _highdicom(out)
    if patient not in SEG_PATIENT_POLICIES:
        raise InputError(f"unknown patient policy '{patient}'; choose from {', '.join(SEG_PATIENT_POLICIES)}")
    scheme = load_scheme(scheme) if isinstance(scheme, str) else scheme
    if "resampled" in labels.metadata:
        raise GeometryError(
            "labels were resampled from an unevenly spaced series; a DICOM-SEG must lie on the source slices",
            path=labels.source,
        )
    info, datasets = _source(source, series_uid=series_uid or _metadata_uid(labels))
    _check_grid(labels, info)
    specs = segment_specs(np.unique(labels.array).tolist(), scheme=scheme)
    if not specs:
        raise InputError("label map is empty (no labelled voxels); nothing to write as DICOM-SEG", path=labels.source)
    pixels = _segment_numbers(labels.array, specs)  # (i, j, k) sorted -> segment numbers
    frames = pixels.transpose(2, 1, 0)  # (slice, row, column) in slice order
    if info.multiframe:
        frames = frames[np.argsort(np.asarray(info.geometry.order))]  # back to the file's frame order
    digest = hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest()
    seg = hd.seg.Segmentation(
        source_images=datasets,
        pixel_array=frames,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[_description(hd, spec, algorithm_name) for spec in specs],
        series_instance_uid=_uid(info.uid, scheme.key, digest, "series"),
        series_number=series_number,
        sop_instance_uid=_uid(info.uid, scheme.key, digest, "instance"),
        instance_number=1,
        manufacturer="paraspinal",
        manufacturer_model_name="paraspinal",
        software_versions=__version__,
        device_serial_number="none",
        content_label="PARASPINAL",
        content_description=f"Label scheme {scheme.key}"[:64],
        series_description=(series_description or f"paraspinal segmentation ({scheme.key})")[:64],
    )
    if patient == "pseudonymise":
        pseudonymise(seg)
    return _save_atomically(seg, out)


def write_label_output(
    labels: Image,
    path: str | Path,
    *,
    output_format: str = "nifti",
    scheme: LabelScheme | str | None = None,
    source: str | Path | Sequence[Any] | None = None,
    patient: str = "pseudonymise",
    algorithm_name: str | None = None,
) -> Path:
    """Write a label map as NIfTI (``path`` should end in .nii.gz) or DICOM-SEG (``.dcm``; needs scheme and source)."""
    if output_format == "nifti":
        return write_label_map(labels, path)
    if output_format == "dicom-seg":
        if scheme is None or source is None:
            raise InputError("DICOM-SEG output needs the label scheme and the source DICOM series", path=path)
        return write_dicom_seg(
            labels, scheme=scheme, source=source, path=path, patient=patient, algorithm_name=algorithm_name
        )
    raise InputError(f"unknown output format '{output_format}'; choose from {', '.join(LABEL_OUTPUT_FORMATS)}")


def pseudonymise(ds: Any) -> None:
    """Remove direct patient identifiers from a dataset in place (UIDs kept); mark it as such."""
    for name in _EMPTIED:
        if name in ds:
            ds.data_element(name).value = ""
    for name in _REMOVED:
        if name in ds:
            del ds[name]
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = DEIDENTIFICATION_METHOD


def _highdicom(path: Path) -> Any:
    try:
        import highdicom
    except ImportError:
        raise ParaspinalError("DICOM-SEG output needs highdicom: pip install 'paraspinal[dicom]'", path=path) from None
    return highdicom


def _metadata_uid(labels: Image) -> str | None:
    key = labels.metadata.get("series_key") or labels.metadata.get("series_instance_uid")
    return str(key) if key else None


def _source(source: str | Path | Sequence[Any], *, series_uid: str | None) -> tuple[SeriesInfo, list[Any]]:
    if isinstance(source, str | Path):
        info = select_series(discover_series(source), uid=series_uid)
        if info.problems or info.uneven:
            raise InputError(f"source series {info.key}: {'; '.join([*info.problems, info.uneven or ''])}", path=source)
        return info, source_datasets(info)
    datasets = list(source)
    info = describe_datasets(datasets)
    if info.problems or info.uneven or info.geometry is None:
        raise InputError(f"source series {info.key}: {'; '.join([*info.problems, info.uneven or ''])}")
    if info.multiframe:
        return info, datasets
    return info, [datasets[i] for i in info.geometry.order]


def _check_grid(labels: Image, info: SeriesInfo) -> None:
    assert info.geometry is not None and info.geometry.affine is not None
    grid = Image(np.zeros((info.columns, info.rows, info.n_slices), dtype=np.uint8), info.geometry.affine)
    diffs = grid_differences(grid, labels)
    if diffs:
        raise GeometryError(
            f"label map is not on the grid of source series {info.key}: {'; '.join(diffs)}", path=labels.source
        )


def _segment_numbers(array: np.ndarray, specs: list[SegmentSpec]) -> np.ndarray:
    lookup = np.zeros(int(array.max()) + 1, dtype=np.uint16)
    for spec in specs:
        lookup[spec.label_value] = spec.segment_number
    return lookup[array.astype(np.int64)]


def _description(hd: Any, spec: SegmentSpec, algorithm_name: str | None) -> Any:
    from pydicom.sr.codedict import codes

    algorithm = None
    if algorithm_name is not None:
        algorithm = hd.AlgorithmIdentificationSequence(
            name=algorithm_name[:64], family=codes.cid7162.ArtificialIntelligence, version=__version__
        )
    description = hd.seg.SegmentDescription(
        segment_number=spec.segment_number,
        segment_label=spec.label[:64],
        segmented_property_category=_code(hd, ANATOMICAL_STRUCTURE),
        segmented_property_type=_code(hd, spec.property_type),
        algorithm_type="AUTOMATIC" if algorithm_name is not None else "MANUAL",
        algorithm_identification=algorithm,
        tracking_id=f"label {spec.label_value}",
        tracking_uid=_uid("tracking", spec.structure, spec.label_value, spec.laterality),
    )
    if spec.laterality is not None:
        modifier = _code(hd, spec.laterality)
        description.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [modifier]
    return description


def _code(hd: Any, concept: CodedConcept) -> Any:
    return hd.sr.CodedConcept(value=concept.value, scheme_designator=concept.scheme, meaning=concept.meaning)


def _uid(*parts: object) -> str:
    """A deterministic UID (2.25 + name-based UUID) from the given parts: the same input gives the same SEG."""
    return f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, '|'.join(str(p) for p in parts)).int}"


def _save_atomically(seg: Any, out: Path) -> Path:
    ensure_folder(out.parent)
    tmp = temp_file_for(out)
    try:
        with os_errors_name(out):
            seg.save_as(tmp)
            os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out
