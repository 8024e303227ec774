"""Levels quality: the signals on spine phantoms, the calibrated score and its reasons, the TOML, levels.json."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from paraspinal.anatomy import load_scheme
from paraspinal.cli.main import main
from paraspinal.errors import InputError
from paraspinal.io.label_map import LabelMap
from paraspinal.levels import spine_levels_from_labels
from paraspinal.quality.level_signals import SIGNALS, level_signals
from paraspinal.quality.levels import (
    assess_levels,
    assess_signals,
    load_levels_model,
    parse_levels_model,
)
from paraspinal.quality.logistic import LogisticModel
from tests.phantoms import save_nifti
from tests.spine_phantoms import BODY_HEIGHT_MM, NAMES, PITCH_MM, spine_phantom

SCHEME = load_scheme("lumbar_bodies")


@pytest.fixture(scope="module")
def phantom():
    return spine_phantom(tilt_deg=10.0)


def _assessed(labels):
    label_map = LabelMap.given(labels, SCHEME)
    spine = spine_levels_from_labels(label_map)
    return spine, level_signals(spine, grid=labels), assess_levels(spine=spine, label_map=label_map)


def test_a_regular_column_is_ok(phantom) -> None:
    spine, signals, quality = _assessed(phantom.encode({n: i + 1 for i, n in enumerate(NAMES)}))
    assert [b.name for b in spine.bodies] == list(NAMES)
    assert signals["vote_disagreement"] == pytest.approx(0.0)
    assert signals["extra_bodies"] == 0.0 and signals["sacrum_by_position"] == 0.0
    assert signals["lowest_height_dev"] < 0.05 and signals["lowest_volume_dev"] < 0.05  # boxes of one size
    assert signals["pitch_irregularity"] < 0.02  # one spacing
    assert quality.status == "ok" and quality.reasons == ()
    assert quality.score >= load_levels_model().given.thresholds.ok  # given labels: the given-labels model


def test_a_real_l5_taken_for_the_sacrum_is_flagged(phantom) -> None:
    """Labels shifted by one (as a model that counts from a body above L1 gives): the whole L5 becomes "S1"."""
    spine, signals, quality = _assessed(phantom.encode({"L1": 2, "L2": 3, "L3": 4, "L4": 5, "L5": 5}))
    assert [b.name for b in spine.bodies] == ["L2", "L3", "L4", "L5", "S1"]  # wrong by one, as in issue 30
    assert signals["sacrum_by_position"] == 1.0
    assert signals["sacrum_like_body"] > 0.9  # the "sacrum" is a whole body, as big as those above
    assert quality.status in ("review", "fail")
    assert any("taken for the top of the sacrum by its position" in r for r in quality.reasons)


def test_a_sacrum_named_l5_scores_lower(phantom) -> None:
    """The sacrum labelled as the lowest lumbar body (L1 missed): every name shifts down by one. A given map has no
    model margin, so the given-labels weights score it: lower than a regular column, but (0.74 against ``ok`` at
    0.73 with the weights of this calibration) not flagged: the calibration data hold few misnamings of this kind."""
    spine, signals, quality = _assessed(phantom.encode({"L2": 1, "L3": 2, "L4": 3, "L5": 4}, sacrum=5))
    assert [b.name for b in spine.bodies][-1] == "L5"
    assert signals["lowest_height_dev"] == pytest.approx(math.log(40.0 / BODY_HEIGHT_MM), abs=0.1)
    assert signals["lowest_volume_dev"] > 0.3 and signals["lowest_pitch_dev"] > 0.1
    regular = _assessed(phantom.encode({n: i + 1 for i, n in enumerate(NAMES)}))[2]
    assert quality.score < regular.score - 0.1


def _assessed_with_sacrum(labels):
    label_map = LabelMap.given(labels, load_scheme("spine_bodies"))  # L1-L5 = 1-5, T12 = 6, sacrum = 7
    spine = spine_levels_from_labels(label_map)
    return spine, level_signals(spine, grid=labels), assess_levels(spine=spine, label_map=label_map)


def test_the_votes_count_against_a_sacrum_to_count_from(phantom) -> None:
    consistent = phantom.encode({n: i + 1 for i, n in enumerate(NAMES)}, sacrum=7)
    spine, signals, quality = _assessed_with_sacrum(consistent)
    assert spine.named.counted_from_sacrum and signals["vote_disagreement"] == pytest.approx(0.0)
    assert quality.status == "ok"
    # labels one level off against the sacrum (real L5 labelled L4, ...): the count from S1 wins, the votes object
    shifted = phantom.encode({"L2": 1, "L3": 2, "L4": 3, "L5": 4}, sacrum=7)
    spine, signals, _ = _assessed_with_sacrum(shifted)
    assert [b.name for b in spine.bodies] == ["L2", "L3", "L4", "L5", "S1"]
    assert signals["vote_disagreement"] == pytest.approx(1.0)


def test_six_lumbar_type_bodies_are_flagged_as_transitional() -> None:
    """T12 in view above a sacrum, on a grid tall enough for it (spine_bodies: T12 = 6, sacrum = 7)."""
    tall = spine_phantom(tilt_deg=10.0, shape=(14, 90, 270), top_mm=75.0, names=("T12", *NAMES))
    normal = tall.encode({"T12": 6, **{n: i + 1 for i, n in enumerate(NAMES)}}, sacrum=7)
    spine, _, quality = _assessed_with_sacrum(normal)
    assert [b.name for b in spine.bodies] == ["T12", *NAMES, "S1"]
    assert spine.named.lumbar_type_bodies == 5
    assert quality.status == "ok" and not any("lumbar labels" in w for w in spine.warnings)
    # six bodies labelled lumbar above the sacrum (a lumbarised S1, or T12 taken for L1): counted from the
    # sacrum the top one is named T12 against its own labels, so the names are a guess and say so
    six = tall.encode({"T12": 1, "L1": 1, "L2": 2, "L3": 3, "L4": 4, "L5": 5}, sacrum=7)
    spine, _, quality = _assessed_with_sacrum(six)
    assert [b.name for b in spine.bodies] == ["T12", *NAMES, "S1"]
    assert spine.named.lumbar_type_bodies == 6
    note = (
        "6 bodies carry lumbar labels where the model also knows thoracic ones: transitional anatomy (a lumbarised "
        "S1, a sixth lumbar vertebra) or a thoracic body taken for lumbar; the names are counted by position and "
        "may be one level off; check the QC image"
    )
    assert note in spine.warnings
    assert quality.status in ("review", "fail") and quality.reasons[0] == note
    given = load_levels_model().given.thresholds
    assert quality.score <= (given.ok + given.fail) / 2
    # a scheme without a class above L1 cannot say a body is not lumbar: not counted
    spine, _, _ = _assessed(tall.encode({"T12": 1, "L1": 1, "L2": 2, "L3": 3, "L4": 4, "L5": 5}))
    assert spine.named.lumbar_type_bodies is None


def test_irregular_heights_are_flagged(phantom) -> None:
    labels = phantom.encode({n: i + 1 for i, n in enumerate(NAMES)})
    array = labels.array.copy()
    ijk = np.argwhere(phantom.bodies["L3"])
    world = ijk @ phantom.affine[:3, :3].T + phantom.affine[:3, 3]
    upper = (world - world.mean(axis=0)) @ phantom.axis > 0
    array[tuple(ijk[upper].T)] = 0  # L3 half its height: a missed upper half, or a body split in two
    spine, signals, quality = _assessed(labels.with_array(array))
    assert [b.name for b in spine.bodies] == list(NAMES)
    assert signals["height_irregularity"] == pytest.approx(math.log(2.0), abs=0.15)
    assert signals["pitch_irregularity"] == pytest.approx(
        abs(math.log((PITCH_MM + BODY_HEIGHT_MM / 4) / PITCH_MM)), abs=0.05
    )
    regular = _assessed(phantom.encode({n: i + 1 for i, n in enumerate(NAMES)}))[2]
    # the calibrated weights make uneven heights alone only a small penalty: on the calibration data a short body
    # (a cut or a partly segmented one) rarely came with a wrong name
    assert quality.score < regular.score


def test_a_gap_in_the_column_is_flagged(phantom) -> None:
    """L3 missed and the model's labels consistent with the gap closed (L4 labelled L3, L5 labelled L4)."""
    spine, signals, quality = _assessed(phantom.encode({"L1": 1, "L2": 2, "L4": 3, "L5": 4}))
    assert [b.name for b in spine.bodies] == ["L1", "L2", "L3", "L4"]  # the lower two a level off
    # spacings 35, 70 and 35 mm: the last against the median of the first two (52.5 mm)
    assert signals["lowest_pitch_dev"] == pytest.approx(math.log(52.5 / 35.0), abs=0.02)
    assert signals["pitch_irregularity"] == pytest.approx(math.log(52.5 / 35.0), abs=0.02)  # 35 against 52.5 too
    assert quality.status in ("review", "fail")
    assert quality.reasons[0].startswith("the spacing above the lowest piece differs from the spacing higher up")


