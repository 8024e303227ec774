"""Input/output: the :class:`Image` type, readers, writers, orientation and grid checks."""

from paraspinal.io.geometry import check_same_grid, grid_differences
from paraspinal.io.image import Image
from paraspinal.io.orientation import AxialFrame, axial_frame, axis_codes, slice_axis, slice_positions_mm
from paraspinal.io.readers import IMAGE_SUFFIXES, image_suffix, read_image, read_label_map, strip_image_suffix
from paraspinal.io.writers import write_label_map, write_nifti

__all__ = [
    "IMAGE_SUFFIXES",
    "AxialFrame",
    "Image",
    "axial_frame",
    "axis_codes",
    "check_same_grid",
    "grid_differences",
    "image_suffix",
    "read_image",
    "read_label_map",
    "slice_axis",
    "slice_positions_mm",
    "strip_image_suffix",
    "write_label_map",
    "write_nifti",
]
