"""Clean label maps: keep the largest connected component per label, drop small objects."""

from paraspinal._lazy import lazy_exports

__all__ = ["CleanupRecord", "clean_label_map", "keep_largest_component", "remove_small_objects"]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "CleanupRecord": "paraspinal.postprocessing.components",
        "clean_label_map": "paraspinal.postprocessing.components",
        "keep_largest_component": "paraspinal.postprocessing.components",
        "remove_small_objects": "paraspinal.postprocessing.components",
    },
)
