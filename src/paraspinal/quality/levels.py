"""How far to trust a spine's level names: a calibrated score from :mod:`.level_signals`.

The score is ``1 - p``, ``p`` the probability that some body is misnamed under a logistic model of the signals
(:class:`~paraspinal.quality.logistic.LogisticModel`):
``p = sigmoid(intercept + sum_i weight_i * (signal_i - mean_i) / scale_i)``. Weights, centring, thresholds and
the reason cut-off are data (``quality/data/levels.toml``, written by ``recipes/quality/calibrate_levels.py``);
each signal pushing the score down by at least ``min_logit`` becomes a reason, worst first. Levels read from
labelled discs (a person drew and named them) are ``ok``. Two models are kept: ``[model]`` for a model's label
map (with its probability margin) and ``[given_model]``, fitted without the margin signals, for label maps that
carry none (given body labels).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from paraspinal.errors import InputError
from paraspinal.io.label_map import LabelMap
from paraspinal.levels import SpineLevels
from paraspinal.levels.spine import LUMBAR_COUNT, transitional_note
from paraspinal.quality.assessment import Assessment, status_of, worst_status
from paraspinal.quality.level_signals import MARGIN_SIGNALS, SIGNALS, level_signals
from paraspinal.quality.logistic import LogisticModel, parse_logistic_model, read_model_file

__all__ = ["LevelsModel", "assess_levels", "assess_signals", "load_levels_model", "parse_levels_model"]


FORMAT = "paraspinal-levels-quality/1"


@dataclass(frozen=True)
class LevelsModel:
    """The calibrated logistic model of the signals, and which of their terms become reasons."""

    logistic: LogisticModel
    given: LogisticModel  # the same signals less the model's margin: for label maps that carry none
    min_logit: float
    max_reasons: int
    source: str


def parse_levels_model(document: dict, *, source: str | Path) -> LevelsModel:
    """A :class:`LevelsModel` from the TOML document of the file ``source``: a ``[model]`` table (a
    :class:`~paraspinal.quality.logistic.LogisticModel` of every signal in :data:`SIGNALS`), ``[given_model]`` (the
    same for label maps without the model's margin: margin weights 0) and ``[reasons]`` (``min_logit``,
    ``max_reasons``); every problem is a one-line :class:`InputError` naming the file."""
    model, reasons = document.get("model"), document.get("reasons")
    if not isinstance(model, dict) or not isinstance(reasons, dict):
        raise InputError("levels quality model: [model] and [reasons] must be tables", path=source)
    given_table = document.get("given_model")
    if not isinstance(given_table, dict):
        raise InputError("levels quality model: [given_model] must be a table", path=source)
    logistic = parse_logistic_model(model, where="model", known=SIGNALS, path=source)
    given = parse_logistic_model(given_table, where="given_model", known=SIGNALS, path=source)
    for where, table in (("model", logistic), ("given_model", given)):
        missing = [name for name in SIGNALS if name not in table.features]
        if missing:
            raise InputError(f"{where}.features must name every signal (missing: {', '.join(missing)})", path=source)
    if any(given.weights[given.features.index(name)] != 0 for name in MARGIN_SIGNALS):
        raise InputError("given_model.weights must be 0 for the margin signals (a given map has none)", path=source)
    for key, minimum in (("min_logit", 0.0), ("max_reasons", 1.0)):
        value = reasons.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InputError(f"reasons.{key} must be a finite number", path=source)
        if value < minimum:
            raise InputError(f"reasons.{key} must be at least {minimum:g}, got {value:g}", path=source)
    return LevelsModel(logistic, given, float(reasons["min_logit"]), int(reasons["max_reasons"]), str(source))


def load_levels_model(path: str | Path | None = None) -> LevelsModel:
    """The levels quality model from ``path`` (TOML), or the bundled ``quality/data/levels.toml``."""
    if path is None:
        return _bundled()
    p = Path(path)
    return parse_levels_model(read_model_file(p, what="levels quality model", format=FORMAT), source=p)


@functools.cache
def _bundled() -> LevelsModel:
    path = Path(str(resources.files("paraspinal.quality").joinpath("data", "levels.toml")))
    return parse_levels_model(read_model_file(path, what="levels quality model", format=FORMAT), source=path)


def _reason(name: str, value: float) -> str:
    """One line saying what the signal ``name`` measured (``value``) and why it matters."""
    if name == "vote_disagreement":
        return f"the level votes barely prefer this numbering (margin {1 - value:.2f} of all votes)"
    if name == "body_disagreement":
        return f"a body's voxels disagree on its name (only {1 - value:.0%} vote for it)"
    if name == "extra_bodies":
        return f"{5 + value:.0f} bodies in view, more than the five lumbar ones: which is L1 rests on the votes alone"
    if name == "sacrum_by_position":
        return "the lowest piece was taken for the top of the sacrum by its position: a real L5 there shifts every name"
    if name == "sacrum_like_body":
        return (
            "the lowest piece was taken for the top of the sacrum by its position, but it looks like a whole lumbar "
            f"body (likeness {value:.2f}): a real L5 there shifts every name"
        )
    if name == "lowest_height_dev":
        return f"the lowest body's height differs from the bodies above by a factor {math.exp(value):.2f}"
    if name == "lowest_volume_dev":
        return f"the lowest body's volume differs from the bodies above by a factor {math.exp(value):.2f}"
    if name == "lowest_pitch_dev":
        return (
            f"the spacing above the lowest piece differs from the spacing higher up by a factor {math.exp(value):.2f}"
        )
    if name == "pitch_irregularity":
        return f"body spacing along the column varies by a factor {math.exp(value):.2f} (a missed or extra body?)"
    if name == "height_irregularity":
        return f"body heights vary by a factor {math.exp(value):.2f} along the column"
    if name == "lowest_tilt_deg":
        return f"the lowest piece is tilted {value:.0f} deg against the column above"
    if name == "lowest_flatness_dev":
        return f"the lowest body's height/depth differs from the bodies above by a factor {math.exp(value):.2f}"
    if name == "lowest_at_edge":
        return "the lowest piece is cut by the bottom of the field of view"
    if name == "top_at_edge":
        return "the top body is cut by the top of the field of view"
    if name == "short_fov_below":
        return (
            f"the field of view ends {40 * (1 - value):.0f} mm below the lowest piece: nothing below to check against"
        )
    if name == "weakest_body_margin":
        return f"the model is unsure of a body's label (mean probability margin {1 - value:.2f})"
    if name == "lowest_margin":
        return f"the model is unsure of the lowest piece's label (mean probability margin {1 - value:.2f})"
    raise KeyError(name)


def _logistic_for(signals: dict[str, float], model: LevelsModel) -> LogisticModel:
    """``model``'s given-labels weights when the margin signals were not measured (NaN), else its full ones."""
    unmeasured = any(math.isnan(signals.get(name, 0.0)) for name in MARGIN_SIGNALS)
    return model.given if unmeasured else model.logistic


