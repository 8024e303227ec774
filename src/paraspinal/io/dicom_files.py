"""DICOM files on disk or in a zip: walking, reading headers into frames, decoding pixels.

Low-level helpers for :mod:`paraspinal.io.dicom`. A :class:`Frame` is one 2-D image (a single-frame
file, or one frame of an enhanced multi-frame file) with its geometry read from the top-level
attributes or from the per-frame/shared functional groups. No patient attribute is read here.
"""

from __future__ import annotations

import functools
import io
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from paraspinal.errors import InputError
from paraspinal.io.ct import ct_header
from paraspinal.io.text import escape_control

_NON_IMAGE_MODALITIES = {"SEG", "SR", "PR", "KO", "RTSTRUCT", "RTPLAN", "RTDOSE", "REG", "DOC", "RWV", "PLAN"}
_DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
# what decodes the compressed transfer syntaxes of vendor CT (JPEG 2000, JPEG lossless, JPEG-LS)
CT_EXTRA_HINT = "install the 'ct' extra: pip install 'paraspinal[ct]' (pylibjpeg, pylibjpeg-openjpeg, python-gdcm)"


@dataclass(frozen=True)
class Location:
    """Where one DICOM file is: a path, or a member of a zip file."""

    path: str
    member: str | None = None

    @property
    def name(self) -> str:
        return self.member if self.member is not None else self.path


@dataclass(frozen=True)
class Frame:
    """One 2-D image: a single-frame file, or one frame of a multi-frame file (``frame`` 0-based)."""

    location: Location
    frame: int | None
    position: tuple[float, ...] | None
    orientation: tuple[float, ...] | None
    pixel_spacing: tuple[float, ...] | None
    size: tuple[int, int]
    slope: float
    intercept: float
    image_type: tuple[str, ...]
    split_key: tuple[Any, ...]
    step_mm: float | None


def walk_files(root: Path) -> Iterator[tuple[Location, Callable[[], BinaryIO]]]:
    """Every candidate file under ``root`` (hidden files and DICOMDIR skipped) with an opener for it."""
    if root.is_dir():
        for file in sorted(root.rglob("*")):
            rel = file.relative_to(root)
            if file.is_file() and not any(part.startswith(".") for part in rel.parts) and file.name != "DICOMDIR":
                yield Location(str(file)), functools.partial(file.open, "rb")
    elif root.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(root) as archive:
                for member in sorted(archive.namelist()):
                    parts = Path(member).parts
                    if member.endswith("/") or parts[0] == "__MACOSX" or any(p.startswith(".") for p in parts):
                        continue
                    if Path(member).name != "DICOMDIR":
                        yield Location(str(root), member), functools.partial(_member, archive, member)
        except (zipfile.BadZipFile, OSError) as exc:
            raise InputError(f"cannot read zip file ({short_error(exc)})", path=root) from None
    else:
        yield Location(str(root)), functools.partial(root.open, "rb")


def _member(archive: zipfile.ZipFile, member: str) -> BinaryIO:
    return io.BytesIO(archive.read(member))


def read_file(path: Path, n: int | None) -> bytes:
    with path.open("rb") as handle:
        return handle.read() if n is None else handle.read(n)


def has_preamble(head: bytes) -> bool:
    return len(head) >= 132 and head[128:132] == b"DICM"


def not_an_image(ds: Any) -> str | None:
    sop_class = str(ds.get("SOPClassUID", "") or getattr(ds.get("file_meta", None), "MediaStorageSOPClassUID", ""))
    modality = str(ds.get("Modality", "") or "").upper()
    if sop_class == _DICOMDIR_CLASS:
        return "DICOMDIR"
    if modality in _NON_IMAGE_MODALITIES:
        return f"{modality} object"
    if "Rows" not in ds or "Columns" not in ds:
        return "no image"
    return None


def series_header(ds: Any) -> dict[str, Any]:
    """Series-level attributes used for listing (deliberately no patient module attribute)."""
    number = ds.get("SeriesNumber", None)
    modality = str(ds.get("Modality", "") or "")
    return {
        "description": escape_control(str(ds.get("SeriesDescription", "") or "").strip()),  # prints literally
        "number": int(number) if number not in (None, "") else None,
        "modality": modality,
        "acquisition_contrast": str(ds.get("AcquisitionContrast", "") or ""),
        "frame_of_reference_uid": str(ds.get("FrameOfReferenceUID", "") or ""),
        "ct": ct_header(ds) if modality.upper() == "CT" else {},
    }


def frames_of(ds: Any, location: Location) -> list[Frame]:
    size = (int(ds.Rows), int(ds.Columns))
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    if per_frame is None:
        slope, intercept = _rescale(ds)
        return [
            Frame(
                location=location,
                frame=None if n_frames == 1 else index,
                position=_floats(ds.get("ImagePositionPatient"), 3),
                orientation=_floats(ds.get("ImageOrientationPatient"), 6),
                pixel_spacing=_floats(ds.get("PixelSpacing"), 2),
                size=size,
                slope=slope,
                intercept=intercept,
                image_type=_strings(ds.get("ImageType")),
                split_key=(_strings(ds.get("ImageType")), str(ds.get("EchoNumbers", "") or "")),
                step_mm=_step(ds),
            )
            for index in range(n_frames)
        ]
    shared = (ds.get("SharedFunctionalGroupsSequence") or [None])[0]
    frames = []
    for index, item in enumerate(per_frame):
        position = _group(item, shared, "PlanePositionSequence")
        orientation = _group(item, shared, "PlaneOrientationSequence")
        measures = _group(item, shared, "PixelMeasuresSequence")
        transform = _group(item, shared, "PixelValueTransformationSequence")
        frame_type = _group(item, shared, "MRImageFrameTypeSequence")
        content = _group(item, shared, "FrameContentSequence")
        image_type = _strings(frame_type.get("FrameType")) if frame_type is not None else _strings(ds.get("ImageType"))
        slope, intercept = _rescale(transform) if transform is not None else (1.0, 0.0)
        frames.append(
            Frame(
                location=location,
                frame=index,
                position=_floats(position.get("ImagePositionPatient") if position else None, 3),
                orientation=_floats(orientation.get("ImageOrientationPatient") if orientation else None, 6),
                pixel_spacing=_floats(measures.get("PixelSpacing") if measures else None, 2),
                size=size,
                slope=slope,
                intercept=intercept,
                image_type=image_type,
                split_key=(image_type, str(content.get("StackID", "") or "") if content else ""),
                step_mm=_step(measures) if measures else None,
            )
        )
    return frames


