"""Clean label maps: keep the largest connected component per label, drop small objects."""

from paraspinal.postprocessing.components import CleanupRecord, keep_largest_component, remove_small_objects

__all__ = ["CleanupRecord", "keep_largest_component", "remove_small_objects"]
