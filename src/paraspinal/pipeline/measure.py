"""The ``measure`` job: label map (+ images, levels) from files -> tidy tables on disk."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

from paraspinal.anatomy import load_scheme
from paraspinal.errors import InputError
from paraspinal.io import Image, check_same_grid, read_image, read_label_map
from paraspinal.io.case_names import case_id_from_name, check_case_id
from paraspinal.io.dicom import dicom_patient_id, is_dicom_path
from paraspinal.io.dicom_select import SeriesChoice, choice_for_role
from paraspinal.io.readers import image_suffix
from paraspinal.levels import LevelsResult, LevelTable, resolve_levels
from paraspinal.measurement import INFILTRATION_METHODS, Measurements, measure_case
from paraspinal.reporting import AtomicOutputs, write_measurements
from paraspinal.safe_text import identifier_problem

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
CASE_ID_SOURCES = ("path", "patient-id")
case_id_from_path = case_id_from_name  # the file-name rules of paraspinal.io.case_names, under measure's old name


@dataclass(frozen=True)
class MeasureRequest:
    """Everything ``paraspinal measure`` needs for one case (paths, not data)."""

    labels: Path
    out_dir: Path
    image: Path | None = None
    image_name: str = "image"
    water: Path | None = None
    fat: Path | None = None
    levels: Path | None = None
    scheme: str = "lpm4"
    case_id: str | None = None
    assume_aligned: bool = False
    infiltration_methods: tuple[str, ...] = INFILTRATION_METHODS
    seed: int = 0
    series: tuple[str, ...] = ()
    plane: str | None = None
    contrast: str | None = None
    resample_uneven: bool = False
    case_id_from: str = "path"
    keep_descriptions: bool = False  # DICOM series descriptions (free text) into case.json and messages


def sample_request(out_dir: Path, *, infiltration_methods: tuple[str, ...] = INFILTRATION_METHODS) -> MeasureRequest:
    """The bundled TUM01 case with its manual labels and levels; the fat image doubles as the
    bright-fat image for the threshold methods. Its water header differs from the labels' on the same
    voxels (see sample/README.md), so the voxels are taken as aligned."""
    from paraspinal.sample import sample_case

    case = sample_case()
    return MeasureRequest(
        labels=case.labels,
        water=case.water,
        fat=case.fat,
        image=case.fat,
        image_name="fat",
        levels=case.levels,
        scheme=case.scheme,
        case_id=case.case_id,
        out_dir=out_dir,
        assume_aligned=True,
        infiltration_methods=infiltration_methods,
    )


@dataclass(frozen=True)
class MeasureResult:
    case_id: str
    measurements: Measurements
    levels: LevelTable | None
    files: dict[str, Path] = field(default_factory=dict)


def measure_request(request: MeasureRequest) -> MeasureResult:
    """Read, check, measure and write one case; nothing is written unless every step succeeds."""
    if (request.water is None) != (request.fat is None):
        given = request.water or request.fat
        raise InputError("Dixon fat fraction needs both --water and --fat", path=given)
    scheme = load_scheme(request.scheme)
    choices = _dicom_choices(request)
    labels = read_label_map(request.labels, series=choices.get("labels"))
    images: dict[str, Image | None] = {}
    for role, path in (("water", request.water), ("fat", request.fat), ("image", request.image)):
        images[role] = (
            None
            if path is None
            else check_same_grid(
                labels, read_image(path, series=choices.get(role)), assume_aligned=request.assume_aligned
            )
        )
    case_id = request.case_id or _case_id(request, choices)
    if request.case_id:
        check_case_id(case_id, fix="pass another --case-id")
    else:
        check_case_id(
            case_id, path=request.image or request.water or request.labels, fix="rename the file or pass --case-id"
        )
    problem = identifier_problem(request.image_name)
    if problem is not None:
        raise InputError(f"image name {request.image_name!r} {problem}")
    found = _levels(request, labels=labels, scheme_key=request.scheme, case_id=case_id)
    levels = found.table
    measurements = measure_case(
        labels,
        scheme=scheme,
        case_id=case_id,
        water=images["water"],
        fat=images["fat"],
        image=images["image"],
        image_name=request.image_name,
        levels=levels,
        infiltration_methods=request.infiltration_methods,
        seed=request.seed,
    )
    inputs = {
        k: str(v)
        for k, v in (
            ("labels", request.labels),
            ("water", request.water),
            ("fat", request.fat),
            ("image", request.image),
            ("levels", request.levels),
        )
        if v is not None
    }
    notes = list(found.notes)
    for role, image in (("labels", labels), *images.items()):
        if image is not None and image.metadata.get("format") == "dicom":
            inputs[f"{role}_series"] = _series_summary(image)
            notes.extend(f"{role}: {note}" for note in _dicom_notes(image))
    if notes:
        measurements = dataclasses.replace(measurements, warnings=(*measurements.warnings, *notes))
    with AtomicOutputs(request.out_dir) as outputs:
        files = write_measurements(measurements, outputs, case_id=case_id, levels=levels, inputs=inputs)
    return MeasureResult(case_id, measurements, levels, files)


def _dicom_inputs(request: MeasureRequest) -> dict[str, Path]:
    paths = {"labels": request.labels, "water": request.water, "fat": request.fat, "image": request.image}
    return {
        role: path
        for role, path in paths.items()
        if path is not None and Path(path).exists() and image_suffix(path) is None and is_dicom_path(path)
    }


def _dicom_choices(request: MeasureRequest) -> dict[str, SeriesChoice]:
    """How to pick each DICOM input's series; options that could apply to no DICOM input are refused."""
    dicom = _dicom_inputs(request)
    if request.case_id_from not in CASE_ID_SOURCES:
        raise InputError(f"unknown case id source '{request.case_id_from}'; choose from {', '.join(CASE_ID_SOURCES)}")
    asked = [
        name
        for name, given in (
            ("--series", request.series),
            ("--plane", request.plane),
            ("--contrast", request.contrast),
            ("--resample-uneven", request.resample_uneven),
        )
        if given
    ]
    if asked and not dicom:
        for path in (request.labels, request.water, request.fat, request.image):
            if path is not None and not Path(path).exists():
                raise InputError("file not found", path=path)
        raise InputError(f"{', '.join(asked)}: only for DICOM inputs (a folder, .zip or .dcm), and none was given")
    for item in request.series:
        role = item.partition("=")[0].strip() if "=" in item else None
        if role is not None and role not in dicom and role in ("labels", "water", "fat", "image"):
            raise InputError(f"--series {item}: the {role} input is not DICOM")
    return {
        role: choice_for_role(
            request.series,
            role=role,
            plane=request.plane,
            contrast=request.contrast,
            resample_uneven=request.resample_uneven,
            keep_descriptions=request.keep_descriptions,
        )
        for role in dicom
    }


