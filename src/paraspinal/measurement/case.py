"""Measure one case: every metric for every structure, side, level and slice, as one tidy table.

Columns of the table (:data:`COLUMNS`): ``case_id, structure, side, scope, level, slice, z_mm,
metric, method, image, value, unit, flags``. ``scope`` is ``structure`` (the whole labelled
structure in the field of view), ``level`` or ``slice``. ``side`` is the patient's ``right`` or
``left``, ``both`` (the two summed), or ``none`` for midline structures.

Metrics (unit, methods):
* ``csa`` (mm2): ``slice``; per level ``disc_slice`` and ``level_mean`` (mean over the level's slices).
* ``volume`` (mL): ``voxel_count``; per level ``level_slices``.
* ``rcsa`` (ratio): muscle CSA / disc CSA on the level's disc slice (Xu et al.).
* ``fat_fraction`` (%): ``signal_weighted`` = 100·ΣF/Σ(F+W) (LPM_Segmentator) and ``voxel_mean`` =
  100·mean(F/(F+W)) over voxels with F+W > 0 (MuscleMap).
* ``fat_infiltration`` (%) and ``fat_threshold`` (image units): per threshold method, on the T1/T2 image.
* ``intensity_mean|std|median|pNN`` (image units), computed in float64, per image.
* ``n_voxels`` (voxels).
* CT (``ct=``): muscle ``hu_mean|hu_median|hu_sd`` (HU), ``imat_share``/``muscle_share`` (%, method names the
  window), organ parenchyma attenuation and steatosis categories; see :mod:`paraspinal.measurement.ct`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from paraspinal.anatomy import AnatomyRegistry, load_registry
from paraspinal.errors import InputError
from paraspinal.io.ct import check_hounsfield, padding_mask
from paraspinal.io.image import Image
from paraspinal.io.label_map import LabelMap
from paraspinal.io.orientation import AxialFrame, axial_frame, slice_positions_mm
from paraspinal.levels import LevelTable
from paraspinal.measurement.ct import CtOptions, add_ct_rows
from paraspinal.measurement.infiltration import METHODS, infiltration
from paraspinal.measurement.parenchyma import ParenchymaSelection
from paraspinal.measurement.regions import Region, RegionVoxels, region_voxels
from paraspinal.measurement.rows import Group, RowBuilder, groups_of, rows_of, spans
from paraspinal.measurement.sums import SliceSums, safe_ratio, slice_sums

DEFAULT_PERCENTILES = (5.0, 25.0, 75.0, 95.0)
MUSCLE_CATEGORIES = ("muscle", "muscle_group")


@dataclass(frozen=True)
class Measurements:
    """Result of :func:`measure_case`: the tidy table plus case-level warnings."""

    table: pd.DataFrame
    warnings: tuple[str, ...]
    frame: AxialFrame
    regions: tuple[Region, ...]
    flags: dict[str, tuple[str, ...]] = field(default_factory=dict)
    parenchyma: dict[str, ParenchymaSelection] = field(default_factory=dict)


def measure_case(
    label_map: LabelMap,
    *,
    case_id: str,
    water: Image | None = None,
    fat: Image | None = None,
    image: Image | None = None,
    image_name: str = "image",
    levels: LevelTable | None = None,
    infiltration_methods: Sequence[str] = METHODS,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    registry: AnatomyRegistry | None = None,
    seed: int = 0,
    ct: Image | None = None,
    ct_options: CtOptions | None = None,
) -> Measurements:
    """Measure every labelled structure of one case (the label map's values named by its scheme).

    All images must already share the label map's grid (see :func:`paraspinal.io.check_same_grid`).
    ``water`` and ``fat`` enable Dixon fat fractions; ``image`` (a T1/T2 image where fat is
    bright, named ``image_name`` in the table) enables the threshold fat-infiltration methods.
    ``ct`` (a CT in HU, checked by :func:`paraspinal.io.ct.check_hounsfield`; its contrast state from
    ``metadata['contrast_agent']``) adds the CT rows of :mod:`paraspinal.measurement.ct`, set by ``ct_options``.
    """
    labels, scheme = label_map.labels, label_map.scheme
    registry = registry or load_registry()
    if ct is not None:
        modality = str(ct.metadata.get("modality", "") or "CT").upper()
        if modality != "CT":
            raise InputError(f"the CT image is a {modality} series", path=ct.source)
        check_hounsfield(ct)
    for other in (water, fat, image, ct):
        if other is not None and other.shape != labels.shape:
            raise ValueError(f"{other.source} is not on the label grid; call check_same_grid first")
    if (water is None) != (fat is None):
        raise InputError("Dixon fat fraction needs both a water and a fat image", path=(water or fat).source)  # type: ignore[union-attr]
    present = np.unique(labels.array)
    scheme.check_values(present, path=labels.source)
    if not np.any(present > 0):
        raise InputError("label map is empty (no labelled voxels)", path=labels.source)

    frame = axial_frame(labels)
    if levels is not None:
        levels.validated(n_slices=frame.n_slices)
    voxels = region_voxels(labels, scheme=scheme, registry=registry, frame=frame)
    n_regions = len(voxels.regions)
    signals = {
        name: img.array.ravel()[voxels.flat_index].astype(np.float64)
        for name, img in (("water", water), ("fat", fat), (image_name, image))
        if img is not None
    }
    sums = slice_sums(
        voxels.region,
        voxels.slice_index,
        n_regions=n_regions,
        n_slices=frame.n_slices,
        fat=signals.get("fat"),
        water=signals.get("water"),
    )

    warnings: list[str] = []
    case_flags: dict[str, tuple[str, ...]] = {}
    for structure in voxels.laterality_mismatch:
        warnings.append(
            f"laterality: '{structure}' labelled right lies on the patient's left of the one "
            "labelled left (per the affine); check the label scheme or the image orientation"
        )
    if water is not None and fat is not None:
        swap = _swap_suspected(voxels, signals["fat"], signals["water"])
        if swap:
            warnings.append(swap)
            case_flags["fat_fraction"] = ("fat_water_swap_suspected",)
    for img in (water, fat, image, ct):
        if img is not None and "header_mismatch" in img.metadata:
            warnings.append(
                f"{img.source}: header differs from the label map, voxels assumed aligned "
                f"({img.metadata['header_mismatch']})"
            )

    builder = RowBuilder(
        case_id=case_id,
        z_mm=slice_positions_mm(labels, axis=frame.slice_axis),
        laterality=set(voxels.laterality_mismatch),
        metric_flags=case_flags,
    )
    groups = groups_of(voxels.regions)
    _volume_and_area(builder, groups, sums, frame, levels, voxel_mm3=labels.voxel_volume_mm3)
    if sums.fat is not None:
        _fat_fraction(builder, groups, sums, levels)
    if image is not None and infiltration_methods:
        _infiltration(
            builder,
            groups,
            voxels,
            signals[image_name],
            sums.voxels,
            frame,
            levels,
            methods=infiltration_methods,
            image_name=image_name,
            seed=seed,
        )
    _intensity(builder, voxels, signals, levels, percentiles=percentiles)
    selections: dict[str, ParenchymaSelection] = {}
    if ct is not None:
        selections, ct_warnings = add_ct_rows(
            builder,
            groups,
            voxels,
            hu=np.asarray(ct.array).ravel()[voxels.flat_index].astype(np.float64),
            valid=~padding_mask(ct).ravel()[voxels.flat_index],
            voxel_counts=sums.voxels,
            levels=levels,
            ct=ct,
            labels=labels,
            scheme=scheme,
            registry=registry,
            options=ct_options or CtOptions(),
        )
        warnings.extend(ct_warnings)
    table = builder.frame()
    return Measurements(table, tuple(warnings), frame, voxels.regions, case_flags, selections)


def _volume_and_area(
    builder: RowBuilder,
    groups: list[Group],
    sums: SliceSums,
    frame: AxialFrame,
    levels: LevelTable | None,
    *,
    voxel_mm3: float,
) -> None:
    area = frame.pixel_area_mm2
    disc_rows = [g for g in groups if g.category == "disc" and g.side != "both"]
    for group in groups:
        counts = rows_of(sums.voxels, group)
        touched = np.flatnonzero(counts)
        if frame.n_slices > 1 and (touched[0] == 0 or touched[-1] == frame.n_slices - 1):  # a single slice can't tell
            builder.structure_flags.setdefault((group.structure, group.side), []).append("fov_truncated")
        builder.add(
            group,
            scope="structure",
            metric="volume",
            method="voxel_count",
            value=counts.sum() * voxel_mm3 / 1000.0,
            unit="mL",
        )
        builder.add(
            group, scope="structure", metric="n_voxels", method="voxel_count", value=counts.sum(), unit="voxels"
        )
        for s in range(touched[0], touched[-1] + 1):
            builder.add(
                group, scope="slice", slice_=s, metric="csa", method="slice", value=counts[s] * area, unit="mm2"
            )
        for level in levels or ():
            in_level = counts[level.slice_start : level.slice_stop]
            builder.add(
                group,
                scope="level",
                level=level.name,
                metric="csa",
                method="level_mean",
                value=in_level.mean() * area,
                unit="mm2",
            )
            builder.add(
                group,
                scope="level",
                level=level.name,
                metric="volume",
                method="level_slices",
                value=in_level.sum() * voxel_mm3 / 1000.0,
                unit="mL",
            )
            if level.disc_slice is None:
                continue
            csa = counts[level.disc_slice] * area
            builder.add(
                group,
                scope="level",
                level=level.name,
                slice_=level.disc_slice,
                metric="csa",
                method="disc_slice",
                value=csa,
                unit="mm2",
            )
            if group.category in MUSCLE_CATEGORIES:
                disc = _disc_area(disc_rows, sums, level.name, level.disc_slice) * area
                if disc > 0:
                    builder.add(
                        group,
                        scope="level",
                        level=level.name,
                        slice_=level.disc_slice,
                        metric="rcsa",
                        method="disc_slice",
                        value=csa / disc,
                        unit="ratio",
                    )


def _disc_area(disc_groups: list[Group], sums: SliceSums, level_name: str, slice_: int) -> float:
    """Disc voxel count on ``slice_``: the disc named for the level if labelled, else any disc there."""
    named = [g for g in disc_groups if g.structure.replace("disc_", "").replace("_", "/") == level_name]
    chosen = named or disc_groups
    return float(sum(rows_of(sums.voxels, g)[slice_] for g in chosen))


def _fat_fraction(builder: RowBuilder, groups: list[Group], sums: SliceSums, levels: LevelTable | None) -> None:
    assert sums.fat is not None and sums.fat_plus_water is not None
    assert sums.ratio is not None and sums.ratio_voxels is not None
    for group in groups:
        fat, total = rows_of(sums.fat, group), rows_of(sums.fat_plus_water, group)
        ratio, valid = rows_of(sums.ratio, group), rows_of(sums.ratio_voxels, group)
        for sl, where in spans(rows_of(sums.voxels, group), levels):
            builder.add(
                group,
                metric="fat_fraction",
                method="signal_weighted",
                image="dixon",
                unit="%",
                value=100 * safe_ratio(fat[sl].sum(), total[sl].sum()),
                **where,
            )  # type: ignore[arg-type]
            builder.add(
                group,
                metric="fat_fraction",
                method="voxel_mean",
                image="dixon",
                unit="%",
                value=100 * safe_ratio(ratio[sl].sum(), valid[sl].sum()),
                **where,
            )  # type: ignore[arg-type]


def _infiltration(
    builder: RowBuilder,
    groups: list[Group],
    voxels: RegionVoxels,
    values: np.ndarray,
    voxel_counts: np.ndarray,
    frame: AxialFrame,
    levels: LevelTable | None,
    *,
    methods: Sequence[str],
    image_name: str,
    seed: int,
) -> None:
    muscles = [r for r in voxels.regions if r.category in MUSCLE_CATEGORIES]
    if not muscles:
        return
    by_region = {r.index: values[voxels.region == r.index] for r in muscles}
    results = infiltration(by_region, methods=methods, seed=seed)
    n = len(voxels.regions) + 1
    for method in methods:
        thresholds = np.full(n, np.inf)
        for r in muscles:
            thr = results[(r.index, method)].threshold
            thresholds[r.index] = thr if np.isfinite(thr) else np.inf
        above = (values > thresholds[voxels.region]).astype(np.float64)
        fat_counts = np.bincount(
            voxels.region * frame.n_slices + voxels.slice_index, weights=above, minlength=n * frame.n_slices
        ).reshape(n, frame.n_slices)
        for group in groups:
            if group.category not in MUSCLE_CATEGORIES:
                continue
            ok = all(np.isfinite(results[(i, method)].threshold) for i in group.rows)
            fat_c, all_c = rows_of(fat_counts, group), rows_of(voxel_counts, group)
            for sl, where in spans(all_c, levels):
                value = 100 * safe_ratio(fat_c[sl].sum(), all_c[sl].sum()) if ok else np.nan
                builder.add(
                    group, metric="fat_infiltration", method=method, image=image_name, unit="%", value=value, **where
                )  # type: ignore[arg-type]
            if len(group.rows) == 1:
                result = results[(group.rows[0], method)]
                builder.add(
                    group,
                    scope="structure",
                    metric="fat_threshold",
                    method=method,
                    image=image_name,
                    value=result.threshold,
                    unit="a.u.",
                    extra="threshold_replaced" if result.replaced else "",
                )


def _intensity(
    builder: RowBuilder,
    voxels: RegionVoxels,
    signals: dict[str, np.ndarray],
    levels: LevelTable | None,
    *,
    percentiles: Sequence[float],
) -> None:
    for region in voxels.regions:
        group = Group(region.structure, region.side, (region.index,), region.category)
        in_region = voxels.region == region.index
        for name, values in signals.items():
            v = values[in_region]
            builder.add(
                group,
                scope="structure",
                metric="intensity_mean",
                method="float64",
                image=name,
                value=v.mean(),
                unit="a.u.",
            )
            builder.add(
                group,
                scope="structure",
                metric="intensity_std",
                method="float64",
                image=name,
                value=v.std(ddof=1) if v.size > 1 else np.nan,
                unit="a.u.",
            )
            qs = np.percentile(v, [50.0, *percentiles])
            builder.add(
                group,
                scope="structure",
                metric="intensity_median",
                method="float64",
                image=name,
                value=qs[0],
                unit="a.u.",
            )
            for p, q in zip(percentiles, qs[1:], strict=True):
                builder.add(
                    group,
                    scope="structure",
                    metric=f"intensity_p{p:02g}",
                    method="float64",
                    image=name,
                    value=q,
                    unit="a.u.",
                )
            for level in levels or ():
                s = voxels.slice_index[in_region]
                lv = v[(s >= level.slice_start) & (s < level.slice_stop)]
                for metric, value in (
                    ("intensity_mean", lv.mean() if lv.size else np.nan),
                    ("intensity_median", np.median(lv) if lv.size else np.nan),
                ):
                    builder.add(
                        group,
                        scope="level",
                        level=level.name,
                        metric=metric,
                        method="float64",
                        image=name,
                        value=value,
                        unit="a.u.",
                    )


def _swap_suspected(voxels: RegionVoxels, fat: np.ndarray, water: np.ndarray) -> str | None:
    """A warning when fat is brighter than water inside muscle (healthy muscle is mostly water)."""
    muscle_ids = [r.index for r in voxels.regions if r.category in MUSCLE_CATEGORIES]
    in_muscle = np.isin(voxels.region, muscle_ids) if muscle_ids else np.ones(voxels.region.shape, bool)
    median_fat, median_water = float(np.median(fat[in_muscle])), float(np.median(water[in_muscle]))
    if median_fat > median_water:
        return (
            f"fat and water look swapped: inside muscle the fat image is brighter than the water image "
            f"(median {median_fat:.4g} vs {median_water:.4g}); check --fat and --water"
        )
    return None
