"""The common granularity of two label schemes, through the anatomy registry's hierarchy.

Two models rarely label the same structures: LPM_Segmentator (``lpm4``) separates erector spinae
and multifidus on each side, TotalSegmentator (``total_mr``) has one ``autochthon`` label per side.
Both map their values to registry structures and patient sides, and the registry nests erector
spinae and multifidus under ``autochthon``, so the two can be compared as autochthon per side.

Rules
-----
* Two labels *meet* when one's structure is the other's or lies under it in the registry, and their
  sides are compatible: equal, or one of them ``none`` (a scheme that does not separate sides).
* Labels that meet, directly or through others, form one group (connected components, labels of
  both schemes). A group's structure is the nearest registry structure containing all of its
  labels' structures; its side is their common side, or ``none`` when the group spans both sides.
  Groups whose structures meet are merged, and any label of either scheme under a group's structure
  (compatible side) joins it, until nothing changes; same-side labels so stay separate per side.
* Labels that meet nothing in the other scheme (``total_mr``'s liver against ``lpm4``) are left
  out: the merged maps set them to background, and :attr:`CommonGranularity.unmatched_a` /
  ``unmatched_b`` list them.
* Merged label values are 1..n in the order of each group's smallest value in scheme A, so a scheme
  compared with itself keeps its values and names (identity).

Pure numpy; no image geometry is touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from paraspinal.anatomy import AnatomyRegistry, LabelEntry, LabelScheme, load_registry
from paraspinal.errors import InputError

__all__ = ["CommonGranularity", "CommonGroup", "common_granularity"]

_SIDE_WORD = {"left": "left", "right": "right"}


@dataclass(frozen=True)
class CommonGroup:
    """One label at the common level: registry structure and side, and the values it merges."""

    value: int
    name: str
    structure: str
    side: str
    values_a: tuple[int, ...]
    values_b: tuple[int, ...]


@dataclass(frozen=True)
class CommonGranularity:
    """How two schemes' label maps are merged to the level at which both can be compared."""

    scheme_a: LabelScheme
    scheme_b: LabelScheme
    groups: tuple[CommonGroup, ...]
    unmatched_a: tuple[int, ...]
    unmatched_b: tuple[int, ...]

    @property
    def scheme(self) -> LabelScheme:
        """The merged labels as a scheme (key ``A~B``), for tables and measurement."""
        labels = {
            g.value: LabelEntry(value=g.value, name=g.name, structure=g.structure, side=g.side)  # type: ignore[arg-type]
            for g in self.groups
        }
        return LabelScheme(
            key=f"{self.scheme_a.key}~{self.scheme_b.key}",
            name=f"common labels of {self.scheme_a.key} and {self.scheme_b.key}",
            description="labels of both schemes merged to the nearest common structures of the anatomy registry",
            reference="",
            labels=labels,
            source=f"{self.scheme_a.source} + {self.scheme_b.source}",
        )

    @property
    def is_identity(self) -> bool:
        """True when every value of A maps to itself (nothing merged, nothing dropped)."""
        return not self.unmatched_a and all(g.values_a == (g.value,) for g in self.groups)

    def merge_a(self, labels: np.ndarray) -> np.ndarray:
        """Scheme A's label map at the common level (unmatched and unknown values -> 0)."""
        return _relabel(labels, {v: g.value for g in self.groups for v in g.values_a})

    def merge_b(self, labels: np.ndarray) -> np.ndarray:
        """Scheme B's label map at the common level (unmatched and unknown values -> 0)."""
        return _relabel(labels, {v: g.value for g in self.groups for v in g.values_b})

    def table(self) -> list[dict[str, object]]:
        """One JSON-ready row per common label: value, name, structure, side, A's and B's values."""
        return [
            {
                "value": g.value,
                "name": g.name,
                "structure": g.structure,
                "side": g.side,
                "scheme_a": self.scheme_a.key,
                "values_a": list(g.values_a),
                "scheme_b": self.scheme_b.key,
                "values_b": list(g.values_b),
            }
            for g in self.groups
        ]


