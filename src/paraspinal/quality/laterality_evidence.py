"""Evidence for the patient's sides from anatomy in view: organ labels, CT liver parenchyma, Dixon liver.

Every finder returns :class:`Cue` s: an anatomical fact (``liver`` on the header's ``right``, ...) with what
was measured. Positions are world coordinates (RAS+ mm, +x = the header's patient right) relative to the
spine midline, the mean x of the label map's sided muscles (their left and right halves balance, whichever
names they carry). A cue's ``agrees`` says whether the header's side is the anatomical one (the liver and
gallbladder lie right, the spleen and stomach left, the aorta left of the inferior vena cava).
Thresholds come from ``data/laterality.toml`` (:func:`load_laterality_settings`).
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

import numpy as np

from paraspinal.anatomy import load_registry
from paraspinal.io import LabelMap

__all__ = [
    "ANATOMICAL_SIDE",
    "Cue",
    "SpineFrame",
    "ct_liver_cues",
    "dixon_liver_cues",
    "load_laterality_settings",
    "organ_label_cues",
    "spine_frame",
]

ANATOMICAL_SIDE: Mapping[str, str] = {"liver": "right", "gallbladder": "right", "spleen": "left", "stomach": "left"}
_SECTIONS: Mapping[str, tuple[str, ...]] = {
    "labels": ("min_organ_volume_cm3", "min_offset_mm", "min_vessel_separation_mm", "min_vessel_slices"),
    "ct": (
        "hu_min",
        "hu_max",
        "smoothing_mm",
        "window_mm",
        "max_local_std_hu",
        "surface_margin_mm",
        "lateral_margin_mm",
        "min_liver_volume_cm3",
        "min_ratio",
        "top_slices",
    ),
    "dixon": (
        "lean_water_over_fat",
        "bias_field_mm",
        "smoothing_mm",
        "window_mm",
        "max_local_std_rel",
        "intensity_bins",
        "erode_mm",
        "surface_margin_mm",
        "lateral_margin_mm",
        "min_area_cm2",
        "min_ratio",
        "min_slices",
        "top_slices",
    ),
}


@dataclass(frozen=True)
class Cue:
    """One piece of evidence: ``what`` (e.g. ``liver``) lies on the header's ``side``; ``agrees`` when that is
    its anatomical side; ``measured``: the numbers behind it (mm, cm³, HU, ratios); ``strength`` in [0, 1]."""

    what: str
    side: str
    agrees: bool
    measured: Mapping[str, float | int | str]
    strength: float

    def describe(self) -> str:
        numbers = ", ".join(f"{k} {v}" for k, v in self.measured.items())
        return f"{self.what} on the header's {self.side} ({numbers})"


@dataclass(frozen=True)
class SpineFrame:
    """The spine's place in world mm: midline x and mean y of the sided muscles, and the grid's axes
    (``x_mm``, ``y_mm``: world coordinates of every voxel, axial slices along the last array axis)."""

    midline_x_mm: float
    muscle_y_mm: float
    x_mm: np.ndarray
    y_mm: np.ndarray
    muscles: np.ndarray
    spacing_mm: tuple[float, float, float]
    cranial_first: tuple[int, ...]


@functools.cache
def load_laterality_settings() -> Mapping[str, Mapping[str, float]]:
    """The bundled laterality thresholds, every section and key checked (a ``ValueError`` names a gap)."""
    resource = resources.files("paraspinal.quality").joinpath("data", "laterality.toml")
    document = tomllib.loads(resource.read_text(encoding="utf-8"))
    settings: dict[str, dict[str, float]] = {}
    for section, keys in _SECTIONS.items():
        values = document.get(section)
        if not isinstance(values, dict) or set(values) != set(keys):
            raise ValueError(f"{resource}: [{section}] needs exactly {', '.join(keys)}")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in values.values()):
            raise ValueError(f"{resource}: [{section}] values must be non-negative numbers")
        settings[section] = {k: float(v) for k, v in values.items()}
    return settings


def axial_last(array: np.ndarray, affine: np.ndarray, slice_axis: int) -> tuple[np.ndarray, np.ndarray]:
    """``array`` with its slice axis moved last and the affine to match."""
    order = [a for a in range(3) if a != slice_axis] + [slice_axis]
    moved = affine.copy()
    moved[:3, :3] = affine[:3, order]
    return np.transpose(array, order), moved


def spine_frame(label_map: LabelMap, *, slice_axis: int) -> SpineFrame | None:
    """The frame from the label map's sided muscles (``None`` when it has none on both sides)."""
    registry = load_registry()
    sided = [
        v
        for v, e in label_map.scheme.labels.items()
        if e.side in ("left", "right") and registry[e.structure].category in ("muscle", "muscle_group")
    ]
    labels, affine = axial_last(np.asarray(label_map.array), label_map.affine, slice_axis)
    muscles = np.isin(labels, sided)
    sides = {label_map.scheme.labels[int(v)].side for v in np.unique(labels[muscles])}
    if sides != {"left", "right"}:
        return None
    i, j, k = (axis.astype(np.float32) for axis in np.ogrid[: labels.shape[0], : labels.shape[1], : labels.shape[2]])
    x = (affine[0, 0] * i + affine[0, 1] * j + affine[0, 2] * k + np.float32(affine[0, 3])).astype(np.float32)
    y = (affine[1, 0] * i + affine[1, 1] * j + affine[1, 2] * k + np.float32(affine[1, 3])).astype(np.float32)
    spacing = tuple(float(s) for s in np.linalg.norm(affine[:3, :3], axis=0))
    cranial_first = tuple(int(k) for k in np.argsort(-affine[2, 2] * np.arange(labels.shape[2]), kind="stable"))
    return SpineFrame(
        float(x[muscles].mean()),
        float(y[muscles].mean()),
        x,
        y,
        muscles,
        spacing,  # type: ignore[arg-type]
        cranial_first,
    )


