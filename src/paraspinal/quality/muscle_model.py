"""The calibrated muscle-quality model: small logistic models whose weights and thresholds are data.

``data/muscle.toml`` (written by ``recipes/quality/calibrate_muscle.py``) holds four models: ``slice`` and
``structure``, each fit ``with_confidence`` (a model's label map with ``margin``/``mirror_agreement`` maps)
and ``anatomy_only`` (a given label map). Each is a :class:`~paraspinal.quality.logistic.LogisticModel`
of features named in :mod:`.muscle_signals`; the score is ``1 - p``, ``p`` its probability of a bad result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from paraspinal.errors import InputError
from paraspinal.quality.logistic import LogisticModel, parse_logistic_model, read_model_file
from paraspinal.quality.muscle_signals import CONFIDENCE_FEATURES, SLICE_FEATURES, STRUCTURE_FEATURES

__all__ = ["LogisticModel", "MuscleModel", "load_muscle_model"]

_KINDS = {"slice": SLICE_FEATURES, "structure": STRUCTURE_FEATURES}
_VARIANTS = ("with_confidence", "anatomy_only")
FORMAT = "paraspinal-muscle-quality/1"


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
    document = read_model_file(path, what="muscle quality model", format=FORMAT)
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
            tables[kind][variant] = parse_logistic_model(table, where=where, known=known, path=path)
            if variant == "anatomy_only":
                used = CONFIDENCE_FEATURES.intersection(tables[kind][variant].features)
                if used:
                    raise InputError(f"{where} uses confidence features {sorted(used)}", path=path)
    return MuscleModel(tables["slice"], tables["structure"], reason_min, str(path))
