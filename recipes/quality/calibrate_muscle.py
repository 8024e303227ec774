"""Calibrate the muscle-quality model (src/paraspinal/quality/data/muscle.toml) on shifted TUM01 variants.

Runs the bundled muscle model (outputs cached under --cache), measures the quality signals, labels a slice
of one side bad when the union (erector spinae + multifidus) Dice is below 0.75 and a structure bad when its
3-D Dice is below 0.75, and fits the logistic models with leave-one-variant-out cross-validation: every
variant is scored by weights and thresholds fit on the other variants only. Prints the table and writes the
model fit on all variants.

    PYTHONPATH=src python3 recipes/quality/calibrate_muscle.py --out src/paraspinal/quality/data/muscle.toml
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from muscle_variants import tum01_variants

from paraspinal.backends.bundled import bundled_model_dir
from paraspinal.backends.unet_onnx import UNetOnnxBackend
from paraspinal.evaluation import dice
from paraspinal.io import Image, LabelMap, read_image
from paraspinal.io.label_map import Provenance
from paraspinal.postprocessing.components import clean_label_map
from paraspinal.quality.assessment import Thresholds
from paraspinal.quality.logistic import LogisticModel
from paraspinal.quality.muscle_signals import (
    CONFIDENCE_FEATURES,
    SLICE_FEATURES,
    STRUCTURE_FEATURES,
    muscle_signals,
    structure_features,
)

BAD_DICE = 0.75
FLAG_BAD_SHARE = 0.85  # t_ok: the score that flags this share of the training folds' bad items
GOOD_FLAG_CAP = 0.2  # ...but t_ok flags at most this share of their good items
GOOD_FLAG_FLOOR = 0.08
FAIL_GOOD_SHARE = 0.01
INNER_FOLDS = 5  # t_fail: at most this share of the training folds' good items fail
SIDES = {"right": (1, 2), "left": (3, 4)}  # lpm4 values per side
MUSCLEMAP_TO_LPM4 = {1: 2, 2: 3, 3: 1, 4: 4}  # MuscleMap abdomen 1/2 MF r/l, 3/4 ES r/l


def segment_cached(backend: UNetOnnxBackend, image: Image, name: str, cache: Path) -> LabelMap:
    path = cache / f"{name}.pkl"
    if path.is_file():
        labels, conf = pickle.loads(path.read_bytes())
    else:
        lm = backend.segment(image)
        labels, conf = lm.array, {k: v.array for k, v in lm.confidence.items()}
        path.write_bytes(pickle.dumps((labels, conf)))
    raw = LabelMap(
        image.with_array(labels),
        backend.scheme,
        Provenance("segmented"),
        {k: image.with_array(v) for k, v in conf.items()},
    )
    return clean_label_map(raw)[0]


def measure(name: str, image: Image, ref: np.ndarray, lm: LabelMap):
    """Slice rows, structure rows (features, truth) and the side-slices that were bad but not assessed."""
    signals = muscle_signals(lm, image)
    pred = lm.array
    slice_rows, unassessed = [], []
    side_dice = {}
    for side, values in SIDES.items():
        p, r = np.isin(pred, values), np.isin(ref, values)
        for k in range(pred.shape[2]):
            d = dice(p[:, :, k], r[:, :, k])
            if np.isfinite(d):
                side_dice[(side, k)] = d
    assessed = set()
    for sig in signals:
        for k, feats in sig.slices.items():
            d = side_dice.get((sig.side, k), np.nan)
            if np.isfinite(d):
                assessed.add((sig.side, k))
                slice_rows.append({"variant": name, "side": sig.side, "slice": k, "sig": sig, "x": feats, "dice": d})
    unassessed = [(name, s, k, d) for (s, k), d in side_dice.items() if (s, k) not in assessed]
    structure_rows = []
    for sig in signals:
        p, r = np.isin(pred, sig.values), np.isin(ref, sig.values)
        structure_rows.append({"variant": name, "sig": sig, "dice": dice(p, r)})
    return slice_rows, structure_rows, unassessed


def _fit_weights(x: np.ndarray, y: np.ndarray, features: list[str]) -> LogisticModel:
    """A standardised, class-balanced logistic model (thresholds still open)."""
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 1e-6, scale, 1.0)
    if len(set(y.tolist())) < 2:
        weights, intercept = np.zeros(len(features)), (5.0 if y.any() else -5.0)
    else:
        clf = LogisticRegression(C=0.5, class_weight="balanced", max_iter=2000).fit((x - mean) / scale, y)
        weights, intercept = clf.coef_[0], float(clf.intercept_[0])
    return LogisticModel(tuple(features), mean, scale, weights, intercept, Thresholds(ok=1.0, fail=0.0))


def fit(x: np.ndarray, y: np.ndarray, groups: np.ndarray, features: list[str]) -> LogisticModel:
    """Weights fit on all of ``x``; thresholds chosen on INNER_FOLDS grouped folds within it (not in-sample):
    ``ok`` flags FLAG_BAD_SHARE of the bad items, and at least GOOD_FLAG_FLOOR (a margin for shifts this data
    set lacks) but at most GOOD_FLAG_CAP of the good ones; ``fail`` lets FAIL_GOOD_SHARE of the good ones fail."""
    model = _fit_weights(x, y, features)
    inner = np.zeros(len(y))
    names = np.unique(groups)
    for fold in range(INNER_FOLDS):
        held = np.isin(groups, names[fold::INNER_FOLDS])
        inner[held] = score(_fit_weights(x[~held], y[~held], features), x[held])
    good = ~y
    t_ok = float(np.quantile(inner[y], FLAG_BAD_SHARE)) if y.any() else 0.5
    if good.any():
        t_ok = min(
            max(t_ok, float(np.quantile(inner[good], GOOD_FLAG_FLOOR))), float(np.quantile(inner[good], GOOD_FLAG_CAP))
        )
    t_fail = float(np.quantile(inner[good], FAIL_GOOD_SHARE)) if good.any() else 0.0
    t_ok = min(max(t_ok, 1e-4), 1.0)
    t_fail = min(max(t_fail, 0.0), t_ok)
    return LogisticModel(
        tuple(features), model.mean, model.scale, model.weights, model.intercept, Thresholds(t_ok, t_fail)
    )


def score(model: LogisticModel, x: np.ndarray) -> np.ndarray:
    """Scores (1 - risk) of the rows of ``x``, as :meth:`LogisticModel.risk` computes them."""
    logit = np.clip(model.intercept + ((x - model.mean) / model.scale) @ model.weights, -50.0, 50.0)
    return 1.0 - 1.0 / (1.0 + np.exp(-logit))


def auroc(bad: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(bad, -scores)) if 0 < bad.sum() < len(bad) else float("nan")


def side_slice_table(rows, scores, thresholds):
    """Per side-slice: the lowest score of the side's structures, the truth, and the flag."""
    by = {}
    for row, s, t in zip(rows, scores, thresholds, strict=True):
        key = (row["variant"], row["side"], row["slice"])
        low, flagged = by.get(key, (1.0, False))
        by[key] = (min(low, s), flagged or s < t)
    truth = {(r["variant"], r["side"], r["slice"]): r["dice"] < BAD_DICE for r in rows}
    keys = sorted(by)
    return np.array([truth[k] for k in keys]), np.array([by[k][0] for k in keys]), np.array([by[k][1] for k in keys])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="write the model fit on all variants here")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/paraspinal_muscle_quality_cache"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reuse-rows", action="store_true", help="reuse the measured signals cached by a run")
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    backend = UNetOnnxBackend(bundled_model_dir("muscle"), threads=1)
    rows_path = args.cache / f"rows_seed{args.seed}.pkl"
    if args.reuse_rows and rows_path.is_file():
        slice_rows, structure_rows, unassessed = pickle.loads(rows_path.read_bytes())
    else:
        slice_rows, structure_rows, unassessed = [], [], []
        for name, image, ref in tum01_variants(seed=args.seed):
            lm = segment_cached(backend, image, name, args.cache)
            a, b, c = measure(name, image, ref, lm)
            slice_rows += a
            structure_rows += b
            unassessed += c
        rows_path.write_bytes(pickle.dumps((slice_rows, structure_rows, unassessed)))
    print(f"{len({r['variant'] for r in slice_rows})} variants measured in {time.time() - t0:.0f} s", flush=True)
    document = {"format": "paraspinal-muscle-quality/1", "reason_min_logit": 0.5, "slice": {}, "structure": {}}
    table = []
    for variant, features in (
        ("with_confidence", list(SLICE_FEATURES)),
        ("anatomy_only", [f for f in SLICE_FEATURES if f not in CONFIDENCE_FEATURES]),
    ):
        x = np.array([[r["x"][f] for f in features] for r in slice_rows])
        y = np.array([r["dice"] < BAD_DICE for r in slice_rows])
        groups = np.array([r["variant"] for r in slice_rows])
        oof, oof_t, oof_fail = np.zeros(len(y)), np.zeros(len(y)), np.zeros(len(y))
        for g in np.unique(groups):
            held = groups == g
            m = fit(x[~held], y[~held], groups[~held], features)
            oof[held], oof_t[held], oof_fail[held] = score(m, x[held]), m.thresholds.ok, m.thresholds.fail
        truth, low, flagged = side_slice_table(slice_rows, oof, oof_t)
        n_missed = sum(1 for u in unassessed if u[3] < BAD_DICE)  # bad side-slices outside any extent
        table.append(_row(f"slice ({variant})", truth, low, flagged, n_missed))
        final = fit(x, y, groups, features)
        document["slice"][variant] = final.to_toml_table()
        # structures: their slice risks come from the fold that held their variant out
        risk_by = {}
        for r, s in zip(slice_rows, oof, strict=True):
            risk_by.setdefault((r["variant"], id(r["sig"])), {})[r["slice"]] = 1.0 - s
        s_features = [f for f in STRUCTURE_FEATURES if variant == "with_confidence" or f not in CONFIDENCE_FEATURES]
        vol = {(r["variant"], r["sig"].structure, r["sig"].side): r["sig"].volume_mm3 for r in structure_rows}
        xs, ys, gs = [], [], []
        for r in structure_rows:
            sig = r["sig"]
            other = {"left": "right", "right": "left"}[sig.side]
            f = structure_features(
                sig, risk_by.get((r["variant"], id(sig)), {}), vol.get((r["variant"], sig.structure, other))
            )
            xs.append([f[n] for n in s_features])
            ys.append(not r["dice"] >= BAD_DICE)
            gs.append(r["variant"])
        xs, ys, gs = np.array(xs), np.array(ys), np.array(gs)
        s_oof, s_t = np.zeros(len(ys)), np.zeros(len(ys))
        for g in np.unique(gs):
            held = gs == g
            m = fit(xs[~held], ys[~held], gs[~held], s_features)
            s_oof[held], s_t[held] = score(m, xs[held]), m.thresholds.ok
        table.append(_row(f"structure ({variant})", ys, s_oof, s_oof < s_t, 0))
        document["structure"][variant] = fit(xs, ys, gs, s_features).to_toml_table()
    print("| level | items | bad | AUROC | bad flagged | good flagged |")
    print("|---|---|---|---|---|---|")
    for line in table:
        print(line)
    print(
        f"(slices: side-slices, flagged when either structure of the side is review/fail; bad side-slices "
        f"outside every predicted extent count as missed: {sum(1 for u in unassessed if u[3] < BAD_DICE)})"
    )
    if args.out:
        args.out.write_text(_toml(document), encoding="utf-8")
        print(f"wrote {args.out}")
    musclemap_agreement(backend, args)
    print(f"done in {time.time() - t0:.0f} s")


