"""Organ parenchyma attenuation on CT: select the parenchyma of an organ mask, sample ROIs, grade steatosis.

The method generalises the liver attenuation step of Zhang et al. (Fully automated deep learning-enabled
detection for hepatic steatosis on CT, arXiv:2210.15149; Sci Rep 2024), which selects the liver's
parenchymal portion from a deep-learning liver mask on unenhanced CT and measures its attenuation:

1. **Margin**: the mask is eroded by ``erosion_mm`` (a Euclidean distance transform with the voxel spacing,
   so the margin is the same in mm along every axis of an anisotropic grid): a voxel is kept when the
   nearest voxel outside the mask lies more than ``erosion_mm`` away (centre to centre). This drops the
   partial-volume rim against fat, air and other organs, and mask errors at the edge. The field-of-view
   edge is not a boundary. Padding voxels (see :func:`paraspinal.io.ct.padding_mask`) are never kept.
2. **Outliers**: vessels and lesions differ from parenchyma in HU. ``outliers="mad"`` (default) keeps
   HU within median ± ``mad_k`` · 1.4826 · MAD of the eroded voxels. Median and MAD have a 50% breakdown
   point, so enhancing vessels, cysts or calcifications (even many of them) do not move the bounds, while
   for Gaussian noise around one parenchymal value ``mad_k = 3`` keeps 99.7% of parenchymal voxels.
   ``outliers="window"`` keeps a fixed ``window_hu`` instead, ``"none"`` keeps all.
3. **ROIs** (optional, :func:`place_rois`): circular axial ROIs of ``radius_mm`` placed automatically
   where the selected parenchyma is deepest (farthest from any excluded voxel), at least two radii apart,
   in the spirit of the "AI-ROI" of Zhang et al. (our placement rule, not theirs).

Steatosis (:func:`steatosis_categories`) on UNENHANCED CT only; on contrast-enhanced or unknown-contrast
CT the category is withheld with the reason, and the attenuation is still reported:

* liver attenuation < 57 HU: at least mild, < 40 HU: moderate to severe. These are CT fat fractions of 5%
  and 15% by the conversion of Pickhardt PJ, Graffy PM, Reeder SB, Hernando D, Li K, AJR 2018;211:W151-W157
  (CT fat fraction = -0.58 · HU + 38.2), the categories used by Graffy PM, Sandfort V, Summers RM,
  Pickhardt PJ, Radiology 2019;293:334-342 (volumetric deep-learning liver attenuation on unenhanced CT).
  Liver attenuation <= 40 HU as moderate-to-severe steatosis is also the criterion of Boyce CJ et al.,
  AJR 2010;194:623-628, and < 40 HU the one Zhang et al. classify with.
* liver minus spleen < -10 HU: more than 30% macrovesicular steatosis at histology (Limanond P, Raman SS,
  Lassman C, et al. Radiology 2004;230:276-280, living liver donors, unenhanced CT).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from paraspinal.errors import InputError
from paraspinal.io.ct import padding_mask
from paraspinal.io.image import Image
from paraspinal.io.orientation import slice_axis

__all__ = [
    "LIVER_SPLEEN_BELOW_HU",
    "MILD_BELOW_HU",
    "MODERATE_BELOW_HU",
    "OUTLIER_RULES",
    "ParenchymaSelection",
    "Roi",
    "SteatosisCategory",
    "place_rois",
    "select_parenchyma",
    "steatosis_categories",
]

OUTLIER_RULES = ("mad", "window", "none")
MAD_TO_SD = 1.4826
MILD_BELOW_HU = 57.0
MODERATE_BELOW_HU = 40.0
LIVER_SPLEEN_BELOW_HU = -10.0


@dataclass(frozen=True, eq=False)
class ParenchymaSelection:
    """The parenchyma chosen inside one organ mask, and what was left out (boolean masks on the CT grid).

    Attributes:
        mask: the organ mask given.
        selected: voxels measured.
        margin: mask voxels within ``erosion_mm`` of the mask's boundary.
        outliers: eroded voxels outside ``bounds_hu``.
        padding: mask voxels holding the CT's padding value.
        bounds_hu: the HU range kept (inclusive).
        method: ``erode10mm+mad3`` and the like, for the table's ``method`` column.
        values_hu: HU of the selected voxels (float64).
        voxel_mm3: volume of one voxel (mm³).
    """

    mask: np.ndarray
    selected: np.ndarray
    margin: np.ndarray
    outliers: np.ndarray
    padding: np.ndarray
    bounds_hu: tuple[float, float]
    method: str
    values_hu: np.ndarray
    voxel_mm3: float

    @property
    def n_mask(self) -> int:
        return int(np.count_nonzero(self.mask))

    @property
    def n_selected(self) -> int:
        return int(self.values_hu.size)

    def share_pct(self, part: np.ndarray) -> float:
        """``part`` (margin, outliers, padding) as % of the mask's voxels."""
        return 100.0 * float(np.count_nonzero(part)) / self.n_mask if self.n_mask else float("nan")

    @property
    def excluded_share_pct(self) -> float:
        """% of the mask not measured (margin, outliers and padding together)."""
        return 100.0 * (self.n_mask - self.n_selected) / self.n_mask if self.n_mask else float("nan")

    @property
    def volume_ml(self) -> float:
        return self.n_selected * self.voxel_mm3 / 1000.0

    @property
    def mean_hu(self) -> float:
        return float(self.values_hu.mean()) if self.n_selected else float("nan")

    @property
    def median_hu(self) -> float:
        return float(np.median(self.values_hu)) if self.n_selected else float("nan")

    @property
    def sd_hu(self) -> float:
        return float(self.values_hu.std(ddof=1)) if self.n_selected > 1 else float("nan")


