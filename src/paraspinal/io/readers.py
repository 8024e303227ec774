"""Read images and label maps from NIfTI, NRRD, MHA/MHD and DICOM (folders, zips, files).

Every reader returns an :class:`~paraspinal.io.image.Image` whose affine is RAS+ (NIfTI
convention). ITK-based formats (NRRD, MHA) and DICOM are LPS+ on disk and are converted by
negating the x and y rows; DICOM is read by :mod:`paraspinal.io.dicom`. Any problem with the file
becomes an :class:`~paraspinal.errors.InputError` naming the file, never a library traceback.
"""

from __future__ import annotations

import dataclasses
import gzip
import zlib
from pathlib import Path

import numpy as np

from paraspinal.errors import InputError
from paraspinal.io.dicom import is_dicom_path, read_dicom_choice
from paraspinal.io.dicom_select import SeriesChoice
from paraspinal.io.header_checks import check_itk_header, check_nifti_header
from paraspinal.io.image import Image

NIFTI_SUFFIXES = (".nii.gz", ".nii")
ITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")
IMAGE_SUFFIXES = NIFTI_SUFFIXES + ITK_SUFFIXES
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def image_suffix(path: str | Path) -> str | None:
    """The recognised image suffix of ``path`` (``.nii.gz`` counts as one), or None."""
    name = Path(path).name.lower()
    return next((s for s in IMAGE_SUFFIXES if name.endswith(s)), None)


def strip_image_suffix(path: str | Path) -> str:
    """File name without its image suffix: ``a/TUM01_water.nii.gz`` -> ``TUM01_water``."""
    name = Path(path).name
    suffix = image_suffix(path)
    return name[: -len(suffix)] if suffix else name


def read_image(path: str | Path, *, series: SeriesChoice | None = None, allow_constant: bool = False) -> Image:
    """Read a 3-D image (NIfTI, NRRD, MHA/MHD, or DICOM: a folder, a zip or a file).

    Trailing singleton dimensions (e.g. a 4-D file with one volume) are dropped. 2-D images,
    4-D images with several volumes, NaN/inf voxels, complex voxels, a zero, negative or non-finite
    voxel spacing, a header declaring more voxels than the file holds, and (unless ``allow_constant``,
    as for label maps) an image whose voxels all hold one value are refused. A DICOM input holding
    several series needs ``series`` to pick one (see :mod:`paraspinal.io.dicom`).
    """
    p = Path(path)
    if not p.exists():
        raise InputError("file not found", path=p)
    suffix = image_suffix(p)
    if suffix is None and is_dicom_path(p):
        image = read_dicom_choice(p, series)
        array, affine, meta = image.array, image.affine, image.metadata
    elif suffix in NIFTI_SUFFIXES:
        array, affine, meta = _read_nifti(p)
    elif suffix in ITK_SUFFIXES:
        array, affine, meta = _read_itk(p)
    else:
        raise InputError(
            f"unsupported file type (expected one of {', '.join(IMAGE_SUFFIXES)}, or DICOM: a folder, .zip or .dcm)",
            path=p,
        )
    array = _as_3d(array, path=p)
    _check_values(array, path=p, allow_constant=allow_constant)
    _check_spacing(np.asarray(affine, dtype=np.float64), path=p)
    return Image(array=array, affine=affine, source=str(p), metadata=meta)


def read_label_map(path: str | Path, *, series: SeriesChoice | None = None) -> Image:
    """Read a label map: like :func:`read_image`, then require integer labels >= 0.

    Float files whose values are all whole numbers are accepted and cast to int32. Unevenly spaced
    DICOM label series are resampled with nearest-neighbour interpolation when resampling is asked.
    """
    if series is not None and series.uneven == "linear":
        series = dataclasses.replace(series, uneven="nearest")
    image = read_image(path, series=series, allow_constant=True)  # all background is measured's own error
    array = image.array
    if not np.issubdtype(array.dtype, np.integer):
        if np.issubdtype(array.dtype, np.bool_):
            array = array.astype(np.int32)
        else:
            rounded = np.rint(array)
            if not np.array_equal(rounded, array):
                raise InputError("label map holds non-integer values; is this an image, not labels?", path=path)
            array = rounded.astype(np.int32)
    if array.size and int(array.min()) < 0:
        raise InputError(f"label map holds negative values (minimum {int(array.min())})", path=path)
    if array.dtype.itemsize > 4 or array.dtype.kind == "u":
        if array.size and int(array.max()) > np.iinfo(np.int32).max:
            raise InputError("label values exceed the int32 range", path=path)
        array = array.astype(np.int32)
    return image.with_array(array)


