"""Per-slice and per-structure signals that predict a wrong muscle segmentation (inputs to :mod:`.muscle`).

A slice is an index along the label grid's third axis; positions are world mm (RAS+: +x = patient right,
+y = anterior), areas mm². Every signal is >= 0 and 0 means "nothing unusual". Confidence signals (``margin``,
``mirror_agreement`` maps of a model's label map) are 0 when the map is absent.

Slice signals of one structure/side on slice ``k`` (``k`` inside the label map's extent: from the first to the
last slice with any label, so a structure lost on one side or on a few slices is seen as missing there):

- ``missing``: 1 when the structure has no voxel on the slice.
- ``area_drop``: log2 of (median area of the neighbouring slices, +-2) over the slice's area, when below.
- ``lr_asym``: |log2| of the structure's area over its other side's on the slice.
- ``low_margin``: share of the structure's voxels whose top-1 minus top-2 probability is below 0.5.
- ``margin_deficit``: 1 - mean margin inside the structure.
- ``mirror_disagreement``: 1 - mean plain/mirrored agreement inside the structure.
- ``fragments``: share of the slice's area outside its largest 2-D component.
- ``intensity_z``: |robust z| of the slice's median intensity against all of the structure's voxels.
- ``outlier_fraction``: share of the slice's voxels more than 3 robust SDs from the structure's median.
- ``offset_cm``: in-plane distance (cm) of the slice's centroid from the median of its neighbours' (+-3).
- ``position_cm``: in-plane distance (cm) of the slice's centroid from the structure's median centroid.
- ``wrong_side_cm``: how far (cm) the centroid lies on the other side of the case's midline.
- ``mf_lateral_cm``: how far (cm) the multifidus centroid lies lateral to the erector spinae's (same side).
- ``mf_anterior_cm``: how far (cm) the multifidus centroid lies anterior to the erector spinae's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from paraspinal.io import Image, LabelMap
from paraspinal.preprocessing.intensity import foreground_box

__all__ = [
    "CONFIDENCE_FEATURES",
    "SLICE_FEATURES",
    "STRUCTURE_FEATURES",
    "StructureSignals",
    "muscle_signals",
    "structure_features",
]

SLICE_FEATURES = (
    "missing",
    "area_drop",
    "lr_asym",
    "low_margin",
    "margin_deficit",
    "mirror_disagreement",
    "fragments",
    "intensity_z",
    "outlier_fraction",
    "offset_cm",
    "position_cm",
    "wrong_side_cm",
    "mf_lateral_cm",
    "mf_anterior_cm",
)
# whole-structure signals: slice risks summarised, plus 3-D ones
STRUCTURE_FEATURES = (
    "slice_risk_mean",
    "slice_risk_max",
    "missing_fraction",
    "fragments_3d",
    "volume_asym",
    "margin_deficit",
    "mirror_disagreement",
)
CONFIDENCE_FEATURES = frozenset({"low_margin", "margin_deficit", "mirror_disagreement"})
_LOW_MARGIN = 0.5
_CLIP = 6.0  # every signal is clipped to [0, _CLIP]
_OPPOSITE = {"left": "right", "right": "left"}


@dataclass
class StructureSignals:
    """One structure on one side: its label values, its per-slice signals and facts (for reasons)."""

    structure: str
    side: str
    values: tuple[int, ...]
    slices: dict[int, dict[str, float]] = field(default_factory=dict)
    facts: dict[int, dict[str, float]] = field(default_factory=dict)
    volume_mm3: float = 0.0
    fragments_3d: float = 0.0
    margin_deficit: float = 0.0
    mirror_disagreement: float = 0.0


def _groups(label_map: LabelMap) -> list[tuple[str, str, tuple[int, ...]]]:
    found: dict[tuple[str, str], list[int]] = {}
    for value, entry in label_map.scheme.labels.items():
        found.setdefault((entry.structure, entry.side), []).append(value)
    return [(s, side, tuple(v)) for (s, side), v in found.items()]


def _largest_share(mask: np.ndarray) -> float:
    """Share of ``mask`` outside its largest component (0 for an empty or one-piece mask)."""
    components, n = ndimage.label(mask)
    if n <= 1:
        return 0.0
    sizes = np.bincount(components.ravel())[1:]
    return float(1.0 - sizes.max() / sizes.sum())


def _clip(value: float) -> float:
    return float(min(max(value, 0.0), _CLIP)) if np.isfinite(value) else _CLIP


def muscle_signals(label_map: LabelMap, image: Image) -> list[StructureSignals]:
    """The slice signals of every structure/side of ``label_map`` (``image``: intensities on its grid)."""
    box = foreground_box(label_map.array, threshold=0, margin_px=1)  # every signal lives inside the labels' box
    offset = np.array([box[0].start, box[1].start], dtype=np.float64)
    labels = label_map.array[box]
    intensity = np.asarray(image.array[box], dtype=np.float32)
    margin = label_map.confidence.get("margin")
    agreement = label_map.confidence.get("mirror_agreement")
    margin_a = None if margin is None else margin.array[box]
    agree_a = None if agreement is None else agreement.array[box]
    affine = label_map.affine
    spacing = label_map.labels.spacing_mm
    pixel_mm2 = label_map.labels.voxel_volume_mm3 / spacing[2]
    nk = labels.shape[2]
    groups = _groups(label_map)
    masks = {(s, side): np.isin(labels, values) for s, side, values in groups}

    # per group and slice: area, centroid (world x, y), intensity median
    area = {key: np.zeros(nk) for key in masks}
    centroid = {key: np.full((nk, 2), np.nan) for key in masks}
    for key, mask in masks.items():
        for k in range(nk):
            ij = np.nonzero(mask[:, :, k])
            if len(ij[0]) == 0:
                continue
            area[key][k] = len(ij[0]) * pixel_mm2
            world = affine[:3, :3] @ np.array([ij[0].mean() + offset[0], ij[1].mean() + offset[1], k]) + affine[:3, 3]
            centroid[key][k] = world[:2]
    midline = _midline(centroid)
    results: list[StructureSignals] = []
    for structure, side, values in groups:
        key = (structure, side)
        mask = masks[key]
        other = masks.get((structure, _OPPOSITE.get(side, "")))
        other_key = (structure, _OPPOSITE.get(side, ""))
        present = np.any([a > 0 for a in area.values()], axis=0)  # the extent: slices with any label
        out = StructureSignals(structure, side, values)
        out.volume_mm3 = float(mask.sum() * label_map.labels.voxel_volume_mm3)
        if not present.any():
            results.append(out)
            continue
        inside = intensity[mask]
        med = float(np.median(inside)) if inside.size else 0.0
        mad = float(1.4826 * np.median(np.abs(inside - med))) if inside.size else 0.0
        mad = max(mad, 1e-3 * max(abs(med), 1.0))
        if mask.any():
            out.fragments_3d = _largest_share(mask)
            if margin_a is not None:
                out.margin_deficit = float(1.0 - margin_a[mask].mean())
            if agree_a is not None:
                out.mirror_disagreement = float(1.0 - agree_a[mask].mean())
        ks = np.nonzero(present)[0]
        median_centroid = np.nanmedian(centroid[key], axis=0) if (area[key] > 0).any() else None
        for k in range(int(ks.min()), int(ks.max()) + 1):
            s = dict.fromkeys(SLICE_FEATURES, 0.0)
            facts: dict[str, float] = {"area_mm2": float(area[key][k])}
            a = area[key][k]
            near = [area[key][j] for j in range(max(0, k - 2), min(nk, k + 3)) if j != k]
            ref = float(np.median(near)) if near else a
            facts["neighbour_area_mm2"] = ref
            eps = 4.0 * pixel_mm2
            s["missing"] = 0.0 if a > 0 else 1.0
            s["area_drop"] = _clip(np.log2((ref + eps) / (a + eps)))
            if other is not None:
                facts["other_area_mm2"] = float(area[other_key][k])
                s["lr_asym"] = _clip(abs(np.log2((a + eps) / (area[other_key][k] + eps))))
            m = mask[:, :, k]
            if a > 0:
                if margin_a is not None:
                    mk = margin_a[:, :, k][m]
                    s["low_margin"] = float((mk < _LOW_MARGIN).mean())
                    s["margin_deficit"] = float(1.0 - mk.mean())
                    facts["margin"] = float(mk.mean())
                if agree_a is not None:
                    s["mirror_disagreement"] = float(1.0 - agree_a[:, :, k][m].mean())
                s["fragments"] = _largest_share(m)
                vals = intensity[:, :, k][m]
                z = (float(np.median(vals)) - med) / mad
                facts["intensity_z"] = z
                s["intensity_z"] = _clip(abs(z))
                s["outlier_fraction"] = float((np.abs(vals - med) > 3.0 * mad).mean())
                c = centroid[key][k]
                around = [centroid[key][j] for j in range(max(0, k - 3), min(nk, k + 4)) if j != k and area[key][j] > 0]
                if around:
                    s["offset_cm"] = _clip(float(np.linalg.norm(c - np.median(around, axis=0))) / 10.0)
                if median_centroid is not None:
                    s["position_cm"] = _clip(float(np.linalg.norm(c - median_centroid)) / 10.0)
                if midline is not None and side in _OPPOSITE:
                    lateral = (c[0] - midline) * (1.0 if side == "right" else -1.0)
                    facts["lateral_mm"] = float(lateral)
                    s["wrong_side_cm"] = _clip(-lateral / 10.0)
                    _pair_geometry(s, structure, side, k, centroid, midline)
            out.slices[k] = s
            out.facts[k] = facts
        results.append(out)
    return results


def _midline(centroid: dict[tuple[str, str], np.ndarray]) -> float | None:
    """The case's midline x (mm): median over slices of the mean of the left and right centroids."""
    lefts = [c[:, 0] for (_, side), c in centroid.items() if side == "left"]
    rights = [c[:, 0] for (_, side), c in centroid.items() if side == "right"]
    if not lefts or not rights:
        return None
    left_x, right_x = _mean_present(lefts), _mean_present(rights)
    both = np.isfinite(left_x) & np.isfinite(right_x)
    mids = 0.5 * (left_x[both] + right_x[both])
    return float(np.median(mids)) if mids.size else None


