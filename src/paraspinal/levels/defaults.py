"""Defaults of the levels layer, importable without numpy or pandas (the CLI shows them in its help)."""

from __future__ import annotations

__all__ = ["DEFAULT_TOLERANCE_MM"]

DEFAULT_TOLERANCE_MM = 10.0  # how far (mm) a disc centre may lie outside the axial stack and still be matched
