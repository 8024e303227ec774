"""Run manifests: what was run, on what, with which model and options, and how long each step took.

A manifest is plain JSON. Input files are identified by SHA-256 (a DICOM folder by the hash of its
files' names and hashes), the model by its backend's provenance (name, version, weights hash),
the software by the versions of paraspinal and its main dependencies.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import platform
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from paraspinal import __version__
from paraspinal.io.files import file_sha256

__all__ = [
    "MANIFEST_FORMAT",
    "case_manifest",
    "environment_info",
    "file_info",
    "jsonable",
    "run_manifest",
    "sha256_path",
    "utc_now",
    "write_json",
]

MANIFEST_FORMAT = "paraspinal-run-manifest/1"
_DEPENDENCIES = (
    "numpy",
    "scipy",
    "nibabel",
    "SimpleITK",
    "pydicom",
    "pandas",
    "pyarrow",
    "scikit-image",
    "scikit-learn",
    "matplotlib",
    "Jinja2",
    "onnxruntime",
)


def sha256_path(path: str | Path) -> str:
    """SHA-256 (hex) of a file, or of a folder as the hash over its files' relative names and hashes."""
    p = Path(path)
    if p.is_file():
        return file_sha256(p)
    digest = hashlib.sha256()
    for item in sorted(q for q in p.rglob("*") if q.is_file()):
        digest.update(item.relative_to(p).as_posix().encode("utf-8") + b"\0")
        digest.update(sha256_path(item).encode("ascii"))
    return digest.hexdigest()


def file_info(path: str | Path) -> dict[str, object]:
    """Path, size in bytes and SHA-256 of an input file or folder."""
    p = Path(path)
    size = p.stat().st_size if p.is_file() else sum(q.stat().st_size for q in p.rglob("*") if q.is_file())
    return {"path": str(p), "bytes": int(size), "sha256": sha256_path(p)}


def environment_info() -> dict[str, object]:
    """paraspinal, Python and platform versions, and the installed versions of the main dependencies."""
    packages: dict[str, str] = {}
    for name in _DEPENDENCIES:
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            continue
    return {
        "paraspinal": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": packages,
    }


def utc_now() -> str:
    """The current time, UTC, ISO 8601 to the second."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def jsonable(value: Any) -> Any:
    """``value`` with paths, dataclasses, tuples, numpy scalars and non-finite floats made JSON-safe."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()  # numpy scalars
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def write_json(data: Mapping[str, Any], path: str | Path) -> Path:
    """Write ``data`` as indented JSON (UTF-8) to ``path``."""
    p = Path(path)
    p.write_text(json.dumps(jsonable(data), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return p


def _rounded(timings_s: Mapping[str, float]) -> dict[str, float]:
    return {step: round(float(seconds), 4) for step, seconds in timings_s.items()}


def case_manifest(
    *,
    case_id: str,
    options: object,
    segmentation: Mapping[str, object],
    scheme: str,
    cleanup: Sequence[Mapping[str, object]],
    levels: str,
    inputs: Mapping[str, Mapping[str, object]],
    outputs: Sequence[str],
    warnings: Sequence[str],
    checks: Sequence[object],
    timings_s: Mapping[str, float],
    quality: Mapping[str, object] | None = None,
) -> dict[str, Any]:
    """One case's manifest: inputs (with hashes), segmentation provenance, options, outputs, timings, and its
    quality (status, score, reasons, the thumbnail a cohort page shows) when assessed."""
    found = {
        "format": MANIFEST_FORMAT,
        "kind": "case",
        "case_id": case_id,
        "status": "ok",
        "finished_at": utc_now(),
        "environment": environment_info(),
        "options": jsonable(options),
        "segmentation": jsonable(segmentation),
        "label_scheme": scheme,
        "cleanup": jsonable(cleanup),
        "levels": levels,
        "inputs": jsonable(inputs),
        "outputs": sorted([*outputs, f"{case_id}_manifest.json"]),
        "warnings": list(warnings),
        "checks": jsonable(checks),
        "timings_s": _rounded(timings_s),
    }
    if quality is not None:
        found["quality"] = jsonable(quality)
    return found


def run_manifest(
    *,
    started_at: str,
    seconds: float,
    command: Sequence[str] | None,
    options: object,
    provenance: Mapping[str, object] | None,
    cases: Sequence[Mapping[str, Any]],
    outputs: Sequence[str],
) -> dict[str, Any]:
    """The run's manifest: software, model (name, version, weights hash), options, and every case's
    status, error, input hashes and timings."""
    return {
        "format": MANIFEST_FORMAT,
        "kind": "run",
        "started_at": started_at,
        "finished_at": utc_now(),
        "seconds": round(seconds, 3),
        "command": list(command) if command is not None else None,
        "environment": environment_info(),
        "options": jsonable(options),
        "segmentation_backend": jsonable(provenance),
        "n_cases": len(cases),
        "n_failed": sum(c.get("status") == "failed" for c in cases),
        "n_pending": sum(c.get("status") == "pending" for c in cases),
        "cases": [jsonable({**c, "timings_s": _rounded(c.get("timings_s", {}))}) for c in cases],
        "outputs": sorted([*outputs, "manifest.json"]),
    }
