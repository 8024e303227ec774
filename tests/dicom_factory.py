"""Build DICOM MR series in tests from an array and its RAS+ affine, with pydicom.

Classic series write one MR Image Storage file per slice; enhanced series write one Enhanced MR
Image Storage file whose frames carry their positions in PerFrameFunctionalGroupsSequence. Patient
attributes are planted on purpose (:data:`PLANTED`) so privacy tests can look for them in outputs.
The array is indexed ``(i, j, k)``: ``i`` becomes the DICOM column index, ``j`` the row index and
``k`` the slice; slice ``k`` lies at ``affine @ (0, 0, k, 1)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import format_number_as_ds

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4.1"
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


@dataclass(frozen=True)
class Patient:
    """Patient attributes planted in test series."""

    name: str
    patient_id: str
    birth_date: str

    def needles(self) -> tuple[str, ...]:
        """Strings that must never appear in outputs: the ID, the birth date (two spellings), each name part."""
        date = self.birth_date
        parts = tuple(p for p in self.name.replace("^", " ").split() if len(p) >= 3)
        return (self.patient_id, date, f"{date[:4]}-{date[4:6]}-{date[6:]}", *parts)


PLANTED = Patient(name="Qzwbrmpt^Xylofane", patient_id="PID-48213-QZX", birth_date="19410723")
STUDY_UID = generate_uid(entropy_srcs=["paraspinal-test-study"])
FRAME_OF_REFERENCE_UID = generate_uid(entropy_srcs=["paraspinal-test-for"])


def uid_for(*parts: object) -> str:
    """A deterministic UID from the given parts."""
    return generate_uid(entropy_srcs=[str(p) for p in parts])


def write_series(
    folder: Path,
    array: np.ndarray,
    affine: np.ndarray,
    *,
    series_uid: str,
    description: str,
    series_number: int = 1,
    image_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "M", "NONE"),
    rescale: tuple[float, float] | None = None,
    drop: Iterable[int] = (),
    shift_mm: dict[int, float] | None = None,
    patient: Patient = PLANTED,
    prefix: str = "",
    enhanced: bool = False,
    modality: str = "MR",
    extra: dict[str, object] | None = None,
) -> list[Path]:
    """Write ``array`` as a DICOM MR series in ``folder``; returns the files written.

    Args:
        rescale: ``(slope, intercept)``: store ``round((value - intercept) / slope)`` and write both tags.
        drop: slice indices left out (a series with missing slices).
        shift_mm: slice index -> extra offset along the slice step (uneven spacing).
        prefix: file name prefix; files are named in reverse slice order so reading cannot rely on names.
        enhanced: write one Enhanced MR multi-frame file (frames in reverse slice order) instead of one file per slice.
        modality: ``MR``, or ``CT`` (CT Image Storage files; classic only).
        extra: more attributes set on every file (``{"ContrastBolusAgent": "APPLIED"}``).
    """
    folder.mkdir(parents=True, exist_ok=True)
    stored = _stored(array, rescale)
    dropped = set(drop)
    shift_mm = shift_mm or {}
    slices = [k for k in range(array.shape[2]) if k not in dropped]
    lps = _RAS_TO_LPS @ affine[:3, :3]
    spacing = np.linalg.norm(lps, axis=0)
    row_cos, col_cos = lps[:, 0] / spacing[0], lps[:, 1] / spacing[1]
    step = lps[:, 2]
    origin = _RAS_TO_LPS @ affine[:3, 3]
    positions = {k: origin + step * (k + shift_mm.get(k, 0.0) / spacing[2]) for k in slices}
    common = dict(
        series_uid=series_uid,
        description=description,
        series_number=series_number,
        image_type=image_type,
        rescale=rescale,
        patient=patient,
        orientation=[*row_cos, *col_cos],
        pixel_spacing=[spacing[1], spacing[0]],
        thickness=spacing[2],
    )
    if enhanced:
        path = folder / f"{prefix}enhanced.dcm"
        ds = _base(sop_class=ENHANCED_MR_IMAGE_STORAGE, sop_uid=uid_for(series_uid, "enhanced"), **common)
        backwards = slices[::-1]  # frames stored last slice first, so readers must sort by position
        _enhanced_frames(ds, [stored[:, :, k].T for k in backwards], [positions[k] for k in backwards], **common)
        _save(ds, path)
        return [path]
    paths = []
    sop_class = CT_IMAGE_STORAGE if modality == "CT" else MR_IMAGE_STORAGE
    for n, k in enumerate(slices):
        ds = _base(sop_class=sop_class, sop_uid=uid_for(series_uid, k), **common)
        ds.Modality = modality
        for name, value in (extra or {}).items():
            setattr(ds, name, value)
        ds.InstanceNumber = n + 1
        ds.ImageType = list(image_type)
        ds.ImagePositionPatient = [_ds(v) for v in positions[k]]
        ds.ImageOrientationPatient = [_ds(v) for v in common["orientation"]]
        ds.PixelSpacing = [_ds(v) for v in common["pixel_spacing"]]
        ds.SliceThickness = _ds(spacing[2])
        if rescale is not None:
            ds.RescaleSlope, ds.RescaleIntercept = _ds(rescale[0]), _ds(rescale[1])
        _pixels(ds, stored[:, :, k].T)
        path = folder / f"{prefix}{len(slices) - n:04d}.dcm"
        _save(ds, path)
        paths.append(path)
    return paths


def _stored(array: np.ndarray, rescale: tuple[float, float] | None) -> np.ndarray:
    if rescale is not None:
        slope, intercept = rescale
        array = np.rint((np.asarray(array, dtype=np.float64) - intercept) / slope)
    if not np.array_equal(array, np.rint(array)):
        raise ValueError("non-integer voxels need rescale=(slope, intercept)")
    if array.min() >= 0 and array.max() <= 65535:
        return np.asarray(array).astype(np.uint16)
    if array.min() >= -32768 and array.max() <= 32767:
        return np.asarray(array).astype(np.int16)
    raise ValueError("voxels do not fit 16 bits")


def _base(
    *,
    sop_class: str,
    sop_uid: str,
    series_uid: str,
    description: str,
    series_number: int,
    patient: Patient,
    **_: object,
) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_uid
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = (
        patient.name,
        patient.patient_id,
        patient.birth_date,
        "F",
    )
    ds.StudyInstanceUID, ds.SeriesInstanceUID = STUDY_UID, series_uid
    ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = FRAME_OF_REFERENCE_UID, ""
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20240102", "101500", "S1", "ACC-55102-QZX"
    ds.ReferringPhysicianName = ""
    ds.Modality, ds.Manufacturer, ds.SeriesNumber = "MR", "paraspinal-tests", series_number
    ds.SeriesDescription = description
    ds.ContentDate, ds.ContentTime = "20240102", "101500"
    return ds


def _pixels(ds: Dataset, plane: np.ndarray) -> None:
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = int(plane.shape[-2]), int(plane.shape[-1])
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 1 if plane.dtype == np.int16 else 0
    ds.PixelData = np.ascontiguousarray(plane).tobytes()


def _enhanced_frames(
    ds: Dataset,
    planes: list[np.ndarray],
    positions: list[np.ndarray],
    *,
    orientation: list[float],
    pixel_spacing: list[float],
    thickness: float,
    rescale: tuple[float, float] | None,
    image_type: Sequence[str],
    **_: object,
) -> None:
    ds.ImageType = list(image_type)
    ds.NumberOfFrames = len(planes)
    ds.InstanceNumber = 1
    measures = Dataset()
    measures.PixelSpacing = [_ds(v) for v in pixel_spacing]
    measures.SliceThickness = _ds(thickness)
    plane_orientation = Dataset()
    plane_orientation.ImageOrientationPatient = [_ds(v) for v in orientation]
    frame_type = Dataset()
    frame_type.FrameType = list(image_type)
    shared = Dataset()
    shared.PixelMeasuresSequence = [measures]
    shared.PlaneOrientationSequence = [plane_orientation]
    shared.MRImageFrameTypeSequence = [frame_type]
    if rescale is not None:
        transform = Dataset()
        transform.RescaleSlope, transform.RescaleIntercept, transform.RescaleType = (
            _ds(rescale[0]),
            _ds(rescale[1]),
            "US",
        )
        shared.PixelValueTransformationSequence = [transform]
    ds.SharedFunctionalGroupsSequence = [shared]
    per_frame = []
    for n, position in enumerate(positions):
        item = Dataset()
        plane_position = Dataset()
        plane_position.ImagePositionPatient = [_ds(v) for v in position]
        content = Dataset()
        content.InStackPositionNumber, content.StackID = n + 1, "1"
        item.PlanePositionSequence = [plane_position]
        item.FrameContentSequence = [content]
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = per_frame
    _pixels(ds, np.stack(planes))


def _ds(value: float) -> str:
    """A decimal string that fits DICOM's 16 characters with as much precision as possible."""
    return format_number_as_ds(float(value) + 0.0)


