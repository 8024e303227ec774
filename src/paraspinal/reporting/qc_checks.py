"""The QC checks a report shows for each case: segmentation, field of view, fat/water swap, laterality."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from paraspinal.measurement import Measurements
from paraspinal.quality import LateralityCheck

__all__ = ["CLEANUP_WARN_FRACTION", "Check", "case_checks", "segmentation_check"]

CLEANUP_WARN_FRACTION = 0.10

Status = Literal["ok", "warning", "not_applicable"]


@dataclass(frozen=True)
class Check:
    """One check: a stable ``name``, a title for people, its status and a one-line explanation."""

    name: str
    title: str
    status: Status
    message: str


def _flagged(table: pd.DataFrame, flag: str) -> list[str]:
    """``structure side`` of every structure-scope volume row carrying ``flag``."""
    rows = table[(table["scope"] == "structure") & (table["metric"] == "volume")]
    hit = rows[rows["flags"].fillna("").str.split(";").map(lambda flags: flag in flags)]
    return [f"{s} ({side})" for s, side in zip(hit["structure"], hit["side"], strict=True) if side != "both"]


def case_checks(
    measurements: Measurements, *, dixon: bool, anatomy: LateralityCheck | None = None
) -> tuple[Check, ...]:
    """The three report checks of one measured case (``dixon``: a water/fat pair was measured; ``anatomy``:
    the anatomical laterality check, which the laterality check then reports beside the affine's)."""
    table = measurements.table
    truncated = _flagged(table, "fov_truncated")
    if measurements.frame.n_slices == 1:
        fov = Check(
            "fov_truncated",
            "Field of view",
            "not_applicable",
            "single-slice image: no slices above or below to tell",
        )
    elif truncated:
        fov = Check(
            "fov_truncated",
            "Field of view",
            "warning",
            f"{', '.join(truncated)} touch the first or last slice: their volumes are lower bounds",
        )
    else:
        fov = Check("fov_truncated", "Field of view", "ok", "every structure ends inside the image stack")
    if not dixon:
        swap = Check("fat_water_swap", "Fat/water swap", "not_applicable", "no Dixon water/fat pair measured")
    elif "fat_water_swap_suspected" in measurements.flags.get("fat_fraction", ()):
        message = next((w for w in measurements.warnings if "swapped" in w), "fat brighter than water in muscle")
        swap = Check("fat_water_swap", "Fat/water swap", "warning", message)
    else:
        swap = Check(
            "fat_water_swap",
            "Fat/water swap",
            "ok",
            "inside muscle the water image is brighter than the fat image, as expected",
        )
    mismatched = _flagged(table, "laterality_mismatch")
    sided = {(r.structure, r.side) for r in measurements.regions if r.side in ("left", "right")}
    paired = {s for s, side in sided if side == "right" and (s, "left") in sided}
    if mismatched:
        laterality = Check(
            "laterality",
            "Laterality",
            "warning",
            f"labels named right lie left of those named left (per the affine): {', '.join(mismatched)}",
        )
    elif paired:
        laterality = Check(
            "laterality",
            "Laterality",
            "ok",
            "structures labelled right lie on the patient's right (per the image affine)",
        )
    else:
        laterality = Check("laterality", "Laterality", "not_applicable", "no structure labelled on both sides")
    return (fov, swap, _with_anatomy(laterality, anatomy))


def _with_anatomy(check: Check, anatomy: LateralityCheck | None) -> Check:
    """The affine-based laterality check told what anatomy says: a contradiction warns, the rest is added."""
    if anatomy is None:
        return check
    reason = "; ".join(anatomy.reasons)
    if anatomy.result == "contradicted":
        return Check(check.name, check.title, "warning", f"anatomy contradicts the header: {reason}")
    if anatomy.result == "agrees":
        if check.status == "warning":
            return Check(check.name, check.title, "warning", f"{check.message}; anatomy: {reason}")
        return Check(check.name, check.title, "ok", reason)
    return Check(check.name, check.title, check.status, f"{check.message}; anatomy not checked: {reason}")


def segmentation_check(
    *, segmented: bool, expected: Sequence[int], present: Sequence[int], cleanup: Sequence[Mapping[str, object]]
) -> Check:
    """Warn when a segmentation lacks labels its model produces, or when the largest-component clean-up
    removed more than :data:`CLEANUP_WARN_FRACTION` of a label (scattered, implausible output).

    ``cleanup`` holds :class:`~paraspinal.postprocessing.CleanupRecord` fields as mappings.
    """
    if not segmented:
        return Check("segmentation", "Segmentation", "not_applicable", "label map given: measured as drawn")
    problems = []
    missing = sorted(set(expected) - set(present))
    if missing:
        problems.append(f"label(s) {', '.join(map(str, missing))} missing")
    for record in cleanup:
        kept, removed = int(record["voxels_kept"]), int(record["voxels_removed"])  # type: ignore[call-overload]
        if kept + removed and removed / (kept + removed) > CLEANUP_WARN_FRACTION:
            problems.append(
                f"label {record['label']}: {100 * removed / (kept + removed):.0f}% outside its largest part"
            )
    if problems:
        return Check("segmentation", "Segmentation", "warning", "; ".join(problems) + ": check the label outlines")
    return Check(
        "segmentation",
        "Segmentation",
        "ok",
        f"every label present; the largest-component step removed at most {100 * CLEANUP_WARN_FRACTION:.0f}% of any",
    )
