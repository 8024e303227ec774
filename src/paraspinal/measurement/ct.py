"""CT rows of the measurement table: muscle attenuation per slice, level and side, organ parenchyma, categories.

:func:`~paraspinal.measurement.case.measure_case` calls :func:`add_ct_rows` when given a CT (``ct=``).
Rows use the table's columns, ``image`` = ``ct``, and name their window or selection in ``method``:

Muscles (category ``muscle``/``muscle_group``; each side and ``both``; scopes structure, slice, level):
``hu_mean``/``hu_median``/``hu_sd`` (HU, method ``mask``: every labelled voxel), ``hu_mean`` (HU, method
``hu[-29,150]``: the muscle-window mean, Martin's muscle attenuation), ``imat_share`` (%, method ``hu[-190,-30]``)
and ``muscle_share`` (%, method ``hu[-29,150]``); ``myosteatosis`` (bool, level L3) when a BMI is given.

Organs (``CtOptions.organs``, default liver and spleen; scope structure): ``hu_mean``/``hu_median``/``hu_sd``
and ``volume`` (mL) of the parenchyma (method ``parenchyma:erode10mm+mad3``), ``hu_mean`` of the whole mask
(``mask``), ``excluded_share`` (%: the total, ``margin:10mm``, ``outliers:mad3``), the kept HU bounds, the
ROI mean (``ai_roi:3x10mm``) when ROIs are asked for, ``liver_minus_spleen`` (HU) and the steatosis
categories (``steatosis_grade``, ``steatosis_liver_spleen``), withheld unless the CT is unenhanced.

Flags: ``contrast_applied`` / ``contrast_unknown`` on every CT row of an enhanced or unknown-contrast CT,
``padding_excluded`` where padding voxels were left out, ``category_<label>`` on category rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from paraspinal.anatomy import AnatomyRegistry, LabelScheme
from paraspinal.errors import InputError
from paraspinal.io.ct import contrast_state
from paraspinal.io.image import Image
from paraspinal.levels import LevelTable
from paraspinal.measurement.attenuation import (
    MARTIN2013_NOTE,
    hu_stats,
    martin2013_method,
    myosteatosis_martin2013,
    window_label,
)
from paraspinal.measurement.ct_options import CtOptions
from paraspinal.measurement.parenchyma import (
    ParenchymaSelection,
    place_rois,
    select_parenchyma,
    steatosis_categories,
)
from paraspinal.measurement.regions import RegionVoxels
from paraspinal.measurement.rows import Group, RowBuilder, rows_of, spans

__all__ = ["CT_IMAGE", "CtOptions", "add_ct_rows", "ct_contrast"]

CT_IMAGE = "ct"
MUSCLE_CATEGORIES = ("muscle", "muscle_group")
MYOSTEATOSIS_LEVEL = "L3"


def ct_contrast(ct: Image, options: CtOptions) -> str:
    """The contrast state in force: the option when given, else the image's metadata, else ``unknown``."""
    if options.contrast is not None:
        return options.contrast
    return contrast_state(str(ct.metadata.get("contrast_agent") or "unknown"))


def add_ct_rows(
    builder: RowBuilder,
    groups: Sequence[Group],
    voxels: RegionVoxels,
    *,
    hu: np.ndarray,
    valid: np.ndarray,
    voxel_counts: np.ndarray,
    levels: LevelTable | None,
    ct: Image,
    labels: Image,
    scheme: LabelScheme,
    registry: AnatomyRegistry,
    options: CtOptions,
) -> tuple[dict[str, ParenchymaSelection], list[str]]:
    """Add the CT rows; returns the organ selections (for QC) and case warnings.

    ``hu`` and ``valid`` (not padding) are per labelled voxel, as ``voxels``; ``voxel_counts`` is the
    per-(region, slice) count matrix of :func:`~paraspinal.measurement.sums.slice_sums`.
    """
    contrast = ct_contrast(ct, options)
    contrast_flag = "" if contrast == "none" else f"contrast_{contrast}"
    warnings: list[str] = []
    for group in groups:
        if group.category in MUSCLE_CATEGORIES:
            _muscle_rows(builder, group, voxels, hu, valid, voxel_counts, levels, options, contrast_flag, warnings)
    if options.bmi_kg_m2 is not None and MYOSTEATOSIS_LEVEL not in (levels.names if levels else ()):
        warnings.append("myosteatosis (Martin et al. 2013) is defined at L3, and the case has no L3 level")
    selections = _organ_rows(builder, ct, labels, scheme, registry, options, contrast, contrast_flag, warnings)
    return selections, warnings


