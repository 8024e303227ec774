"""DICOM input: find the series in a folder, a zip or one file, and read one as an :class:`Image`.

* :func:`scan_dicom` / :func:`discover_series` walk the input with pydicom (headers only), group
  images by SeriesInstanceUID and describe each series (:class:`SeriesInfo`): plane and tilt from
  the orientation cosines, slice count and spacing, contrast hints, and any problem (missing
  slices, uneven spacing, mixed orientations, duplicate positions). A series holding several image
  types at the same positions (e.g. Dixon water and fat in one series) is split into stacks keyed
  ``UID:stack``.
* :func:`read_dicom` picks one series by rule (:func:`~paraspinal.io.dicom_select.select_series`) and
  reads it: classic single-frame and enhanced multi-frame MR, rescale slope/intercept applied,
  slices sorted along the normal, RAS+ affine (see :mod:`paraspinal.io.dicom_geometry`).
* An image without SeriesInstanceUID (blanked by some anonymisers) is grouped under a stand-in key
  ``no-uid-<hex>`` (:func:`stand_in_uid`) instead of being skipped.
* Privacy: no patient attribute is ever read into :class:`SeriesInfo` or ``Image.metadata``; only
  :func:`dicom_patient_id` reads PatientID, for callers that opted in. The free-text SeriesDescription
  (it can name the patient) is listed by :func:`scan_dicom` with control characters escaped, and goes
  into ``Image.metadata`` and error messages only with ``keep_descriptions``.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from paraspinal.errors import InputError
from paraspinal.io.ct import padding_hu
from paraspinal.io.dicom_files import (
    Frame,
    Location,
    Opener,
    frames_of,
    has_preamble,
    not_an_image,
    read_file,
    read_pixels,
    series_header,
    walk_files,
)
from paraspinal.io.dicom_geometry import analyse_stack, resample_slices
from paraspinal.io.dicom_select import SeriesChoice, contrast_hints, select_series
from paraspinal.io.dicom_series import SeriesInfo
from paraspinal.io.image import Image

DICOM_FILE_SUFFIXES = (".dcm", ".dicom", ".ima")


@dataclass(frozen=True)
class DicomScan:
    """Result of :func:`scan_dicom`: the image series found, and what was skipped (counts by reason)."""

    series: tuple[SeriesInfo, ...]
    skipped: dict[str, int]


def is_dicom_path(path: str | Path) -> bool:
    """True for a folder, a ``.zip``, a ``.dcm``/``.dicom``/``.ima`` file or a file with the DICOM preamble."""
    p = Path(path)
    if p.is_dir() or p.suffix.lower() in (".zip", *DICOM_FILE_SUFFIXES):
        return True
    return p.is_file() and has_preamble(read_file(p, 132))


def scan_dicom(path: str | Path) -> DicomScan:
    """Describe every image series under ``path`` (a folder, recursively; a zip; or one DICOM file)."""
    import pydicom

    root = Path(path)
    if not root.exists():
        raise InputError("file not found", path=root)
    frames_by_series: dict[str, list[Frame]] = defaultdict(list)
    headers: dict[str, Any] = {}
    skipped: dict[str, int] = defaultdict(int)
    for location, open_file in walk_files(root):
        with open_file() as handle:
            if not has_preamble(handle.read(132)):
                skipped["not DICOM"] += 1
                continue
            handle.seek(0)
            try:
                ds = pydicom.dcmread(handle, stop_before_pixels=True)
            except Exception:  # noqa: BLE001 - one unreadable file is skipped, not fatal for a listing
                skipped["unreadable DICOM"] += 1
                continue
        reason = not_an_image(ds)
        if reason:
            skipped[reason] += 1
            continue
        uid = str(ds.get("SeriesInstanceUID", "") or "") or stand_in_uid(ds)
        headers.setdefault(uid, series_header(ds))
        frames_by_series[uid].extend(frames_of(ds, location))
    series: list[SeriesInfo] = []
    for uid, frames in frames_by_series.items():
        for stack, stack_frames in _split_stacks(frames):
            series.append(_describe(uid, stack, stack_frames, headers[uid], source=str(root)))
    series.sort(key=lambda s: (s.number if s.number is not None else 1 << 30, s.uid, s.stack))
    return DicomScan(series=tuple(series), skipped=dict(skipped))


def discover_series(path: str | Path) -> list[SeriesInfo]:
    """The image series under ``path``; :class:`InputError` when there is none."""
    scan = scan_dicom(path)
    if not scan.series:
        p = Path(path)
        where = "folder" if p.is_dir() else "zip file" if p.suffix.lower() == ".zip" else "file"
        segs = scan.skipped.get("SEG object", 0)
        if segs:
            raise InputError(
                f"this {where} holds only {segs} DICOM-SEG object(s) and no image series; "
                "DICOM-SEG cannot be read as an image or label map yet",
                path=p,
            )
        raise InputError(f"no DICOM series found in this {where}", path=p)
    return list(scan.series)


def read_dicom(
    path: str | Path,
    *,
    uid: str | Sequence[str] | None = None,
    plane: str | None = None,
    contrast: str | None = None,
    prefer_contrast: str | None = None,
    uneven: str = "error",
    keep_descriptions: bool = False,
) -> Image:
    """Read one series from a DICOM folder, zip or file, chosen by UID, plane and contrast.

    ``uneven`` is ``error`` (refuse uneven slice spacing), or ``linear``/``nearest`` to resample onto
    regular slices at the median spacing (noted in ``metadata['resampled']``). Missing slices are
    always an error. ``metadata`` holds the series UID, plane and tilt, never patient data; the free-text
    series description (which can name the patient) only with ``keep_descriptions``.
    """
    SeriesChoice(uneven=uneven)  # validates the policy before any work
    info = select_series(
        discover_series(path),
        uid=uid,
        plane=plane,
        contrast=contrast,
        prefer_contrast=prefer_contrast,
        keep_descriptions=keep_descriptions,
    )
    return load_series(info, uneven=uneven, keep_descriptions=keep_descriptions)


def read_dicom_choice(path: str | Path, choice: SeriesChoice | None = None) -> Image:
    """:func:`read_dicom` with the rules bundled in a :class:`SeriesChoice`."""
    choice = choice or SeriesChoice()
    return read_dicom(
        path,
        uid=choice.uids or None,
        plane=choice.plane,
        contrast=choice.contrast,
        prefer_contrast=choice.prefer_contrast,
        uneven=choice.uneven,
        keep_descriptions=choice.keep_descriptions,
    )


def select_choice(path: str | Path, choice: SeriesChoice | None = None) -> SeriesInfo:
    """The :class:`SeriesInfo` that :func:`read_dicom_choice` would read."""
    choice = choice or SeriesChoice()
    return select_series(
        discover_series(path),
        uid=choice.uids or None,
        plane=choice.plane,
        contrast=choice.contrast,
        prefer_contrast=choice.prefer_contrast,
        keep_descriptions=choice.keep_descriptions,
    )


def load_series(info: SeriesInfo, *, uneven: str = "error", keep_descriptions: bool = False) -> Image:
    """Read the pixels of one described series into a RAS+ :class:`Image` (see :func:`read_dicom`)."""
    geometry = info.geometry
    if info.problems or geometry is None or geometry.affine is None:
        raise InputError(f"series {info.key}: {'; '.join(info.problems)}", path=info.source)
    if info.uneven and uneven == "error":
        raise InputError(
            f"series {info.key}: {info.uneven}; pass --resample-uneven to resample onto regular "
            f"{info.slice_spacing_mm:.4g} mm slices",
            path=info.source,
        )
    ordered = [info.frames[i] for i in geometry.order]
    volume = read_pixels(ordered, source=info.source)
    affine = geometry.affine
    metadata: dict[str, object] = {
        "format": "dicom",
        "series_instance_uid": info.uid,
        "frame_of_reference_uid": info.frame_of_reference_uid,
        "series_key": info.key,
        "series_number": info.number,
        "modality": info.modality,
        "plane": info.plane,
        "tilt_deg": info.tilt_deg,
        "contrasts": list(info.contrasts),
        "multiframe": info.multiframe,
        "n_files": info.n_files,
    }
    if keep_descriptions:  # free text that can name the patient: only when asked (--keep-descriptions)
        metadata["series_description"] = info.description
    if info.ct:
        metadata.update(_ct_metadata(info.ct, ordered))
    if info.uneven:
        volume, affine, note = resample_slices(volume, geometry, interpolation=uneven)
        metadata["resampled"] = note
    return Image(array=volume, affine=affine, source=info.source, metadata=metadata)


def _ct_metadata(header: Mapping[str, object], frames: Sequence[Frame]) -> dict[str, object]:
    """CT facts for ``Image.metadata``: contrast, kernel, kVp, the rescale applied to the pixels, padding in HU."""
    slopes = {f.slope for f in frames}
    intercepts = {f.intercept for f in frames}
    slope, intercept = frames[0].slope, frames[0].intercept
    meta = {k: v for k, v in header.items() if k != "padding_stored"}
    meta.update(
        {
            "rescale_applied": any(f.slope != 1.0 or f.intercept != 0.0 for f in frames),
            "rescale_slope": slope if len(slopes) == 1 else "varies",
            "rescale_intercept": intercept if len(intercepts) == 1 else "varies",
            "padding_hu": padding_hu(header, slope=slope, intercept=intercept),
        }
    )
    return meta


def source_datasets(info: SeriesInfo) -> list[Any]:
    """Headers (no pixels) of the series' files in slice order; one dataset for a multi-frame series."""
    import pydicom

    if info.geometry is None:
        raise InputError(f"series {info.key} has no geometry", path=info.source)
    ordered = [info.frames[i] for i in info.geometry.order]
    locations = list(dict.fromkeys(frame.location for frame in ordered))
    with Opener(Path(info.source)) as opener:
        return [pydicom.dcmread(io.BytesIO(opener.read(loc)), stop_before_pixels=True) for loc in locations]


