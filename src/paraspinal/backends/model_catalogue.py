"""The catalogue of published models (``backends/data/models.toml``, or a user's file of the same shape),
validated on load: every entry names a known backend, a bundled label scheme, its layout and where to get it.

The catalogue is data only: nothing here looks at the disk beyond reading the TOML file, and nothing downloads.
What a model segments is the registry structures of its label scheme (:attr:`ModelEntry.structures`).
"""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from paraspinal.anatomy import load_registry, load_scheme
from paraspinal.errors import InputError, LabelSchemeError

_KEY = re.compile(r"[a-z][a-z0-9_]*\Z")
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")
_TEXT_FIELDS = (
    "key",
    "name",
    "scheme",
    "role",
    "modality",
    "contrast",
    "plane",
    "licence",
    "citation",
    "project_page",
    "get",
    "source",
)
_OPTIONAL_FIELDS = ("backend", "sha256", "layout", "options")
_LAYOUT_FIELDS = ("model_dir", "files", "labels_file", "label_values")
_OPTION_FIELDS = ("task", "folds")
ROLES = ("muscle", "spine")


@dataclass(frozen=True)
class Layout:
    """How a model comes: the folder the backend loads (globs relative to the unpacked download), the files that
    must be in it, and optionally the JSON file whose ``labels`` give its label values and those values."""

    model_dir: tuple[str, ...]
    files: tuple[str, ...]
    labels_file: str | None = None
    label_values: tuple[int, ...] | None = None

    def describe(self) -> str:
        """One line: the folder and what it must hold."""
        where = " or ".join(self.model_dir)
        return f"a folder {where} holding {', '.join(self.files)}"


@dataclass(frozen=True)
class ModelEntry:
    """One published model (see the header of ``backends/data/models.toml`` for the fields)."""

    key: str
    name: str
    backend: str | None
    scheme: str
    role: str
    modality: str
    contrast: str
    plane: str
    licence: str
    citation: str
    project_page: str
    get: str
    source: str
    layout: Layout
    sha256: str | None = None
    task: str | None = None
    folds: tuple[str, ...] | None = None
    structures: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, object]:
        """JSON-ready fields (install state is added by the store)."""
        return {
            "key": self.key,
            "name": self.name,
            "backend": self.backend,
            "scheme": self.scheme,
            "structures": list(self.structures),
            "role": self.role,
            "modality": self.modality,
            "contrast": self.contrast,
            "plane": self.plane,
            "licence": self.licence,
            "citation": self.citation,
            "project_page": self.project_page,
            "get": self.get,
            "layout": {
                "model_dir": list(self.layout.model_dir),
                "files": list(self.layout.files),
                "labels_file": self.layout.labels_file,
                "label_values": None if self.layout.label_values is None else list(self.layout.label_values),
            },
            "sha256": self.sha256,
            "task": self.task,
            "folds": None if self.folds is None else list(self.folds),
            "source": self.source,
        }


@dataclass(frozen=True)
class ModelCatalogue:
    """Validated entries, in file order, and the file they came from."""

    entries: tuple[ModelEntry, ...]
    source: str

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(e.key for e in self.entries)

    def get(self, key: str) -> ModelEntry | None:
        """The entry called ``key``, or None."""
        return next((e for e in self.entries if e.key == key), None)

    def entry(self, key: str) -> ModelEntry:
        """The entry called ``key``; a one-line error listing the known keys otherwise."""
        found = self.get(key)
        if found is None:
            raise InputError(f"unknown model '{key}' (known: {', '.join(self.keys)})")
        return found


def load_catalogue(path: str | Path | None = None) -> ModelCatalogue:
    """The bundled catalogue (``path`` None) or a user's TOML file of the same shape, validated."""
    if path is None:
        return _bundled()
    file = Path(path)
    if not file.is_file():
        raise InputError("model catalogue not found", path=file)
    return _parse(file.read_bytes(), source=str(file))


@functools.cache
def _bundled() -> ModelCatalogue:
    resource = resources.files("paraspinal.backends").joinpath("data", "models.toml")
    return _parse(resource.read_bytes(), source=str(resource))


