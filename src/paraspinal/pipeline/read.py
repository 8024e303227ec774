"""One way to read a case, for every command: DICOM roles resolved once, images and label maps on one grid.

:func:`resolve_roles` turns a DICOM study given as one case into its roles: the water and fat series of a
Dixon study (from ``--series water=UID fat=UID``, else from the series' contrast hints), and the study's
sagittal series for levels. :func:`read_case` then reads what the case holds into :class:`CaseImages`:
the T1/T2 image, the Dixon pair, the given label map (as a :class:`~paraspinal.io.LabelMap` in the run's
scheme), the sagittal image and its label map, each DICOM input through the series choice for its role.
The axial images share one grid, the label map's (else the image to segment), checked or, with
``assume_aligned``, taken as aligned with the difference noted. How DICOM series were read (resampled,
tilted, not axial) comes back as notes for the case's warnings.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from paraspinal.anatomy import load_scheme
from paraspinal.errors import InputError
from paraspinal.io import Image, LabelMap, check_same_grid, image_suffix, read_image, read_label_map
from paraspinal.io.dicom import dicom_patient_id, discover_series, is_dicom_path
from paraspinal.io.dicom_select import SeriesChoice, choice_for_role
from paraspinal.pipeline.case import Case
from paraspinal.pipeline.options import RunOptions

__all__ = [
    "MODALITIES",
    "CaseImages",
    "check_series_options",
    "dixon_from_dicom",
    "is_ct",
    "patient_case_id",
    "read_case",
    "resolve_roles",
    "sagittal_from_dicom",
    "series_summary",
]

MIN_SAGITTAL_SLICES = 5  # a 3-plane localizer has fewer


@dataclass(frozen=True)
class CaseImages:
    """A case's images, read. Axial ones (image, water, fat, labels) share one grid."""

    image: Image | None = None  # T1/T2 (fat bright), named ``image_name`` in the tables
    water: Image | None = None
    fat: Image | None = None
    labels: LabelMap | None = None  # a given label map
    sagittal: Image | None = None
    sagittal_labels: LabelMap | None = None
    notes: tuple[str, ...] = ()

    @property
    def to_segment(self) -> Image | None:
        """The image a backend segments: the water image of a Dixon pair, else the T1/T2 image."""
        return self.water if self.water is not None else self.image

    @property
    def axial(self) -> Image | None:
        """The axial grid of the case: the label map's, else the image to segment."""
        return self.labels.labels if self.labels is not None else self.to_segment

    @property
    def ct(self) -> Image | None:
        """The case's CT (in HU), when its T1/T2-role image is one (see :func:`is_ct`)."""
        return self.image if self.image is not None and is_ct(self.image) else None

    @property
    def background(self) -> Image | None:
        """The image QC pictures are drawn on: water, else the T1/T2 image."""
        return self.to_segment


MODALITIES = ("auto", "ct", "mr")


def is_ct(image: Image) -> bool:
    """True for an image read as CT: a DICOM series whose Modality is CT, or one declared CT (``--modality ct``)."""
    return str(image.metadata.get("modality", "") or "").upper() == "CT"


def _with_modality(image: Image | None, *, options: RunOptions) -> Image | None:
    """The T1/T2-role image as the run's modality says: declared CT (HU checked) for ``ct``; as read otherwise
    (a DICOM CT series says so itself with ``auto``; ``mr`` keeps any image out of the HU measurements)."""
    if image is None or options.modality == "auto":
        return image
    if options.modality not in MODALITIES:
        raise InputError(f"unknown modality '{options.modality}'; choose from {', '.join(MODALITIES)}")
    if options.modality == "ct":
        from paraspinal.io.ct import as_ct

        if is_ct(image):
            return image
        return as_ct(image, contrast=options.ct.contrast or "unknown")
    return Image(image.array, image.affine, source=image.source, metadata={**image.metadata, "modality": "MR"})