def test_the_model_margin_is_measured_per_body(phantom) -> None:
    labels = phantom.encode({n: i + 1 for i, n in enumerate(NAMES)})
    margin = np.full(labels.shape, 0.9, dtype=np.float32)
    margin[phantom.bodies["L5"]] = 0.3  # the model unsure of the lowest body only
    margin[phantom.bodies["L2"]] = 0.6
    label_map = LabelMap.given(labels, SCHEME)
    spine = spine_levels_from_labels(label_map)
    signals = level_signals(spine, grid=labels, margin=labels.with_array(margin))
    assert signals["lowest_margin"] == pytest.approx(0.7, abs=1e-6)
    assert signals["weakest_body_margin"] == pytest.approx(0.7, abs=1e-6)
    margin[phantom.bodies["L5"]] = 0.95
    signals = level_signals(spine, grid=labels, margin=labels.with_array(margin))
    assert signals["lowest_margin"] == pytest.approx(0.05, abs=1e-6)
    assert signals["weakest_body_margin"] == pytest.approx(0.4, abs=1e-6)  # L2's
    # given labels carry no margin: not measured, so no evidence either way in the score
    given = level_signals(spine, grid=labels)
    assert math.isnan(given["lowest_margin"]) and math.isnan(given["weakest_body_margin"])
    model = LogisticModel(
        ("lowest_margin", "vote_disagreement"), np.array([0.5, 0.0]), np.ones(2), np.array([2.0, 1.0]), -1.0, None
    )
    assert model.logit({"lowest_margin": float("nan"), "vote_disagreement": 0.5}) == pytest.approx(-0.5)
    assert model.logit({"lowest_margin": 1.0, "vote_disagreement": 0.5}) == pytest.approx(0.5)