def _parse(raw: bytes, *, source: str) -> ModelCatalogue:
    try:
        document = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"model catalogue is not valid TOML: {exc}", path=source) from None
    extra = sorted(set(document) - {"models"})
    if extra:
        raise InputError(f"unknown top-level key {', '.join(extra)}; expected only [[models]] tables", path=source)
    items = document.get("models")
    if not isinstance(items, list) or not items:
        raise InputError("model catalogue has no [[models]] tables", path=source)
    entries: list[ModelEntry] = []
    for index, item in enumerate(items, start=1):
        entry = _parse_entry(item, index=index, source=source)
        if any(e.key == entry.key for e in entries):
            raise InputError(f"model '{entry.key}' is listed twice", path=source)
        entries.append(entry)
    return ModelCatalogue(tuple(entries), source)


def _parse_entry(item: Any, *, index: int, source: str) -> ModelEntry:
    from paraspinal.backends.catalog import BACKENDS  # the catalog imports this module

    if not isinstance(item, dict):
        raise InputError(f"model #{index} is not a table", path=source)
    label = f"model '{item['key']}'" if isinstance(item.get("key"), str) else f"model #{index}"

    def fail(problem: str) -> InputError:
        return InputError(f"{label}: {problem}", path=source)

    unknown = sorted(set(item) - set(_TEXT_FIELDS) - set(_OPTIONAL_FIELDS))
    if unknown:
        raise fail(f"unknown field {', '.join(unknown)}")
    for name in _TEXT_FIELDS:
        if not (isinstance(item.get(name), str) and item[name].strip()):
            raise fail(f"'{name}' must be a non-empty string")
    if not _KEY.match(item["key"]):
        raise fail("key must start with a lowercase letter and use only lowercase letters, digits and '_'")
    backend = item.get("backend", "")
    if not isinstance(backend, str):
        raise fail("'backend' must be a string")
    known_backends = [s.name for s in BACKENDS]
    if backend and backend not in known_backends:
        raise fail(f"backend '{backend}' is not one of {', '.join(known_backends)}")
    if item["role"] not in ROLES:
        raise fail(f"role '{item['role']}' is not one of {', '.join(ROLES)}")
    try:
        scheme = load_scheme(item["scheme"])
    except LabelSchemeError as exc:
        raise fail(f"scheme: {exc.message}") from None
    sha256 = item.get("sha256")
    if sha256 is not None and not (isinstance(sha256, str) and _SHA256.match(sha256)):
        raise fail("'sha256' must be 64 lowercase hexadecimal digits")
    layout = _parse_layout(item.get("layout"), fail=fail)
    options = item.get("options", {})
    if not isinstance(options, dict) or set(options) - set(_OPTION_FIELDS):
        raise fail(f"[options] may hold only {', '.join(_OPTION_FIELDS)}")
    task = options.get("task")
    if task is not None and not (isinstance(task, str) and task):
        raise fail("options.task must be a non-empty string")
    folds = options.get("folds")
    if folds is not None and not (isinstance(folds, list) and folds and all(isinstance(f, str) for f in folds)):
        raise fail('options.folds must be a list of fold names such as ["0", "1"]')
    registry = load_registry()
    structures = tuple(dict.fromkeys(registry[e.structure].key for e in scheme.labels.values()))
    return ModelEntry(
        **{name: item[name] for name in _TEXT_FIELDS},
        backend=backend or None,
        layout=layout,
        sha256=sha256,
        task=task,
        folds=None if folds is None else tuple(folds),
        structures=structures,
    )


def _parse_layout(layout: Any, *, fail: Any) -> Layout:
    if not isinstance(layout, dict):
        raise fail("[layout] table is missing")
    unknown = sorted(set(layout) - set(_LAYOUT_FIELDS))
    if unknown:
        raise fail(f"unknown layout field {', '.join(unknown)}")
    for name in ("model_dir", "files"):
        value = layout.get(name)
        if not (isinstance(value, list) and value and all(isinstance(v, str) and v for v in value)):
            raise fail(f"layout.{name} must be a non-empty list of paths")
        if any(Path(v).is_absolute() or ".." in Path(v).parts for v in value):
            raise fail(f"layout.{name} must hold relative paths inside the download")
    labels_file = layout.get("labels_file")
    if labels_file is not None and not (isinstance(labels_file, str) and labels_file):
        raise fail("layout.labels_file must be a file name")
    values = layout.get("label_values")
    if values is not None:
        if labels_file is None:
            raise fail("layout.label_values needs layout.labels_file")
        if not (isinstance(values, list) and values and all(isinstance(v, int) and v > 0 for v in values)):
            raise fail("layout.label_values must be a list of positive integers")
    return Layout(
        model_dir=tuple(layout["model_dir"]),
        files=tuple(layout["files"]),
        labels_file=labels_file,
        label_values=None if values is None else tuple(sorted(values)),
    )
