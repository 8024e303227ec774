"""CT as a modality: header facts (contrast agent, kernel, rescale, padding) and Hounsfield-unit checks.

* :func:`ct_header` reads the CT facts of one DICOM header (no patient attribute): the contrast state
  from the Contrast/Bolus module, the reconstruction kernel, the tube voltage and the padding value.
  :func:`paraspinal.io.dicom.load_series` puts them into ``Image.metadata`` for a CT series.
* :func:`as_ct` declares an image (a NIfTI, NRRD or MHA file holds no such facts) to be CT in HU,
  with its contrast state given by the caller (``unknown`` unless said).
* :func:`check_hounsfield` refuses, in one line naming the file, an image whose values are not
  plausibly HU, and recognises the padding value outside the reconstructed field of view
  (-2048, -3024, ... HU), which :func:`padding_mask` masks so no measurement averages it.

Contrast states (``Image.metadata['contrast_agent']``): ``applied``, ``none`` (declared unenhanced,
or a DICOM agent field that says none) or ``unknown`` (no contrast field: many scanners leave the
module empty, so absence never means unenhanced).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from paraspinal.errors import InputError
from paraspinal.io.image import Image
from paraspinal.io.text import escape_control

__all__ = [
    "AIR_RANGE_HU",
    "CONTRAST_STATES",
    "PADDING_BELOW_HU",
    "HounsfieldCheck",
    "as_ct",
    "check_hounsfield",
    "contrast_state",
    "ct_header",
    "padding_mask",
]

CONTRAST_STATES = ("applied", "none", "unknown")
_CONTRAST_WORDS = {
    "applied": "applied",
    "enhanced": "applied",
    "contrast": "applied",
    "none": "none",
    "unenhanced": "none",
    "non-contrast": "none",
    "noncontrast": "none",
    "native": "none",
    "unknown": "unknown",
}
# ContrastBolusAgent values that say no agent was given (upper-cased, stripped)
_NO_AGENT = {"NONE", "NO", "N", "NIL", "-", "0", "NO CONTRAST", "NON-CONTRAST", "NONCONTRAST", "NATIVE", "PLAIN"}
_BOLUS_TAGS = ("ContrastBolusRoute", "ContrastBolusStartTime", "ContrastBolusIngredient", "ContrastBolusAgentSequence")
_BOLUS_AMOUNTS = ("ContrastBolusVolume", "ContrastBolusTotalDose", "ContrastFlowRate")

PADDING_BELOW_HU = -1500.0
"""No air or tissue reads below this; lower voxels are padding (one value) or the image is not HU."""
AIR_RANGE_HU = (-1100.0, -900.0)
"""Where a low percentile of a CT image must lie: the air around (or inside) the body is about -1000 HU."""
AIR_PERCENTILE = 0.5


def contrast_state(word: str) -> str:
    """``applied``, ``none`` or ``unknown`` from a caller's word (``enhanced``, ``unenhanced``, ``native`` ...)."""
    state = _CONTRAST_WORDS.get(str(word).strip().lower())
    if state is None:
        raise InputError(f"unknown contrast state {word!r}; say applied, none (unenhanced) or unknown")
    return state


def ct_header(ds: Any) -> dict[str, object]:
    """The CT facts of one DICOM dataset (headers suffice), for ``Image.metadata``.

    Keys: ``contrast_agent`` (``applied``/``none``/``unknown``), ``contrast_evidence`` (the tags that
    decided it), ``kernel`` (ConvolutionKernel, ``\\``-joined), ``kvp``, ``rescale_type`` and
    ``padding_stored`` (PixelPaddingValue in stored units, or None).
    """
    agent = _text(ds.get("ContrastBolusAgent", None)).upper()
    evidence: list[str] = []
    if agent:
        state = "none" if agent in _NO_AGENT else "applied"
        evidence.append("ContrastBolusAgent")
    else:
        evidence = [tag for tag in _BOLUS_TAGS if _present(ds.get(tag, None))]
        evidence += [tag for tag in _BOLUS_AMOUNTS if _positive(ds.get(tag, None))]
        state = "applied" if evidence else "unknown"
    kernel = ds.get("ConvolutionKernel", None)
    several = kernel is not None and not isinstance(kernel, str) and hasattr(kernel, "__iter__")
    kernel_text = "\\".join(_text(k) for k in kernel) if several else _text(kernel)
    kvp = ds.get("KVP", None)
    padding = ds.get("PixelPaddingValue", None)
    return {
        "contrast_agent": state,
        "contrast_evidence": ", ".join(evidence) if evidence else "no contrast field",
        "kernel": escape_control(kernel_text),
        "kvp": float(kvp) if _positive(kvp) else None,
        "rescale_type": escape_control(_text(ds.get("RescaleType", None))),
        "padding_stored": int(padding) if isinstance(padding, int | float) else None,
    }


