"""Segmentation accuracy of one label map against a reference: overlap and surface distances.

Conventions
-----------
* Masks are boolean arrays on the same voxel grid; ``spacing_mm`` gives the voxel edge lengths
  (mm) along each array axis, so surface distances are in mm and exact for anisotropic voxels.
* Surfaces are the mask voxels with at least one face neighbour outside the mask (6-connectivity);
  voxels on the array border count as surface (outside the field of view is background).
  Distances are Euclidean between surface-voxel centres, from
  :func:`scipy.ndimage.distance_transform_edt` with ``sampling=spacing_mm``.
* HD95 is the larger of the two directed 95th percentiles (pred→ref, ref→pred), as in MONAI and
  DeepMind's ``surface-distance``; ASSD is the mean over the union of both directed distance sets
  (Heimann et al. 2009): ``(Σ d(a, B) + Σ d(b, A)) / (|A| + |B|)``.
* Empty masks never raise. Both empty: every metric is NaN with reason ``absent in both`` (the pair
  is skipped, as LPM-style studies do, rather than counted as a perfect 1.0). One side empty: Dice
  and IoU are 0.0 (a missed or spurious structure is a real failure, and NaN would hide it from the
  mean), HD95 and ASSD are NaN; the reason names the empty side.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage

__all__ = [
    "ABSENT_IN_BOTH",
    "ALL_LEVELS",
    "EMPTY_PRED",
    "EMPTY_REF",
    "FOREGROUND",
    "OVERLAP_COLUMNS",
    "SurfaceDistances",
    "assd_mm",
    "dice",
    "dice_per_label",
    "hausdorff_mm",
    "iou",
    "overlap_table",
    "surface_distances",
]

ABSENT_IN_BOTH = "absent in both"
EMPTY_PRED = "empty in prediction"
EMPTY_REF = "empty in reference"
FOREGROUND = "foreground"
ALL_LEVELS = "all"

OVERLAP_COLUMNS = ["case_id", "label", "name", "level", "metric", "value", "unit", "reason"]
_FACE_CONNECTIVITY = ndimage.generate_binary_structure(3, 1)


def _as_masks(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, r = np.asarray(pred, dtype=bool), np.asarray(ref, dtype=bool)
    if p.shape != r.shape:
        raise ValueError(f"mask shapes differ: {p.shape} vs {r.shape}")
    return p, r


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice similarity coefficient 2|P and R| / (|P|+|R|); NaN when both masks are empty."""
    p, r = _as_masks(pred, ref)
    total = int(p.sum()) + int(r.sum())
    return float("nan") if total == 0 else 2.0 * int(np.logical_and(p, r).sum()) / total


def dice_per_label(pred: np.ndarray, ref: np.ndarray, values: Iterable[int]) -> dict[int, float]:
    """:func:`dice` of ``pred == v`` against ``ref == v`` for each label value ``v`` of two label maps."""
    p, r = np.asarray(pred), np.asarray(ref)
    if p.shape != r.shape:
        raise ValueError(f"label map shapes differ: {p.shape} vs {r.shape}")
    return {int(v): dice(p == v, r == v) for v in values}


def iou(pred: np.ndarray, ref: np.ndarray) -> float:
    """Intersection over union (Jaccard) |P and R| / |P or R|; NaN when both masks are empty."""
    p, r = _as_masks(pred, ref)
    union = int(np.logical_or(p, r).sum())
    return float("nan") if union == 0 else int(np.logical_and(p, r).sum()) / union


@dataclass(frozen=True)
class SurfaceDistances:
    """Directed distances (mm) from each surface voxel of one mask to the other mask's surface.

    ``pred_slices``/``ref_slices`` hold each surface voxel's index along ``slice_axis`` so the
    distances can be restricted to a slice range (a spinal level) with :meth:`within`.
    """

    pred_to_ref_mm: np.ndarray
    ref_to_pred_mm: np.ndarray
    pred_slices: np.ndarray
    ref_slices: np.ndarray

    def within(self, slice_start: int, slice_stop: int) -> SurfaceDistances:
        """Only the surface voxels on slices ``[slice_start, slice_stop)``; distances still go to
        the whole other surface, so a level's cut planes do not count as boundary."""
        keep_p = (self.pred_slices >= slice_start) & (self.pred_slices < slice_stop)
        keep_r = (self.ref_slices >= slice_start) & (self.ref_slices < slice_stop)
        return SurfaceDistances(
            self.pred_to_ref_mm[keep_p], self.ref_to_pred_mm[keep_r], self.pred_slices[keep_p], self.ref_slices[keep_r]
        )

    def hausdorff_mm(self, *, percentile: float = 95.0) -> float:
        """Max of the two directed ``percentile``-th distances (mm); NaN if either side is empty."""
        if self.pred_to_ref_mm.size == 0 or self.ref_to_pred_mm.size == 0:
            return float("nan")
        return float(
            max(np.percentile(self.pred_to_ref_mm, percentile), np.percentile(self.ref_to_pred_mm, percentile))
        )

    def assd_mm(self) -> float:
        """Average symmetric surface distance (mm); NaN if either side is empty."""
        if self.pred_to_ref_mm.size == 0 or self.ref_to_pred_mm.size == 0:
            return float("nan")
        total = float(self.pred_to_ref_mm.sum()) + float(self.ref_to_pred_mm.sum())
        return total / (self.pred_to_ref_mm.size + self.ref_to_pred_mm.size)


