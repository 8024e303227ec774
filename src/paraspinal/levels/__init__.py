"""Spinal levels: which axial slices belong to L1/L2 ... L5/S1 (from CSV, mapping, disc or vertebra masks, or a
sagittal image)."""

from paraspinal.levels.axial_match import AxialLevel, AxialLevels, check_frames_of_reference, match_axial
from paraspinal.levels.sources import (
    LevelsResult,
    levels_from_disc_mask,
    levels_from_mapping,
    levels_from_vertebra_mask,
    read_levels_csv,
    resolve_levels,
)
from paraspinal.levels.spine import SpineLevels, spine_levels_from_labels
from paraspinal.levels.spine_geometry import DiscGeometry, VertebralBody
from paraspinal.levels.table import Level, LevelTable, level_sort_key, normalise_level_name

__all__ = [
    "AxialLevel",
    "AxialLevels",
    "DiscGeometry",
    "Level",
    "LevelTable",
    "LevelsResult",
    "SpineLevels",
    "VertebralBody",
    "check_frames_of_reference",
    "level_sort_key",
    "levels_from_disc_mask",
    "levels_from_mapping",
    "levels_from_vertebra_mask",
    "match_axial",
    "normalise_level_name",
    "read_levels_csv",
    "resolve_levels",
    "spine_levels_from_labels",
]