def describe_datasets(datasets: Sequence[Any], *, source: str = "<datasets>") -> SeriesInfo:
    """Describe one series given as pydicom datasets (headers suffice), as :func:`scan_dicom` would."""
    if not datasets:
        raise InputError("no DICOM datasets given", path=source)
    uids = {str(ds.get("SeriesInstanceUID", "") or "") for ds in datasets}
    if len(uids) != 1 or "" in uids:
        raise InputError(f"datasets must come from one series (found {len(uids)} SeriesInstanceUIDs)", path=source)
    frames: list[Frame] = []
    for index, ds in enumerate(datasets):
        reason = not_an_image(ds)
        if reason:
            raise InputError(f"dataset {index} is not an image ({reason})", path=source)
        frames.extend(frames_of(ds, Location(source, str(index))))
    return _describe(uids.pop(), "", frames, series_header(datasets[0]), source=source)


def dicom_patient_id(path: str | Path, choice: SeriesChoice | None = None) -> str:
    """PatientID of the chosen series, for callers that asked to name cases by it (opt-in only)."""
    import pydicom

    info = select_choice(path, choice)
    location = info.frames[0].location
    with Opener(Path(info.source)) as opener:
        ds = pydicom.dcmread(io.BytesIO(opener.read(location)), stop_before_pixels=True, specific_tags=["PatientID"])
    return str(ds.get("PatientID", "") or "").strip()