@dataclass(frozen=True)
class Roi:
    """One automatically placed circular ROI: centre voxel, axial slice, voxels and mean HU."""

    centre: tuple[int, int, int]
    slice_index: int
    n_voxels: int
    mean_hu: float


@dataclass(frozen=True)
class SteatosisCategory:
    """One steatosis criterion applied to one case.

    Attributes:
        metric: ``steatosis_grade`` (0 none, 1 mild, 2 moderate to severe, by liver HU) or
            ``steatosis_liver_spleen`` (1 when liver - spleen < -10 HU, else 0).
        method: the cut-offs and their source, e.g. ``liver_hu<57|<40(graffy2019)``.
        value: the grade, or NaN when withheld.
        label: ``none``, ``mild``, ``moderate_to_severe``, ``over_30pct_macrovesicular`` or ``withheld``.
        note: why it was withheld (empty otherwise).
    """

    metric: str
    method: str
    value: float
    label: str
    note: str = ""


def select_parenchyma(
    ct: Image,
    mask: np.ndarray,
    *,
    erosion_mm: float = 10.0,
    outliers: str = "mad",
    mad_k: float = 3.0,
    window_hu: tuple[float, float] | None = None,
) -> ParenchymaSelection:
    """The parenchyma of ``mask`` (a boolean array on ``ct``'s grid): eroded, outliers dropped (module docstring)."""
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != ct.shape:
        raise ValueError(f"mask shape {mask.shape} is not the CT grid {ct.shape}")
    if not (math.isfinite(erosion_mm) and erosion_mm >= 0):
        raise InputError(f"erosion must be a distance of 0 mm or more, not {erosion_mm!r}")
    if outliers not in OUTLIER_RULES:
        raise InputError(f"unknown outlier rule {outliers!r}; choose from {', '.join(OUTLIER_RULES)}")
    if outliers == "mad" and not (math.isfinite(mad_k) and mad_k > 0):
        raise InputError(f"the MAD factor must be a positive number, not {mad_k!r}")
    if outliers == "window" and window_hu is None:
        raise InputError("the 'window' outlier rule needs window_hu (low, high) in HU")
    padding = mask & padding_mask(ct)
    core = mask & (depth_mm(mask, spacing_mm=ct.spacing_mm) > erosion_mm) if erosion_mm > 0 else mask.copy()
    margin = mask & ~core
    core &= ~padding
    hu = np.asarray(ct.array)[core].astype(np.float64)
    label = f"erode{erosion_mm:g}mm"
    bounds = (-math.inf, math.inf)
    if outliers == "mad":
        label += f"+mad{mad_k:g}"
        if hu.size:
            centre = float(np.median(hu))
            spread = mad_k * MAD_TO_SD * float(np.median(np.abs(hu - centre)))
            bounds = (centre - spread, centre + spread)
    elif outliers == "window":
        assert window_hu is not None
        bounds = (float(window_hu[0]), float(window_hu[1]))
        label += f"+window{bounds[0]:g}..{bounds[1]:g}"
    keep = (hu >= bounds[0]) & (hu <= bounds[1])
    selected = np.zeros(mask.shape, dtype=bool)
    selected[core] = keep
    dropped = np.zeros(mask.shape, dtype=bool)
    dropped[core] = ~keep
    return ParenchymaSelection(
        mask=mask,
        selected=selected,
        margin=margin,
        outliers=dropped,
        padding=padding,
        bounds_hu=bounds,
        method=label,
        values_hu=hu[keep],
        voxel_mm3=ct.voxel_volume_mm3,
    )


