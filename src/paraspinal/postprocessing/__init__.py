"""Clean label maps: keep the largest connected component per label, drop small objects."""

from paraspinal.postprocessing.components import (
    CleanupRecord,
    clean_label_map,
    keep_largest_component,
    remove_small_objects,
)

__all__ = ["CleanupRecord", "clean_label_map", "keep_largest_component", "remove_small_objects"]
