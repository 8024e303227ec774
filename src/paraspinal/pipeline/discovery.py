"""Find the cases of a ``paraspinal run``: files and folders in, cases matched by name out; or a cases CSV.

A case is one image (T1/T2), a Dixon water/fat pair, or either of these plus an existing label map
(then segmentation is skipped). Files are matched by name: the image suffix is dropped, then one
trailing role word (``_water``, ``_fat``, ``_dseg``, ``_t2``, ``_sag``, ...; the table is in
:mod:`paraspinal.io.case_names`) tells the role and the rest is the case id.

LPM_Segmentator's ``P01_water_img`` counts as ``P01``'s water image. A ``<case>_levels.csv`` next to
the images gives that case's levels; without one, a sagittal image gives them (its label map when given,
else the bundled spine model), and a DICOM study holding a sagittal series uses that series
(:func:`sagittal_from_dicom`). A folder given directly that holds no image files but other
files is read as one DICOM series (case id: the folder name); sub-folders of a cohort folder are
not searched. Two files with the same case and role, a water image without its fat image (or the
reverse), and a label map without an image do not make a case: each such case is listed in
:attr:`Discovery.failed` with its reason (the run reports it as a failed case and runs the others). A case id that would
collide with the run's own files, be hidden, or be run as a spreadsheet formula is refused
(:func:`paraspinal.io.case_names.check_case_id`), whether it comes from a file name or a cases CSV.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from paraspinal.errors import InputError
from paraspinal.io import image_suffix
from paraspinal.io.case_names import check_case_id, parse_case_name
from paraspinal.pipeline.case import Case

__all__ = ["CASES_CSV_COLUMNS", "LEVELS_SUFFIX", "Discovery", "discover_cases", "parse_case_name", "read_cases_csv"]

LEVELS_SUFFIX = "_levels.csv"


@dataclass(frozen=True)
class Discovery:
    """Cases found (sorted by id), notes about what was skipped, and the inputs that make no case:
    ``failed`` holds ``(case_id, reason)`` pairs, reported by a run as failed cases (the others still run)."""

    cases: tuple[Case, ...]
    warnings: tuple[str, ...] = ()
    failed: tuple[tuple[str, str], ...] = ()


def discover_cases(inputs: Sequence[str | Path]) -> Discovery:
    """Cases from files and folders, matched by name across all of them (see module docstring).

    Raises :class:`InputError` for a missing path, an unsupported file, a folder without images,
    or names that do not make unambiguous cases (every problem listed in one line).
    """
    if not inputs:
        raise InputError("no input given: name image files or folders")
    files: list[Path] = []
    levels_files: dict[str, Path] = {}
    warnings: list[str] = []
    for raw in inputs:
        path = Path(raw)
        if not path.exists():
            raise InputError("not found", path=path)
        if path.is_file():
            if path.name.lower().endswith(LEVELS_SUFFIX):
                levels_files[path.name[: -len(LEVELS_SUFFIX)]] = path
                continue
            if image_suffix(path) is None:
                raise InputError(
                    "not an image file (.nii, .nii.gz, .nrrd, .nhdr, .mha, .mhd or a DICOM folder)", path=path
                )
            files.append(path)
            continue
        found, levels_found, skipped = _scan_folder(path)
        levels_files.update(levels_found)
        if found:
            files.extend(found)
            if skipped:
                warnings.append(
                    f"{path}: skipped {len(skipped)} sub-folder(s) ({', '.join(skipped[:5])}"
                    f"{', ...' if len(skipped) > 5 else ''}); give a DICOM folder directly"
                )
        elif _holds_files(path):
            files.append(path)  # a DICOM series or study folder
        else:
            raise InputError("folder holds no image files (.nii, .nii.gz, .nrrd, .nhdr, .mha, .mhd)", path=path)
    cases, failed = _group(files, levels_files)
    return Discovery(cases, tuple(warnings), failed)


def _scan_folder(folder: Path) -> tuple[list[Path], dict[str, Path], list[str]]:
    images: list[Path] = []
    levels: dict[str, Path] = {}
    skipped: list[str] = []
    for item in sorted(folder.iterdir()):
        if item.name.startswith("."):
            continue
        if item.is_dir():
            skipped.append(item.name)
        elif item.name.lower().endswith(LEVELS_SUFFIX):
            levels[item.name[: -len(LEVELS_SUFFIX)]] = item
        elif image_suffix(item) is not None:
            images.append(item)
    return images, levels, skipped


def _holds_files(folder: Path) -> bool:
    """True when the folder (or any sub-folder: a DICOM study) holds a visible file."""
    return any(p.is_file() and not p.name.startswith(".") for p in folder.rglob("*"))


def _group(
    files: Sequence[Path], levels_files: dict[str, Path]
) -> tuple[tuple[Case, ...], tuple[tuple[str, str], ...]]:
    roles: dict[str, dict[str, list[tuple[Path, str]]]] = {}
    for path in files:
        if path.is_dir():
            case_id, role, name = path.name, "image", "image"
        else:
            case_id, role, name = parse_case_name(path)
        roles.setdefault(case_id, {}).setdefault(role, []).append((path, name))
    failed: list[tuple[str, str]] = []
    cases: list[Case] = []
    for case_id in sorted(roles):
        by_role = roles[case_id]
        check_case_id(case_id, path=min(path for entries in by_role.values() for path, _ in entries))
        problems: list[str] = []
        for role, entries in sorted(by_role.items()):
            if len(entries) > 1:
                names = ", ".join(str(p) for p, _ in entries)
                problems.append(f"case {case_id} has {len(entries)} {role} files ({names})")
        if ("water" in by_role) != ("fat" in by_role):
            have, lack = ("water", "fat") if "water" in by_role else ("fat", "water")
            problems.append(f"case {case_id} has a {have} image but no {lack} image ({by_role[have][0][0]})")
        if "labels" in by_role and not ({"image", "water", "fat"} & set(by_role)):
            problems.append(f"case {case_id} has a label map but no image ({by_role['labels'][0][0]})")
        if "sagittal" in by_role and not ({"image", "water", "fat", "labels"} & set(by_role)):
            problems.append(f"case {case_id} has a sagittal image but no axial image ({by_role['sagittal'][0][0]})")
        if "sagittal_labels" in by_role and "sagittal" not in by_role:
            problems.append(
                f"case {case_id} has a sagittal label map but no sagittal image ({by_role['sagittal_labels'][0][0]})"
            )
        if problems:
            failed.append((case_id, "cannot match the case's files by name: " + "; ".join(problems)))
            continue

        def first(role: str, entries: dict = by_role) -> Path | None:
            return entries[role][0][0] if role in entries else None

        try:
            case = Case(
                case_id=case_id,
                image=first("image"),
                image_name=by_role["image"][0][1] if "image" in by_role else "image",
                water=first("water"),
                fat=first("fat"),
                labels=first("labels"),
                levels=levels_files.get(case_id),
                sagittal=first("sagittal"),
                sagittal_labels=first("sagittal_labels"),
            )
        except InputError as exc:
            failed.append((case_id, str(exc)))
            continue
        cases.append(case)
    if not cases and not failed:
        raise InputError("no cases found in the inputs")
    return tuple(cases), tuple(failed)


CASES_CSV_COLUMNS = (
    "case_id",
    "image",
    "image_name",
    "water",
    "fat",
    "labels",
    "levels",
    "sagittal",
    "sagittal_labels",
)


def read_cases_csv(path: str | Path) -> Discovery:
    """Cases from a CSV with a ``case_id`` column and any of ``image, image_name, water, fat, labels, levels``.

    Relative paths are read relative to the CSV's folder; empty cells mean "not given". A file that cannot
    be read, has unknown columns, or holds a case id that cannot be one (:func:`check_case_id`) is an error;
    a row that cannot form a case (or repeats another row's
    case id) is listed in :attr:`Discovery.failed` with its reason, named by its case id, or by
    ``<csv name>:row N`` (N counting data rows from 1) when it has none; missing or corrupt files fail only
    their case, when it runs.
    """
    p = Path(path)
    try:
        frame = pd.read_csv(p, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read cases CSV ({' '.join(str(exc).split())[:120]})", path=p) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    unknown = sorted(set(frame.columns) - set(CASES_CSV_COLUMNS))
    if "case_id" not in frame.columns or unknown:
        raise InputError(
            f"cases CSV needs a case_id column and only {', '.join(CASES_CSV_COLUMNS)}"
            + (f"; unknown: {', '.join(unknown)}" if unknown else ""),
            path=p,
        )
    ids = frame["case_id"].str.strip()
    rows_of: dict[str, list[int]] = {}
    for number, case_id in enumerate(ids, start=1):
        if case_id:  # an id that cannot name a case refuses the whole file: it must not reach any table
            check_case_id(case_id, path=p)
        rows_of.setdefault(case_id, []).append(number)

    def resolve(value: str) -> Path | None:
        value = value.strip()
        return None if not value else (p.parent / value if not Path(value).is_absolute() else Path(value))

    cases: list[Case] = []
    failed: list[tuple[str, str]] = []
    for number, row in enumerate(frame.to_dict("records"), start=1):
        case_id = row["case_id"].strip()
        name = case_id or f"{p.name}:row {number}"
        if case_id and len(rows_of[case_id]) > 1:
            if rows_of[case_id][0] == number:
                rows = ", ".join(map(str, rows_of[case_id]))
                failed.append((case_id, f"{p}: case id {case_id} repeated in rows {rows}; give each case one row"))
            continue
        paths = ("image", "water", "fat", "labels", "levels", "sagittal", "sagittal_labels")
        fields = {c: resolve(row[c]) for c in paths if c in row}
        image_name = row.get("image_name", "").strip() or "image"
        try:
            if not case_id:
                raise InputError(f"row {number} has no case_id")
            cases.append(Case(case_id=case_id, image_name=image_name, **fields))
        except InputError as exc:
            failed.append((name, str(InputError(exc.message, path=p))))
    return Discovery(tuple(cases), (), tuple(failed))
