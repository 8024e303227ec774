"""The standardised logistic model behind the calibrated quality scores (muscle and levels), and its TOML form.

A model has ``features`` (signal names), ``mean`` and ``scale`` (standardisation), ``weights``, ``intercept``
and ``thresholds`` (``ok``, ``fail`` on the score). The probability of a bad result is
``p = 1 / (1 + exp(-(intercept + sum(weights * (x - mean) / scale))))`` and the score is ``1 - p``. In a model
file it is one TOML table::

    features = ["a", "b"]
    mean = [0.1, 0.2]
    scale = [1.0, 0.5]
    weights = [0.3, 0.0]
    intercept = -2.5
    thresholds = { ok = 0.9, fail = 0.4 }
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from paraspinal.errors import InputError
from paraspinal.quality.assessment import Thresholds

__all__ = ["LogisticModel", "parse_logistic_model", "read_model_file"]


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
        """Each feature's term in the logit (``weights * (x - mean) / scale``); a feature not given counts as the
        value 0, a NaN one (not measured) adds nothing."""
        x = np.array([float(values.get(name, 0.0)) for name in self.features])
        terms = self.weights * (x - self.mean) / self.scale
        return np.where(np.isnan(x), 0.0, terms)

    def logit(self, values: Mapping[str, float]) -> float:
        """The log-odds of a bad result (``intercept`` plus the contributions)."""
        return self.intercept + float(self.contributions(values).sum())

    def risk(self, values: Mapping[str, float]) -> float:
        """Probability (0..1) that the result is bad."""
        return float(1.0 / (1.0 + np.exp(-np.clip(self.logit(values), -50.0, 50.0))))

    def to_toml_table(self) -> dict[str, object]:
        return {
            "features": list(self.features),
            "mean": [round(float(v), 6) for v in self.mean],
            "scale": [round(float(v), 6) for v in self.scale],
            "weights": [round(float(v), 6) for v in self.weights],
            "intercept": round(float(self.intercept), 6),
            "thresholds": {"ok": round(self.thresholds.ok, 4), "fail": round(self.thresholds.fail, 4)},
        }


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def parse_logistic_model(
    table: Mapping[str, object], *, where: str, known: Collection[str], path: str | Path
) -> LogisticModel:
    """A :class:`LogisticModel` from the TOML table at ``where`` in the file ``path``, its features among
    ``known``; every problem is a one-line :class:`InputError` naming the file."""
    features = table.get("features")
    if not isinstance(features, list) or not features or not all(isinstance(f, str) for f in features):
        raise InputError(f"{where}.features must be a non-empty list of names", path=path)
    unknown = [f for f in features if f not in known]
    if unknown:
        raise InputError(f"{where}.features has unknown names {unknown} (known: {', '.join(known)})", path=path)
    if len(set(features)) != len(features):
        raise InputError(f"{where}.features names a feature twice", path=path)
    arrays = {}
    for name in ("mean", "scale", "weights"):
        values = table.get(name)
        if not isinstance(values, list) or len(values) != len(features):
            raise InputError(f"{where}.{name} must list {len(features)} numbers, one per feature", path=path)
        if not all(_finite(v) for v in values):
            raise InputError(f"{where}.{name} must hold finite numbers", path=path)
        arrays[name] = np.array([float(v) for v in values])  # type: ignore[arg-type]
    if (arrays["scale"] <= 0).any():
        raise InputError(f"{where}.scale must be positive", path=path)
    intercept, thresholds = table.get("intercept"), table.get("thresholds")
    if not _finite(intercept):
        raise InputError(f"{where}.intercept must be a finite number", path=path)
    if not isinstance(thresholds, dict) or not all(_finite(thresholds.get(k)) for k in ("ok", "fail")):
        raise InputError(f"{where}.thresholds must be a table of numbers ok and fail", path=path)
    try:
        limits = Thresholds(ok=float(thresholds["ok"]), fail=float(thresholds["fail"]))
    except ValueError as exc:
        raise InputError(f"{where}.thresholds: {exc}", path=path) from None
    offset = float(intercept)  # type: ignore[arg-type]  # a finite number, checked above
    return LogisticModel(tuple(features), arrays["mean"], arrays["scale"], arrays["weights"], offset, limits)


def read_model_file(path: Path, *, what: str, format: str) -> dict:
    """The TOML document of a quality-model file whose ``format`` key must be ``format``; a missing file, bad
    TOML or another format is a one-line :class:`InputError` naming the file (``what``: the model's name)."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{what} file not found", path=path) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not a valid TOML file: {exc}", path=path) from None
    if document.get("format") != format:
        raise InputError(f"format must be '{format}'", path=path)
    return document
