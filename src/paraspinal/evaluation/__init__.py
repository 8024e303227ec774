"""Evaluation: segmentation accuracy against manual masks and agreement of measurements.

* :mod:`.overlap` — Dice, IoU, HD95, ASSD (mm), volume differences, per label and level.
* :mod:`.agreement` — MAE/MSE/MAPE, ICC(2,1)/(3,1), correlations, Bland-Altman, TOST, kappa.
* :mod:`.measurement_agreement` — the same on tidy measurement tables; fat-voxel classification.
* :mod:`.pairing`, :mod:`.run`, :mod:`.plots` — matching cases, the whole run, its figures.

Nothing is imported here until a name is asked for (lazy re-exports).
"""

from paraspinal._lazy import lazy_exports

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

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "BlandAltman": "paraspinal.evaluation.agreement",
        "ClassificationAgreement": "paraspinal.evaluation.agreement",
        "IccResult": "paraspinal.evaluation.agreement",
        "TostResult": "paraspinal.evaluation.agreement",
        "agreement_statistics": "paraspinal.evaluation.agreement",
        "bland_altman": "paraspinal.evaluation.agreement",
        "classification_agreement": "paraspinal.evaluation.agreement",
        "classification_agreement_from_counts": "paraspinal.evaluation.agreement",
        "correlations": "paraspinal.evaluation.agreement",
        "error_metrics": "paraspinal.evaluation.agreement",
        "icc": "paraspinal.evaluation.agreement",
        "tost_paired": "paraspinal.evaluation.agreement",
        "SurfaceDistances": "paraspinal.evaluation.overlap",
        "assd_mm": "paraspinal.evaluation.overlap",
        "dice": "paraspinal.evaluation.overlap",
        "dice_per_label": "paraspinal.evaluation.overlap",
        "hausdorff_mm": "paraspinal.evaluation.overlap",
        "iou": "paraspinal.evaluation.overlap",
        "overlap_table": "paraspinal.evaluation.overlap",
        "surface_distances": "paraspinal.evaluation.overlap",
    },
)