def test_labelled_discs_are_not_judged(phantom) -> None:
    discs = phantom.encode({}, discs={"L4/L5": 202, "L5/S1": 201})  # SPIDER's disc values
    label_map = LabelMap.given(discs, load_scheme("spider"))
    spine = spine_levels_from_labels(label_map)
    assert spine.named is None
    quality = assess_levels(spine=spine, label_map=label_map)
    assert (quality.status, quality.score, quality.reasons) == ("ok", 1.0, ())


def _document(**changes) -> dict:
    document = {
        "format": "paraspinal-levels-quality/1",
        "model": {
            "features": list(SIGNALS),
            "mean": [0.0] * len(SIGNALS),
            "scale": [1.0] * len(SIGNALS),
            "weights": [0.0] * len(SIGNALS),
            "intercept": -2.0,
            "thresholds": {"ok": 0.8, "fail": 0.3},
        },
        "reasons": {"min_logit": 0.5, "max_reasons": 2},
    }
    document["given_model"] = {k: list(v) if isinstance(v, list) else v for k, v in document["model"].items()}
    for key, value in changes.items():
        if key in document["model"]:
            document["model"][key] = value
        else:
            document[key] = value
    return document


def _with_feature(document: dict, name: str, *, weight: float, mean: float, scale: float) -> dict:
    i = document["model"]["features"].index(name)
    for key, value in (("weights", weight), ("mean", mean), ("scale", scale)):
        document["model"][key][i] = value
    return document


