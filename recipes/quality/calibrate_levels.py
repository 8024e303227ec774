"""Calibrate the levels quality score (``src/paraspinal/quality/data/levels.toml``) on the sagittal spines.

    python recipes/quality/calibrate_levels.py ../shared/data/spine-sagittal \
        --cache /tmp/qspine_levels_cache --report /tmp/levels_calibration.json --write

1. The bundled spine model (ONNX Runtime, as ``paraspinal levels`` runs it) on the 54 Dixon and 5 T2 spines and
   on shifted variants of each (``levels_variants.py``: field of view cut below L5 / inside L5 / above L2-L3,
   reflected upwards so thoracic-like bodies come into view, both (the T11-L5 view), inverted or gamma contrast,
   0.7 / 1.4 mm pixels or 3-4 mm slices, a flipped storage order; geometric variants also get a contrast or a
   resampling at random). Predictions are cached (``levels_predict.py``).
2. Each prediction goes through the shipped naming (:func:`paraspinal.levels.spine_levels_from_labels`) and the
   signals of :mod:`paraspinal.quality.level_signals`. A case is *misnamed* when a found body (or the piece taken
   for S1) lies within half a body spacing of a manual body of another name (Dixon: manual bodies; T2: bodies
   placed between the manual discs); only manual bodies in the variant's field of view count.
3. A logistic model (standardised signals, every weight >= 0, L2) is fitted with five-fold cross-validation
   grouped by subject (the Dixon twin pairs share a group). The ``ok`` threshold is the out-of-fold score that
   flags ``--target-fpr`` of the correctly named cases (the issue allows 25 %), ``fail`` the highest score under
   which at least ``--fail-precision`` of the out-of-fold cases are misnamed (0 when none is).
   The final weights are fitted on all cases.
   A second model (``[given_model]``) is fitted the same way without the two margin signals: it scores label
   maps that carry no model margin (given labels).

``--cross-model name=folder`` (repeatable) adds another model's predictions of the five T2 spines and their
variants (cached per model and weights hash under ``--models-cache``, as ``compare_levels_models.py`` does): a
spine model trained on Dixon only, run on T2, fails the way a model meets another scanner's contrast, with many
more misnamings than the bundled model makes on the spines it was trained on. Their subjects share the groups of
the bundled model's rows, so no subject is scored by weights fit on itself.

Reported (``--report``): AUROC, the share of misnamed and of correct cases flagged (review or fail) out of fold,
the same for the old warning (naming confidence under 0.5), per variant kind.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from levels_predict import predict_all

from paraspinal.anatomy import load_scheme
from paraspinal.backends import read_model_card
from paraspinal.errors import LevelsError
from paraspinal.io.image import Image
from paraspinal.io.label_map import LabelMap, Provenance
from paraspinal.levels import spine_levels_from_labels
from paraspinal.levels.spine import LOW_NAMING_CONFIDENCE
from paraspinal.quality.level_signals import MARGIN_SIGNALS, SIGNALS, level_signals
from paraspinal.quality.levels import FORMAT

TWINS = {"19": "18", "33": "32", "53": "51", "54": "52"}  # one scan under two ids: one group
TOML = Path(__file__).resolve().parents[2] / "src" / "paraspinal" / "quality" / "data" / "levels.toml"


def misnamed(bodies, truth: dict[str, np.ndarray]) -> bool:
    """Whether a found piece lies within half a spacing of a manual body of another name."""
    if not truth:
        return False
    names = list(truth)
    centres = np.array([truth[n] for n in names])
    order = np.argsort(-centres[:, 2])
    pitch = float(np.median(np.linalg.norm(np.diff(centres[order], axis=0), axis=1))) if len(names) > 1 else 35.0
    for body in bodies:
        d = np.linalg.norm(centres - np.asarray(body.centroid_mm), axis=1)
        i = int(np.argmin(d))
        if d[i] <= pitch / 2 and names[i] != body.name:
            return True
    return False


def case_rows(files: list[Path], *, scheme_key: str = "lumbar_bodies") -> list[dict[str, object]]:
    """Signals, truth and the old warning of every cached prediction (labels in scheme ``scheme_key``)."""
    scheme = load_scheme(scheme_key)
    rows = []
    for path in files:
        with np.load(path) as data:
            labels, affine, meta = data["labels"], data["affine"], json.loads(str(data["meta"]))
            margin = data["margin"].astype(np.float32) if "margin" in data else None
        image = Image(labels, affine, source=path.name)
        confidence = {} if margin is None else {"margin": Image(margin, affine, source=path.name)}
        label_map = LabelMap(image, scheme, Provenance("segmented"), confidence)
        truth = {k: np.asarray(v) for k, v in meta["truth"].items()}
        row: dict[str, object] = {"file": path.name, "case": meta["case"], "kind": meta["kind"], "what": meta["what"]}
        try:
            spine = spine_levels_from_labels(label_map)
        except LevelsError as exc:
            rows.append({**row, "error": exc.message})
            continue
        named = spine.named
        assert named is not None
        row["names"] = [b.name for b in spine.bodies]
        row["misnamed"] = misnamed(spine.bodies, truth)
        row["old_warning"] = bool(not named.counted_from_sacrum and named.naming_confidence < LOW_NAMING_CONFIDENCE)
        row["signals"] = level_signals(spine, grid=image, margin=label_map.confidence.get("margin"))
        rows.append(row)
    return rows


def group_of(case: str) -> str:
    return TWINS.get(case, case)


def auroc(bad_scores: np.ndarray, good_scores: np.ndarray) -> float:
    """P(a misnamed case scores lower than a correct one), ties half."""
    if len(bad_scores) == 0 or len(good_scores) == 0:
        return float("nan")
    diff = good_scores[None, :] - bad_scores[:, None]
    return float(np.mean((diff > 0) + 0.5 * (diff == 0)))


def fit(x: np.ndarray, y: np.ndarray, *, c: float):
    """Logistic regression on standardised signals, every weight >= 0 (each signal is oriented so that larger is
    more suspicious), classes weighted equally, L2 penalty ``1 / c``; (intercept, weights, means, scales)."""
    from scipy.optimize import minimize

    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = (x - mean) / scale
    sample = np.where(y == 1, 0.5 / max(y.mean(), 1e-9), 0.5 / max(1 - y.mean(), 1e-9)) / len(y)

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        logit = theta[0] + z @ theta[1:]
        p = 1.0 / (1.0 + np.exp(-logit))
        value = float(np.sum(sample * (np.logaddexp(0, logit) - y * logit))) + 0.5 / c * float(
            theta[1:] @ theta[1:]
        ) / len(y)
        grad_logit = sample * (p - y)
        grad = np.concatenate([[grad_logit.sum()], z.T @ grad_logit + theta[1:] / c / len(y)])
        return value, grad

    bounds = [(None, None)] + [(0.0, None)] * x.shape[1]
    theta = minimize(loss, np.zeros(x.shape[1] + 1), jac=True, bounds=bounds, method="L-BFGS-B").x
    return float(theta[0]), theta[1:], mean, scale


def scores_of(params, x: np.ndarray) -> np.ndarray:
    intercept, weights, mean, scale = params
    z = intercept + ((x - mean) / scale) @ weights
    return 1.0 / (1.0 + np.exp(z))


def out_of_fold(x: np.ndarray, y: np.ndarray, groups: np.ndarray, *, c: float, folds: int, seed: int) -> np.ndarray:
    unique = np.array(sorted(set(groups)))
    rng = np.random.default_rng(seed)
    fold_of = dict(zip(rng.permutation(unique), np.arange(len(unique)) % folds, strict=True))
    fold = np.array([fold_of[g] for g in groups])
    oof = np.zeros(len(y))
    for k in range(folds):
        test = fold == k
        oof[test] = scores_of(fit(x[~test], y[~test], c=c), x[test])
    return oof


def thresholds(oof: np.ndarray, y: np.ndarray, *, target_fpr: float, fail_precision: float) -> tuple[float, float]:
    good, bad = oof[y == 0], oof[y == 1]
    ok = float(np.quantile(good, target_fpr)) if len(good) else 0.5
    fail = 0.0
    for t in np.sort(oof):
        below = oof < t
        if below.sum() >= 3 and float(np.mean(y[below])) >= fail_precision:
            fail = float(t)
    return ok, min(fail, ok) if len(bad) else 0.0


def rates(flagged: np.ndarray, y: np.ndarray) -> dict[str, float]:
    return {
        "misnamed_flagged": float(np.mean(flagged[y == 1])) if np.any(y == 1) else float("nan"),
        "correct_flagged": float(np.mean(flagged[y == 0])) if np.any(y == 0) else float("nan"),
        "misnamed": int(np.sum(y == 1)),
        "correct": int(np.sum(y == 0)),
    }


def _table(name: str, params, *, ok: float, fail: float) -> list[str]:
    intercept, weights, mean, scale = params

    def numbers(values) -> str:
        return "[" + ", ".join(f"{float(v):.6f}" for v in values) + "]"

    return [
        f"[{name}]",
        "features = [" + ", ".join(f'"{name}"' for name in SIGNALS) + "]",
        f"mean = {numbers(mean)}",
        f"scale = {numbers(scale)}",
        f"weights = {numbers(weights)}",
        f"intercept = {intercept:.6f}",
        f"thresholds = {{ ok = {ok:.6f}, fail = {fail:.6f} }}",
        "",
    ]


def toml_text(params, given, *, summary: dict[str, object]) -> str:
    """``levels.toml``: the fitted models as the ``[model]`` and ``[given_model]`` tables
    :func:`paraspinal.quality.levels.load_levels_model` reads (each a
    :class:`paraspinal.quality.logistic.LogisticModel`, one entry per signal; ``params`` / ``given``: (fit, ok,
    fail)), and the reason cut-off."""
    lines = [
        "# Levels quality: logistic model of the signals in paraspinal.quality.level_signals (issue 30).",
        "# Written by recipes/quality/calibrate_levels.py; do not edit by hand (rerun it).",
        f"# Out-of-fold on {summary['cases']} predictions ({summary['misnamed']} misnamed): AUROC "
        f"{summary['auroc']:.3f}, misnamed flagged {summary['misnamed_flagged']:.1%}, "
        f"correct flagged {summary['correct_flagged']:.1%}.",
        f"# Given label maps (no model margin): AUROC {summary['given']['auroc']:.3f}, misnamed flagged "
        f"{summary['given']['misnamed_flagged']:.1%}, correct flagged {summary['given']['correct_flagged']:.1%}.",
        f'format = "{FORMAT}"',
        "",
        *_table("model", params[0], ok=params[1], fail=params[2]),
        *_table("given_model", given[0], ok=given[1], fail=given[2]),
        "[reasons]",
        "min_logit = 0.5  # a signal adding at least this to the log-odds of a misnaming is named as a reason",
        "max_reasons = 3",
        "",
    ]
    return "\n".join(lines)


def write_toml(path: Path, params, given, *, summary: dict[str, object]) -> None:
    path.write_text(toml_text(params, given, summary=summary), encoding="utf-8")


def calibrated(
    x: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    *,
    keep: np.ndarray,
    cs: list[float],
    folds: int,
    seed: int,
    target_fpr: float,
    fail_precision: float,
) -> dict[str, object]:
    """Fit on the signal columns ``keep`` (boolean, in :data:`SIGNALS` order): L2 strength by out-of-fold AUROC,
    thresholds from the out-of-fold scores, final weights on all cases, padded to every signal (left-out ones:
    weight 0, mean 0, scale 1). Keys: ``params`` (intercept, weights, mean, scale), ``ok``, ``fail``, ``oof``,
    ``c``, ``auroc_by_c``."""
    by_c = {c: out_of_fold(x[:, keep], y, groups, c=c, folds=folds, seed=seed) for c in cs}
    aurocs = {c: auroc(oof[y == 1], oof[y == 0]) for c, oof in by_c.items()}
    best = max(aurocs, key=lambda c: aurocs[c])
    ok, fail = thresholds(by_c[best], y, target_fpr=target_fpr, fail_precision=fail_precision)
    intercept, w, m, sd = fit(x[:, keep], y, c=best)
    weights, mean, scale = np.zeros(len(SIGNALS)), np.zeros(len(SIGNALS)), np.ones(len(SIGNALS))
    weights[keep], mean[keep], scale[keep] = w, m, sd
    return {
        "params": (intercept, weights, mean, scale),
        "ok": ok,
        "fail": fail,
        "oof": by_c[best],
        "c": best,
        "auroc_by_c": aurocs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="the spine-sagittal folder")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/qspine_levels_cache"))
    parser.add_argument("--report", type=Path, default=Path("/tmp/levels_calibration.json"))
    parser.add_argument("--write", action="store_true", help=f"write the calibrated model to {TOML}")
    parser.add_argument("--variants", type=int, default=6, help="variants per Dixon spine (T2: all kinds)")
    parser.add_argument(
        "--dixon", type=int, default=33, help="use the first N Dixon spines (all 54 take about an hour on 2 busy cores)"
    )
    parser.add_argument("--seed", type=int, default=30)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--c", type=float, nargs="+", default=[0.1, 1.0, 10.0, 100.0], help="L2 strengths tried")
    parser.add_argument("--target-fpr", type=float, default=0.2)
    parser.add_argument("--fail-precision", type=float, default=0.9)
    parser.add_argument(
        "--cross-model", action="append", default=[], help="name=model folder: its T2 predictions join (repeat)"
    )
    parser.add_argument("--models-cache", type=Path, default=Path("/tmp/levels_models_cache"))
    args = parser.parse_args(argv)
    files = predict_all(args.data, args.cache, n_variants=args.variants, seed=args.seed, dixon=args.dixon)
    rows = [{**r, "model": "bundled"} for r in case_rows(files)]
    for item in args.cross_model:
        name, _, folder = item.partition("=")
        if not name or not folder or name == "bundled":
            parser.error(f"--cross-model {item!r}: give name=folder (not 'bundled')")
        card = read_model_card(folder)
        cache = args.models_cache / f"{name}-{card.onnx_sha256[:12]}"
        more = predict_all(args.data, cache, n_variants=args.variants, seed=args.seed, dixon=0, model=Path(folder))
        rows += [{**r, "model": name} for r in case_rows(more, scheme_key=card.scheme.key)]
    usable = [r for r in rows if "signals" in r]
    x = np.array([[r["signals"][n] for n in SIGNALS] for r in usable])  # type: ignore[index]
    y = np.array([int(bool(r["misnamed"])) for r in usable])
    if not np.isfinite(x).all():
        raise SystemExit("calibrate_levels: a signal is not finite (a prediction cached without its margin?)")
    groups = np.array([group_of(str(r["case"])) for r in usable])
    options = {
        "cs": args.c,
        "folds": args.folds,
        "seed": args.seed,
        "target_fpr": args.target_fpr,
        "fail_precision": args.fail_precision,
    }
    every = np.ones(len(SIGNALS), dtype=bool)
    full = calibrated(x, y, groups, keep=every, **options)
    # label maps without the model's margin (given labels) get a model fitted without the margin signals
    given = calibrated(x, y, groups, keep=np.array([n not in MARGIN_SIGNALS for n in SIGNALS]), **options)
    best_c, oof, ok, fail, params = full["c"], full["oof"], full["ok"], full["fail"], full["params"]
    flagged = oof < ok
    given_flagged = given["oof"] < given["ok"]
    old = np.array([bool(r["old_warning"]) for r in usable])
    kinds = np.array([str(r["kind"]) for r in usable])
    t2 = np.array([str(r["case"]).startswith("t2-") for r in usable])
    models = np.array([str(r["model"]) for r in usable])
    summary: dict[str, object] = {
        "cases": len(usable),
        "naming_failed": len(rows) - len(usable),
        "misnamed": int(y.sum()),
        "c": best_c,
        "auroc_by_c": {str(c): v for c, v in full["auroc_by_c"].items()},
        "auroc": full["auroc_by_c"][best_c],
        "auroc_old_naming_confidence": auroc(
            1 - x[y == 1, list(SIGNALS).index("vote_disagreement")],
            1 - x[y == 0, list(SIGNALS).index("vote_disagreement")],
        ),
        "thresholds": {"ok": ok, "fail": fail},
        **rates(flagged, y),
        "failed_share": float(np.mean(oof < fail)),
        "old_warning": rates(old, y),
        "t2_only": {"new": rates(flagged[t2], y[t2]), "old": rates(old[t2], y[t2])},
        "by_model": {
            m: {
                **rates(flagged[models == m], y[models == m]),
                "auroc": auroc(oof[(models == m) & (y == 1)], oof[(models == m) & (y == 0)]),
            }
            for m in sorted(set(models))
        },
        "by_kind": {
            k: {"new": rates(flagged[kinds == k], y[kinds == k]), "old": rates(old[kinds == k], y[kinds == k])}
            for k in sorted(set(kinds))
        },
    }
    summary["given"] = {
        "c": given["c"],
        "auroc": given["auroc_by_c"][given["c"]],
        **rates(given_flagged, y),
        "by_model": {m: rates(given_flagged[models == m], y[models == m]) for m in sorted(set(models))},
    }
    summary["weights"] = dict(zip(SIGNALS, [round(float(w), 4) for w in params[1]], strict=True))
    missed = [
        {
            "model": r["model"],
            "file": r["file"],
            "what": r["what"],
            "names": r["names"],
            "oof_score": round(float(s), 3),
        }
        for r, s, b in zip(usable, oof, y, strict=True)
        if b and s >= ok
    ]
    summary["misnamed_not_flagged"] = missed
    args.report.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1, default=float), encoding="utf-8")
    printable = {k: v for k, v in summary.items() if k not in ("by_kind",)}
    print(json.dumps(printable, indent=1, default=float))
    for k, v in summary["by_kind"].items():  # type: ignore[union-attr]
        print(k, v)
    if args.write:
        write_toml(TOML, (params, ok, fail), (given["params"], given["ok"], given["fail"]), summary=summary)
        print(f"wrote {TOML}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