def _mean_present(rows: list[np.ndarray]) -> np.ndarray:
    """Mean over ``rows`` of the finite values per column (NaN where none is)."""
    stack = np.stack(rows)
    finite = np.isfinite(stack)
    count = finite.sum(axis=0)
    total = np.where(finite, stack, 0.0).sum(axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _pair_geometry(
    s: dict[str, float],
    structure: str,
    side: str,
    k: int,
    centroid: dict[tuple[str, str], np.ndarray],
    midline: float,
) -> None:
    """Multifidus medial to erector spinae, and not anterior to it (same side, slice ``k``)."""
    mf = centroid.get(("multifidus", side))
    es = centroid.get(("erector_spinae", side))
    if structure not in ("multifidus", "erector_spinae") or mf is None or es is None:
        return
    if not (np.isfinite(mf[k]).all() and np.isfinite(es[k]).all()):
        return
    s["mf_lateral_cm"] = _clip((abs(mf[k][0] - midline) - abs(es[k][0] - midline)) / 10.0)
    s["mf_anterior_cm"] = _clip((mf[k][1] - es[k][1]) / 10.0)


def structure_features(signals: StructureSignals, slice_risk: dict[int, float], other_volume_mm3: float | None) -> dict:
    """Whole-structure signals from its slice risks (probability of a bad slice) and its 3-D facts."""
    risks = np.array(list(slice_risk.values())) if slice_risk else np.zeros(1)
    missing = [s["missing"] for s in signals.slices.values()]
    volume_asym = 0.0
    if other_volume_mm3 is not None:
        eps = 1000.0
        volume_asym = _clip(abs(np.log2((signals.volume_mm3 + eps) / (other_volume_mm3 + eps))))
    return {
        "slice_risk_mean": float(risks.mean()),
        "slice_risk_max": float(risks.max()),
        "missing_fraction": float(np.mean(missing)) if missing else 1.0,
        "fragments_3d": signals.fragments_3d,
        "volume_asym": volume_asym,
        "margin_deficit": signals.margin_deficit,
        "mirror_disagreement": signals.mirror_disagreement,
    }