def _flags(*flags: str) -> str:
    return ";".join(f for f in flags if f)


def _muscle_rows(
    builder: RowBuilder,
    group: Group,
    voxels: RegionVoxels,
    hu: np.ndarray,
    valid: np.ndarray,
    voxel_counts: np.ndarray,
    levels: LevelTable | None,
    options: CtOptions,
    contrast_flag: str,
    warnings: list[str],
) -> None:
    in_group = np.isin(voxels.region, group.rows)
    padded = int(np.count_nonzero(in_group & ~valid))
    keep = in_group & valid
    order = np.argsort(voxels.slice_index[keep], kind="stable")
    values, slices = hu[keep][order], voxels.slice_index[keep][order]
    flags = _flags(contrast_flag, "padding_excluded" if padded else "")
    if padded and group.side != "both":
        warnings.append(f"{group.structure} ({group.side}): {padded} padding voxels left out of the CT values")
    adipose, muscle = window_label(options.adipose_window_hu), window_label(options.muscle_window_hu)
    for span, where in spans(rows_of(voxel_counts, group), levels):
        lo = 0 if span.start is None else int(np.searchsorted(slices, span.start, side="left"))
        hi = slices.size if span.stop is None else int(np.searchsorted(slices, span.stop, side="left"))
        st = hu_stats(
            values[lo:hi], adipose_window_hu=options.adipose_window_hu, muscle_window_hu=options.muscle_window_hu
        )
        for metric, method, value, unit in (
            ("hu_mean", "mask", st.mean, "HU"),
            ("hu_median", "mask", st.median, "HU"),
            ("hu_sd", "mask", st.sd, "HU"),
            ("hu_mean", muscle, st.muscle_mean, "HU"),
            ("imat_share", adipose, st.adipose_share_pct, "%"),
            ("muscle_share", muscle, st.muscle_share_pct, "%"),
        ):
            builder.add(
                group, metric=metric, method=method, image=CT_IMAGE, value=value, unit=unit, extra=flags, **where
            )  # type: ignore[arg-type]
        if options.bmi_kg_m2 is not None and where.get("level") == MYOSTEATOSIS_LEVEL:
            low = myosteatosis_martin2013(st.muscle_mean, bmi_kg_m2=options.bmi_kg_m2)
            builder.add(
                group,
                metric="myosteatosis",
                method=martin2013_method(options.bmi_kg_m2),
                image=CT_IMAGE,
                value=float(low) if math.isfinite(st.muscle_mean) else float("nan"),
                unit="bool",
                extra=_flags(flags, MARTIN2013_NOTE),
                **where,  # type: ignore[arg-type]
            )


