"""Per-structure and per-slice quality of a muscle label map, from its anatomy alone (a first version).

For every muscle structure and side of the label map's scheme, and every slice (index along the label grid's
third axis) inside the structure's extent (first to last labelled slice): a slice where it is missing, a
slice whose area is far below that of its neighbours, and a slice where it falls apart into fragments. A
slice's score is the lowest of its signals' scores; a structure's score falls with the share of its slices
flagged. Thresholds are the module constants below (to be replaced by calibrated data).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from paraspinal.anatomy import load_registry
from paraspinal.io import Image, LabelMap
from paraspinal.quality.assessment import Assessment, StructureQuality, Thresholds, status_of

__all__ = ["assess_muscles"]

THRESHOLDS = Thresholds(ok=0.7, fail=0.3)
MUSCLE_CATEGORIES = ("muscle", "muscle_group")
NEIGHBOUR_SLICES = 2  # slices either side whose median area a slice is compared with
SMALL_AREA_RATIO = 0.4  # area below this share of the neighbours' median: review
FRAGMENT_MIN_SHARE = 0.1  # a piece counts as a fragment when it holds at least this share of the slice's area
FRAGMENT_MIN_VOXELS = 10
SCORE_MISSING = 0.2  # fail
SCORE_SMALL = 0.5  # review
SCORE_FRAGMENTS = 0.6  # review
FLAGGED_SHARE_FAIL = 0.5  # a structure with half its slices flagged scores 0


def assess_muscles(*, label_map: LabelMap, image: Image) -> tuple[StructureQuality, ...]:
    """One :class:`StructureQuality` per muscle structure and side of ``label_map``'s scheme (``image``: the
    image it was drawn on, on its grid; unused by this anatomy-only version)."""
    registry = load_registry()
    labels = np.asarray(label_map.labels.array)
    groups: dict[tuple[str, str], list[int]] = {}
    for value in label_map.scheme.values:
        entry = label_map.scheme.entry(value)
        if entry.structure in registry and registry[entry.structure].category in MUSCLE_CATEGORIES:
            groups.setdefault((entry.structure, entry.side), []).append(value)
    return tuple(
        _structure_quality(structure, side, np.isin(labels, values)) for (structure, side), values in groups.items()
    )


def _structure_quality(structure: str, side: str, mask: np.ndarray) -> StructureQuality:
    areas = mask.sum(axis=(0, 1)) if mask.ndim == 3 else np.array([int(mask.sum())])
    present = np.flatnonzero(areas)
    if present.size == 0:
        reason = "not labelled on any slice"
        return StructureQuality(structure, side, Assessment("fail", 0.0, (reason,)))
    first, last = int(present[0]), int(present[-1])
    slices = {k: _slice_assessment(mask[..., k] if mask.ndim == 3 else mask, areas, k) for k in range(first, last + 1)}
    flagged = [k for k, a in slices.items() if a.status != "ok"]
    share = len(flagged) / len(slices)
    score = float(max(0.0, 1.0 - share / FLAGGED_SHARE_FAIL))
    reasons = (f"{len(flagged)} of {len(slices)} slices flagged ({100 * share:.0f} %)",) if flagged else ()
    return StructureQuality(structure, side, Assessment(status_of(score, THRESHOLDS), score, reasons), slices)


def _slice_assessment(plane: np.ndarray, areas: np.ndarray, k: int) -> Assessment:
    found: list[tuple[float, str]] = []
    area = int(areas[k])
    if area == 0:
        found.append((SCORE_MISSING, f"missing on slice {k} inside the structure's extent"))
    else:
        lo, hi = max(0, k - NEIGHBOUR_SLICES), min(areas.size, k + NEIGHBOUR_SLICES + 1)
        near = [int(areas[j]) for j in range(lo, hi) if j != k and areas[j] > 0]
        if near and area < SMALL_AREA_RATIO * float(np.median(near)):
            found.append((SCORE_SMALL, f"area {area} voxels, {100 * area / np.median(near):.0f} % of its neighbours'"))
        components, n = ndimage.label(plane)
        if n > 1:
            sizes = np.bincount(components.ravel())[1:]
            pieces = int(np.sum((sizes >= FRAGMENT_MIN_VOXELS) & (sizes >= FRAGMENT_MIN_SHARE * area)))
            if pieces > 1:
                found.append((SCORE_FRAGMENTS, f"{pieces} separate pieces on slice {k}"))
    if not found:
        return Assessment("ok", 1.0)
    score = min(s for s, _ in found)
    return Assessment(status_of(score, THRESHOLDS), score, tuple(r for _, r in found))