def _surface(mask: np.ndarray) -> np.ndarray:
    eroded = ndimage.binary_erosion(mask, structure=_FACE_CONNECTIVITY, border_value=0)
    return mask & ~eroded


def _spacing(spacing_mm: Sequence[float], ndim: int) -> tuple[float, ...]:
    spacing = tuple(float(s) for s in spacing_mm)
    if len(spacing) != ndim or not all(np.isfinite(s) and s > 0 for s in spacing):
        raise ValueError(f"spacing_mm must be {ndim} positive numbers, got {spacing_mm}")
    return spacing


def surface_distances(
    pred: np.ndarray, ref: np.ndarray, *, spacing_mm: Sequence[float], slice_axis: int = 2
) -> SurfaceDistances:
    """Directed surface distances (mm) between two masks; empty arrays for an empty side.

    Work is done on the bounding box of the union of both masks (exact: every surface voxel and
    every nearest surface voxel lies inside it).
    """
    p, r = _as_masks(pred, ref)
    spacing = _spacing(spacing_mm, p.ndim)
    if not p.any() or not r.any():
        no_dist, no_idx = np.zeros(0, dtype=np.float64), np.zeros(0, dtype=np.int64)
        return SurfaceDistances(no_dist, no_dist.copy(), no_idx, no_idx.copy())
    union = p | r
    lo, hi = [], []
    for axis in range(p.ndim):
        present = np.flatnonzero(union.any(axis=tuple(a for a in range(p.ndim) if a != axis)))
        lo.append(int(present[0]))
        hi.append(int(present[-1]) + 1)
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    sp, sr = _surface(p[box]), _surface(r[box])
    dist_to_ref = ndimage.distance_transform_edt(~sr, sampling=spacing)
    dist_to_pred = ndimage.distance_transform_edt(~sp, sampling=spacing)
    p_idx, r_idx = np.nonzero(sp), np.nonzero(sr)
    return SurfaceDistances(
        pred_to_ref_mm=np.asarray(dist_to_ref[p_idx], dtype=np.float64),
        ref_to_pred_mm=np.asarray(dist_to_pred[r_idx], dtype=np.float64),
        pred_slices=p_idx[slice_axis].astype(np.int64) + lo[slice_axis],
        ref_slices=r_idx[slice_axis].astype(np.int64) + lo[slice_axis],
    )


def hausdorff_mm(pred: np.ndarray, ref: np.ndarray, *, spacing_mm: Sequence[float], percentile: float = 95.0) -> float:
    """Percentile Hausdorff distance (mm; HD95 by default, 100 = classic Hausdorff); NaN if a mask is empty."""
    return surface_distances(pred, ref, spacing_mm=spacing_mm).hausdorff_mm(percentile=percentile)


def assd_mm(pred: np.ndarray, ref: np.ndarray, *, spacing_mm: Sequence[float]) -> float:
    """Average symmetric surface distance (mm); NaN if a mask is empty."""
    return surface_distances(pred, ref, spacing_mm=spacing_mm).assd_mm()


def _scope_reason(n_pred: int, n_ref: int) -> str:
    if n_pred == 0 and n_ref == 0:
        return ABSENT_IN_BOTH
    if n_pred == 0:
        return EMPTY_PRED
    if n_ref == 0:
        return EMPTY_REF
    return ""


