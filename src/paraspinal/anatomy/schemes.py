"""Label schemes: what each integer value of a label map means, as validated data files.

A scheme (bundled ``data/schemes/<key>.toml``, or a user's TOML/JSON file with the same shape)
maps label values to registry structures and patient sides::

    key = "lpm4"
    name = "LPM_Segmentator 4-class"
    description = "..."            # optional
    reference = "citation / URL"   # optional
    [[labels]]
    value = 1
    name = "right erector spinae"  # the scheme's own name for the label
    structure = "erector_spinae"   # a key of the anatomy registry
    side = "right"                 # "left" | "right" | "none"

Rules (each broken rule is a one-line :class:`~paraspinal.errors.LabelSchemeError`): value 0 is
background and is never listed; values are unique positive integers; structures exist in the
registry; ``left``/``right`` only on bilateral structures (``none`` on a bilateral structure means
the scheme does not separate sides). A structure may carry several unsided values (SPIDER's fully
and partly visible vertebra), but each structure+side pair that has a side has exactly one value,
and a structure is either sided or unsided within one scheme, so swapping sides is unambiguous. The
scheme's key and name and each label's name must not start with ``= + - @`` or hold control characters
(they reach tables and reports; :mod:`paraspinal.safe_text`).
"""

from __future__ import annotations

import functools
import json
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, get_args

from paraspinal.anatomy.registry import AnatomyRegistry, load_registry, unknown_structure_message
from paraspinal.errors import LabelSchemeError
from paraspinal.safe_text import identifier_problem

Side = Literal["left", "right", "none"]
SIDES: tuple[str, ...] = get_args(Side)

_REQUIRED_FIELDS = ("key", "name", "labels")
_OPTIONAL_FIELDS = ("description", "reference")
_LABEL_FIELDS = ("value", "name", "structure", "side")
_OPPOSITE = {"left": "right", "right": "left"}


@dataclass(frozen=True)
class LabelEntry:
    """One label value: the scheme's name for it, its registry structure and patient side."""

    value: int
    name: str
    structure: str
    side: Side


@dataclass(frozen=True)
class LabelScheme:
    """A validated label scheme; ``labels`` maps each value (background 0 excluded) to its entry."""

    key: str
    name: str
    description: str
    reference: str
    labels: Mapping[int, LabelEntry]
    source: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", MappingProxyType(dict(sorted(self.labels.items()))))

    @property
    def values(self) -> tuple[int, ...]:
        """All label values of the scheme, sorted."""
        return tuple(self.labels)

    def entry(self, value: int) -> LabelEntry:
        """The entry for ``value``; a ``LabelSchemeError`` if the scheme has no such value."""
        try:
            return self.labels[value]
        except KeyError:
            raise LabelSchemeError(
                f"label value {value} is not in scheme '{self.key}' (known: {_summary(self.values)})",
                path=self.source,
            ) from None

    def side_swap_map(self) -> dict[int, int]:
        """Value -> value of the same structure on the other side (identity for unsided labels).

        Used for left-right flip augmentation; raises if a sided label has no counterpart.
        """
        by_side = {(e.structure, e.side): e.value for e in self.labels.values()}
        swap: dict[int, int] = {}
        for value, entry in self.labels.items():
            if entry.side == "none":
                swap[value] = value
                continue
            other = _OPPOSITE[entry.side]
            if (entry.structure, other) not in by_side:
                raise LabelSchemeError(
                    f"label {value} ({entry.name}) has no {other}-side counterpart in scheme "
                    f"'{self.key}', so sides cannot be swapped",
                    path=self.source,
                )
            swap[value] = by_side[(entry.structure, other)]
        return swap

    def values_for(
        self,
        structure: str,
        *,
        include_descendants: bool = True,
        side: Side | None = None,
        registry: AnatomyRegistry | None = None,
    ) -> tuple[int, ...]:
        """Sorted values labelling ``structure`` (and, by default, structures under it).

        ``side`` keeps only entries with that side; ``registry`` defaults to the bundled one.
        """
        registry = registry if registry is not None else load_registry()
        wanted = {registry[structure].key}
        if include_descendants:
            wanted.update(registry.descendants(structure))
        if side is not None and side not in SIDES:
            raise LabelSchemeError(f"side '{side}' is not one of {_quoted(SIDES)}")
        return tuple(
            value
            for value, entry in self.labels.items()
            if entry.structure in wanted and (side is None or entry.side == side)
        )

    def check_values(self, values: Iterable[int], *, path: str | Path | None) -> None:
        """Raise if any value besides background 0 is not in the scheme; pass distinct values."""
        found = {_plain(value) for value in values}
        unknown = sorted(value for value in found if value != 0 and value not in self.labels)
        if unknown:
            raise LabelSchemeError(
                f"label values [{_summary(unknown)}] are not in scheme '{self.key}' (known: {_summary(self.values)})",
                path=path,
            )