def resolve_roles(case: Case, *, options: RunOptions, with_sagittal: bool = True) -> Case:
    """``case`` with the roles of a DICOM study filled in (see the module docstring); other cases unchanged.

    ``with_sagittal`` False leaves the sagittal series alone (levels come from elsewhere).
    """
    case = dixon_from_dicom(case, series=options.series, plane=options.plane)
    return sagittal_from_dicom(case) if with_sagittal else case


def _is_dicom(path: Path | None) -> bool:
    return path is not None and image_suffix(path) is None and is_dicom_path(path)


def dixon_from_dicom(case: Case, *, series: Sequence[str] = (), plane: str | None = None) -> Case:
    """A DICOM study given as one image is a Dixon case when ``series`` names ``water=UID`` and ``fat=UID``,
    or, with no ``series`` words, when the study (after the ``plane`` filter) holds a series hinted water and
    one hinted fat (from ImageType and description)."""
    source = case.image
    if case.water is not None or not _is_dicom(source):
        return case
    roles = {word.partition("=")[0].strip() for word in series if "=" in word}
    dixon = dataclasses.replace(case, image=None, image_name="image", water=source, fat=source)
    if {"water", "fat"} <= roles:
        return dixon
    if series:
        return case
    found = [s for s in discover_series(source) if plane is None or s.plane == plane]  # type: ignore[arg-type]
    hinted = {hint for s in found for hint in s.contrasts}
    return dixon if {"water", "fat"} <= hinted else case


def sagittal_from_dicom(case: Case) -> Case:
    """A DICOM study's sagittal series (the one with the most slices, at least :data:`MIN_SAGITTAL_SLICES`,
    readable) as the case's sagittal image, when the case has none."""
    source = case.image if case.image is not None else case.water
    if case.sagittal is not None or not _is_dicom(source):
        return case
    found = [
        s
        for s in discover_series(source)  # type: ignore[arg-type]
        if s.plane == "sagittal" and s.n_slices >= MIN_SAGITTAL_SLICES and not s.problems
    ]
    if not found:
        return case
    best = max(found, key=lambda s: s.n_slices)
    return dataclasses.replace(case, sagittal=source, sagittal_series=best.key)


def _choice(path: Path, role: str, options: RunOptions) -> SeriesChoice | None:
    """The DICOM series choice for one input (None for NIfTI/NRRD/MHA files)."""
    if not _is_dicom(path):
        return None
    return choice_for_role(
        options.series,
        role=role,
        plane=options.plane,
        contrast=options.contrast,
        resample_uneven=options.resample_uneven,
        keep_descriptions=options.keep_descriptions,
    )


def _sagittal_choice(path: Path, series_key: str | None, options: RunOptions) -> SeriesChoice | None:
    """A sagittal input's series: its key when known, else the sagittal plane."""
    if not _is_dicom(path):
        return None
    if series_key:
        return SeriesChoice(uids=(series_key,), keep_descriptions=options.keep_descriptions)
    return SeriesChoice(plane="sagittal", keep_descriptions=options.keep_descriptions)


def read_case(case: Case, *, options: RunOptions, sagittal: bool = True) -> CaseImages:
    """Read ``case``'s files (see the module docstring); ``sagittal`` False skips its sagittal image.

    Every problem is a one-line error naming the file.
    """
    labels = None  # first: the grid every other axial image must share
    if case.labels is not None:
        raw = read_label_map(case.labels, series=_choice(case.labels, "labels", options))
        labels = LabelMap.given(raw, load_scheme(options.scheme))
    images = {
        role: read_image(path, series=_choice(path, role, options))
        for role, path in (("image", case.image), ("water", case.water), ("fat", case.fat))
        if path is not None
    }
    reference = labels.labels if labels is not None else images.get(case.segmentation_input)
    if reference is not None:
        images = {
            role: img if img is reference else check_same_grid(reference, img, assume_aligned=options.assume_aligned)
            for role, img in images.items()
        }
    read = {**({"labels": labels.labels} if labels is not None else {}), **images}
    notes = [f"{role}: {note}" for role, img in read.items() for note in _dicom_notes(img)]
    sag_image = sag_labels = None
    if sagittal and case.sagittal is not None:
        sag_image = read_image(case.sagittal, series=_sagittal_choice(case.sagittal, case.sagittal_series, options))
        if case.sagittal_labels is not None:
            raw = read_label_map(case.sagittal_labels, series=_sagittal_choice(case.sagittal_labels, None, options))
            raw = check_same_grid(sag_image, raw, assume_aligned=options.assume_aligned)
            sag_labels = LabelMap.given(raw, load_scheme(options.sagittal_scheme))
    return CaseImages(
        image=_with_modality(images.get("image"), options=options),
        water=images.get("water"),
        fat=images.get("fat"),
        labels=labels,
        sagittal=sag_image,
        sagittal_labels=sag_labels,
        notes=tuple(notes),
    )