def test_the_score_is_the_logistic_model_of_the_signals() -> None:
    document = _with_feature(_document(), "extra_bodies", weight=1.5, mean=0.2, scale=0.5)
    model = parse_levels_model(document, source="test.toml")
    signals = {name: neutral for name, (neutral, _) in SIGNALS.items()}
    signals["extra_bodies"] = 2.0
    quality = assess_signals(signals, model=model)
    z = -2.0 + 1.5 * (2.0 - 0.2) / 0.5
    assert quality.score == pytest.approx(1.0 / (1.0 + math.exp(z)))
    assert quality.status == "fail"  # score 0.034 < 0.3
    assert quality.reasons == (
        "7 bodies in view, more than the five lumbar ones: which is L1 rests on the votes alone",
    )
    signals["extra_bodies"] = 0.0
    assert assess_signals(signals, model=model).status == "ok"


def test_the_bundled_model_loads_and_names_every_signal() -> None:
    model = load_levels_model().logistic
    assert isinstance(model, LogisticModel)  # the one logistic model type, shared with muscle quality
    assert model.features == tuple(SIGNALS) and model.weights.shape == (len(SIGNALS),)
    assert 0.0 <= model.thresholds.fail <= model.thresholds.ok <= 1.0
    assert np.all(model.scale > 0)


