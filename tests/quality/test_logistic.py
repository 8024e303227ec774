"""The one logistic model of the quality scores: its arithmetic, its TOML table, one-line errors naming the file."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from paraspinal.errors import InputError
from paraspinal.quality.levels import load_levels_model
from paraspinal.quality.logistic import LogisticModel, parse_logistic_model, read_model_file
from paraspinal.quality.muscle_model import load_muscle_model

TABLE = {
    "features": ["a", "b"],
    "mean": [0.5, 1.0],
    "scale": [0.25, 2.0],
    "weights": [2.0, -1.0],
    "intercept": -1.5,
    "thresholds": {"ok": 0.9, "fail": 0.4},
}


def test_the_logit_risk_and_toml_table_follow_the_formula() -> None:
    model = parse_logistic_model(TABLE, where="m", known=("a", "b", "c"), path="x.toml")
    values = {"a": 1.0, "b": 3.0}
    assert model.contributions(values) == pytest.approx([2.0 * 0.5 / 0.25, -1.0 * 2.0 / 2.0])
    assert model.logit(values) == pytest.approx(-1.5 + 4.0 - 1.0)
    assert model.risk(values) == pytest.approx(1.0 / (1.0 + math.exp(-1.5)))
    assert model.logit({}) == pytest.approx(-1.5 + 2.0 * -0.5 / 0.25 + -1.0 * -1.0 / 2.0)  # absent features: 0
    again = parse_logistic_model(model.to_toml_table(), where="m", known=("a", "b"), path="x.toml")
    assert again.features == model.features and again.thresholds == model.thresholds
    assert [list(again.mean), list(again.scale), list(again.weights), again.intercept] == [
        [0.5, 1.0], [0.25, 2.0], [2.0, -1.0], -1.5
    ]  # fmt: skip


def test_both_quality_models_are_logistic_models() -> None:
    muscle = load_muscle_model()
    assert all(isinstance(m, LogisticModel) for m in (*muscle.slice.values(), *muscle.structure.values()))
    assert isinstance(load_levels_model().logistic, LogisticModel)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"features": []}, "m.features must be a non-empty list of names"),
        ({"features": ["a", "z"]}, "m.features has unknown names ['z'] (known: a, b)"),
        ({"features": ["a", "a"]}, "m.features names a feature twice"),
        ({"scale": [1.0]}, "m.scale must list 2 numbers, one per feature"),
        ({"weights": [1.0, True]}, "m.weights must hold finite numbers"),
        ({"mean": [1.0, math.inf]}, "m.mean must hold finite numbers"),
        ({"scale": [1.0, 0.0]}, "m.scale must be positive"),
        ({"intercept": None}, "m.intercept must be a finite number"),
        ({"thresholds": {"ok": 0.9}}, "m.thresholds must be a table of numbers ok and fail"),
        ({"thresholds": {"ok": 0.3, "fail": 0.4}}, "m.thresholds: quality thresholds need 0 <= fail <= ok"),
    ],
)
def test_a_bad_table_is_refused_in_one_line_naming_the_file(change, message) -> None:
    with pytest.raises(InputError) as caught:
        parse_logistic_model({**TABLE, **change}, where="m", known=("a", "b"), path="bad.toml")
    assert caught.value.message.startswith(message)
    assert "bad.toml" in str(caught.value) and "\n" not in str(caught.value)


def test_a_model_file_needs_its_format(tmp_path: Path) -> None:
    path = tmp_path / "model.toml"
    path.write_text('format = "kind/1"\nx = 1\n', encoding="utf-8")
    assert read_model_file(path, what="a model", format="kind/1") == {"format": "kind/1", "x": 1}
    with pytest.raises(InputError, match="format must be 'kind/2'"):
        read_model_file(path, what="a model", format="kind/2")
    path.write_text("x = ", encoding="utf-8")
    with pytest.raises(InputError, match="not a valid TOML file"):
        read_model_file(path, what="a model", format="kind/1")
    with pytest.raises(InputError, match="a model file not found"):
        read_model_file(tmp_path / "none.toml", what="a model", format="kind/1")
    assert np.isfinite(load_muscle_model().reason_min_logit)
