"""Model input preparation: reorientation, in-plane resampling, intensity normalisation.

Shared by training and inference so both see images the same way (see :class:`InputSpec`).
"""

from paraspinal._lazy import lazy_exports

__all__ = [
    "InputSpec",
    "Oriented",
    "PreparedVolume",
    "context_slices",
    "foreground_box",
    "percentile_scale",
    "prepare_volume",
    "reorient",
    "resize_inplane",
    "restore_orientation",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "foreground_box": "paraspinal.preprocessing.intensity",
        "percentile_scale": "paraspinal.preprocessing.intensity",
        "Oriented": "paraspinal.preprocessing.orientation",
        "reorient": "paraspinal.preprocessing.orientation",
        "restore_orientation": "paraspinal.preprocessing.orientation",
        "resize_inplane": "paraspinal.preprocessing.resample",
        "InputSpec": "paraspinal.preprocessing.spec",
        "PreparedVolume": "paraspinal.preprocessing.spec",
        "context_slices": "paraspinal.preprocessing.spec",
        "prepare_volume": "paraspinal.preprocessing.spec",
    },
)
