"""Measurements: areas, volumes, Dixon fat fraction, fat infiltration and intensities, as tidy tables."""

from paraspinal.measurement.case import Measurements, measure_case
from paraspinal.measurement.infiltration import METHODS as INFILTRATION_METHODS
from paraspinal.measurement.rows import COLUMNS

__all__ = ["COLUMNS", "INFILTRATION_METHODS", "Measurements", "measure_case"]
