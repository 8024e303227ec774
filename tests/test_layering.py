"""The one-way flow: io -> preprocessing -> backends -> postprocessing -> measurement -> reporting."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "paraspinal"
# rank of each sub-package; a module may import only its own rank or lower ones
RANKS = {
    "errors": 0,
    "safe_text": 0,
    "anatomy": 0,
    "sample": 0,
    "models": 0,
    "io": 1,
    "preprocessing": 2,
    "backends": 3,
    "postprocessing": 4,
    "levels": 4.5,
    "quality": 4.8,
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
            continue  # paraspinal/__init__.py, errors.py, safe_text.py
        layer = rel.parts[0]
        assert layer in RANKS, f"unknown layer {layer}: add it to RANKS"
        for imported in _imports(path):
            if imported in RANKS and RANKS[imported] > RANKS[layer]:
                violations.append(f"{rel} imports paraspinal.{imported}")
    assert not violations, violations


HEAVY = ("torch", "monai", "nnunet", "nnunetv2", "totalsegmentator", "dynamic_network_architectures")


def _module_level_imports(path: Path) -> set[str]:
    """Top-level package names imported by statements at module level (not inside functions)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_core_never_imports_heavy_libraries_at_module_level() -> None:
    offenders = [
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if "training" not in p.parts and _module_level_imports(p) & set(HEAVY)
    ]
    assert not offenders


def test_loading_every_command_imports_no_heavy_library() -> None:
    code = (
        "import sys, paraspinal.cli.main, paraspinal.backends.catalog as c; c.list_backends(); "
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
