"""The anatomy registry: every structure a label scheme may name, and how structures nest.

The bundled registry is ``data/anatomy.toml``; each ``[[structures]]`` table there becomes a
:class:`Structure`. ``parent`` links form a forest (muscle groups over muscles, ``vertebra`` over
``vertebra_L3`` ...), which lets measurements aggregate labels, e.g. everything under
``autochthon``. Files are validated on load; every problem is a one-line
:class:`~paraspinal.errors.LabelSchemeError` naming the file.
"""

from __future__ import annotations

import difflib
import functools
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, get_args

from paraspinal.errors import LabelSchemeError
from paraspinal.safe_text import identifier_problem

Category = Literal["muscle", "muscle_group", "vertebra", "disc", "canal", "bone", "other"]
CATEGORIES: tuple[str, ...] = get_args(Category)

_KEY_PATTERN = re.compile(r"[a-z][A-Za-z0-9_]*\Z")
_REQUIRED_FIELDS = ("key", "name", "category", "bilateral")
_OPTIONAL_FIELDS = ("parent", "level", "code", "colour")
_COLOUR = re.compile(r"#[0-9A-Fa-f]{6}\Z")
_CODE_FIELDS = ("scheme", "value", "meaning")


@dataclass(frozen=True)
class CodedConcept:
    """A coded concept for DICOM-SEG, e.g. ``CodedConcept("SCT", "44947003", "Erector spinae muscle")``."""

    scheme: str
    value: str
    meaning: str


@dataclass(frozen=True)
class Structure:
    """One anatomical structure: identity, category, laterality and place in the hierarchy."""

    key: str
    name: str
    category: Category
    bilateral: bool
    parent: str | None = None
    level: str | None = None
    code: CodedConcept | None = None
    colour: str | None = None


@dataclass(frozen=True)
class AnatomyRegistry:
    """All known structures by key; ``parent`` links must form a forest (checked on creation)."""

    structures: Mapping[str, Structure]

    def __post_init__(self) -> None:
        frozen = MappingProxyType(dict(self.structures))
        object.__setattr__(self, "structures", frozen)
        _check_hierarchy(frozen, path=None)

    def __getitem__(self, key: str) -> Structure:
        """The structure called ``key``; ``KeyError`` (with a suggestion) if there is none."""
        try:
            return self.structures[key]
        except KeyError:
            raise KeyError(unknown_structure_message(key, self.structures)) from None

    def __contains__(self, key: object) -> bool:
        return key in self.structures

    def ancestors(self, key: str) -> tuple[str, ...]:
        """Parent, grandparent, ... of ``key``, nearest first."""
        chain: list[str] = []
        parent = self[key].parent
        while parent is not None:
            chain.append(parent)
            parent = self.structures[parent].parent
        return tuple(chain)

    def descendants(self, key: str) -> tuple[str, ...]:
        """Every structure below ``key`` (children, grandchildren, ...), depth first in file order."""
        self[key]  # raises for an unknown key
        found: list[str] = []
        stack = list(reversed(self._children.get(key, ())))
        while stack:
            node = stack.pop()
            found.append(node)
            stack.extend(reversed(self._children.get(node, ())))
        return tuple(found)

    def common_ancestor(self, a: str, b: str) -> str | None:
        """The nearest structure containing both ``a`` and ``b`` (``a`` itself if ``b`` is under ``a``)."""
        chain_a = (a, *self.ancestors(a))
        for key in (b, *self.ancestors(b)):
            if key in chain_a:
                return key
        return None

    @cached_property
    def _children(self) -> dict[str, tuple[str, ...]]:
        children: dict[str, list[str]] = {}
        for structure in self.structures.values():
            if structure.parent is not None:
                children.setdefault(structure.parent, []).append(structure.key)
        return {parent: tuple(keys) for parent, keys in children.items()}


def load_registry(path: str | Path | None = None) -> AnatomyRegistry:
    """Load and validate an anatomy registry TOML file; ``None`` gives the bundled one (cached)."""
    if path is None:
        return _bundled_registry()
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise LabelSchemeError(f"cannot read anatomy file: {exc.strerror or exc}", path=path) from None
    return _parse_registry(raw, source=str(path))


def unknown_structure_message(key: str, known: Iterable[str]) -> str:
    """``unknown structure 'x'``, plus the closest known key as a suggestion when there is one."""
    known = list(known)
    close = [name for name in known if name.startswith(key)] or difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown structure '{key}'{hint}"


@functools.cache
def _bundled_registry() -> AnatomyRegistry:
    resource = resources.files("paraspinal.anatomy").joinpath("data", "anatomy.toml")
    return _parse_registry(resource.read_bytes(), source=str(resource))