def _read_nifti(path: Path) -> tuple[np.ndarray, np.ndarray, dict[str, object]]:
    import nibabel as nib

    check_nifti_header(path)  # before nibabel fixes a zero spacing up to 1 mm, and before any allocation
    try:
        img = nib.load(str(path))
        array = np.asanyarray(img.dataobj)  # forces the full read: truncation surfaces here
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile, ValueError) as exc:
        raise InputError(f"cannot read NIfTI: corrupt or truncated file ({_short(exc)})", path=path) from None
    except Exception as exc:  # noqa: BLE001 - nibabel raises its own ImageFileError and friends
        raise InputError(f"cannot read NIfTI ({_short(exc)})", path=path) from None
    affine = img.affine
    if affine is None or not np.all(np.isfinite(affine)):
        raise InputError("NIfTI header has no valid affine", path=path)
    _check_spacing(np.asarray(affine, dtype=np.float64), path=path)
    if abs(np.linalg.det(np.asarray(affine)[:3, :3])) < 1e-12:
        raise InputError("NIfTI affine is singular (zero voxel size)", path=path)
    header = img.header
    meta: dict[str, object] = {
        "format": "nifti",
        "qform_code": int(header["qform_code"]) if "qform_code" in header else None,
        "sform_code": int(header["sform_code"]) if "sform_code" in header else None,
    }
    return np.asarray(array), np.asarray(affine, dtype=np.float64), meta


def _itk_affine(image) -> np.ndarray:
    """RAS+ affine of a SimpleITK image (ITK is LPS+ and indexes x fastest)."""
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    spacing = np.asarray(image.GetSpacing(), dtype=np.float64)
    origin = np.asarray(image.GetOrigin(), dtype=np.float64)
    affine = np.eye(4)
    affine[:3, :3] = direction * spacing[np.newaxis, :]
    affine[:3, 3] = origin
    return _LPS_TO_RAS @ affine


def _itk_array(image) -> np.ndarray:
    import SimpleITK as sitk

    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError(f"{image.GetNumberOfComponentsPerPixel()} components per voxel (vector image)")
    # GetArrayFromImage returns (z, y, x); transpose to (i, j, k) = (x, y, z).
    return np.asarray(sitk.GetArrayFromImage(image)).transpose(*reversed(range(image.GetDimension())))


def _read_itk(path: Path) -> tuple[np.ndarray, np.ndarray, dict[str, object]]:
    import SimpleITK as sitk

    try:
        check_itk_header(path)  # spacing, pixel type and declared size, before the voxels are allocated
        image = sitk.ReadImage(str(path))
        dim = image.GetDimension()
        array = _itk_array(image)
    except (RuntimeError, ValueError) as exc:
        raise InputError(f"cannot read image: corrupt or truncated file ({_short(exc)})", path=path) from None
    if dim != 3:
        raise InputError(f"image is {dim}-D (shape {array.shape}); a 3-D volume is required", path=path)
    return array, _itk_affine(image), {"format": path.suffix.lstrip(".").lower()}


def _as_3d(array: np.ndarray, *, path: Path) -> np.ndarray:
    shape = array.shape
    while array.ndim > 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 3:
        return array
    if array.ndim < 3:
        raise InputError(f"image is {array.ndim}-D (shape {shape}); a 3-D volume is required", path=path)
    raise InputError(
        f"image is {array.ndim}-D (shape {shape}) with {int(np.prod(shape[3:]))} volumes; "
        "a single 3-D volume is required (split the series first)",
        path=path,
    )


def _check_values(array: np.ndarray, *, path: Path, allow_constant: bool) -> None:
    """Refuse complex, NaN/inf and (unless allowed) constant voxels: each would give wrong numbers silently."""
    if np.iscomplexobj(array):
        raise InputError(
            f"image holds complex values ({array.dtype}); save the magnitude (or the real part) as a real-valued image",
            path=path,
        )
    if np.issubdtype(array.dtype, np.floating):
        bad = int(array.size - np.count_nonzero(np.isfinite(array)))
        if bad:
            raise InputError(f"image holds {bad} NaN or infinite voxels", path=path)
    if not allow_constant and array.size and array.dtype.kind in "biuf":
        low, high = array.min(), array.max()
        if low == high:
            what = "blank" if low == 0 else "constant"
            raise InputError(
                f"every voxel of the image is {low.item():g} ({what} image: a failed export or the wrong file?); "
                "nothing to segment or measure",
                path=path,
            )


def _check_spacing(affine: np.ndarray, *, path: Path) -> None:
    """Refuse an affine with a zero or non-finite voxel axis (any format; NIfTI headers are checked earlier)."""
    norms = np.linalg.norm(affine[:3, :3], axis=0)
    for axis, norm in enumerate(norms, start=1):
        if not np.isfinite(norm) or norm < 1e-9:
            raise InputError(f"voxel spacing along axis {axis} is {norm:g} mm; volumes would be wrong", path=path)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."