def _case_id(request: MeasureRequest, choices: dict[str, SeriesChoice]) -> str:
    """Case id from the input path, or (only when asked) from the DICOM PatientID."""
    if request.case_id_from == "patient-id":
        dicom = _dicom_inputs(request)
        role = next((r for r in ("image", "water", "labels", "fat") if r in dicom), None)
        if role is None:
            raise InputError("--case-id-from patient-id needs a DICOM input")
        patient_id = _UNSAFE.sub("_", dicom_patient_id(dicom[role], choices[role])).strip("._-")
        if not patient_id:
            raise InputError("the DICOM series has no usable PatientID; pass --case-id", path=dicom[role])
        return patient_id
    return case_id_from_name(request.image or request.water or request.labels)


def _series_summary(image: Image) -> str:
    """``UID ([description; ]plane[, tilted N deg]; N files)`` for the case JSON (no patient data; the
    free-text description only when it was kept, see ``--keep-descriptions``)."""
    meta = image.metadata
    tilt = float(meta.get("tilt_deg") or 0.0)  # type: ignore[arg-type]
    plane = f"{meta.get('plane')}, tilted {tilt:.1f} deg" if tilt >= 0.05 else str(meta.get("plane"))
    description = f"{meta.get('series_description')}; " if meta.get("series_description") else ""
    return f"{meta.get('series_key')} ({description}{plane}; {image.shape[0]}x{image.shape[1]}x{image.shape[2]} voxels)"


def _dicom_notes(image: Image) -> list[str]:
    """Warnings about how a DICOM series was read: resampling, and stacks that are not plain axial."""
    meta = image.metadata
    notes = []
    if meta.get("resampled"):
        notes.append(f"series {meta.get('series_key')}: {meta['resampled']}")
    tilt = float(meta.get("tilt_deg") or 0.0)  # type: ignore[arg-type]
    if meta.get("plane") != "axial":
        notes.append(
            f"series {meta.get('series_key')} is a {meta.get('plane')} stack; axial slices are taken "
            "along the voxel axis closest to the patient's S axis"
        )
    elif tilt >= 0.5:
        notes.append(
            f"series {meta.get('series_key')} is tilted {tilt:.1f} deg from axial; areas are measured "
            "in the slice plane"
        )
    return notes


def _levels(request: MeasureRequest, *, labels: Image, scheme_key: str, case_id: str) -> LevelsResult:
    """Levels from the CSV when given (none, with a note, when it has no rows for the case), else from named
    discs in the label map, else none (per slice only)."""
    return resolve_levels(labels, scheme=load_scheme(scheme_key), csv=request.levels, case_id=case_id)