def test_the_bundled_score_is_the_logistic_formula_of_levels_toml() -> None:
    """The bundled model's score of a fixed signal vector, computed here from the TOML's numbers by hand:
    score = 1 - sigmoid(intercept + sum(weights * (x - mean) / scale)); NaN (not measured) adds nothing."""
    import tomllib

    from paraspinal.quality import levels as levels_module

    path = Path(levels_module.__file__).parent / "data" / "levels.toml"
    document = tomllib.loads(path.read_text(encoding="utf-8"))
    values = [0.31, 0.2, 1.0, 1.0, 0.62, 0.15, 0.21, 0.18, 0.07, 0.12, 12.0, 0.05, 1.0, 0.0, 0.4, 0.3, 0.5]
    for name, last in (("model", 0.5), ("given_model", float("nan"))):  # NaN: not measured, the given weights
        table = document[name]
        signals = dict(zip(SIGNALS, [*values[:-1], last], strict=True))
        terms = [
            w * (v - m) / sd
            for v, m, sd, w in zip(signals.values(), table["mean"], table["scale"], table["weights"], strict=True)
            if not math.isnan(v)
        ]
        expected = 1.0 - 1.0 / (1.0 + math.exp(-(table["intercept"] + sum(terms))))
        quality = assess_signals(signals)
        assert quality.score == pytest.approx(expected, rel=1e-12)
        assert quality.score < table["thresholds"]["ok"] and quality.status in ("review", "fail")
        assert quality.reasons and all(isinstance(r, str) for r in quality.reasons)
    neutral = assess_signals({name: value for name, (value, _) in SIGNALS.items()})
    assert neutral.status == "ok" and neutral.score > quality.score


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"features": ["vote_disagreement"]}, "model.mean must list 1 numbers, one per feature"),
        (
            {"features": [n for n in SIGNALS if n != "top_at_edge"] + ["vote_disagreement"]},
            "model.features names a feature twice",
        ),
        ({"features": [*list(SIGNALS)[:-1], "nonsense"]}, "model.features has unknown names ['nonsense']"),
        ({"thresholds": {"ok": 0.2, "fail": 0.5}}, "model.thresholds: quality thresholds need 0 <= fail <= ok"),
        ({"intercept": "high"}, "model.intercept must be a finite number"),
        ({"reasons": {"min_logit": -1.0, "max_reasons": 2}}, "reasons.min_logit must be at least 0"),
        ({"format": "paraspinal-levels-quality/0"}, "format must be 'paraspinal-levels-quality/1'"),
    ],
)
def test_a_bad_model_file_is_refused_in_one_line(tmp_path: Path, change, message) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(_toml(_document(**change)), encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load_levels_model(path)
    assert caught.value.message.startswith(message)
    assert "bad.toml" in str(caught.value) and "\n" not in str(caught.value)


def test_the_given_model_is_required_and_ignores_the_margin() -> None:
    document = _document()
    del document["given_model"]
    with pytest.raises(InputError, match=r"levels quality model: \[given_model\] must be a table"):
        parse_levels_model(document, source="bad.toml")
    document = _document()
    document["given_model"]["weights"][list(SIGNALS).index("lowest_margin")] = 1.0
    with pytest.raises(InputError, match=r"given_model.weights must be 0 for the margin signals"):
        parse_levels_model(document, source="bad.toml")


def test_labels_without_a_margin_are_scored_by_the_given_model() -> None:
    document = _with_feature(_document(), "lowest_margin", weight=3.0, mean=0.2, scale=0.1)
    i = list(SIGNALS).index("vote_disagreement")
    document["given_model"]["weights"][i] = 2.0
    model = parse_levels_model(document, source="test.toml")
    signals = {name: neutral for name, (neutral, _) in SIGNALS.items()} | {"vote_disagreement": 1.0}
    assert assess_signals(signals, model=model).score == pytest.approx(1.0 / (1.0 + math.exp(-2.0 + 3.0 * -2.0)))
    given = signals | {"lowest_margin": float("nan"), "weakest_body_margin": float("nan")}
    assert assess_signals(given, model=model).score == pytest.approx(1.0 / (1.0 + math.exp(-2.0 + 2.0)))


def test_a_model_missing_a_signal_is_refused() -> None:
    document = _document()
    for key in ("features", "mean", "scale", "weights"):
        document["model"][key] = document["model"][key][1:]
    with pytest.raises(InputError, match=r"model.features must name every signal \(missing: vote_disagreement\)"):
        parse_levels_model(document, source="bad.toml")


def _toml(document: dict) -> str:
    """A small TOML writer for the test documents (strings, numbers, lists of them, one level of tables)."""

    def value(v: object) -> str:
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        return f'"{v}"' if isinstance(v, str) else repr(v)

    lines = [f"{k} = {value(v)}" for k, v in document.items() if not isinstance(v, dict)]
    for k, v in document.items():
        if isinstance(v, dict):
            lines += [f"[{k}]", *(f"{key} = {value(x)}" for key, x in v.items())]
    return "\n".join(lines) + "\n"


def test_a_zero_scale_and_a_broken_file_are_refused(tmp_path: Path) -> None:
    document = _with_feature(_document(), "lowest_tilt_deg", weight=0.0, mean=0.0, scale=0.0)
    with pytest.raises(InputError, match=r"model\.scale must be positive"):
        parse_levels_model(document, source="bad.toml")
    broken = tmp_path / "levels.toml"
    broken.write_text("[model\nintercept = 1", encoding="utf-8")
    with pytest.raises(InputError, match="not a valid TOML file"):
        load_levels_model(broken)
    with pytest.raises(InputError, match="levels quality model file not found"):
        load_levels_model(tmp_path / "missing.toml")


def _levels_cli(tmp_path: Path, phantom, bodies: dict[str, int]) -> tuple[dict, str]:
    tmp_path.mkdir(parents=True)
    labels = phantom.encode(bodies)
    sag = np.where(labels.array > 0, 400.0, 60.0).astype(np.float32)
    sag.flat[0] = 500.0
    save_nifti(tmp_path / "sag.nii.gz", sag, phantom.affine)
    save_nifti(tmp_path / "sag_dseg.nii.gz", labels.array, phantom.affine)
    out = tmp_path / "out"
    code = main(["levels", str(tmp_path / "sag.nii.gz"), "--labels", str(tmp_path / "sag_dseg.nii.gz"), "-o", str(out)])
    assert code == 0
    return json.loads((out / "levels.json").read_text(encoding="utf-8")), str(out)


def test_levels_json_carries_the_quality(tmp_path: Path, phantom, capsys) -> None:
    document, _ = _levels_cli(tmp_path / "regular", phantom, {n: i + 1 for i, n in enumerate(NAMES)})
    assert document["quality"]["status"] == "ok" and document["quality"]["reasons"] == []
    assert 0.0 <= document["quality"]["score"] <= 1.0
    capsys.readouterr()
    document, _ = _levels_cli(tmp_path / "shifted", phantom, {"L1": 2, "L2": 3, "L3": 4, "L4": 5, "L5": 5})
    quality = document["quality"]
    assert quality["status"] in ("review", "fail") and quality["reasons"]
    warned = [n for n in document["notes"] if n.startswith("level names need")]
    assert len(warned) == 1 and quality["reasons"][0] in warned[0]
    assert not any("uncertain" in n for n in document["notes"])  # the old warning is gone: no duplicate
    err = capsys.readouterr().err
    assert err.count("level names need") == 1