def _relabel(labels: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
    array = np.asarray(labels)
    if array.dtype.kind not in "iub":
        raise InputError(f"label maps must hold integers, not {array.dtype}")
    out = np.zeros(array.shape, dtype=np.uint16)
    for source, target in mapping.items():
        out[array == source] = target
    return out


def _sides_meet(a: str, b: str) -> bool:
    return a == b or a == "none" or b == "none"


class _Groups:
    """Union-find over the labels of both schemes, keyed ("a"|"b", value)."""

    def __init__(self, keys: Sequence[tuple[str, int]]) -> None:
        self.parent = {k: k for k in keys}

    def find(self, key: tuple[str, int]) -> tuple[str, int]:
        while self.parent[key] != key:
            self.parent[key] = self.parent[self.parent[key]]
            key = self.parent[key]
        return key

    def union(self, a: tuple[str, int], b: tuple[str, int]) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        self.parent[max(ra, rb)] = min(ra, rb)
        return True

    def components(self) -> dict[tuple[str, int], list[tuple[str, int]]]:
        out: dict[tuple[str, int], list[tuple[str, int]]] = {}
        for key in self.parent:
            out.setdefault(self.find(key), []).append(key)
        return out


def _group_structure(structures: Sequence[str], registry: AnatomyRegistry) -> str | None:
    common: str | None = structures[0]
    for structure in structures[1:]:
        common = registry.common_ancestor(common, structure) if common is not None else None
    return common


def _group_side(sides: Sequence[str]) -> str:
    distinct = set(sides)
    return distinct.pop() if len(distinct) == 1 else "none"


def _meets(structure_a: str, structure_b: str, registry: AnatomyRegistry) -> bool:
    return registry.common_ancestor(structure_a, structure_b) in (structure_a, structure_b)


def common_granularity(
    scheme_a: LabelScheme, scheme_b: LabelScheme, *, registry: AnatomyRegistry | None = None
) -> CommonGranularity:
    """The common labels of ``scheme_a`` and ``scheme_b`` (see the module docstring for the rules).

    Raises InputError when no label of one scheme meets any label of the other.
    """
    registry = registry if registry is not None else load_registry()
    entries: dict[tuple[str, int], LabelEntry] = {("a", v): e for v, e in scheme_a.labels.items()}
    entries.update({("b", v): e for v, e in scheme_b.labels.items()})
    groups = _Groups(list(entries))
    a_keys = [k for k in entries if k[0] == "a"]
    b_keys = [k for k in entries if k[0] == "b"]
    for ka in a_keys:
        for kb in b_keys:
            ea, eb = entries[ka], entries[kb]
            if _sides_meet(ea.side, eb.side) and _meets(ea.structure, eb.structure, registry):
                groups.union(ka, kb)
    while True:  # close: merge groups whose structures meet, absorb labels under a group's structure
        matched = {
            root: members for root, members in groups.components().items() if {m[0] for m in members} == {"a", "b"}
        }
        summary = {
            root: (
                _group_structure([entries[m].structure for m in members], registry),
                _group_side([entries[m].side for m in members]),
            )
            for root, members in matched.items()
        }
        changed = False
        roots = list(summary)
        for i, r1 in enumerate(roots):
            for r2 in roots[i + 1 :]:
                (s1, d1), (s2, d2) = summary[r1], summary[r2]
                if None not in (s1, s2) and _sides_meet(d1, d2) and _meets(s1, s2, registry):  # type: ignore[arg-type]
                    changed |= groups.union(r1, r2)
        for root, (structure, side) in summary.items():
            if structure is None:
                continue
            under = {structure, *registry.descendants(structure)}
            for key, entry in entries.items():
                if entry.structure in under and _sides_meet(entry.side, side):
                    changed |= groups.union(root, key)
        if not changed:
            break
    out_groups = []
    for members in matched.values():
        structure, side = (
            _group_structure([entries[m].structure for m in members], registry),
            _group_side([entries[m].side for m in members]),
        )
        if structure is None:  # labels met through different trees: cannot be named by one structure
            continue
        values_a = tuple(sorted(v for s, v in members if s == "a"))
        values_b = tuple(sorted(v for s, v in members if s == "b"))
        out_groups.append((values_a, values_b, structure, side))
    if not out_groups:
        raise InputError(
            f"label schemes '{scheme_a.key}' and '{scheme_b.key}' have no structure in common "
            "(no label of one lies in, or contains, a label of the other in the anatomy registry)"
        )
    out_groups.sort(key=lambda g: g[0][0])
    final = tuple(
        CommonGroup(
            value=i,
            name=_group_name(structure, side, values_a, scheme_a, registry),
            structure=structure,
            side=side,
            values_a=values_a,
            values_b=values_b,
        )
        for i, (values_a, values_b, structure, side) in enumerate(out_groups, start=1)
    )
    used_a = {v for g in final for v in g.values_a}
    used_b = {v for g in final for v in g.values_b}
    return CommonGranularity(
        scheme_a=scheme_a,
        scheme_b=scheme_b,
        groups=final,
        unmatched_a=tuple(v for v in scheme_a.values if v not in used_a),
        unmatched_b=tuple(v for v in scheme_b.values if v not in used_b),
    )


def _group_name(
    structure: str, side: str, values_a: tuple[int, ...], scheme_a: LabelScheme, registry: AnatomyRegistry
) -> str:
    """Scheme A's own name when the group is one of A's labels unchanged, else side + registry name."""
    if len(values_a) == 1:
        entry = scheme_a.labels[values_a[0]]
        if entry.structure == structure and entry.side == side:
            return entry.name
    name = registry[structure].name
    return f"{_SIDE_WORD[side]} {name}" if side in _SIDE_WORD else name