@dataclass(frozen=True)
class HounsfieldCheck:
    """What :func:`check_hounsfield` found.

    Attributes:
        padding_hu: the padding value (declared by the header, or the image minimum below -1500 HU), or None.
        n_padding: voxels holding it.
        air_hu: the image's 0.5th percentile outside padding (HU), the air reference.
    """

    padding_hu: float | None
    n_padding: int
    air_hu: float


def check_hounsfield(image: Image) -> HounsfieldCheck:
    """Refuse an image whose values are not plausibly HU; recognise its padding value.

    Rules: voxels at or below -1500 HU may only hold one value, the padding (the header's
    ``padding_hu`` when declared, else the image minimum); outside padding, the 0.5th percentile must
    lie in [-1100, -900] HU (air). A rescale intercept left unapplied (air near 0), an MR image or a
    doubly rescaled CT fails with a one-line :class:`InputError` naming the file.
    """
    array = image.array
    if not np.issubdtype(array.dtype, np.number) or array.size == 0:
        raise InputError("a CT image holds numbers (HU)", path=image.source)
    padding = _padding_value(array, image.metadata)
    padded = array == padding if padding is not None else np.zeros(array.shape, dtype=bool)
    n_padding = int(np.count_nonzero(padded))
    valid = array[~padded] if n_padding else array.ravel()
    if valid.size == 0:
        raise InputError(f"every voxel holds the padding value {padding:g} HU; nothing to measure", path=image.source)
    low = valid < PADDING_BELOW_HU
    if np.any(low):
        values = np.unique(valid[low])
        raise InputError(
            f"{int(np.count_nonzero(low))} voxels lie below {PADDING_BELOW_HU:g} HU with {values.size} different "
            f"values (from {values.min():g}): not one padding value, so the image is not in HU",
            path=image.source,
        )
    air = float(np.percentile(valid, AIR_PERCENTILE))
    if not AIR_RANGE_HU[0] <= air <= AIR_RANGE_HU[1]:
        hint = (
            "; the values look like stored CT numbers without the rescale intercept (usually -1024)"
            if -100.0 <= air <= 100.0 and float(valid.max()) > 1500.0
            else ""
        )
        raise InputError(
            f"not a CT image in HU: its lowest {AIR_PERCENTILE:g}% of voxels lie at {air:.4g}, where air "
            f"(about -1000 HU) should be ({AIR_RANGE_HU[0]:g} to {AIR_RANGE_HU[1]:g}){hint}",
            path=image.source,
        )
    return HounsfieldCheck(padding_hu=padding, n_padding=n_padding, air_hu=air)


def padding_mask(image: Image) -> np.ndarray:
    """Voxels holding the padding value (see :func:`check_hounsfield`); all False when there is none."""
    padding = _padding_value(image.array, image.metadata)
    if padding is None:
        return np.zeros(image.shape, dtype=bool)
    return image.array == padding


def as_ct(image: Image, *, contrast: str = "unknown", kernel: str | None = None, check: bool = True) -> Image:
    """``image`` declared a CT in HU with the given contrast state (``applied``, ``none``, ``unknown``).

    The HU check runs unless ``check`` is False, and its padding value is kept in the metadata.
    A DICOM series that says it is another modality is refused. DICOM contrast facts are replaced by
    the declared state, and ``contrast_evidence`` says it was declared.
    """
    modality = str(image.metadata.get("modality", "") or "").upper()
    if modality and modality != "CT":
        raise InputError(f"the image is a {modality} series, not CT", path=image.source)
    metadata: dict[str, object] = {
        **image.metadata,
        "modality": "CT",
        "contrast_agent": contrast_state(contrast),
        "contrast_evidence": "declared",
    }
    if kernel is not None:
        metadata["kernel"] = escape_control(str(kernel))
    if check:
        metadata["padding_hu"] = check_hounsfield(image).padding_hu
    return Image(array=image.array, affine=image.affine, source=image.source, metadata=metadata)


def padding_hu(header: Mapping[str, object], *, slope: float, intercept: float) -> float | None:
    """The header's PixelPaddingValue in HU (stored value x slope + intercept), or None."""
    stored = header.get("padding_stored")
    return None if stored is None else float(stored) * slope + intercept  # type: ignore[arg-type]


def _padding_value(array: np.ndarray, metadata: Mapping[str, object]) -> float | None:
    declared = metadata.get("padding_hu")
    if declared is not None:
        return float(declared)  # type: ignore[arg-type]
    if array.size == 0:
        return None
    low = float(array.min())
    return low if low <= PADDING_BELOW_HU else None


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _present(value: Any) -> bool:
    """A tag with content: a non-empty string or sequence, or any number."""
    if value is None:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    return len(value) > 0 if hasattr(value, "__len__") else True


def _positive(value: Any) -> bool:
    try:
        return value not in (None, "") and float(value) > 0
    except (TypeError, ValueError):
        return False
