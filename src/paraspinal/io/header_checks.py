"""Check an image file's header before any voxel is read: its voxel spacing, and the size it declares.

nibabel quietly reads a zero slice spacing as 1 mm (volumes come out too small by that factor), and
a header that declares gigabytes of voxels in a file of a few kB makes the readers allocate all of it
before they notice the truncation. Both are refused here, from the raw header, in one line:

* NIfTI: the raw 348-byte (NIfTI-1) or 540-byte (NIfTI-2) header, before nibabel's fix-ups. Without
  an sform the affine is built from ``pixdim[1..3]``, so each must be a positive number.
* NRRD, MHA/MHD: SimpleITK's ``ReadImageInformation`` (size, pixel type and spacing, no pixels).
* The declared bytes must fit in the file (plus its separate data file); for gzip-compressed data
  in the deflate bound of :data:`DEFLATE_MAX_RATIO` times the compressed size.
"""

from __future__ import annotations

import gzip
import math
import re
import zlib
from pathlib import Path

import numpy as np

from paraspinal.errors import InputError

DEFLATE_MAX_RATIO = 1032  # deflate emits at least ~1 bit per 258-byte match: no stream inflates further
_GZIP_SLACK_BYTES = 1 << 10  # generous: tiny streams inflate far less than the asymptotic ratio
_NIFTI_DATA_OFFSET = {348: 352, 540: 544}  # smallest vox_offset of a single-file NIfTI-1 / NIfTI-2
_COMPLEX_HINT = "save the magnitude (or the real part) as a real-valued image"


def human_bytes(n_bytes: float) -> str:
    """``2048`` -> ``2.0 kB``, ``8e9`` -> ``8.0 GB`` (decimal units)."""
    value = float(n_bytes)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def check_nifti_header(path: Path) -> None:
    """Refuse a NIfTI file whose raw header gives a bad spacing, complex voxels, or more bytes than it holds.

    A file whose header cannot be parsed at all is left to nibabel, which says why.
    """
    compressed = path.name.lower().endswith(".gz")
    header = _raw_nifti_header(path, compressed=compressed)
    if header is None:
        return
    fields, size_of_header = header
    n_dims = int(fields["dim"][0])
    dims = [int(d) for d in fields["dim"][1 : 1 + n_dims]] if 1 <= n_dims <= 7 else []
    if not dims or min(dims) < 0:
        raise InputError(f"NIfTI header has invalid dimensions (dim = {fields['dim'].tolist()})", path=path)
    if int(fields["sform_code"]) <= 0:  # the affine comes from pixdim (scaled quaternion, or plain diagonal)
        for axis in range(1, min(n_dims, 3) + 1):
            spacing = float(fields["pixdim"][axis])
            if not math.isfinite(spacing) or spacing <= 0:
                raise InputError(
                    f"voxel spacing along axis {axis} is {spacing:g} in the NIfTI header (pixdim[{axis}]) and no "
                    "sform gives another; volumes would be wrong: fix the header",
                    path=path,
                )
    dtype = _nifti_dtype(int(fields["datatype"]))
    if dtype is None:
        return  # an unknown datatype: nibabel refuses it with its own message
    if dtype.kind == "c":
        raise InputError(f"image holds complex values ({dtype.name}); {_COMPLEX_HINT}", path=path)
    voxel_bytes = math.prod(dims) * dtype.itemsize
    offset = max(int(float(fields["vox_offset"])), _NIFTI_DATA_OFFSET[size_of_header])
    check_declared_bytes(path, voxel_bytes=voxel_bytes, needed_bytes=offset + voxel_bytes, compressed=compressed)


def check_itk_header(path: Path) -> None:
    """Refuse an NRRD/MHA/MHD file whose header gives a bad spacing, complex voxels, or more bytes than it holds.

    Raises :class:`RuntimeError` (SimpleITK's) when the header itself cannot be read.
    """
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    pixel = sitk.GetPixelIDValueAsString(reader.GetPixelID())
    if "complex" in pixel:
        raise InputError(f"image holds complex values ({pixel}); {_COMPLEX_HINT}", path=path)
    for axis, spacing in enumerate(reader.GetSpacing(), start=1):
        if not math.isfinite(spacing) or spacing <= 0:
            raise InputError(
                f"voxel spacing along axis {axis} is {spacing:g} in the image header; volumes would be wrong: "
                "fix the header",
                path=path,
            )
    bits = re.search(r"(\d+)-bit", pixel)
    if bits is None:
        return
    voxel_bytes = math.prod(reader.GetSize()) * max(reader.GetNumberOfComponents(), 1) * int(bits.group(1)) // 8
    layout = _itk_data_layout(path)
    if layout is None:
        return
    data_bytes, encoding, separate = layout
    if encoding in ("raw", "gzip"):
        check_declared_bytes(
            path,
            voxel_bytes=voxel_bytes,
            needed_bytes=voxel_bytes,
            compressed=encoding == "gzip",
            held=data_bytes,
            what="the data file with its header" if separate else "the file",
        )