def assess_signals(signals: dict[str, float], *, model: LevelsModel | None = None) -> Assessment:
    """The assessment of measured ``signals`` (see :data:`SIGNALS`) under ``model`` (default: the bundled one):
    its ``given`` weights when the margin signals were not measured (NaN: labels without the model's margin)."""
    model = model or _bundled()
    logistic = _logistic_for(signals, model)
    contributions = logistic.contributions(signals)
    z = logistic.logit(signals)
    score = float(1.0 / (1.0 + math.exp(z)))  # 1 - sigmoid(z): 1 = trustworthy
    status = status_of(score, logistic.thresholds)
    names = list(logistic.features)
    measured = [i for i in np.argsort(-contributions, kind="stable") if not math.isnan(signals.get(names[i], 0.0))]
    worst = [i for i in measured if contributions[i] >= model.min_logit]
    reasons = [_reason(names[i], signals[names[i]]) for i in worst[: model.max_reasons]]
    if status != "ok" and not reasons and measured:
        reasons = [_reason(names[measured[0]], signals[names[measured[0]]])]
    return Assessment(status, min(max(score, 0.0), 1.0), tuple(reasons) if status != "ok" else ())


def assess_levels(*, spine: SpineLevels, label_map: LabelMap, model: LevelsModel | None = None) -> Assessment:
    """How far to trust ``spine``'s level names, found on ``label_map`` (its grid gives the field of view).

    Levels from labelled discs are ``ok`` (score 1): their names were given, not inferred. More lumbar-type
    bodies than five (:attr:`~paraspinal.levels.naming.NamedBodies.lumbar_type_bodies`) is at least ``review``,
    the score at most midway between the thresholds, whatever the signals say.
    """
    if spine.named is None:
        return Assessment("ok", 1.0, ())
    signals = level_signals(spine, grid=label_map.labels, margin=label_map.confidence.get("margin"))
    assessed = assess_signals(signals, model=model)
    lumbar_type = spine.named.lumbar_type_bodies
    if lumbar_type is None or lumbar_type <= LUMBAR_COUNT:
        return assessed
    # transitional anatomy (or a thoracic body labelled lumbar): the names are a guess, never ok
    thresholds = _logistic_for(signals, model or _bundled()).thresholds
    score = min(assessed.score, (thresholds.ok + thresholds.fail) / 2.0)
    reasons = (transitional_note(lumbar_type), *assessed.reasons)
    return Assessment(worst_status([assessed.status, "review"]), score, reasons)
