"""How CT is measured: :class:`CtOptions` (see :mod:`paraspinal.measurement.ct`), importable without pandas or
scipy so that every run's options can carry it."""

from __future__ import annotations

from dataclasses import dataclass

from paraspinal.errors import InputError
from paraspinal.io.ct import contrast_state
from paraspinal.measurement.attenuation import ADIPOSE_WINDOW_HU, MUSCLE_WINDOW_HU, checked_window
from paraspinal.measurement.parenchyma import OUTLIER_RULES

__all__ = ["CtOptions"]


@dataclass(frozen=True)
class CtOptions:
    """How CT is measured (every field has the default stated in the module docstrings).

    Attributes:
        adipose_window_hu, muscle_window_hu: closed HU windows of adipose tissue and muscle.
        organs: registry structures whose parenchyma is selected (those labelled in the case).
        erosion_mm: margin removed inside each organ mask (mm, isotropic in world space).
        outliers: ``mad`` (median ± ``mad_k`` · 1.4826 · MAD), ``window`` (``outlier_window_hu``) or ``none``.
        n_rois, roi_radius_mm: automatically placed circular ROIs per organ (0: none).
        bmi_kg_m2: the patient's BMI, enabling myosteatosis by Martin et al. 2013 at L3.
        contrast: the contrast state to use instead of the image's metadata (``applied``, ``none``, ``unknown``).
    """

    adipose_window_hu: tuple[float, float] = ADIPOSE_WINDOW_HU
    muscle_window_hu: tuple[float, float] = MUSCLE_WINDOW_HU
    organs: tuple[str, ...] = ("liver", "spleen")
    erosion_mm: float = 10.0
    outliers: str = "mad"
    mad_k: float = 3.0
    outlier_window_hu: tuple[float, float] | None = None
    n_rois: int = 0
    roi_radius_mm: float = 10.0
    bmi_kg_m2: float | None = None
    contrast: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "adipose_window_hu", checked_window(self.adipose_window_hu, name="adipose window"))
        object.__setattr__(self, "muscle_window_hu", checked_window(self.muscle_window_hu, name="muscle window"))
        if self.outlier_window_hu is not None:
            window = checked_window(self.outlier_window_hu, name="outlier window")
            object.__setattr__(self, "outlier_window_hu", window)
        if self.outliers not in OUTLIER_RULES:
            raise InputError(f"unknown outlier rule {self.outliers!r}; choose from {', '.join(OUTLIER_RULES)}")
        if self.contrast is not None:
            object.__setattr__(self, "contrast", contrast_state(self.contrast))
        if self.n_rois < 0:
            raise InputError(f"the number of ROIs must be 0 or more, not {self.n_rois}")
