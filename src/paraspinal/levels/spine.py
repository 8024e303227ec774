"""Disc planes of a spine label map (any orientation): from labelled discs, else from vertebral bodies.

:func:`spine_levels_from_labels` is the entry point. A label map whose scheme names discs by level
(SPIDER, TotalSpineSeg, ``ivd_t2``) gives each disc's centre (centroid of its largest component)
and normal (its least-variance principal axis, signed superior) directly. Otherwise the vertebral
bodies are found and named from their order and level votes (:mod:`paraspinal.levels.naming`),
and the discs are placed geometrically between them (:mod:`paraspinal.levels.spine_geometry`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy import ndimage

from paraspinal.anatomy import AnatomyRegistry, load_registry
from paraspinal.errors import LevelsError
from paraspinal.io.image import Image
from paraspinal.io.label_map import LabelMap
from paraspinal.levels.naming import DEFAULT_MIN_BODY_MM3, FRAGMENT_SHARE, SPINE_NAMES, NamedBodies, name_bodies
from paraspinal.levels.spine_geometry import DiscGeometry, VertebralBody, disc_plane, discs_between, voxel_points_mm
from paraspinal.levels.table import level_sort_key, normalise_level_name

METHOD_DISCS = "labelled discs"
METHOD_BODIES = "vertebral bodies"
# below this margin between the best and the next numbering, names were once flagged "uncertain"; the calibrated
# levels quality (paraspinal.quality.levels) replaced that warning (it fired on most correct namings too)
LOW_NAMING_CONFIDENCE = 0.5

_NEXT = {SPINE_NAMES[i]: SPINE_NAMES[i + 1] for i in range(len(SPINE_NAMES) - 1)}


@dataclass(frozen=True)
class SpineLevels:
    """The discs (cranial to caudal) and named bodies of one spine label map, in world mm.

    Attributes:
        discs: disc planes, cranial to caudal.
        bodies: named vertebral bodies (empty when the discs were labelled).
        method: :data:`METHOD_DISCS` or :data:`METHOD_BODIES`.
        naming_confidence: overall confidence of the body names (0-1; 1 for labelled discs).
        source: the label map's source.
        warnings: notes for the user (components discarded, names counted from the sacrum, ...).
    """

    discs: tuple[DiscGeometry, ...]
    bodies: tuple[VertebralBody, ...]
    method: str
    naming_confidence: float
    source: str
    warnings: tuple[str, ...] = ()
    named: NamedBodies | None = field(default=None, compare=False, repr=False)  # the naming step's result

    def disc(self, name: str) -> DiscGeometry:
        """The disc called ``name`` (e.g. ``"L4/L5"``); KeyError if absent."""
        for disc in self.discs:
            if disc.name == name:
                return disc
        raise KeyError(name)

    def body(self, name: str) -> VertebralBody:
        """The vertebral body (or sacrum, ``"S1"``) called ``name``; KeyError if absent."""
        for body in self.bodies:
            if body.name == name:
                return body
        raise KeyError(name)

    def to_frame(self) -> pd.DataFrame:
        """One row per disc: level, centre (mm), cranial unit normal, confidence, estimated."""
        return pd.DataFrame(
            {
                "level": [d.name for d in self.discs],
                **{f"centre_{a}_mm": [d.centre_mm[i] for d in self.discs] for i, a in enumerate("xyz")},
                **{f"normal_{a}": [d.normal[i] for d in self.discs] for i, a in enumerate("xyz")},
                "confidence": [d.confidence for d in self.discs],
                "estimated": [d.estimated for d in self.discs],
            }
        )


#: Supernumerary vertebrae some models name (SPINEPS, VerSe numbering), which the level naming does not count.
TRANSITIONAL_LEVELS = ("T13", "L6")
LUMBAR_COUNT = 5


def transitional_note(lumbar_type_bodies: int) -> str:
    """The warning for more lumbar-type bodies (by their own labels) than there are lumbar vertebrae."""
    return (
        f"{lumbar_type_bodies} bodies carry lumbar labels where the model also knows thoracic ones: transitional "
        "anatomy (a lumbarised S1, a sixth lumbar vertebra) or a thoracic body taken for lumbar; the names are "
        "counted by position and may be one level off; check the QC image"
    )


def spine_levels_from_labels(
    label_map: LabelMap,
    *,
    registry: AnatomyRegistry | None = None,
    min_body_mm3: float = DEFAULT_MIN_BODY_MM3,
) -> SpineLevels:
    """Disc planes of a spine label map; see the module docstring.

    Raises :class:`LevelsError` when the map holds neither named discs nor vertebral bodies that
    can be named.
    """
    labels, scheme = label_map.labels, label_map.scheme
    registry = registry or load_registry()
    present = {int(v) for v in np.unique(labels.array)} & set(scheme.values)
    named_discs = {
        v: normalise_level_name(registry[scheme.entry(v).structure].level or "")
        for v in present
        if registry[scheme.entry(v).structure].category == "disc" and registry[scheme.entry(v).structure].level
    }
    transitional = sorted(
        {level for v in present if (level := registry[scheme.entry(v).structure].level) in TRANSITIONAL_LEVELS}
    )
    if named_discs:
        found = _from_disc_labels(labels, named_discs)
        if not transitional:
            return found
        note = (
            f"the labels name transitional vertebra(e) {', '.join(transitional)}: the discs keep the model's own "
            "names; check the QC image"
        )
        return replace(found, warnings=(*found.warnings, note))
    named = name_bodies(labels, scheme=scheme, registry=registry, min_body_mm3=min_body_mm3)
    discs, axes = discs_between(named.names, named.voxels, named.kinds, named.confidences, next_name=_NEXT)
    voxel_mm3 = labels.voxel_volume_mm3
    bodies = tuple(
        VertebralBody(
            name=name,
            centroid_mm=tuple(float(c) for c in voxels.centroid),  # type: ignore[arg-type]
            axis=tuple(float(c) for c in axis),  # type: ignore[arg-type]
            volume_mm3=len(voxels.points_mm) * voxel_mm3,
            confidence=conf,
            kind="sacrum" if kind == "sacrum" else "body",
        )
        for name, voxels, kind, conf, axis in zip(
            named.names, named.voxels, named.kinds, named.confidences, axes, strict=True
        )
    )
    warnings = []
    if named.discarded:
        warnings.append(
            f"{named.discarded} vertebra fragment(s) ignored (under {min_body_mm3:g} mm³ or "
            f"{FRAGMENT_SHARE:.0%} of the largest body)"
        )
    if transitional:
        warnings.append(
            f"the labels name transitional vertebra(e) {', '.join(transitional)}: paraspinal's level naming counts "
            "five lumbar vertebrae, so these levels are named by position and can differ from the model's own "
            "names; check the QC image"
        )
    if named.lumbar_type_bodies is not None and named.lumbar_type_bodies > LUMBAR_COUNT:
        warnings.append(transitional_note(named.lumbar_type_bodies))
    if named.counted_from_sacrum:
        warnings.append("vertebrae named by counting up from the sacrum")
    elif named.kinds and named.kinds[-1] == "sacrum":
        warnings.append("the lowest vertebra-labelled piece was taken as the top of the sacrum (S1)")
    if any(d.estimated for d in discs):
        warnings.append(
            "L5/S1 estimated from L5's lower endplate and the L4/L5 wedge (no sacrum labelled): its plane is less "
            "certain than the others'"
        )
    if not discs:
        raise LevelsError(
            f"only one vertebral body ({named.names[0]}) and no sacrum: no disc can be placed", path=labels.source
        )
    return SpineLevels(
        discs=tuple(discs),
        bodies=bodies,
        method=METHOD_BODIES,
        naming_confidence=named.naming_confidence,
        source=labels.source,
        warnings=tuple(warnings),
        named=named,
    )


def _from_disc_labels(labels: Image, named_discs: dict[int, str]) -> SpineLevels:
    """Disc planes from labelled discs: each level's largest face-connected component."""
    by_level: dict[str, list[int]] = {}
    for value, level in named_discs.items():
        by_level.setdefault(level, []).append(value)
    array = np.asarray(labels.array)
    boxes = ndimage.find_objects(array.astype(np.int32, copy=False), max_label=max(named_discs))
    discs = []
    for level, values in by_level.items():
        found = [boxes[v - 1] for v in values if boxes[v - 1] is not None]
        box = tuple(slice(min(b[a].start for b in found), max(b[a].stop for b in found)) for a in range(3))
        mask = np.isin(array[box], values)
        components, n = ndimage.label(mask)
        if n > 1:
            sizes = np.bincount(components.ravel())[1:]
            mask = components == int(np.argmax(sizes)) + 1
        ijk = np.argwhere(mask).astype(np.float64) + np.array([b.start for b in box], dtype=np.float64)
        centre, normal = disc_plane(voxel_points_mm(ijk, labels.affine))
        discs.append(
            DiscGeometry(
                name=level,
                centre_mm=(float(centre[0]), float(centre[1]), float(centre[2])),
                normal=(float(normal[0]), float(normal[1]), float(normal[2])),
                confidence=1.0,
            )
        )
    discs.sort(key=lambda d: level_sort_key(d.name))
    return SpineLevels(discs=tuple(discs), bodies=(), method=METHOD_DISCS, naming_confidence=1.0, source=labels.source)
