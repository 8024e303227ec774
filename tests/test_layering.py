"""The one-way flow: io -> preprocessing -> backends -> postprocessing -> measurement -> reporting."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "paraspinal"
# rank of each sub-package; a module may import only its own rank or lower ones
RANKS = {
    "errors": 0,
    "anatomy": 0,
    "sample": 0,
    "models": 0,
    "io": 1,
    "preprocessing": 2,
    "backends": 3,
    "postprocessing": 4,
    "levels": 4.5,
    "measurement": 5,
    "evaluation": 5.5,
    "reporting": 6,
    "pipeline": 7,
    "training": 7,
    "batch": 8,
    "cli": 9,
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("paraspinal."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("paraspinal."))
    return found


def test_no_layer_imports_a_higher_one() -> None:
    violations = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if len(rel.parts) == 1:
            continue  # paraspinal/__init__.py, errors.py
        layer = rel.parts[0]
        assert layer in RANKS, f"unknown layer {layer}: add it to RANKS"
        for imported in _imports(path):
            if imported in RANKS and RANKS[imported] > RANKS[layer]:
                violations.append(f"{rel} imports paraspinal.{imported}")
    assert not violations, violations


def test_core_never_imports_torch() -> None:
    offenders = [
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if "import torch" in p.read_text(encoding="utf-8") and "training" not in p.parts
    ]
    assert not offenders
