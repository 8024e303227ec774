"""Input/output: the :class:`Image` type, readers (DICOM discovery too), writers (DICOM-SEG too), grid checks."""

from paraspinal.io.ct import HounsfieldCheck, as_ct, check_hounsfield
from paraspinal.io.dicom import SeriesInfo, discover_series, read_dicom, scan_dicom
from paraspinal.io.dicom_seg import write_dicom_seg
from paraspinal.io.dicom_select import SeriesChoice, select_series
from paraspinal.io.geometry import check_same_grid, grid_differences
from paraspinal.io.image import Image
from paraspinal.io.label_map import LabelMap, Provenance
from paraspinal.io.orientation import AxialFrame, axial_frame, axis_codes, slice_axis, slice_positions_mm
from paraspinal.io.readers import IMAGE_SUFFIXES, image_suffix, read_image, read_label_map, strip_image_suffix
from paraspinal.io.writers import write_label_map, write_nifti

__all__ = [
    "IMAGE_SUFFIXES",
    "AxialFrame",
    "HounsfieldCheck",
    "Image",
    "LabelMap",
    "Provenance",
    "SeriesChoice",
    "SeriesInfo",
    "as_ct",
    "axial_frame",
    "axis_codes",
    "check_hounsfield",
    "check_same_grid",
    "discover_series",
    "grid_differences",
    "image_suffix",
    "read_dicom",
    "read_image",
    "read_label_map",
    "scan_dicom",
    "select_series",
    "slice_axis",
    "slice_positions_mm",
    "strip_image_suffix",
    "write_dicom_seg",
    "write_label_map",
    "write_nifti",
]
