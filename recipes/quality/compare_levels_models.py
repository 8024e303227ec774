"""Compare spine models on level naming: the shifted sagittal spines of ``calibrate_levels.py``, named as shipped.

    python recipes/quality/compare_levels_models.py ../shared/data/spine-sagittal \
        --model shipped=src/paraspinal/models/lumbar_spine --model bodies=/tmp/spine_bodies --dixon 0

Each model (``name=folder``) segments the same variants (``levels_predict.py``, cached per model under
``--cache``, keyed by name and weights hash); the bodies are named by
:func:`paraspinal.levels.spine_levels_from_labels` in the model's own label scheme, and a case is misnamed as in
``calibrate_levels.py`` (a found body within half a spacing of a manual body of another name). Printed: the share
of cases named correctly per group (T2 spines as given, their T11-L5 and
extended views, all T2 variants, Dixon variants) and the naming failures; ``--report`` keeps every case.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from calibrate_levels import case_rows
from levels_predict import HARD_T2, predict_all

from paraspinal.backends import read_model_card


def groups(row: dict[str, object]) -> list[str]:
    """The report groups a case belongs to."""
    case, kind = str(row["case"]), str(row["kind"])
    if not case.startswith("t2-"):
        return ["Dixon, all variants"]
    out = ["T2, all variants"]
    if kind == "orig":
        out.append("T2, as given")
    if kind in HARD_T2:
        out.append("T2, T11-L5 and extended views")
    return out


def summary(rows: list[dict[str, object]]) -> dict[str, dict[str, float]]:
    """Per group: cases, share named correctly (naming failures count as wrong), naming failures."""
    table: dict[str, dict[str, float]] = {}
    for row in rows:
        for group in groups(row):
            entry = table.setdefault(group, {"cases": 0, "correct": 0, "failed": 0})
            entry["cases"] += 1
            entry["failed"] += int("error" in row)
            entry["correct"] += int("error" not in row and not row["misnamed"])
    for entry in table.values():
        entry["correct_share"] = entry["correct"] / max(entry["cases"], 1)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="the spine-sagittal folder")
    parser.add_argument("--model", action="append", required=True, help="name=model folder (repeat)")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/levels_models_cache"))
    parser.add_argument("--report", type=Path, default=None, help="JSON with every case of every model")
    parser.add_argument("--variants", type=int, default=6)
    parser.add_argument("--dixon", type=int, default=0, help="also the first N Dixon spines (training data)")
    parser.add_argument("--seed", type=int, default=30)
    args = parser.parse_args(argv)
    results: dict[str, dict[str, object]] = {}
    for item in args.model:
        name, _, folder = item.partition("=")
        if not name or not folder or name in results:
            parser.error(f"--model {item!r}: give name=folder, each name once")
        card = read_model_card(folder)
        cache = args.cache / f"{name}-{card.onnx_sha256[:12]}"  # a retrained model never reuses old predictions
        files = predict_all(
            args.data, cache, n_variants=args.variants, seed=args.seed, dixon=args.dixon, model=Path(folder)
        )
        rows = case_rows(files, scheme_key=card.scheme.key)
        results[name] = {"scheme": card.scheme.key, "summary": summary(rows), "cases": rows}
    group_names = sorted({g for r in results.values() for g in r["summary"]})  # type: ignore[union-attr]
    print("| group | " + " | ".join(f"{n} ({r['scheme']}): named correctly" for n, r in results.items()) + " |")
    print("|---|" + "---|" * len(results))
    for group in group_names:
        cells = []
        for r in results.values():
            e = r["summary"].get(group)  # type: ignore[union-attr]
            cells.append(
                "-" if e is None else f"{e['correct']}/{e['cases']} ({e['correct_share']:.0%}), {e['failed']} failed"
            )
        print(f"| {group} | " + " | ".join(cells) + " |")
    if args.report is not None:  # numpy scalars as floats, as calibrate_levels.py writes its report
        args.report.write_text(json.dumps(results, indent=1, default=float), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