def series_summary(image: Image) -> str:
    """``UID ([description; ]plane[, tilted N deg]; N x N x N voxels)`` of a DICOM series, for the case JSON (no
    patient data; the free-text description only when it was kept, see ``--keep-descriptions``)."""
    meta = image.metadata
    tilt = float(meta.get("tilt_deg") or 0.0)  # type: ignore[arg-type]
    plane = f"{meta.get('plane')}, tilted {tilt:.1f} deg" if tilt >= 0.05 else str(meta.get("plane"))
    description = f"{meta.get('series_description')}; " if meta.get("series_description") else ""
    return f"{meta.get('series_key')} ({description}{plane}; {image.shape[0]}x{image.shape[1]}x{image.shape[2]} voxels)"


def _dicom_notes(image: Image) -> list[str]:
    """Warnings about how a DICOM series was read: resampling, and stacks that are not plain axial."""
    meta = image.metadata
    if meta.get("format") != "dicom":
        return []
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
            f"series {meta.get('series_key')} is tilted {tilt:.1f} deg from axial; "
            "areas are measured in the slice plane"
        )
    return notes


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _dicom_roles(case: Case) -> dict[str, Path]:
    paths = {"labels": case.labels, "water": case.water, "fat": case.fat, "image": case.image}
    return {role: path for role, path in paths.items() if path is not None and path.exists() and _is_dicom(path)}


def check_series_options(case: Case, *, options: RunOptions) -> None:
    """Refuse DICOM series options that could apply to none of ``case``'s inputs (one line each)."""
    dicom = _dicom_roles(case)
    asked = [
        name
        for name, given in (
            ("--series", options.series),
            ("--plane", options.plane),
            ("--contrast", options.contrast),
            ("--resample-uneven", options.resample_uneven),
        )
        if given
    ]
    if asked and not dicom:
        for path in (case.labels, case.water, case.fat, case.image):
            if path is not None and not path.exists():
                raise InputError("file not found", path=path)
        raise InputError(f"{', '.join(asked)}: only for DICOM inputs (a folder, .zip or .dcm), and none was given")
    for item in options.series:
        role = item.partition("=")[0].strip() if "=" in item else None
        if role is not None and role not in dicom and role in ("labels", "water", "fat", "image"):
            raise InputError(f"--series {item}: the {role} input is not DICOM")


def patient_case_id(case: Case, *, options: RunOptions) -> str:
    """A case id from the DICOM PatientID of ``case``'s first DICOM input (only when the user asks for it:
    ``--case-id-from patient-id``), made safe for a folder name."""
    dicom = _dicom_roles(case)
    role = next((r for r in ("image", "water", "labels", "fat") if r in dicom), None)
    if role is None:
        raise InputError("--case-id-from patient-id needs a DICOM input")
    choice = _choice(dicom[role], role, options)
    patient_id = _UNSAFE.sub("_", dicom_patient_id(dicom[role], choice)).strip("._-")
    if not patient_id:
        raise InputError("the DICOM series has no usable PatientID; pass --case-id", path=dicom[role])
    return patient_id
