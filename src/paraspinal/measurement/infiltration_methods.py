"""The names of the fat-infiltration methods (:mod:`paraspinal.measurement.infiltration`), importable without
scikit-learn (the CLI lists them in its help)."""

from __future__ import annotations

__all__ = ["METHODS"]

METHODS: tuple[str, ...] = ("otsu", "otsu_xu", "kmeans2", "kmeans3", "gmm2", "gmm3")