# --- grouping and describing ---------------------------------------------------------------------


def stand_in_uid(ds: Any) -> str:
    """``no-uid-<12 hex>`` for an image without SeriesInstanceUID (blanked by some anonymisers): files of one
    frame of reference, modality, series number, description, orientation and size group together."""
    import hashlib

    parts = [
        str(ds.get(tag, "") or "")
        for tag in ("StudyInstanceUID", "FrameOfReferenceUID", "Modality", "SeriesNumber", "SeriesDescription")
    ]
    orientation = ds.get("ImageOrientationPatient", None)
    parts.append(",".join(f"{float(v):.3f}" for v in orientation) if orientation else "")
    parts.append(f"{ds.get('Rows', '')}x{ds.get('Columns', '')}")
    return "no-uid-" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]


def _split_stacks(frames: list[Frame]) -> list[tuple[str, list[Frame]]]:
    """One stack, or several when images at the same positions differ in ImageType/echo/stack."""
    if not _has_duplicate_positions(frames):
        return [("", frames)]
    groups: dict[tuple[Any, ...], list[Frame]] = defaultdict(list)
    for frame in frames:
        groups[frame.split_key].append(frame)
    if len(groups) < 2 or any(_has_duplicate_positions(group) for group in groups.values()):
        return [("", frames)]
    labels = _stack_labels(list(groups))
    return [(labels[key], group) for key, group in groups.items()]