def _save(ds: Dataset, path: Path) -> None:
    ds.save_as(path, enforce_file_format=True)


@dataclass(frozen=True)
class Tum01Study:
    """TUM01 written as DICOM (one study folder) and as NIfTI with the very same voxels and grid."""

    study: Path
    nifti: Path
    affine: np.ndarray
    water: np.ndarray
    fat: np.ndarray
    labels: np.ndarray
    water_uid: str
    fat_uid: str
    sagittal_uid: str
    labels_uid: str


FAT_RESCALE = (1.0 / 32.0, 0.0)  # exact in binary: fat values quantised to 1/32


def write_tum01_study(root: Path) -> Tum01Study:
    """Axial Dixon water and fat, a sagittal reformat of the water and the label map, all in ``root/study``.

    The fat image is quantised to 1/32 (stored with RescaleSlope 0.03125) and the NIfTI copies in
    ``root/nifti`` hold the same quantised values, so both routes measure identical voxels.
    """
    import nibabel as nib

    from paraspinal.io import read_image, read_label_map
    from paraspinal.sample import sample_case

    case = sample_case()
    labels_image = read_label_map(case.labels)
    affine = labels_image.affine
    water = np.asarray(read_image(case.water).array)
    fat = np.rint(np.asarray(read_image(case.fat).array, dtype=np.float64) * 32.0) / 32.0
    labels = np.asarray(labels_image.array)
    study = root / "study"
    uids = {name: uid_for("tum01", name) for name in ("water", "fat", "sagittal", "labels")}
    dixon = ("DERIVED", "PRIMARY", "DIXON")
    write_series(
        study / "w",
        water,
        affine,
        series_uid=uids["water"],
        description="t1_vibe_dixon_tra_W",
        series_number=3,
        image_type=(*dixon, "WATER"),
    )
    write_series(
        study / "f",
        fat,
        affine,
        series_uid=uids["fat"],
        description="t1_vibe_dixon_tra_F",
        series_number=4,
        image_type=(*dixon, "FAT"),
        rescale=FAT_RESCALE,
    )
    sag_array, sag_affine = sagittal_reformat(water, affine, every=8)
    write_series(
        study / "sag", sag_array, sag_affine, series_uid=uids["sagittal"], description="t2_tse_sag", series_number=2
    )
    write_series(
        study / "seg",
        labels,
        affine,
        series_uid=uids["labels"],
        description="TUM01 manual labels",
        series_number=90,
        image_type=("DERIVED", "SECONDARY"),
    )
    nifti = root / "nifti"
    nifti.mkdir(parents=True, exist_ok=True)
    for name, array in (("water", water), ("fat", fat), ("labels", labels)):
        nib.save(nib.Nifti1Image(array, affine), str(nifti / f"TUM01_{name}.nii.gz"))
    return Tum01Study(
        study=study,
        nifti=nifti,
        affine=affine,
        water=water,
        fat=fat,
        labels=labels,
        water_uid=uids["water"],
        fat_uid=uids["fat"],
        sagittal_uid=uids["sagittal"],
        labels_uid=uids["labels"],
    )


