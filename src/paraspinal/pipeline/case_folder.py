"""A case's output folder: staged under a hidden name, checked against its manifest, swapped in whole.

``<out>/<case>/`` is written as ``<out>/.<case>.partial-XXXX/`` and renamed into place only when every
file its manifest lists is there (checked, not assumed), so a folder under a case's own name is always
complete. A folder is *finished* when its manifest parses, names the case, and every output it lists
exists; anything else is redone by the next run. Staging folders (``.partial-``) and the previous
result moved aside during the swap (``.old-``) are removed only by a run that holds the lock proving
their writer is gone (:mod:`paraspinal.batch.lock`).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from paraspinal.io.files import temp_folder_in

__all__ = [
    "case_folder_problem",
    "manifest_name",
    "read_case_manifest",
    "remove_case_staging",
    "staged_case_folder",
    "staging_case_id",
]

_STAGING = re.compile(r"^\.(?P<case>.+)\.(?:partial|old)-[^.]+$")


def manifest_name(case_id: str) -> str:
    """``<case>_manifest.json``: written last, the proof a case finished."""
    return f"{case_id}_manifest.json"


def staging_case_id(name: str) -> str | None:
    """The case id of a staging folder's name (``.P01.partial-ab12`` -> ``P01``), else None."""
    match = _STAGING.match(name)
    return match.group("case") if match else None


def remove_case_staging(out: Path, *, case_id: str) -> int:
    """Remove ``case_id``'s staging folders in ``out`` (left by a writer known to be dead); how many."""
    removed = 0
    for path in out.glob(f".{glob.escape(case_id)}.*-*"):
        if path.is_dir() and staging_case_id(path.name) == case_id:
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed


def read_case_manifest(folder: Path) -> dict[str, object] | None:
    """The case manifest in ``folder`` (None when missing or unreadable)."""
    try:
        document = json.loads((folder / manifest_name(folder.name)).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def case_folder_problem(folder: Path, *, case_id: str | None = None) -> str | None:
    """Why ``folder`` is not a finished case folder for ``case_id`` (default: the folder's name); None when it is."""
    case_id = case_id or folder.name
    try:
        text = (folder / manifest_name(case_id)).read_text(encoding="utf-8")
    except FileNotFoundError:
        return f"no {manifest_name(case_id)}"
    except OSError as exc:
        return f"{manifest_name(case_id)} unreadable ({exc.strerror})"
    try:
        manifest = json.loads(text)
    except ValueError:
        return f"{manifest_name(case_id)} is not valid JSON"
    if not isinstance(manifest, dict) or manifest.get("case_id") != case_id:
        return f"{manifest_name(case_id)} is not this case's manifest"
    outputs = manifest.get("outputs")
    if not isinstance(outputs, list) or not all(isinstance(o, str) for o in outputs):
        return f"{manifest_name(case_id)} lists no outputs"
    missing = [o for o in outputs if not (folder / o).is_file()]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        return f"{len(missing)} file(s) of its manifest missing: {', '.join(missing[:3])}{more}"
    return None


@contextlib.contextmanager
def staged_case_folder(final: Path, *, case_id: str) -> Iterator[Path]:
    """A hidden folder next to ``final`` to write into; swapped in as ``final`` only when the block succeeds
    and the folder holds every file its manifest lists. On any error (Ctrl-C included) it is removed."""
    final.parent.mkdir(parents=True, exist_ok=True)
    stage = temp_folder_in(final.parent, prefix=f".{final.name}.partial-")  # the umask's mode, not 0700
    try:
        yield stage
        problem = case_folder_problem(stage, case_id=case_id)
        if problem is not None:
            raise RuntimeError(f"case folder of {case_id} incomplete, not kept: {problem}")
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    old = None
    if final.exists():
        old = temp_folder_in(final.parent, prefix=f".{final.name}.old-")
        os.replace(final, old / final.name)
    os.replace(stage, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_case_summary(folder: Path) -> pd.DataFrame | None:
    """A finished case's summary table (None when it has none)."""
    path = folder / f"{folder.name}_summary.csv"
    return pd.read_csv(path) if path.is_file() else None
