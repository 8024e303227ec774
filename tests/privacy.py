"""Scan output files (and captured logs) for planted patient data.

Every file under a folder is searched, case-insensitively, for each needle, in every view we can
read: the raw bytes, gzip-decompressed bytes, text with HTML entities and JSON escapes undone,
Parquet cells and key-value metadata (cells are compressed on disk, so raw bytes are not enough),
NIfTI header strings and extensions, and every element of a DICOM file (sequences included).
Rendered pixels (text drawn into a PNG) cannot be read back and are not covered.
"""

from __future__ import annotations

import gzip
import html
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

TEXT_SUFFIXES = (".csv", ".tsv", ".json", ".html", ".htm", ".txt", ".log", ".md", ".xml", ".svg", ".yaml", ".yml")


@dataclass(frozen=True)
class Finding:
    """A needle found in one view of one file."""

    path: str
    view: str
    needle: str

    def __str__(self) -> str:
        return f"{self.path} [{self.view}]: {self.needle!r}"


def scan_files(root: Path | Iterable[Path], needles: Iterable[str]) -> list[Finding]:
    """Findings of any needle in any file under ``root`` (a folder, recursively, or a list of files)."""
    words = [n for n in needles if n]
    files = sorted(p for p in Path(root).rglob("*") if p.is_file()) if isinstance(root, Path) else list(root)
    found: list[Finding] = []
    for path in files:
        for view, text in _views(path):
            lowered = text.lower()
            found.extend(Finding(str(path), view, n) for n in words if n.lower() in lowered)
    return found


def scan_texts(texts: Mapping[str, str], needles: Iterable[str]) -> list[Finding]:
    """Findings in captured text such as stdout and stderr (``{name: text}``)."""
    words = [n for n in needles if n]
    return [Finding(name, "text", n) for name, text in texts.items() for n in words if n.lower() in text.lower()]


def _views(path: Path) -> Iterator[tuple[str, str]]:
    raw = path.read_bytes()
    yield "raw bytes", raw.decode("latin-1")
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError):
            pass
        else:
            yield "gunzipped bytes", raw.decode("latin-1")
    name = path.name.lower()
    if name.endswith(TEXT_SUFFIXES):
        text = raw.decode("utf-8", errors="replace")
        yield "text", html.unescape(text)
        if name.endswith(".json"):
            yield "json", json.dumps(json.loads(text), ensure_ascii=False)
    if name.endswith(".parquet"):
        yield from _parquet(raw)
    if name.endswith((".nii", ".nii.gz")):
        yield from _nifti(path)
    if len(raw) >= 132 and raw[128:132] == b"DICM":
        yield from _dicom(raw)


def _parquet(raw: bytes) -> Iterator[tuple[str, str]]:
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(raw))
    yield "parquet cells", table.to_pandas().to_csv(index=False)
    metadata = table.schema.metadata or {}
    yield (
        "parquet metadata",
        " ".join(f"{k.decode(errors='replace')}={v.decode(errors='replace')}" for k, v in metadata.items()),
    )
    yield "parquet columns", " ".join(table.column_names)


def _nifti(path: Path) -> Iterator[tuple[str, str]]:
    import nibabel as nib

    header = nib.load(str(path)).header
    fields = [header[name] for name in ("descrip", "aux_file", "intent_name", "db_name") if name in header]
    yield "nifti header", " ".join(bytes(f.item() if hasattr(f, "item") else f).decode("latin-1") for f in fields)
    extensions = getattr(header, "extensions", [])
    yield "nifti extensions", " ".join(bytes(ext.get_content() or b"").decode("latin-1") for ext in extensions)


def _dicom(raw: bytes) -> Iterator[tuple[str, str]]:
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(raw), force=True)
    values = []
    for element in ds.iterall():
        if element.VR in ("OB", "OW", "OF", "OD", "OL", "OV", "UN") or element.tag == 0x7FE00010:
            continue
        values.append(f"{element.keyword}={element.value}")
    for element in ds.file_meta:
        values.append(f"{element.keyword}={element.value}")
    yield "dicom elements", "\n".join(values)