def _organ_rows(
    builder: RowBuilder,
    ct: Image,
    labels: Image,
    scheme: LabelScheme,
    registry: AnatomyRegistry,
    options: CtOptions,
    contrast: str,
    contrast_flag: str,
    warnings: list[str],
) -> dict[str, ParenchymaSelection]:
    selections: dict[str, ParenchymaSelection] = {}
    for organ in options.organs:
        if organ not in registry:
            raise InputError(f"organ {organ!r} is not a structure of the anatomy registry")
        values = scheme.values_for(organ, registry=registry)
        mask = np.isin(labels.array, values) if values else np.zeros(labels.shape, dtype=bool)
        if not mask.any():
            continue
        sel = select_parenchyma(
            ct,
            mask,
            erosion_mm=options.erosion_mm,
            outliers=options.outliers,
            mad_k=options.mad_k,
            window_hu=options.outlier_window_hu,
        )
        selections[organ] = sel
        group = Group(organ, "none", (), registry[organ].category)
        method = f"parenchyma:{sel.method}"
        flags = _flags(contrast_flag, "padding_excluded" if sel.padding.any() else "")
        whole = np.asarray(ct.array)[mask & ~sel.padding].astype(np.float64)
        rule = sel.method.partition("+")[2] or "none"
        rows = [
            ("hu_mean", method, sel.mean_hu, "HU"),
            ("hu_median", method, sel.median_hu, "HU"),
            ("hu_sd", method, sel.sd_hu, "HU"),
            ("volume", method, sel.volume_ml, "mL"),
            ("hu_mean", "mask", float(whole.mean()) if whole.size else float("nan"), "HU"),
            ("excluded_share", method, sel.excluded_share_pct, "%"),
            ("excluded_share", f"margin:{options.erosion_mm:g}mm", sel.share_pct(sel.margin), "%"),
            ("excluded_share", f"outliers:{rule}", sel.share_pct(sel.outliers), "%"),
            ("hu_lower_bound", method, sel.bounds_hu[0], "HU"),
            ("hu_upper_bound", method, sel.bounds_hu[1], "HU"),
        ]
        if options.n_rois:
            rois = place_rois(ct, sel, n_rois=options.n_rois, radius_mm=options.roi_radius_mm)
            mean = float(np.mean([r.mean_hu for r in rois])) if rois else float("nan")
            rows.append(("hu_mean", f"ai_roi:{options.n_rois}x{options.roi_radius_mm:g}mm", mean, "HU"))
            if len(rois) < options.n_rois:
                warnings.append(f"{organ}: {len(rois)} of {options.n_rois} ROIs fit inside the selected parenchyma")
        if sel.n_selected == 0:
            warnings.append(f"{organ}: no parenchyma left after the {options.erosion_mm:g} mm margin and outliers")
        for metric, row_method, value, unit in rows:
            builder.add(
                group,
                scope="structure",
                metric=metric,
                method=row_method,
                image=CT_IMAGE,
                value=value,
                unit=unit,
                extra=flags,
            )
    _steatosis_rows(builder, selections, registry, contrast, contrast_flag, warnings)
    return selections


def _steatosis_rows(
    builder: RowBuilder,
    selections: Mapping[str, ParenchymaSelection],
    registry: AnatomyRegistry,
    contrast: str,
    contrast_flag: str,
    warnings: list[str],
) -> None:
    liver, spleen = selections.get("liver"), selections.get("spleen")
    if liver is None:
        return
    group = Group("liver", "none", (), registry["liver"].category)
    method = f"parenchyma:{liver.method}"
    if spleen is not None:
        difference = liver.mean_hu - spleen.mean_hu
        builder.add(group, scope="structure", metric="liver_minus_spleen", method=method, image=CT_IMAGE,
                    value=difference, unit="HU", extra=contrast_flag)  # fmt: skip
    categories = steatosis_categories(
        liver.mean_hu, spleen_hu=None if spleen is None else spleen.mean_hu, contrast=contrast
    )
    for category in categories:
        label = category.label
        if label == "withheld":
            label = f"withheld_contrast_{contrast}" if contrast != "none" else "withheld_no_parenchyma"
        unit = "grade" if category.metric == "steatosis_grade" else "bool"
        builder.add(group, scope="structure", metric=category.metric, method=category.method, image=CT_IMAGE,
                    value=category.value, unit=unit, extra=_flags(contrast_flag, f"category_{label}"))  # fmt: skip
    notes = {c.note for c in categories if c.note}
    warnings.extend(f"liver steatosis: {note} (attenuation reported)" for note in sorted(notes))