def _cue(what: str, dx_mm: float, measured: dict[str, float | int | str], strength: float) -> Cue:
    side = "right" if dx_mm > 0 else "left"
    return Cue(what, side, side == ANATOMICAL_SIDE[what], measured, float(np.clip(strength, 0.0, 1.0)))


def organ_label_cues(label_map: LabelMap, frame: SpineFrame, *, slice_axis: int) -> list[Cue]:
    """Cues from unsided organ labels in the label map (a TotalSegmentator ``total``/``total_mr`` map, say)."""
    limits = load_laterality_settings()["labels"]
    labels, _ = axial_last(np.asarray(label_map.array), label_map.affine, slice_axis)
    voxel_cm3 = float(np.prod(frame.spacing_mm)) / 1000.0
    cues: list[Cue] = []
    masks: dict[str, np.ndarray] = {}
    for structure in (*ANATOMICAL_SIDE, "aorta", "inferior_vena_cava"):
        values = [v for v, e in label_map.scheme.labels.items() if e.structure == structure and e.side == "none"]
        if not values:
            continue
        mask = np.isin(labels, values)
        volume = float(mask.sum()) * voxel_cm3
        if volume < limits["min_organ_volume_cm3"]:
            continue
        masks[structure] = mask
        if structure in ANATOMICAL_SIDE:
            dx = float(frame.x_mm[mask].mean()) - frame.midline_x_mm
            if abs(dx) >= limits["min_offset_mm"]:
                measured = {"centroid_from_midline_mm": round(dx, 1), "volume_cm3": round(volume, 1)}
                cues.append(_cue(structure, dx, measured, abs(dx) / (2 * limits["min_offset_mm"])))
    if "aorta" in masks and "inferior_vena_cava" in masks:
        both = [
            k
            for k in range(labels.shape[2])
            if masks["aorta"][..., k].any() and masks["inferior_vena_cava"][..., k].any()
        ]
        if len(both) >= limits["min_vessel_slices"]:
            gaps = [
                float(frame.x_mm[..., k][masks["inferior_vena_cava"][..., k]].mean())
                - float(frame.x_mm[..., k][masks["aorta"][..., k]].mean())
                for k in both
            ]
            gap = float(np.mean(gaps))
            if abs(gap) >= limits["min_vessel_separation_mm"]:
                measured = {"ivc_right_of_aorta_mm": round(gap, 1), "slices": len(both)}
                side = "right" if gap > 0 else "left"
                strength = abs(gap) / (2 * limits["min_vessel_separation_mm"])
                cues.append(Cue("inferior vena cava", side, gap > 0, measured, float(min(strength, 1.0))))
    return cues


def _local_std(smoothed: np.ndarray, window_px: tuple[int, int]) -> np.ndarray:
    from scipy import ndimage as ndi

    size = (window_px[0], window_px[1], 1)
    mean = ndi.uniform_filter(smoothed, size)
    return np.sqrt(np.maximum(ndi.uniform_filter(smoothed * smoothed, size) - mean * mean, 0.0))


def _odd(n: float) -> int:
    return max(3, round(n) | 1)