def list_schemes() -> list[str]:
    """Keys of the bundled label schemes, sorted."""
    return sorted(_bundled_scheme_files())


def load_scheme(name_or_path: str | Path, *, registry: AnatomyRegistry | None = None) -> LabelScheme:
    """Load a bundled scheme by key, or a user's ``.toml``/``.json`` scheme file, and validate it."""
    registry = registry if registry is not None else load_registry()
    bundled = _bundled_scheme_files()
    if isinstance(name_or_path, str) and name_or_path in bundled:
        resource = bundled[name_or_path]
        return _parse_scheme(
            _decode_toml(resource.read_bytes(), source=str(resource)), source=str(resource), registry=registry
        )
    path = Path(name_or_path)
    if not path.is_file():
        if isinstance(name_or_path, str) and path.suffix == "" and len(path.parts) == 1:
            raise LabelSchemeError(
                f"no bundled label scheme or file named '{name_or_path}' "
                f"(bundled schemes: {', '.join(sorted(bundled))})"
            )
        raise LabelSchemeError("label scheme file not found", path=path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise LabelSchemeError(f"cannot read label scheme: {exc.strerror or exc}", path=path) from None
    suffix = path.suffix.lower()
    if suffix == ".toml":
        document = _decode_toml(raw, source=str(path))
    elif suffix == ".json":
        document = _decode_json(raw, source=str(path))
    else:
        raise LabelSchemeError("label scheme files must end in .toml or .json", path=path)
    return _parse_scheme(document, source=str(path), registry=registry)


@functools.cache
def _bundled_scheme_files() -> dict[str, Traversable]:
    folder = resources.files("paraspinal.anatomy").joinpath("data", "schemes")
    return {
        item.name.removesuffix(".toml"): item
        for item in folder.iterdir()
        if item.name.endswith(".toml") and item.is_file()
    }


def _decode_toml(raw: bytes, *, source: str) -> Any:
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise LabelSchemeError(f"not a valid TOML file: {exc}", path=source) from None


def _decode_json(raw: bytes, *, source: str) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LabelSchemeError(f"not a valid JSON file: {exc}", path=source) from None


def _parse_scheme(document: Any, *, source: str, registry: AnatomyRegistry) -> LabelScheme:
    if not isinstance(document, dict):
        raise LabelSchemeError("a label scheme must be a table of fields at the top level", path=source)
    unknown = sorted(set(document) - set(_REQUIRED_FIELDS) - set(_OPTIONAL_FIELDS))
    if unknown:
        raise LabelSchemeError(f"unknown field {_quoted(unknown)}", path=source)
    for field in _REQUIRED_FIELDS:
        if field not in document:
            raise LabelSchemeError(f"missing required field '{field}'", path=source)
    for field in ("key", "name", *_OPTIONAL_FIELDS):
        value = document.get(field, "")
        if not isinstance(value, str) or (field in _REQUIRED_FIELDS and not value):
            raise LabelSchemeError(f"'{field}' must be a non-empty string", path=source)
    for field in ("key", "name"):
        problem = identifier_problem(document[field])
        if problem is not None:
            raise LabelSchemeError(f"scheme {field} {document[field]!r} {problem}", path=source)
    items = document["labels"]
    if not isinstance(items, list) or not items:
        raise LabelSchemeError("'labels' must be a non-empty list of label tables", path=source)
    labels: dict[int, LabelEntry] = {}
    for index, item in enumerate(items, start=1):
        entry = _parse_label(item, index=index, source=source, registry=registry)
        if entry.value in labels:
            raise LabelSchemeError(f"label value {entry.value} is listed twice", path=source)
        labels[entry.value] = entry
    _check_sides(labels, source=source)
    return LabelScheme(
        key=document["key"],
        name=document["name"],
        description=document.get("description", ""),
        reference=document.get("reference", ""),
        labels=labels,
        source=source,
    )


def _parse_label(item: Any, *, index: int, source: str, registry: AnatomyRegistry) -> LabelEntry:
    if not isinstance(item, dict):
        raise LabelSchemeError(f"label #{index} is not a table", path=source)
    value = item.get("value")
    valid_value = isinstance(value, int) and not isinstance(value, bool)
    label = f"label {value}" if valid_value else f"label #{index}"
    unknown = sorted(set(item) - set(_LABEL_FIELDS))
    if unknown:
        raise LabelSchemeError(f"{label}: unknown field {_quoted(unknown)}", path=source)
    for field in _LABEL_FIELDS:
        if field not in item:
            raise LabelSchemeError(f"{label}: missing required field '{field}'", path=source)
    if not valid_value:
        raise LabelSchemeError(f"{label}: value must be an integer, not {value!r}", path=source)
    if value == 0:
        raise LabelSchemeError("label value 0 is background and must not be listed", path=source)
    if value < 0:
        raise LabelSchemeError(f"label value {value} is negative; values must be positive", path=source)
    for field in ("name", "structure", "side"):
        if not (isinstance(item[field], str) and item[field]):
            raise LabelSchemeError(f"{label}: '{field}' must be a non-empty string", path=source)
    problem = identifier_problem(item["name"])
    if problem is not None:
        raise LabelSchemeError(f"{label}: name {item['name']!r} {problem}", path=source)
    structure, side = item["structure"], item["side"]
    if structure not in registry:
        message = unknown_structure_message(structure, registry.structures)
        raise LabelSchemeError(f"{label} refers to {message}", path=source)
    if side not in SIDES:
        raise LabelSchemeError(f"{label}: side '{side}' is not one of {_quoted(SIDES)}", path=source)
    if side != "none" and not registry[structure].bilateral:
        raise LabelSchemeError(
            f"{label}: side '{side}' is not allowed on midline structure '{structure}' (use side \"none\")",
            path=source,
        )
    return LabelEntry(value=value, name=item["name"], structure=structure, side=side)


def _check_sides(labels: Mapping[int, LabelEntry], *, source: str) -> None:
    """One value per sided structure+side; a structure is either sided or unsided in a scheme."""
    seen: dict[tuple[str, str], int] = {}
    sidedness: dict[str, tuple[bool, int]] = {}
    for value, entry in sorted(labels.items()):
        sided = entry.side != "none"
        first = sidedness.setdefault(entry.structure, (sided, value))
        if first[0] != sided:
            raise LabelSchemeError(
                f"structure '{entry.structure}' has labels both with a side and without "
                f"(labels {first[1]} and {value})",
                path=source,
            )
        if sided and (entry.structure, entry.side) in seen:
            raise LabelSchemeError(
                f"labels {seen[(entry.structure, entry.side)]} and {value} both mean "
                f"'{entry.structure}' on the {entry.side} side",
                path=source,
            )
        seen[(entry.structure, entry.side)] = value


def _plain(value: Any) -> Any:
    """A numpy scalar as the equivalent Python number; anything else unchanged."""
    return value.item() if hasattr(value, "item") else value


def _summary(values: Iterable[Any], *, limit: int = 12) -> str:
    """``1, 2, 3`` or, for long lists, ``1, 2, ..., 225 (75 values)`` (keeps messages one line)."""
    items = [str(value) for value in values]
    if len(items) <= limit:
        return ", ".join(items)
    return f"{', '.join(items[: limit - 1])}, ..., {items[-1]} ({len(items)} values)"


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(f"'{name}'" for name in names)
