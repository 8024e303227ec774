"""Measurements: areas, volumes, Dixon fat fraction, fat infiltration, intensities and CT attenuation, as tables."""

from paraspinal.measurement.case import Measurements, measure_case
from paraspinal.measurement.ct import CtOptions
from paraspinal.measurement.infiltration import METHODS as INFILTRATION_METHODS
from paraspinal.measurement.parenchyma import ParenchymaSelection, select_parenchyma, steatosis_categories
from paraspinal.measurement.rows import COLUMNS

__all__ = [
    "COLUMNS",
    "INFILTRATION_METHODS",
    "CtOptions",
    "Measurements",
    "ParenchymaSelection",
    "measure_case",
    "select_parenchyma",
    "steatosis_categories",
]
