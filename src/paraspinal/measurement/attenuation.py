"""Muscle attenuation on CT: HU statistics, adipose (IMAT) and muscle shares, and myosteatosis by Martin et al.

Windows are closed HU intervals, named in every row's ``method`` (``hu[-190,-30]``):

* adipose tissue, -190 to -30 HU: the usual intermuscular/intramuscular adipose tissue (IMAT) window of
  CT body-composition analysis (e.g. Mitsiopoulos et al., J Appl Physiol 1998;85:115-122; Martin et al. 2013);
* skeletal muscle, -29 to +150 HU: the muscle window of the same literature; the mean HU of the voxels
  inside it is the "muscle attenuation" (MA) of Martin et al. 2013.

Myosteatosis (:func:`myosteatosis_martin2013`): Martin L, Birdsell L, MacDonald N, et al. Cancer cachexia in
the age of obesity: skeletal muscle depletion is a powerful prognostic factor, independent of body mass index.
J Clin Oncol 2013;31(12):1539-1547. Low muscle attenuation is MA < 41 HU with BMI < 25 kg/m², and MA < 33 HU
with BMI >= 25 kg/m² (the same for women and men), measured on one CT slice at L3 over ALL skeletal muscle
there (psoas, paraspinal, abdominal wall) in the -29 to 150 HU window. Applied here to one muscle or muscle
group at L3, it is an extrapolation, and every such row says so in its flags.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from paraspinal.errors import InputError

__all__ = [
    "ADIPOSE_WINDOW_HU",
    "MARTIN2013_NOTE",
    "MUSCLE_WINDOW_HU",
    "HuStats",
    "checked_window",
    "hu_stats",
    "myosteatosis_martin2013",
    "window_label",
]

ADIPOSE_WINDOW_HU = (-190.0, -30.0)
MUSCLE_WINDOW_HU = (-29.0, 150.0)
MARTIN2013_BMI_KG_M2 = 25.0
MARTIN2013_CUTOFFS_HU = (41.0, 33.0)  # BMI < 25, BMI >= 25
MARTIN2013_NOTE = "martin2013_cutoff_defined_for_all_L3_skeletal_muscle_not_this_structure_alone"


@dataclass(frozen=True)
class HuStats:
    """HU statistics of one set of voxels.

    Attributes:
        n: voxels.
        mean, median, sd: over all of them (HU; sd with ddof=1, NaN for fewer than 2).
        adipose_share_pct, muscle_share_pct: % of voxels inside the adipose and the muscle window.
        muscle_mean: mean HU of the voxels inside the muscle window (Martin's muscle attenuation).
    """

    n: int
    mean: float
    median: float
    sd: float
    adipose_share_pct: float
    muscle_share_pct: float
    muscle_mean: float


def window_label(window_hu: tuple[float, float]) -> str:
    """``hu[-190,-30]``: how a window is named in tables (never a leading sign: spreadsheets read those as formulas)."""
    return f"hu[{window_hu[0]:g},{window_hu[1]:g}]"


def checked_window(window_hu: tuple[float, float], *, name: str) -> tuple[float, float]:
    """``window_hu`` as two finite floats, low <= high; :class:`InputError` naming the option otherwise."""
    try:
        low, high = (float(v) for v in window_hu)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be two numbers (low, high) in HU, not {window_hu!r}") from None
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise InputError(f"{name} must run from a low to a high HU value, not {low:g}..{high:g}")
    return low, high


def hu_stats(
    values_hu: np.ndarray,
    *,
    adipose_window_hu: tuple[float, float] = ADIPOSE_WINDOW_HU,
    muscle_window_hu: tuple[float, float] = MUSCLE_WINDOW_HU,
) -> HuStats:
    """:class:`HuStats` of ``values_hu`` (any shape, computed in float64); NaNs for no voxels."""
    v = np.asarray(values_hu, dtype=np.float64).ravel()
    if v.size == 0:
        nan = float("nan")
        return HuStats(0, nan, nan, nan, nan, nan, nan)
    adipose = (v >= adipose_window_hu[0]) & (v <= adipose_window_hu[1])
    muscle = (v >= muscle_window_hu[0]) & (v <= muscle_window_hu[1])
    return HuStats(
        n=int(v.size),
        mean=float(v.mean()),
        median=float(np.median(v)),
        sd=float(v.std(ddof=1)) if v.size > 1 else float("nan"),
        adipose_share_pct=100.0 * float(np.count_nonzero(adipose)) / v.size,
        muscle_share_pct=100.0 * float(np.count_nonzero(muscle)) / v.size,
        muscle_mean=float(v[muscle].mean()) if muscle.any() else float("nan"),
    )


def myosteatosis_martin2013(muscle_attenuation_hu: float, *, bmi_kg_m2: float) -> bool:
    """Low muscle attenuation by Martin et al. 2013: MA < 41 HU (BMI < 25 kg/m²) or < 33 HU (BMI >= 25).

    ``muscle_attenuation_hu`` is the mean HU of the -29 to 150 HU voxels at L3 (see the module docstring for
    the cohort it was defined on). Raises :class:`InputError` for a BMI that is not a positive number.
    """
    if not (isinstance(bmi_kg_m2, int | float) and math.isfinite(bmi_kg_m2) and 10.0 <= bmi_kg_m2 <= 100.0):
        raise InputError(f"BMI must be a number of kg/m² between 10 and 100, not {bmi_kg_m2!r}")
    cutoff = MARTIN2013_CUTOFFS_HU[0] if bmi_kg_m2 < MARTIN2013_BMI_KG_M2 else MARTIN2013_CUTOFFS_HU[1]
    return bool(muscle_attenuation_hu < cutoff)


def martin2013_method(bmi_kg_m2: float) -> str:
    """``martin2013:MA<41HU(BMI<25)`` or ``martin2013:MA<33HU(BMI>=25)`` for the row's method."""
    if bmi_kg_m2 < MARTIN2013_BMI_KG_M2:
        return f"martin2013:MA<{MARTIN2013_CUTOFFS_HU[0]:g}HU(BMI<25)"
    return f"martin2013:MA<{MARTIN2013_CUTOFFS_HU[1]:g}HU(BMI>=25)"
