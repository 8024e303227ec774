"""Case ids from file names, and which case ids a run accepts.

A file name gives ``(case_id, role, image_name)``: the image suffix is dropped, then one trailing role
word (after ``_`` or ``-``, any case) tells the role and the rest is the case id:

=====================================  ==========  ====================
name ends with                         role        example
=====================================  ==========  ====================
``_water``                             water       ``P01_water.nii.gz``
``_fat``                               fat         ``P01_fat.nii.gz``
``_dseg`` ``_seg`` ``_labels`` ``_mask``  labels   ``P01_dseg.nii.gz``
``_t1`` ``_t1w`` ``_t2`` ``_t2w``      image       ``P01_t2.nii.gz`` (named ``t2`` in the tables)
``_image`` ``_img`` or no role word    image       ``P01.nii.gz``
``_sag`` ``_sagittal``                 sagittal    ``P01_sag.nii.gz`` (levels from the spine)
``_sag_dseg`` (any labels word)        sagittal    ``P01_sag_dseg.nii.gz`` (its vertebra/disc labels)
                                       labels
=====================================  ==========  ====================

LPM_Segmentator's ``P01_water_img`` counts as ``P01``'s water image. :func:`case_id_from_name` applies
the same rules to any name (DICOM ``.dcm`` files and ``.zip`` archives lose that suffix too), so a levels
CSV row ``01_water_img`` names case ``01`` and ``P10`` never names ``P1``.

:func:`check_case_id` refuses case ids that cannot name an output folder: empty, ``.``/``..``, path
separators, the run's own file names (``report.html``, ``cases.csv``, ``ledger.sqlite``, ...; compared
case-insensitively), names starting with ``.`` (hidden, like the run's staging folders), and text a
spreadsheet would run as a formula or that holds control characters (:mod:`paraspinal.safe_text`).
"""

from __future__ import annotations

from pathlib import Path

from paraspinal.errors import InputError
from paraspinal.io.dicom import DICOM_FILE_SUFFIXES
from paraspinal.io.readers import strip_image_suffix
from paraspinal.safe_text import identifier_problem

__all__ = ["RESERVED_NAMES", "ROLE_WORDS", "case_id_from_name", "check_case_id", "parse_case_name"]

ROLE_WORDS: tuple[tuple[str, str, str], ...] = (
    # (word, role, image name in the tables)
    ("water", "water", "water"),
    ("fat", "fat", "fat"),
    ("dseg", "labels", ""),
    ("seg", "labels", ""),
    ("labels", "labels", ""),
    ("mask", "labels", ""),
    ("t1w", "image", "t1"),
    ("t2w", "image", "t2"),
    ("t1", "image", "t1"),
    ("t2", "image", "t2"),
    ("image", "image", "image"),
    ("img", "image", "image"),
    ("sagittal", "sagittal", ""),
    ("sag", "sagittal", ""),
)
_SEPARATORS = ("_", "-")
# the files a run writes next to its case folders (lower case); ledger parts are ledger.part<i>of<n>.sqlite
RESERVED_NAMES = (
    "report.html",
    "cases.csv",
    "summary.csv",
    "measurements.csv",
    "measurements.parquet",
    "manifest.json",
    "distributions.png",
    "ledger.sqlite",
)
_RESERVED_PREFIXES = ("ledger.sqlite", "ledger.part")


def parse_case_name(path: str | Path) -> tuple[str, str, str]:
    """``(case_id, role, image_name)`` of an image file from its name (see module docstring)."""
    stem = strip_image_suffix(path)
    case_id, role, name = stem, "image", "image"
    words = _role_word(stem)
    if words is not None:
        case_id, role, name = words
        if role == "image" and name == "image":  # P01_water_img: the role word before _img decides
            inner = _role_word(case_id)
            if inner is not None and inner[1] in ("water", "fat"):
                case_id, role, name = inner
        elif role == "labels":  # P01_sag_dseg: the sagittal image's label map
            inner = _role_word(case_id)
            if inner is not None and inner[1] == "sagittal":
                case_id, role, name = inner[0], "sagittal_labels", ""
    return case_id, role, name


def case_id_from_name(name: str | Path) -> str:
    """The case id a file (or folder) name gives: :func:`parse_case_name`'s, after dropping a DICOM file
    or ``.zip`` suffix (``TUM01_water.nii.gz``, ``TUM01_water.zip`` and ``01_water_img`` give ``TUM01``,
    ``TUM01`` and ``01``)."""
    stem = strip_image_suffix(name)
    for suffix in (".zip", *DICOM_FILE_SUFFIXES):
        if stem.lower().endswith(suffix) and len(stem) > len(suffix):
            stem = stem[: -len(suffix)]
            break
    return parse_case_name(stem)[0]


def _role_word(stem: str) -> tuple[str, str, str] | None:
    lower = stem.lower()
    for word, role, name in ROLE_WORDS:
        for sep in _SEPARATORS:
            ending = sep + word
            if lower.endswith(ending) and len(stem) > len(ending):
                return stem[: -len(ending)], role, name
    return None


def check_case_id(case_id: str, *, path: str | Path | None = None, fix: str = "rename the file or the row") -> None:
    """Raise :class:`InputError` (naming ``path``, the file or CSV it came from) when ``case_id`` cannot be
    a case id (see module docstring); the message ends with ``fix``, what to do."""
    if not case_id or case_id in (".", ".."):
        raise InputError(f"case id {case_id!r} cannot name an output folder; {fix}", path=path)
    problem = identifier_problem(case_id)
    if problem is not None:
        raise InputError(f"case id {case_id!r} {problem}; {fix}", path=path)
    if any(c in case_id for c in "/\\"):
        raise InputError(f"case id {case_id!r} cannot name an output folder; {fix}", path=path)
    if case_id.startswith("."):
        raise InputError(
            f"case id {case_id!r} starts with '.': its output folder would be hidden like the run's staging folders; "
            f"{fix}",
            path=path,
        )
    lower = case_id.lower()
    if lower in RESERVED_NAMES or lower.startswith(_RESERVED_PREFIXES):
        raise InputError(
            f"case id {case_id!r} is the name of one of the run's own files in the output folder; {fix}", path=path
        )
