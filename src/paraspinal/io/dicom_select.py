"""Choose one DICOM series by rule: UID, plane and contrast (sequence hints).

Contrast hints are read from ``ImageType`` (Siemens ``WATER``/``FAT``/``IN_PHASE``/``OPP_PHASE``,
Philips ``W``/``F``/``IP``/``OP``, enhanced MR ``OUT_OF_PHASE``), from enhanced MR's
``AcquisitionContrast`` (``T1``/``T2``) and from words of the series description (``water``,
``fat`` but not ``fat sat``, ``in phase``, ``opp``, ``t1``, ``t2``, a trailing ``_W``/``_F``).
A choice that matches several series, or none, is refused with the candidates listed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from paraspinal.errors import InputError
from paraspinal.io.choices import CONTRASTS, PLANES
from paraspinal.io.dicom_series import SeriesInfo

UNEVEN_POLICIES = ("error", "linear", "nearest")
ROLES = ("image", "water", "fat", "labels")

_IMAGE_TYPE_WORDS = {
    "water": {"WATER", "W"},
    "fat": {"FAT", "F"},
    "in_phase": {"IN_PHASE", "IP", "INPHASE"},
    "opp_phase": {"OPP_PHASE", "OUT_PHASE", "OUT_OF_PHASE", "OP", "OPPOSED_PHASE"},
}
_ACQUISITION_CONTRAST = {"T1": "t1", "T2": "t2"}
_FAT_SUPPRESSION = re.compile(r"fat[\s_\-]*(sat\w*|sup\w*|supp\w*)|\bfs\b", re.IGNORECASE)
_DESCRIPTION_WORDS = {
    "water": {"water", "wat"},
    "fat": {"fat"},
    "in_phase": {"inphase", "in_phase", "ip"},
    "opp_phase": {"opp", "opphase", "opp_phase", "outphase", "out_phase", "opposed", "oop", "op"},
    "t1": {"t1", "t1w"},
    "t2": {"t2", "t2w"},
}


@dataclass(frozen=True)
class SeriesChoice:
    """How to pick a series from a DICOM folder or zip, and what to do with uneven slice spacing.

    Attributes:
        uids: acceptable SeriesInstanceUIDs (or ``UID:stack`` keys); empty accepts any.
        plane: keep only series in this plane (``axial``, ``sagittal``, ``coronal``, ``oblique``).
        contrast: keep only series with this hint (see :data:`CONTRASTS`).
        prefer_contrast: when several series remain, prefer the one with this hint (a role's
            default, e.g. ``water`` for a water image); never an error by itself.
        uneven: ``error`` refuses uneven slice spacing; ``linear``/``nearest`` resample onto a regular grid.
        keep_descriptions: keep the series' free-text description in ``Image.metadata`` and in error
            messages (it can name the patient; by default only ``paraspinal series`` shows it).
    """

    uids: tuple[str, ...] = ()
    plane: str | None = None
    contrast: str | None = None
    prefer_contrast: str | None = None
    uneven: str = "error"
    keep_descriptions: bool = False

    def __post_init__(self) -> None:
        if self.plane is not None and self.plane not in PLANES:
            raise InputError(f"unknown plane '{self.plane}'; choose from {', '.join(PLANES)}")
        for value in (self.contrast, self.prefer_contrast):
            if value is not None and value not in CONTRASTS:
                raise InputError(f"unknown contrast '{value}'; choose from {', '.join(CONTRASTS)}")
        if self.uneven not in UNEVEN_POLICIES:
            raise InputError(f"unknown uneven-spacing policy '{self.uneven}'; choose from {', '.join(UNEVEN_POLICIES)}")


def choice_for_role(
    series: Sequence[str] = (),
    *,
    role: str,
    plane: str | None = None,
    contrast: str | None = None,
    resample_uneven: bool = False,
    keep_descriptions: bool = False,
) -> SeriesChoice:
    """The :class:`SeriesChoice` for one input role (``image``, ``water``, ``fat``, ``labels``) from CLI words.

    ``series`` holds ``UID`` (acceptable for every DICOM input) or ``ROLE=UID`` (for that role only;
    these win over bare UIDs). ``contrast`` applies to the ``image`` role; ``water`` and ``fat`` prefer
    series with their own hint when several remain. ``plane`` applies to every role.
    """
    if role not in ROLES:
        raise InputError(f"unknown input role '{role}'; choose from {', '.join(ROLES)}")
    bare, own = [], []
    for item in series:
        name, sep, uid = item.partition("=")
        if not sep:
            bare.append(item.strip())
        elif name.strip() not in ROLES or not uid.strip():
            raise InputError(f"--series '{item}': expected UID or ROLE=UID with ROLE one of {', '.join(ROLES)}")
        elif name.strip() == role:
            own.append(uid.strip())
    return SeriesChoice(
        uids=tuple(own or bare),
        plane=plane,
        contrast=contrast if role == "image" else None,
        prefer_contrast=role if role in ("water", "fat") else None,
        uneven="linear" if resample_uneven else "error",
        keep_descriptions=keep_descriptions,
    )


def contrast_hints(
    *, image_types: Iterable[Sequence[str]], description: str, acquisition_contrast: str = ""
) -> tuple[str, ...]:
    """Sequence hints (subset of :data:`CONTRASTS`, in that order) from ImageType values and the description."""
    found: set[str] = set()
    for image_type in image_types:
        words = {str(v).strip().upper() for v in image_type}
        found.update(hint for hint, names in _IMAGE_TYPE_WORDS.items() if words & names)
    if acquisition_contrast.strip().upper() in _ACQUISITION_CONTRAST:
        found.add(_ACQUISITION_CONTRAST[acquisition_contrast.strip().upper()])
    text = _FAT_SUPPRESSION.sub(" ", description.lower())
    text = re.sub(r"\b(in|out|opp)[\s_\-]+phase\b", lambda m: m.group(1) + "phase", text)
    tokens = [t for t in re.split(r"[^a-z0-9]+", text) if t]
    found.update(hint for hint, names in _DESCRIPTION_WORDS.items() if names & set(tokens))
    if tokens and tokens[-1] in ("w", "f") and len(tokens) > 1:
        found.add("water" if tokens[-1] == "w" else "fat")
    return tuple(hint for hint in CONTRASTS if hint in found)


def select_series(
    series: Sequence[SeriesInfo],
    *,
    uid: str | Sequence[str] | None = None,
    plane: str | None = None,
    contrast: str | None = None,
    prefer_contrast: str | None = None,
    keep_descriptions: bool = False,
) -> SeriesInfo:
    """The one series matching every rule given; :class:`InputError` listing the candidates otherwise.

    ``uid`` matches ``SeriesInfo.uid`` or ``SeriesInfo.key`` (one UID or several acceptable ones);
    ``plane`` and ``contrast`` filter; ``prefer_contrast`` only breaks a tie. The candidates are listed
    without their descriptions unless ``keep_descriptions``.
    """
    SeriesChoice(plane=plane, contrast=contrast, prefer_contrast=prefer_contrast)  # validates the words
    if not series:
        raise InputError("no DICOM image series found")
    where = _where(series[0].source)
    path = series[0].source

    def listed(found: Sequence[SeriesInfo]) -> str:
        return describe_candidates(found, keep_descriptions=keep_descriptions)

    candidates = list(series)
    rules: list[str] = []
    if uid:
        wanted = {uid} if isinstance(uid, str) else set(uid)
        candidates = [s for s in candidates if s.uid in wanted or s.key in wanted]
        rules.append("--series " + " ".join(sorted(wanted)))
        if not candidates:
            raise InputError(
                f"{where} holds no series {' or '.join(sorted(wanted))}; it holds {listed(series)}",
                path=path,
            )
    if plane is not None:
        candidates = [s for s in candidates if s.plane == plane]
        rules.append(f"--plane {plane}")
    if contrast is not None:
        candidates = [s for s in candidates if contrast in s.contrasts]
        rules.append(f"--contrast {contrast}")
    if not candidates:
        raise InputError(
            f"{where} holds {_count(series)} and none matches {' '.join(rules)}: {listed(series)}",
            path=path,
        )
    if len(candidates) == 1:
        return candidates[0]
    if prefer_contrast is not None:
        preferred = [s for s in candidates if prefer_contrast in s.contrasts]
        if len(preferred) == 1:
            return preferred[0]
    matching = f"; {len(candidates)} match {' '.join(rules)}" if rules else ""
    raise InputError(
        f"{where} holds {_count(series)}{matching}, choose one: {listed(candidates)}; "
        "pick one with --series UID or narrow with --plane/--contrast (see `paraspinal series`)",
        path=path,
    )


def describe_candidates(series: Sequence[SeriesInfo], *, keep_descriptions: bool = False) -> str:
    """``UID (N files); ...``, adding plane and contrast where they tell candidates apart, and the
    description first when ``keep_descriptions``."""
    planes = {_plane_text(s) for s in series}
    contrasts = {s.contrasts for s in series}
    items = []
    for s in series:
        parts = [s.description] if s.description and keep_descriptions else []
        if len(planes) > 1:
            parts.append(_plane_text(s))
        if len(contrasts) > 1 and s.contrasts:
            parts.append("/".join(s.contrasts))
        parts.append(f"{s.n_slices} frames" if s.multiframe else f"{s.n_files} files")
        items.append(f"{s.key} ({', '.join(parts)})")
    return "; ".join(items)


def _plane_text(series: SeriesInfo) -> str:
    tilt = series.tilt_deg
    return f"{series.plane} tilted {tilt:.1f} deg" if tilt == tilt and tilt >= 0.5 else series.plane


def _where(source: str) -> str:
    return "zip file" if Path(source).suffix.lower() == ".zip" else "folder"


def _count(series: Sequence[SeriesInfo]) -> str:
    return f"{len(series)} DICOM series" if len(series) != 1 else "1 DICOM series"
