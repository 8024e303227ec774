"""Spinal levels: which axial slices belong to L1/L2 ... L5/S1 (from CSV, mapping, disc or vertebra masks, or a
sagittal image)."""

from paraspinal._lazy import lazy_exports

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

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "AxialLevel": "paraspinal.levels.axial_match",
        "AxialLevels": "paraspinal.levels.axial_match",
        "check_frames_of_reference": "paraspinal.levels.axial_match",
        "match_axial": "paraspinal.levels.axial_match",
        "LevelsResult": "paraspinal.levels.sources",
        "levels_from_disc_mask": "paraspinal.levels.sources",
        "levels_from_mapping": "paraspinal.levels.sources",
        "levels_from_vertebra_mask": "paraspinal.levels.sources",
        "read_levels_csv": "paraspinal.levels.sources",
        "resolve_levels": "paraspinal.levels.sources",
        "SpineLevels": "paraspinal.levels.spine",
        "spine_levels_from_labels": "paraspinal.levels.spine",
        "DiscGeometry": "paraspinal.levels.spine_geometry",
        "VertebralBody": "paraspinal.levels.spine_geometry",
        "Level": "paraspinal.levels.table",
        "LevelTable": "paraspinal.levels.table",
        "level_sort_key": "paraspinal.levels.table",
        "normalise_level_name": "paraspinal.levels.table",
    },
)
