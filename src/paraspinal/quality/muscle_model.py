"""The calibrated muscle-quality model: small logistic models whose weights and thresholds are data.

``data/muscle.toml`` (written by ``recipes/quality/calibrate_muscle.py``) holds four models: ``slice`` and
``structure``, each fit ``with_confidence`` (a model's label map with ``margin``/``mirror_agreement`` maps)
and ``anatomy_only`` (a given label map). Each model has ``features`` (names from
:mod:`.muscle_signals`), ``mean`` and ``scale`` (standardisation), ``weights``, ``intercept`` and
``thresholds`` (``ok``, ``fail`` on the score). The probability of a bad result is
``p = 1 / (1 + exp(-(intercept + sum(weights * (x - mean) / scale))))`` and the score is ``1 - p``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np

from paraspinal.errors import InputError
from paraspinal.quality.assessment import Thresholds
from paraspinal.quality.muscle_signals import CONFIDENCE_FEATURES, SLICE_FEATURES, STRUCTURE_FEATURES

__all__ = ["LogisticModel", "MuscleModel", "load_muscle_model"]

_KINDS = {"slice": SLICE_FEATURES, "structure": STRUCTURE_FEATURES}
_VARIANTS = ("with_confidence", "anatomy_only")


@dataclass(frozen=True)
class LogisticModel:
    """One standardised logistic model (see the module docstring)."""

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    intercept: float
    thresholds: Thresholds

    def contributions(self, values: Mapping[str, float]) -> np.ndarray:
        """Each feature's term in the logit (``weights * (x - mean) / scale``)."""
        x = np.array([float(values.get(name, 0.0)) for name in self.features])
        return self.weights * (x - self.mean) / self.scale

    def risk(self, values: Mapping[str, float]) -> float:
        """Probability (0..1) that the result is bad."""
        logit = self.intercept + float(self.contributions(values).sum())
        return float(1.0 / (1.0 + np.exp(-np.clip(logit, -50.0, 50.0))))

    def to_toml_table(self) -> dict[str, object]:
        return {
            "features": list(self.features),
            "mean": [round(float(v), 6) for v in self.mean],
            "scale": [round(float(v), 6) for v in self.scale],
            "weights": [round(float(v), 6) for v in self.weights],
            "intercept": round(float(self.intercept), 6),
            "thresholds": {"ok": round(self.thresholds.ok, 4), "fail": round(self.thresholds.fail, 4)},
        }


@dataclass(frozen=True)
class MuscleModel:
    """The four calibrated models and the smallest logit term (``reason_min_logit``) worth a reason."""

    slice: Mapping[str, LogisticModel]
    structure: Mapping[str, LogisticModel]
    reason_min_logit: float
    source: str

    def pick(self, kind: str, *, confidence: bool) -> LogisticModel:
        table = self.slice if kind == "slice" else self.structure
        return table["with_confidence" if confidence else "anatomy_only"]


def default_model_path() -> Path:
    return Path(str(files("paraspinal.quality") / "data" / "muscle.toml"))


def load_muscle_model(path: str | Path | None = None) -> MuscleModel:
    """Read and validate a muscle-quality model file (default: the bundled ``data/muscle.toml``)."""
    path = Path(path) if path is not None else default_model_path()
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("muscle quality model file not found", path=path) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not valid TOML ({exc})", path=path) from None
    if document.get("format") != "paraspinal-muscle-quality/1":
        raise InputError("format must be 'paraspinal-muscle-quality/1'", path=path)
    try:
        reason_min = float(document.get("reason_min_logit", 0.5))
    except (TypeError, ValueError):
        raise InputError("reason_min_logit must be a number", path=path) from None
    tables: dict[str, dict[str, LogisticModel]] = {}
    for kind, known in _KINDS.items():
        section = document.get(kind)
        if not isinstance(section, dict):
            raise InputError(f"missing table [{kind}]", path=path)
        tables[kind] = {}
        for variant in _VARIANTS:
            where = f"{kind}.{variant}"
            table = section.get(variant)
            if not isinstance(table, dict):
                raise InputError(f"missing table [{where}]", path=path)
            tables[kind][variant] = _parse_model(table, where=where, known=known, path=path)
            if variant == "anatomy_only":
                used = CONFIDENCE_FEATURES.intersection(tables[kind][variant].features)
                if used:
                    raise InputError(f"{where} uses confidence features {sorted(used)}", path=path)
    return MuscleModel(tables["slice"], tables["structure"], reason_min, str(path))


def _parse_model(table: Mapping[str, object], *, where: str, known: tuple[str, ...], path: Path) -> LogisticModel:
    features = table.get("features")
    if not isinstance(features, list) or not features or not all(isinstance(f, str) for f in features):
        raise InputError(f"{where}.features must be a non-empty list of names", path=path)
    unknown = [f for f in features if f not in known]
    if unknown:
        raise InputError(f"{where}.features has unknown names {unknown} (known: {', '.join(known)})", path=path)
    arrays = {}
    for name in ("mean", "scale", "weights"):
        values = table.get(name)
        if not isinstance(values, list) or len(values) != len(features):
            raise InputError(f"{where}.{name} must list {len(features)} numbers, one per feature", path=path)
        try:
            arrays[name] = np.array([float(v) for v in values])
        except (TypeError, ValueError):
            raise InputError(f"{where}.{name} must hold numbers", path=path) from None
        if not np.isfinite(arrays[name]).all():
            raise InputError(f"{where}.{name} must be finite", path=path)
    if (arrays["scale"] <= 0).any():
        raise InputError(f"{where}.scale must be positive", path=path)
    thresholds = table.get("thresholds")
    try:
        intercept = float(table["intercept"])  # type: ignore[arg-type]
        limits = Thresholds(ok=float(thresholds["ok"]), fail=float(thresholds["fail"]))  # type: ignore[index]
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{where} needs intercept and thresholds.ok/fail in [0, 1] ({exc})", path=path) from None
    return LogisticModel(tuple(features), arrays["mean"], arrays["scale"], arrays["weights"], intercept, limits)
