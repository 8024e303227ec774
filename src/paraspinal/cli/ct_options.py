"""Typer options for CT (HU) measurements, shared by ``measure``, ``run`` and ``evaluate``; see
:mod:`paraspinal.measurement.ct`.

A command declares one parameter ``ct_options: CtOptions = CT_FLAGS`` and is decorated with
:func:`with_ct_flags`: the CT flags (declared once, in :func:`ct_flags`) take that parameter's place in the
command's signature, so ``--help`` lists them there, and the command receives them parsed into one
:class:`~paraspinal.measurement.ct_options.CtOptions`. A new CT flag is one row in :func:`ct_flags` and one
argument of :func:`parse_ct`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import typer

__all__ = ["CT_FLAGS", "ct_flags", "modality_option", "parse_ct", "with_ct_flags"]

F = TypeVar("F", bound=Callable[..., Any])
CT_FLAGS: Any = object()  # the default that marks a command's parameter taking the parsed CT options


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


def ct_flags(*, bmi: bool = True) -> list[tuple[str, object, Any]]:
    """(parameter name, type, typer option) of each CT flag, in the order ``--help`` lists them; ``bmi=False``
    leaves ``--bmi`` out."""
    flags = [
        (
            "ct_contrast",
            str | None,
            typer.Option(
                None, "--ct-contrast", help="CT contrast agent: applied, none or unknown (default: the DICOM fields)."
            ),
        ),
        (
            "erosion_mm",
            float,
            typer.Option(10.0, "--erosion-mm", help="CT organs: margin (mm) left out inside the organ mask."),
        ),
        (
            "outliers",
            str,
            typer.Option("mad", "--outliers", help="CT organs: drop vessels and lesions by mad, window or none."),
        ),
        (
            "mad_k",
            float,
            typer.Option(3.0, "--mad-k", help="CT organs: outliers lie beyond median ± k·1.4826·MAD (HU)."),
        ),
        (
            "outlier_window",
            str | None,
            typer.Option(None, "--outlier-window", help="CT organs: the HU window LOW,HIGH kept (--outliers window)."),
        ),
        (
            "adipose_window",
            str,
            typer.Option("-190,-30", "--adipose-window", help="CT: adipose (IMAT) HU window LOW,HIGH."),
        ),
        ("muscle_window", str, typer.Option("-29,150", "--muscle-window", help="CT: muscle HU window LOW,HIGH.")),
        (
            "rois",
            int,
            typer.Option(0, "--rois", min=0, help="CT organs: circular ROIs placed inside the parenchyma (0: none)."),
        ),
        ("roi_radius_mm", float, typer.Option(10.0, "--roi-radius-mm", help="CT organs: ROI radius (mm).")),
        (
            "bmi",
            float | None,
            typer.Option(None, "--bmi", help="Patient BMI (kg/m²): myosteatosis at L3 (Martin et al. 2013)."),
        ),
        (
            "organs",
            str,
            typer.Option("liver,spleen", "--organs", help="CT: organs whose parenchyma attenuation is measured."),
        ),
    ]
    return flags if bmi else [flag for flag in flags if flag[0] != "bmi"]


def with_ct_flags(*, bmi: bool = True) -> Callable[[F], F]:
    """Decorator: the command's parameter whose default is :data:`CT_FLAGS` becomes the CT flags (in its place)
    and receives them as one :class:`~paraspinal.measurement.ct_options.CtOptions` (without ``--bmi``: no BMI)."""

    def decorate(command: F) -> F:
        signature = inspect.signature(command)
        params = list(signature.parameters.values())
        marked = [i for i, p in enumerate(params) if p.default is CT_FLAGS]
        if len(marked) != 1:
            raise TypeError(f"{command.__name__}: expected one parameter defaulting to CT_FLAGS, found {len(marked)}")
        at, target = marked[0], params[marked[0]].name
        flags = ct_flags(bmi=bmi)
        params[at : at + 1] = [
            inspect.Parameter(name, params[at].kind, default=option, annotation=kind) for name, kind, option in flags
        ]
        names = [name for name, _kind, _option in flags]

        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {name: kwargs.pop(name) for name in names}
            return command(*args, **kwargs, **{target: parse_ct(**{"bmi": None, **values})})

        annotations = {k: v for k, v in command.__annotations__.items() if k != target}
        wrapper.__annotations__ = {**annotations, **{name: kind for name, kind, _option in flags}}
        wrapper.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


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