def _parse_registry(raw: bytes, *, source: str) -> AnatomyRegistry:
    try:
        document = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise LabelSchemeError(f"not a valid TOML file: {exc}", path=source) from None
    extra = sorted(set(document) - {"structures"})
    if extra:
        raise LabelSchemeError(
            f"unknown top-level key {_quoted(extra)}; expected only [[structures]] tables", path=source
        )
    items = document.get("structures")
    if not isinstance(items, list) or not items:
        raise LabelSchemeError("no [[structures]] tables found", path=source)
    structures: dict[str, Structure] = {}
    for index, item in enumerate(items, start=1):
        structure = _parse_structure(item, index=index, source=source)
        if structure.key in structures:
            raise LabelSchemeError(f"duplicate structure key '{structure.key}'", path=source)
        structures[structure.key] = structure
    _check_hierarchy(structures, path=source)
    return AnatomyRegistry(structures)


def _parse_structure(item: Any, *, index: int, source: str) -> Structure:
    if not isinstance(item, dict):
        raise LabelSchemeError(f"structure #{index} is not a table", path=source)
    key = item.get("key")
    label = f"structure '{key}'" if isinstance(key, str) and key else f"structure #{index}"
    unknown = sorted(set(item) - set(_REQUIRED_FIELDS) - set(_OPTIONAL_FIELDS))
    if unknown:
        raise LabelSchemeError(f"{label}: unknown field {_quoted(unknown)}", path=source)
    for field in _REQUIRED_FIELDS:
        if field not in item:
            raise LabelSchemeError(f"{label}: missing required field '{field}'", path=source)
    for field in ("key", "name", "category", "parent", "level"):
        if field in item and not (isinstance(item[field], str) and item[field]):
            raise LabelSchemeError(f"{label}: '{field}' must be a non-empty string", path=source)
    for field in ("name", "level"):
        problem = identifier_problem(item[field]) if field in item else None
        if problem is not None:
            raise LabelSchemeError(f"{label}: {field} {item[field]!r} {problem}", path=source)
    if not _KEY_PATTERN.match(item["key"]):
        raise LabelSchemeError(
            f"{label}: key must start with a lowercase letter and use only letters, digits and '_'",
            path=source,
        )
    if item["category"] not in CATEGORIES:
        raise LabelSchemeError(
            f"{label}: category '{item['category']}' is not one of {', '.join(CATEGORIES)}", path=source
        )
    if not isinstance(item["bilateral"], bool):
        raise LabelSchemeError(f"{label}: 'bilateral' must be true or false", path=source)
    if "colour" in item and not (isinstance(item["colour"], str) and _COLOUR.match(item["colour"])):
        raise LabelSchemeError(f"{label}: 'colour' must be a hex colour like \"#E69F00\"", path=source)
    return Structure(
        key=item["key"],
        name=item["name"],
        category=item["category"],
        bilateral=item["bilateral"],
        parent=item.get("parent"),
        level=item.get("level"),
        code=_parse_code(item["code"], label=label, source=source) if "code" in item else None,
        colour=item.get("colour"),
    )


def _parse_code(value: Any, *, label: str, source: str) -> CodedConcept:
    if not isinstance(value, dict):
        raise LabelSchemeError(f"{label}: 'code' must be a table {{scheme, value, meaning}}", path=source)
    unknown = sorted(set(value) - set(_CODE_FIELDS))
    if unknown:
        raise LabelSchemeError(f"{label}: unknown code field {_quoted(unknown)}", path=source)
    for field in _CODE_FIELDS:
        if not (isinstance(value.get(field), str) and value[field]):
            raise LabelSchemeError(f"{label}: code field '{field}' must be a non-empty string", path=source)
    return CodedConcept(scheme=value["scheme"], value=value["value"], meaning=value["meaning"])


def _check_hierarchy(structures: Mapping[str, Structure], *, path: str | None) -> None:
    """Parents exist, form no cycle, and a bilateral parent has only bilateral children."""
    for structure in structures.values():
        if structure.parent is not None and structure.parent not in structures:
            raise LabelSchemeError(
                f"structure '{structure.key}': parent '{structure.parent}' does not exist", path=path
            )
    for key in structures:
        chain = [key]
        parent = structures[key].parent
        while parent is not None:
            if parent in chain:
                cycle = [*chain[chain.index(parent) :], parent]
                raise LabelSchemeError(f"structures form a cycle: {' -> '.join(cycle)}", path=path)
            chain.append(parent)
            parent = structures[parent].parent
    for structure in structures.values():
        parent = structures[structure.parent] if structure.parent is not None else None
        if parent is not None and parent.bilateral and not structure.bilateral:
            raise LabelSchemeError(
                f"structure '{structure.key}' is not bilateral but its parent '{parent.key}' is",
                path=path,
            )


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(f"'{name}'" for name in names)
