"""Spinal levels: which axial slices belong to L1/L2 ... L5/S1 (from CSV, mapping or disc masks)."""

from paraspinal.levels.sources import levels_from_disc_mask, levels_from_mapping, read_levels_csv, resolve_levels
from paraspinal.levels.table import Level, LevelTable, level_sort_key, normalise_level_name

__all__ = [
    "Level",
    "LevelTable",
    "level_sort_key",
    "levels_from_disc_mask",
    "levels_from_mapping",
    "normalise_level_name",
    "read_levels_csv",
    "resolve_levels",
]