def check_declared_bytes(
    path: Path,
    *,
    voxel_bytes: int,
    needed_bytes: int,
    compressed: bool,
    held: int | None = None,
    what: str = "the file",
) -> None:
    """Refuse a file that cannot hold ``needed_bytes`` (``held``: bytes on disk, default the file's size)."""
    size = path.stat().st_size if held is None else held
    if not compressed and needed_bytes > size:
        raise InputError(
            f"header declares {human_bytes(voxel_bytes)} of voxels but {what} holds {human_bytes(size)} "
            "(truncated or corrupt)",
            path=path,
        )
    bound = size * DEFLATE_MAX_RATIO + _GZIP_SLACK_BYTES
    if compressed and needed_bytes > bound:
        raise InputError(
            f"header declares {human_bytes(voxel_bytes)} of voxels but {what} ({human_bytes(size)} compressed) "
            f"can hold at most {human_bytes(bound)} (truncated or corrupt)",
            path=path,
        )


def _raw_nifti_header(path: Path, *, compressed: bool) -> tuple[np.ndarray, int] | None:
    """The raw header fields (NIfTI-1 or -2 structured record) and its size, or None when not readable."""
    import nibabel as nib

    try:
        if compressed:
            with gzip.open(path, "rb") as handle:
                raw = handle.read(540)
        else:
            with path.open("rb") as handle:
                raw = handle.read(540)
    except (OSError, EOFError, zlib.error):
        return None
    for size, header_dtype in ((348, nib.nifti1.header_dtype), (540, nib.nifti2.header_dtype)):
        for order in ("<", ">"):
            if len(raw) >= size and int.from_bytes(raw[:4], "little" if order == "<" else "big") == size:
                record = np.frombuffer(raw[:size], dtype=header_dtype.newbyteorder(order))[0]
                return record, size
    return None


def _nifti_dtype(code: int) -> np.dtype | None:
    import nibabel as nib

    codes = nib.nifti1.data_type_codes
    return np.dtype(codes.dtype[code]) if code in codes.value_set() else None


def _itk_data_layout(path: Path) -> tuple[int, str, bool] | None:
    """Bytes holding the voxels (the header file plus a separate data file), their encoding, and whether
    the data file is separate.

    None when the layout is one this check does not bound (a list or pattern of data files, a missing
    data file, bzip2 or text encodings): the reader then reports any problem itself.
    """
    with path.open("rb") as handle:
        text = handle.read(1 << 16).decode("latin-1")
    suffix = path.suffix.lower()
    if suffix in (".nrrd", ".nhdr"):
        fields = _nrrd_fields(text)
        encoding = {"gz": "gzip", "gzip": "gzip", "raw": "raw"}.get(fields.get("encoding", "raw").lower(), "")
        data_file = fields.get("data file", fields.get("datafile"))
    else:
        fields = {k.lower(): v for k, v in re.findall(r"^\s*(\w+)\s*=\s*(.*?)\s*$", text, re.MULTILINE)}
        encoding = "gzip" if fields.get("compresseddata", "false").lower() == "true" else "raw"
        data_file = fields.get("elementdatafile")
        if data_file is not None and data_file.upper() == "LOCAL":
            data_file = None
    held = path.stat().st_size
    separate = data_file is not None
    if data_file is not None:
        if " " in data_file.strip() or data_file.strip().upper().startswith("LIST") or "%" in data_file:
            return None
        data_path = (path.parent / data_file.strip()).resolve()
        if not data_path.is_file():
            return None
        held += data_path.stat().st_size
    return (held, encoding, separate) if encoding else None


def _nrrd_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in text.splitlines()[1:]:
        if not line.strip():
            break  # the blank line ends an attached header
        key, sep, value = line.partition(":")
        if sep and not line.startswith("#") and not value.startswith("="):  # "key:=value" lines are key/values
            fields[key.strip().lower()] = value.strip()
    return fields