def sagittal_reformat(array: np.ndarray, affine: np.ndarray, *, every: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Sagittal stack of an axial volume: slices along the first (left-right) axis, every ``every``-th one.

    The new ``(i, j, k)`` are the old ``(j, k, i)``: in-plane anterior-posterior and superior-inferior.
    """
    sag = np.ascontiguousarray(array.transpose(1, 2, 0)[:, :, ::every])
    new = np.eye(4)
    new[:3, 0], new[:3, 1], new[:3, 2] = affine[:3, 1], affine[:3, 2], affine[:3, 0] * every
    new[:3, 3] = affine[:3, 3]
    return sag, new


def rotated_affine(
    angle_deg: float, *, axis: int = 0, spacing: tuple[float, float, float] = (1.0, 1.0, 4.0)
) -> np.ndarray:
    """RAS+ affine of a grid rotated by ``angle_deg`` about world axis ``axis`` (a tilted stack)."""
    angle = np.radians(angle_deg)
    c, s = np.cos(angle), np.sin(angle)
    a, b = [n for n in range(3) if n != axis]
    rotation = np.eye(3)
    rotation[a, a], rotation[a, b], rotation[b, a], rotation[b, b] = c, -s, s, c
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag(spacing)
    affine[:3, 3] = (-10.0, -12.0, 30.0)
    return affine
