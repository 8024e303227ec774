"""Option parsing shared by several commands."""

from __future__ import annotations

import typer

from paraspinal.measurement.infiltration_methods import METHODS as INFILTRATION_METHODS


def parse_methods(methods: str) -> tuple[str, ...]:
    """``"otsu,gmm2"`` -> ``("otsu", "gmm2")``; unknown names are a usage error (exit 2)."""
    chosen = tuple(m.strip() for m in methods.split(",") if m.strip())
    unknown = sorted(set(chosen) - set(INFILTRATION_METHODS))
    if unknown:
        raise typer.BadParameter(
            f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(INFILTRATION_METHODS)}",
            param_hint="--methods",
        )
    return chosen