def _body_and_depth(inside: np.ndarray, spacing_mm: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Per slice: the body (holes filled) and each voxel's in-plane distance to its surface (mm)."""
    from scipy import ndimage as ndi

    body = np.zeros(inside.shape, bool)
    depth = np.zeros(inside.shape, np.float32)
    for k in range(inside.shape[2]):
        body[..., k] = ndi.binary_fill_holes(inside[..., k])
        depth[..., k] = ndi.distance_transform_edt(body[..., k], sampling=spacing_mm[:2])
    return body, depth


def ct_liver_cues(hu: np.ndarray, frame: SpineFrame) -> tuple[list[Cue], dict[str, float]]:
    """The liver on CT without organ labels: per side the largest 3-D part of homogeneous soft tissue
    (``hu_min``..``hu_max`` HU, local SD under ``max_local_std_hu``, away from the surface and the muscles).
    A cue when one side's part is at least ``min_liver_volume_cm3`` and ``min_ratio`` times the other's, and
    reaches the ``top_slices`` cranial-most slices."""
    from scipy import ndimage as ndi

    limits = load_laterality_settings()["ct"]
    sp = frame.spacing_mm
    smoothed = ndi.gaussian_filter(
        hu.astype(np.float32), (limits["smoothing_mm"] / sp[0], limits["smoothing_mm"] / sp[1], 0)
    )
    window = (_odd(limits["window_mm"] / sp[0]), _odd(limits["window_mm"] / sp[1]))
    body, depth = _body_and_depth(hu > -300, sp)
    flat = (_local_std(smoothed, window) < limits["max_local_std_hu"]) & (smoothed > limits["hu_min"])
    flat &= (smoothed < limits["hu_max"]) & body & (depth > limits["surface_margin_mm"])
    flat &= ~ndi.binary_dilation(frame.muscles, iterations=2)
    parts, n = ndi.label(flat)
    return _side_parts(parts, n, frame, limits)


def _side_parts(
    parts: np.ndarray, n: int, frame: SpineFrame, limits: Mapping[str, float]
) -> tuple[list[Cue], dict[str, float]]:
    """The liver cue from 3-D parts: the largest part per side (its voxels on that side, cm³)."""
    from scipy import ndimage as ndi

    dx = frame.x_mm - frame.midline_x_mm
    cell = float(np.prod(frame.spacing_mm)) / 1000.0
    index = np.arange(1, n + 1)
    right = ndi.sum_labels(dx > limits["lateral_margin_mm"], parts, index) * cell if n else np.zeros(1)
    left = ndi.sum_labels(dx < -limits["lateral_margin_mm"], parts, index) * cell if n else np.zeros(1)
    largest_r, largest_l = float(right.max()), float(left.max())
    measured: dict[str, float] = {"largest_right_cm3": round(largest_r, 1), "largest_left_cm3": round(largest_l, 1)}
    big, small = max(largest_r, largest_l), min(largest_r, largest_l)
    ratio = big / max(small, cell)
    if big < limits["min_liver_volume_cm3"] or ratio < limits["min_ratio"]:
        return [], measured
    liver = int(np.argmax(right if largest_r > largest_l else left)) + 1
    top = list(frame.cranial_first[: int(limits["top_slices"])])
    if not (parts[..., top] == liver).any():  # the liver reaches the top of a lumbar field of view
        measured["reaches_top"] = 0
        return [], measured
    dx_sign = 1.0 if largest_r > largest_l else -1.0
    cue_measured = {**measured, "ratio": round(ratio, 2)}
    return [_cue("liver", dx_sign, cue_measured, 1.0 - limits["min_ratio"] / ratio / 2)], measured


def _cranial_run(cranial_first: tuple[int, ...], hits: set[int], *, start_within: int) -> list[int]:
    """The slices of ``hits`` in one unbroken run that starts within the ``start_within`` cranial-most slices."""
    for start in range(min(start_within, len(cranial_first))):
        if cranial_first[start] in hits:
            run = []
            for k in cranial_first[start:]:
                if k not in hits:
                    break
                run.append(k)
            return run
    return []


def dixon_liver_cues(water: np.ndarray, fat: np.ndarray, frame: SpineFrame) -> tuple[list[Cue], dict[str, float]]:
    """The liver on a Dixon pair, slice by slice: the largest homogeneous lean part (water > ratio x fat)
    anterior of the muscles and lateral of the midline on each side. A liver slice has one side's part at
    least ``min_area_cm2`` and ``min_ratio`` times the other's; a cue needs liver slices on one side only, with
    ``min_slices`` of them in one run starting within the ``top_slices`` cranial-most slices (the liver reaches
    the top of a lumbar field of view; one-sided regions lower down, bowel or a psoas, do not)."""
    from scipy import ndimage as ndi

    limits = load_laterality_settings()["dixon"]
    sp = frame.spacing_mm
    w = water.astype(np.float32)
    upper = w > np.percentile(w, 50)
    if not upper.any():
        return [], {"liver_slices_right": 0, "liver_slices_left": 0}
    ref = float(np.percentile(w[upper], 98))
    body, depth = _body_and_depth(ndi.gaussian_filter(w, (1.0, 1.0, 0)) > 0.05 * ref, sp)
    lean = (w > limits["lean_water_over_fat"] * fat.astype(np.float32)) & body  # a ratio: no bias field in it
    # divide out the coil's slowly varying field, estimated on lean tissue only
    sigma = (limits["bias_field_mm"] / sp[0], limits["bias_field_mm"] / sp[1], 0)
    field = ndi.gaussian_filter(np.where(lean, w, 0), sigma) / np.maximum(ndi.gaussian_filter(lean * 1.0, sigma), 1e-3)
    w = np.where(field > 0, w / np.maximum(field, 1e-6), 0).astype(np.float32)
    smoothed = ndi.gaussian_filter(w, (limits["smoothing_mm"] / sp[0], limits["smoothing_mm"] / sp[1], 0))
    sd = _local_std(smoothed, (_odd(limits["window_mm"] / sp[0]), _odd(limits["window_mm"] / sp[1])))
    ref = float(np.percentile(w[lean], 98)) if lean.any() else 1.0
    flat = lean & (sd < limits["max_local_std_rel"] * ref) & (depth > limits["surface_margin_mm"])
    flat &= ~ndi.binary_dilation(frame.muscles, iterations=3)
    r = max(1, round(limits["erode_mm"] / sp[0]))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    disc = xx**2 + yy**2 <= r * r
    bins = int(limits["intensity_bins"])
    area_cm2 = sp[0] * sp[1] / 100.0
    slices: dict[str, list[int]] = {"right": [], "left": []}
    areas: dict[int, tuple[float, float]] = {}
    for k in range(w.shape[2]):
        inside = body[..., k]
        if not inside.any():
            continue
        edges = np.quantile(smoothed[..., k][inside], np.linspace(0, 1, bins + 1)[1:-1])
        classes = np.digitize(smoothed[..., k], edges)
        best = {"right": 0.0, "left": 0.0}
        dx = frame.x_mm[..., k] - frame.midline_x_mm
        dy = frame.y_mm[..., k] - frame.muscle_y_mm
        for c in range(bins):
            parts, n = ndi.label(ndi.binary_erosion(flat[..., k] & (classes == c), disc))
            if n == 0:
                continue
            index = np.arange(1, n + 1)
            area = np.bincount(parts.ravel(), minlength=n + 1)[1:] * area_cm2
            cx = ndi.mean(dx, parts, index)
            cy = ndi.mean(dy, parts, index)
            for a, x0, y0 in zip(area, cx, cy, strict=True):
                side = (
                    "right"
                    if x0 > limits["lateral_margin_mm"]
                    else "left"
                    if x0 < -limits["lateral_margin_mm"]
                    else None
                )
                if side is not None and y0 > 0:
                    best[side] = max(best[side], float(a))
        areas[k] = (best["right"], best["left"])
        for side, other in (("right", "left"), ("left", "right")):
            if best[side] >= limits["min_area_cm2"] and best[side] >= limits["min_ratio"] * max(best[other], area_cm2):
                slices[side].append(k)
    measured: dict[str, float] = {"liver_slices_right": len(slices["right"]), "liver_slices_left": len(slices["left"])}
    found = [s for s in ("right", "left") if slices[s]]
    if len(found) != 1:
        return [], measured
    side = found[0]
    # the liver reaches the top of a lumbar field of view: a run of liver slices from the cranial-most slices
    run = _cranial_run(frame.cranial_first, set(slices[side]), start_within=int(limits["top_slices"]))
    measured["liver_slices_from_top"] = len(run)
    if len(run) < limits["min_slices"]:
        return [], measured
    pick = 0 if side == "right" else 1
    largest = max(areas[k][pick] for k in run)
    ratios = [areas[k][pick] / max(areas[k][1 - pick], area_cm2) for k in run]
    cue_measured = {
        **measured,
        "largest_liver_area_cm2": round(largest, 1),
        "median_ratio": round(float(np.median(ratios)), 2),
        "slices": ",".join(str(k) for k in sorted(run)),
        "areas_right_left_cm2": ", ".join(f"{areas[k][0]:.1f}/{areas[k][1]:.1f}" for k in sorted(run)),
    }
    strength = min(1.0, len(run) / (2 * limits["min_slices"])) * (
        1.0 - limits["min_ratio"] / float(np.median(ratios)) / 2
    )
    return [_cue("liver", 1.0 if side == "right" else -1.0, cue_measured, strength)], measured
