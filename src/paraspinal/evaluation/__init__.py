"""Evaluation: segmentation accuracy against manual masks and agreement of measurements.

* :mod:`.overlap` — Dice, IoU, HD95, ASSD (mm), volume differences, per label and level.
* :mod:`.agreement` — MAE/MSE/MAPE, ICC(2,1)/(3,1), correlations, Bland-Altman, TOST, kappa.
* :mod:`.measurement_agreement` — the same on tidy measurement tables; fat-voxel classification.
* :mod:`.pairing`, :mod:`.run`, :mod:`.plots` — matching cases, the whole run, its figures.

Only the pure array functions are imported here; ``run`` and ``plots`` load on demand.
"""

from paraspinal.evaluation.agreement import (
    BlandAltman,
    ClassificationAgreement,
    IccResult,
    TostResult,
    agreement_statistics,
    bland_altman,
    classification_agreement,
    classification_agreement_from_counts,
    correlations,
    error_metrics,
    icc,
    tost_paired,
)
from paraspinal.evaluation.overlap import (
    SurfaceDistances,
    assd_mm,
    dice,
    dice_per_label,
    hausdorff_mm,
    iou,
    overlap_table,
    surface_distances,
)

__all__ = [
    "BlandAltman",
    "ClassificationAgreement",
    "IccResult",
    "SurfaceDistances",
    "TostResult",
    "agreement_statistics",
    "assd_mm",
    "bland_altman",
    "classification_agreement",
    "classification_agreement_from_counts",
    "correlations",
    "dice",
    "dice_per_label",
    "error_metrics",
    "hausdorff_mm",
    "icc",
    "iou",
    "overlap_table",
    "surface_distances",
    "tost_paired",
]
