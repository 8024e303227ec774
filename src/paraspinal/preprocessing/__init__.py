"""Model input preparation: reorientation, in-plane resampling, intensity normalisation.

Shared by training and inference so both see images the same way (see :class:`InputSpec`).
"""

from paraspinal.preprocessing.intensity import foreground_box, percentile_scale
from paraspinal.preprocessing.orientation import Oriented, reorient, restore_orientation
from paraspinal.preprocessing.resample import resize_inplane
from paraspinal.preprocessing.spec import InputSpec, PreparedVolume, context_slices, prepare_volume

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
