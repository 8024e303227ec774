"""Typer options for CT (HU) measurements, shared by ``measure`` and ``run``; see :mod:`paraspinal.measurement.ct`."""

from __future__ import annotations

import typer

__all__ = [
    "adipose_window_option",
    "bmi_option",
    "ct_contrast_option",
    "erosion_option",
    "mad_k_option",
    "modality_option",
    "muscle_window_option",
    "organs_option",
    "outlier_window_option",
    "outliers_option",
    "parse_ct",
    "roi_radius_option",
    "rois_option",
]


def _window(text: str | None, *, hint: str) -> tuple[float, float] | None:
    if text is None:
        return None
    low, _, high = text.partition(",")
    try:
        return float(low), float(high)
    except ValueError:
        raise typer.BadParameter(f"expected LOW,HIGH in HU (e.g. -190,-30), got {text!r}", param_hint=hint) from None


def modality_option() -> str:
    return typer.Option(
        "auto", "--modality", help="auto (a DICOM series' Modality decides), ct (the image is a CT in HU), or mr."
    )


def ct_contrast_option() -> str | None:
    return typer.Option(
        None, "--ct-contrast", help="CT contrast agent: applied, none or unknown (default: the DICOM fields)."
    )


def erosion_option() -> float:
    return typer.Option(10.0, "--erosion-mm", help="CT organs: margin (mm) left out inside the organ mask.")


def outliers_option() -> str:
    return typer.Option("mad", "--outliers", help="CT organs: drop vessels and lesions by mad, window or none.")


def mad_k_option() -> float:
    return typer.Option(3.0, "--mad-k", help="CT organs: outliers lie beyond median ± k·1.4826·MAD (HU).")


def outlier_window_option() -> str | None:
    return typer.Option(None, "--outlier-window", help="CT organs: the HU window LOW,HIGH kept (--outliers window).")


def adipose_window_option() -> str:
    return typer.Option("-190,-30", "--adipose-window", help="CT: adipose (IMAT) HU window LOW,HIGH.")


def muscle_window_option() -> str:
    return typer.Option("-29,150", "--muscle-window", help="CT: muscle HU window LOW,HIGH.")


def rois_option() -> int:
    return typer.Option(0, "--rois", min=0, help="CT organs: circular ROIs placed inside the parenchyma (0: none).")


def roi_radius_option() -> float:
    return typer.Option(10.0, "--roi-radius-mm", help="CT organs: ROI radius (mm).")


def bmi_option() -> float | None:
    return typer.Option(None, "--bmi", help="Patient BMI (kg/m²): myosteatosis at L3 (Martin et al. 2013).")


def organs_option() -> str:
    return typer.Option("liver,spleen", "--organs", help="CT: organs whose parenchyma attenuation is measured.")


def parse_ct(
    *,
    ct_contrast: str | None,
    erosion_mm: float,
    outliers: str,
    mad_k: float,
    outlier_window: str | None,
    adipose_window: str,
    muscle_window: str,
    rois: int,
    roi_radius_mm: float,
    bmi: float | None,
    organs: str,
):
    """The CT flags as :class:`~paraspinal.measurement.ct.CtOptions` (bad values: one-line errors)."""
    from paraspinal.measurement.ct_options import CtOptions

    return CtOptions(
        adipose_window_hu=_window(adipose_window, hint="--adipose-window"),  # type: ignore[arg-type]
        muscle_window_hu=_window(muscle_window, hint="--muscle-window"),  # type: ignore[arg-type]
        organs=tuple(o.strip() for o in organs.split(",") if o.strip()),
        erosion_mm=erosion_mm,
        outliers=outliers,
        mad_k=mad_k,
        outlier_window_hu=_window(outlier_window, hint="--outlier-window"),
        n_rois=rois,
        roi_radius_mm=roi_radius_mm,
        bmi_kg_m2=bmi,
        contrast=ct_contrast,
    )