def _has_duplicate_positions(frames: list[Frame]) -> bool:
    positions = [f.position for f in frames if f.position is not None]
    rounded = {tuple(round(v, 2) for v in p) for p in positions}
    return len(rounded) < len(positions)


def _stack_labels(keys: list[tuple[Any, ...]]) -> dict[tuple[Any, ...], str]:
    """Short, unique names for split stacks: the contrast hint where it is unique, else a number."""
    hints = {key: contrast_hints(image_types=[key[0]], description="") for key in keys}
    labels: dict[tuple[Any, ...], str] = {}
    for n, key in enumerate(keys, start=1):
        hint = hints[key]
        unique = len(hint) == 1 and sum(1 for other in hints.values() if other == hint) == 1
        labels[key] = hint[0] if unique else f"stack{n}"
    return labels


def _describe(uid: str, stack: str, frames: list[Frame], header: dict[str, Any], *, source: str) -> SeriesInfo:
    nan = np.full(3, np.nan)
    geometry = analyse_stack(
        positions=np.array([f.position if f.position else nan for f in frames], dtype=np.float64),
        orientations=np.array([f.orientation if f.orientation else np.full(6, np.nan) for f in frames]),
        pixel_spacings=np.array([f.pixel_spacing if f.pixel_spacing else (np.nan, np.nan) for f in frames]),
        sizes=np.array([f.size for f in frames]),
        single_slice_mm=frames[0].step_mm,
    )
    image_types = {f.image_type for f in frames}
    first = frames[0]
    return SeriesInfo(
        uid=uid,
        stack=stack,
        description=header["description"],
        number=header["number"],
        modality=header["modality"],
        frame_of_reference_uid=header["frame_of_reference_uid"],
        ct=header["ct"],
        plane=geometry.plane,
        tilt_deg=geometry.tilt_deg,
        n_slices=len(frames),
        n_files=len({f.location for f in frames}),
        multiframe=any(f.frame is not None for f in frames),
        rows=first.size[0],
        columns=first.size[1],
        pixel_spacing_mm=(first.pixel_spacing[0], first.pixel_spacing[1]) if first.pixel_spacing else None,
        slice_spacing_mm=geometry.slice_spacing_mm,
        contrasts=contrast_hints(
            image_types=image_types,
            description=header["description"],
            acquisition_contrast=header["acquisition_contrast"],
        ),
        image_type="\\".join(first.image_type) if len(image_types) == 1 else "mixed",
        problems=geometry.problems,
        uneven=geometry.uneven,
        source=source,
        frames=tuple(frames),
        geometry=geometry,
    )