def _metric_rows(
    p: np.ndarray, r: np.ndarray, dist: SurfaceDistances, *, voxel_volume_mm3: float, percentile: float
) -> list[tuple[str, float, str, str]]:
    """(metric, value, unit, reason) for one mask pair within one scope."""
    n_p, n_r = int(p.sum()), int(r.sum())
    reason = _scope_reason(n_p, n_r)
    inter = int(np.logical_and(p, r).sum())
    if reason == ABSENT_IN_BOTH:
        d = j = hd = sd = float("nan")
    else:
        d = 2.0 * inter / (n_p + n_r)
        j = inter / (n_p + n_r - inter)
        hd, sd = dist.hausdorff_mm(percentile=percentile), dist.assd_mm()
    vol_p, vol_r = n_p * voxel_volume_mm3, n_r * voxel_volume_mm3
    pct = 100.0 * (vol_p - vol_r) / vol_r if n_r else float("nan")
    hd_name = "hd95" if percentile == 95.0 else f"hd{percentile:g}"
    return [
        ("dice", d, "1", reason),
        ("iou", j, "1", reason),
        (hd_name, hd, "mm", reason),
        ("assd", sd, "mm", reason),
        ("volume_pred", vol_p, "mm3", ""),
        ("volume_ref", vol_r, "mm3", ""),
        ("volume_diff", vol_p - vol_r, "mm3", ""),
        ("volume_diff_pct", pct, "%", "" if n_r else (ABSENT_IN_BOTH if not n_p else EMPTY_REF)),
    ]


def overlap_table(
    pred: np.ndarray,
    ref: np.ndarray,
    *,
    spacing_mm: Sequence[float],
    voxel_volume_mm3: float | None = None,
    labels: Mapping[int, str] | None = None,
    levels: Mapping[str, tuple[int, int]] | None = None,
    slice_axis: int = 2,
    case_id: str = "",
    percentile: float = 95.0,
) -> pd.DataFrame:
    """Tidy accuracy table of two label maps: one row per (label, level, metric).

    Args:
        pred, ref: integer label maps on the same grid (0 = background).
        spacing_mm: voxel edge lengths (mm) along each array axis.
        voxel_volume_mm3: volume of one voxel (mm³); defaults to the product of ``spacing_mm``.
        labels: label value -> name to evaluate; default: every non-zero value in either map.
        levels: level name -> half-open slice range ``[start, stop)`` along ``slice_axis``; each
            label is also evaluated within each range (surface distances from the level's surface
            voxels to the other mask's whole surface).
        case_id: written into the ``case_id`` column.
        percentile: Hausdorff percentile (95 gives metric ``hd95``).

    Returns:
        DataFrame with :data:`OVERLAP_COLUMNS`. ``label`` is nullable (``<NA>`` for the global
        ``foreground`` row: any label > 0, binarised, as LPM_Segmentator's global Dice); ``level`` is
        ``all`` for the whole volume. Metrics: dice, iou (unit 1), hd95, assd (mm), volume_pred,
        volume_ref, volume_diff = pred - ref (mm³), volume_diff_pct (% of ref). ``reason`` explains
        NaN or degenerate values (see module docstring).
    """
    pred, ref = np.asarray(pred), np.asarray(ref)
    if pred.shape != ref.shape:
        raise ValueError(f"label map shapes differ: {pred.shape} vs {ref.shape}")
    spacing = _spacing(spacing_mm, pred.ndim)
    vvol = float(np.prod(spacing)) if voxel_volume_mm3 is None else float(voxel_volume_mm3)
    if labels is None:
        values = np.union1d(np.unique(pred), np.unique(ref))
        labels = {int(v): str(int(v)) for v in values if v != 0}
    scopes: list[tuple[str, slice]] = [(ALL_LEVELS, slice(None))]
    for name, (start, stop) in (levels or {}).items():
        scopes.append((name, slice(int(start), int(stop))))

    rows: list[tuple[object, ...]] = []
    targets: list[tuple[int | None, str, np.ndarray, np.ndarray]] = [(None, FOREGROUND, pred > 0, ref > 0)]
    targets += [(int(v), str(name), pred == v, ref == v) for v, name in labels.items()]
    for value, name, p, r in targets:
        dist = surface_distances(p, r, spacing_mm=spacing, slice_axis=slice_axis)
        for level, sl in scopes:
            index = [slice(None)] * p.ndim
            index[slice_axis] = sl
            if sl == slice(None):
                p_s, r_s, d_s = p, r, dist
            else:
                p_s, r_s = p[tuple(index)], r[tuple(index)]
                d_s = dist.within(sl.start, sl.stop)
            for metric, val, unit, reason in _metric_rows(p_s, r_s, d_s, voxel_volume_mm3=vvol, percentile=percentile):
                rows.append((case_id, value, name, level, metric, float(val), unit, reason))
    table = pd.DataFrame(rows, columns=OVERLAP_COLUMNS)
    table["label"] = table["label"].astype("Int64")
    return table