def place_rois(ct: Image, selection: ParenchymaSelection, *, n_rois: int = 3, radius_mm: float = 10.0) -> list[Roi]:
    """Up to ``n_rois`` circular axial ROIs of ``radius_mm`` inside the selected parenchyma (module docstring).

    A centre needs more than ``radius_mm`` of selected parenchyma around it in 3-D (so the disc lies
    inside); centres are taken deepest first and at least ``2 * radius_mm`` apart. Fewer ROIs come back
    when fewer fit.
    """
    if n_rois < 1 or not (math.isfinite(radius_mm) and radius_mm > 0):
        raise InputError(f"ROIs need a count of 1 or more and a positive radius, not {n_rois} x {radius_mm!r} mm")
    if not selection.selected.any():
        return []
    depth = depth_mm(selection.selected, spacing_mm=ct.spacing_mm)
    candidates = np.flatnonzero((depth > radius_mm).ravel())
    if candidates.size == 0:
        return []
    ijk = np.stack(np.unravel_index(candidates, ct.shape), axis=1)
    world = ijk @ ct.affine[:3, :3].T + ct.affine[:3, 3]
    order = np.argsort(-depth.ravel()[candidates], kind="stable")
    axis = slice_axis(ct.affine)
    alive = np.ones(candidates.size, dtype=bool)
    rois: list[Roi] = []
    for pick in order:
        if len(rois) == n_rois:
            break
        if not alive[pick]:
            continue
        centre = world[pick]
        alive &= np.linalg.norm(world - centre, axis=1) >= 2 * radius_mm
        rois.append(_disc(ct, selection, tuple(int(v) for v in ijk[pick]), axis=axis, radius_mm=radius_mm))
    return rois


def depth_mm(mask: np.ndarray, *, spacing_mm: tuple[float, float, float]) -> np.ndarray:
    """Distance (mm) from each ``mask`` voxel to the nearest voxel outside it; 0 outside. The array edge is
    not a boundary. Computed on the mask's bounding box plus one voxel, so a small organ in a large CT is cheap."""
    from scipy import ndimage

    depth = np.zeros(mask.shape, dtype=np.float64)
    found = np.argwhere(mask)
    if found.size == 0:
        return depth
    low = np.maximum(found.min(axis=0) - 1, 0)
    high = np.minimum(found.max(axis=0) + 2, mask.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(low, high, strict=True))
    inside = mask[box]
    depth[box] = (
        np.where(inside, np.inf, 0.0) if inside.all() else ndimage.distance_transform_edt(inside, sampling=spacing_mm)
    )
    return depth


def _disc(ct: Image, selection: ParenchymaSelection, centre: tuple[int, int, int], *, axis: int, radius_mm: float):
    """The selected voxels of ``centre``'s axial slice within ``radius_mm`` of it (in-plane, world mm)."""
    index = [slice(None)] * 3
    index[axis] = centre[axis]  # type: ignore[call-overload]
    plane = selection.selected[tuple(index)]
    rows, cols = np.nonzero(plane)
    ijk = np.zeros((rows.size, 3), dtype=np.int64)
    others = [a for a in range(3) if a != axis]
    ijk[:, others[0]], ijk[:, others[1]], ijk[:, axis] = rows, cols, centre[axis]
    offset = (ijk - np.asarray(centre)) @ ct.affine[:3, :3].T
    inside = np.linalg.norm(offset, axis=1) <= radius_mm
    values = np.asarray(ct.array)[tuple(ijk[inside].T)].astype(np.float64)
    return Roi(centre=centre, slice_index=centre[axis], n_voxels=int(values.size), mean_hu=float(values.mean()))


def steatosis_categories(
    liver_hu: float, *, spleen_hu: float | None = None, contrast: str
) -> tuple[SteatosisCategory, ...]:
    """Steatosis by liver attenuation (and liver - spleen when ``spleen_hu`` is given); see the module docstring.

    ``contrast`` is the CT's contrast state (``none``, ``applied``, ``unknown``): only ``none`` grades;
    otherwise every category is withheld (value NaN) with the reason in ``note``.
    """
    by_liver = f"liver_hu<{MILD_BELOW_HU:g}|<{MODERATE_BELOW_HU:g}(graffy2019)"
    by_spleen = f"liver-spleen<{LIVER_SPLEEN_BELOW_HU:g}(limanond2004)"
    methods = [("steatosis_grade", by_liver)] + (
        [("steatosis_liver_spleen", by_spleen)] if spleen_hu is not None else []
    )
    if contrast != "none":
        why = (
            "contrast-enhanced CT" if contrast == "applied" else "contrast unknown (declare the CT unenhanced to grade)"
        )
        note = f"category withheld: {why}; the cut-offs hold for unenhanced CT only"
        return tuple(SteatosisCategory(m, method, float("nan"), "withheld", note) for m, method in methods)
    if not math.isfinite(liver_hu):
        return tuple(SteatosisCategory(m, method, float("nan"), "withheld", "no parenchyma") for m, method in methods)
    grade = 2 if liver_hu < MODERATE_BELOW_HU else 1 if liver_hu < MILD_BELOW_HU else 0
    out = [SteatosisCategory("steatosis_grade", by_liver, float(grade), ("none", "mild", "moderate_to_severe")[grade])]
    if spleen_hu is not None and math.isfinite(spleen_hu):
        below = liver_hu - spleen_hu < LIVER_SPLEEN_BELOW_HU
        out.append(
            SteatosisCategory(
                "steatosis_liver_spleen", by_spleen, float(below), "over_30pct_macrovesicular" if below else "none"
            )
        )
    elif spleen_hu is not None:
        out.append(
            SteatosisCategory("steatosis_liver_spleen", by_spleen, float("nan"), "withheld", "no spleen parenchyma")
        )
    return tuple(out)