def _group(item: Any, shared: Any, name: str) -> Any:
    """First item of a functional group macro, per-frame first, then shared; None if absent."""
    for source in (item, shared):
        if source is not None and name in source and len(source[name].value):
            return source[name].value[0]
    return None


def _rescale(ds: Any) -> tuple[float, float]:
    slope = ds.get("RescaleSlope", None)
    intercept = ds.get("RescaleIntercept", None)
    return (float(slope) if slope not in (None, "") else 1.0, float(intercept) if intercept not in (None, "") else 0.0)


def _step(ds: Any) -> float | None:
    for name in ("SpacingBetweenSlices", "SliceThickness"):
        value = ds.get(name, None)
        if value not in (None, "") and float(value) > 0:
            return float(value)
    return None


def _floats(value: Any, n: int) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        numbers = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return numbers if len(numbers) == n and all(np.isfinite(numbers)) else None


def _strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value.strip().upper(),)
    return tuple(str(v).strip().upper() for v in value)


class Opener:
    """Reads DICOM files from a folder or a zip, keeping the zip open while in use."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self._zip: zipfile.ZipFile | None = None

    def __enter__(self) -> Opener:
        if self.source.suffix.lower() == ".zip" and self.source.is_file():
            self._zip = zipfile.ZipFile(self.source)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._zip is not None:
            self._zip.close()

    def read(self, location: Location) -> bytes:
        if location.member is not None:
            if self._zip is None:
                raise InputError("zip file is not open", path=self.source)
            return self._zip.read(location.member)
        return Path(location.path).read_bytes()


def read_pixels(frames: list[Frame], *, source: str) -> np.ndarray:
    """Pixels of the frames in order, as an ``(columns, rows, n)`` array, rescaled when the files say so."""
    rescaled = any(f.slope != 1.0 or f.intercept != 0.0 for f in frames)
    integral = all(float(f.slope).is_integer() and float(f.intercept).is_integer() for f in frames)
    volume: np.ndarray | None = None
    cache: dict[Location, np.ndarray] = {}
    with Opener(Path(source)) as opener:
        for k, frame in enumerate(frames):
            if frame.location not in cache:
                cache.clear()  # keep one file's pixels at a time (multi-frame files hold many frames)
                pixels = decode_pixels(opener.read(frame.location), name=Path(frame.location.name).name, source=source)
                cache[frame.location] = pixels if frame.frame is None else pixels.reshape(-1, *pixels.shape[-2:])
            pixels = cache[frame.location]
            plane = pixels if frame.frame is None else pixels[frame.frame]
            if plane.ndim != 2:
                raise InputError(
                    f"{Path(frame.location.name).name}: colour or multi-sample images are not supported", path=source
                )
            if volume is None:
                # whole-number slope and intercept (CT: 1 and -1024) keep integers: HU exactly, less memory
                dtype = (np.int32 if integral and plane.dtype.kind in "iu" else np.float64) if rescaled else plane.dtype
                volume = np.empty((plane.shape[1], plane.shape[0], len(frames)), dtype=dtype)
            if plane.shape != (volume.shape[1], volume.shape[0]):
                raise InputError("images of the series differ in size", path=source)
            if rescaled and volume.dtype == np.int32:
                volume[:, :, k] = plane.T.astype(np.int64) * int(frame.slope) + int(frame.intercept)
            else:
                volume[:, :, k] = plane.T * frame.slope + frame.intercept if rescaled else plane.T
    assert volume is not None
    if volume.dtype == np.int32 and volume.size and volume.min() >= -32768 and volume.max() <= 32767:
        volume = volume.astype(np.int16)
    return volume


def decode_pixels(raw: bytes, *, name: str, source: str) -> np.ndarray:
    import pydicom

    try:
        ds = pydicom.dcmread(io.BytesIO(raw))
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types; one line for the user
        raise InputError(f"cannot read DICOM file {name}: {short_error(exc)}", path=source) from None
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    syntax_name = getattr(syntax, "name", "unknown transfer syntax")
    if syntax is not None and getattr(syntax, "is_compressed", False) and not decoder_available(str(syntax)):
        raise InputError(f"cannot decode {name}: no {syntax_name} decoder is installed; {CT_EXTRA_HINT}", path=source)
    try:
        return np.asarray(ds.pixel_array)
    except Exception as exc:  # noqa: BLE001 - pixel decoders raise many types
        raise InputError(
            f"cannot decode pixel data of {name} ({syntax_name}): {short_error(exc)}; compressed DICOM may need "
            f"another decoder ({CT_EXTRA_HINT})",
            path=source,
        ) from None


def decoder_available(transfer_syntax: str) -> bool:
    """True when pydicom has a working decoder for ``transfer_syntax`` (False for one it cannot decode at all)."""
    from pydicom.pixels import get_decoder

    try:
        return bool(get_decoder(transfer_syntax).is_available)
    except NotImplementedError:
        return False


def short_error(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."