def _row(name, truth, low, flagged, n_missed) -> str:
    bad, good = truth.astype(bool), ~truth.astype(bool)
    share_bad = flagged[bad].sum() / max(bad.sum() + n_missed, 1)
    share_good = flagged[good].mean() if good.any() else float("nan")
    return (
        f"| {name} | {len(truth)} | {bad.sum() + n_missed} | {auroc(bad, low):.3f} | {share_bad:.0%} | "
        f"{share_good:.0%} |"
    )


def musclemap_agreement(backend: UNetOnnxBackend, args) -> None:
    """Agreement (not accuracy) with MuscleMap's model labels on its sample image, slice by slice."""
    from paraspinal.quality.muscle import assess_muscles
    from paraspinal.quality.muscle_model import load_muscle_model

    folder = Path("/work/shared/data/musclemap-sample")
    if not (folder / "image.nii.gz").is_file() or not args.out:
        return
    image = read_image(folder / "image.nii.gz")
    theirs = np.asarray(read_image(folder / "labels.nii.gz").array)
    ref = np.zeros(theirs.shape, dtype=np.uint8)
    for a, b in MUSCLEMAP_TO_LPM4.items():
        ref[theirs == a] = b
    lm = segment_cached(backend, image, "musclemap_sample", args.cache)
    quality = assess_muscles(label_map=lm, image=image, model=load_muscle_model(args.out))
    truth, low, flagged = [], [], []
    for side, values in SIDES.items():
        p, r = np.isin(lm.array, values), np.isin(ref, values)
        mine = [q for q in quality if q.side == side]
        for k in range(ref.shape[2]):
            d = dice(p[:, :, k], r[:, :, k])
            if not np.isfinite(d):
                continue
            got = [q.slices[k] for q in mine if k in q.slices]
            truth.append(d < BAD_DICE)
            low.append(min((a.score for a in got), default=1.0))
            flagged.append(any(a.status != "ok" for a in got))
    print("musclemap-sample (agreement with MuscleMap's model, not accuracy):")
    print(_row("slice (with_confidence)", np.array(truth), np.array(low), np.array(flagged), 0))
    for q in quality:
        print(
            f"  {q.structure} {q.side}: {q.assessment.status} {q.assessment.score:.2f} {list(q.assessment.reasons)[:2]}"
        )


def _toml(document: dict) -> str:
    lines = [
        "# Muscle-quality model, written by recipes/quality/calibrate_muscle.py (see recipes/quality/README.md).",
        f'format = "{document["format"]}"',
        f"reason_min_logit = {document['reason_min_logit']}",
    ]
    for kind in ("slice", "structure"):
        for variant, table in document[kind].items():
            lines.append(f"\n[{kind}.{variant}]")
            for key in ("features", "mean", "scale", "weights"):
                values = ", ".join(f'"{v}"' if isinstance(v, str) else repr(v) for v in table[key])
                lines.append(f"{key} = [{values}]")
            lines.append(f"intercept = {table['intercept']!r}")
            lines.append(
                f"thresholds = {{ ok = {table['thresholds']['ok']!r}, fail = {table['thresholds']['fail']!r} }}"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
