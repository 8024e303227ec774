"""Match predicted and reference label maps (and their images) by case id.

A case id is the file name without its image suffix (``.nii.gz``, ``.nii``, ``.nrrd``, ``.nhdr``,
``.mha``, ``.mhd``) and without one trailing role suffix (``_dseg``, ``_seg``, ``_labels``,
``_pred``, ``_ref``, any case): ``TUM01_labels.nii.gz`` and ``TUM01_pred.nii.gz`` are both ``TUM01``.

A ``paraspinal run`` output folder (``manifest.json`` plus one ``<case>/<case>_dseg.nii.gz`` per
case) may stand in for a folder of label maps: its cases are the case subfolders.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from paraspinal.errors import InputError
from paraspinal.io import image_suffix, strip_image_suffix

__all__ = [
    "CASE_SUFFIXES",
    "CasePair",
    "Pairing",
    "case_id_from_path",
    "find_case_file",
    "is_run_folder",
    "pair_cases",
    "run_label_maps",
]

CASE_SUFFIXES = ("_dseg", "_seg", "_labels", "_pred", "_ref")


def case_id_from_path(path: str | Path) -> str:
    """Case id of a label-map file (see module docstring)."""
    stem = strip_image_suffix(path)
    lower = stem.lower()
    for suffix in CASE_SUFFIXES:
        if lower.endswith(suffix) and len(stem) > len(suffix):
            return stem[: -len(suffix)]
    return stem


@dataclass(frozen=True)
class CasePair:
    """One case: its id and the predicted and reference label-map files."""

    case_id: str
    pred: Path
    ref: Path


@dataclass(frozen=True)
class Pairing:
    """Matched cases, plus the case ids found on one side only (sorted)."""

    pairs: tuple[CasePair, ...]
    pred_only: tuple[str, ...]
    ref_only: tuple[str, ...]

    @property
    def warnings(self) -> list[str]:
        out = []
        if self.pred_only:
            out.append(f"{len(self.pred_only)} predicted case(s) have no reference: {', '.join(self.pred_only)}")
        if self.ref_only:
            out.append(f"{len(self.ref_only)} reference case(s) have no prediction: {', '.join(self.ref_only)}")
        return out


def _image_files(folder: Path) -> dict[str, Path]:
    """Case id -> file for the image files directly in ``folder``; duplicate ids are an error."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file() or image_suffix(path) is None:
            continue
        case_id = case_id_from_path(path)
        if case_id in found:
            raise InputError(
                f"two files map to case id {case_id!r}: {found[case_id].name} and {path.name}", path=folder
            )
        found[case_id] = path
    return found


def run_label_maps(folder: str | Path) -> dict[str, Path]:
    """Case id -> ``<folder>/<case>/<case>_dseg.*`` for the case subfolders of a ``paraspinal run`` output."""
    found: dict[str, Path] = {}
    for sub in sorted(Path(folder).iterdir()):
        if sub.name.startswith(".") or not sub.is_dir():
            continue
        maps = [
            f
            for f in sorted(sub.iterdir())
            if f.is_file() and image_suffix(f) is not None and strip_image_suffix(f) == f"{sub.name}_dseg"
        ]
        if len(maps) > 1:
            raise InputError(f"several label maps for case {sub.name}: {', '.join(f.name for f in maps)}", path=sub)
        if maps:
            found[sub.name] = maps[0]
    return found


def is_run_folder(path: str | Path) -> bool:
    """True for a ``paraspinal run`` output folder: ``manifest.json`` and at least one ``<case>/<case>_dseg`` map."""
    p = Path(path)
    return p.is_dir() and (p / "manifest.json").is_file() and bool(run_label_maps(p))


def _case_files(folder: Path) -> dict[str, Path]:
    return run_label_maps(folder) if is_run_folder(folder) else _image_files(folder)


def pair_cases(pred: str | Path, ref: str | Path) -> Pairing:
    """Pair two label-map files (one case, id from the reference's name) or two folders by case id.

    A folder may be a ``paraspinal run`` output (see :func:`is_run_folder`): its ``<case>/<case>_dseg``
    maps are paired by the case folder's name.

    Raises InputError when a path is missing, when a file is paired with a folder, or when no case
    id matches at all (unmatched ids are otherwise only reported in :attr:`Pairing.pred_only` /
    :attr:`Pairing.ref_only`).
    """
    p, r = Path(pred), Path(ref)
    for path in (p, r):
        if not path.exists():
            raise InputError("not found", path=path)
    if p.is_file() and r.is_file():
        return Pairing((CasePair(case_id_from_path(r), p, r),), (), ())
    if p.is_dir() != r.is_dir():
        folder, other = (p, r) if p.is_dir() else (r, p)
        raise InputError(f"is a folder but {other} is a file; give two files or two folders", path=folder)
    preds, refs = _case_files(p), _case_files(r)
    for folder, files in ((p, preds), (r, refs)):
        if not files:
            raise InputError("folder holds no image files (.nii.gz, .nii, .nrrd, .nhdr, .mha, .mhd)", path=folder)
    common = sorted(set(preds) & set(refs))
    if not common:
        raise InputError(
            f"no case id matches between the folders (predictions: {', '.join(sorted(preds)[:5])}; "
            f"references: {', '.join(sorted(refs)[:5])})",
            path=p,
        )
    return Pairing(
        tuple(CasePair(c, preds[c], refs[c]) for c in common),
        tuple(sorted(set(preds) - set(refs))),
        tuple(sorted(set(refs) - set(preds))),
    )


def find_case_file(path: str | Path, case_id: str, *, option: str, single_case: bool) -> Path:
    """The image for ``case_id`` given with ``option``: the file itself, or the one file in the folder
    whose name is the case id or starts with ``<case_id>_`` (``TUM01_water.nii.gz`` for ``TUM01``).

    A single file is accepted only when one case is evaluated. Raises InputError otherwise.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{option}: not found", path=p)
    if p.is_file():
        if not single_case:
            raise InputError(f"{option} must be a folder when --pred and --ref are folders", path=p)
        return p
    matches = [
        f
        for f in sorted(p.iterdir())
        if f.is_file()
        and not f.name.startswith(".")
        and image_suffix(f) is not None
        and (strip_image_suffix(f) == case_id or strip_image_suffix(f).startswith(f"{case_id}_"))
    ]
    if not matches:
        raise InputError(f"{option}: no image for case {case_id}", path=p)
    if len(matches) > 1:
        exact = [f for f in matches if case_id_from_path(f) == case_id]
        if len(exact) == 1:
            return exact[0]
        raise InputError(f"{option}: several images for case {case_id}: {', '.join(f.name for f in matches)}", path=p)
    return matches[0]
