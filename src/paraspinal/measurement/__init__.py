"""Measurements: areas, volumes, Dixon fat fraction, fat infiltration, intensities and CT attenuation, as tables."""

from paraspinal._lazy import lazy_exports

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

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Measurements": "paraspinal.measurement.case",
        "measure_case": "paraspinal.measurement.case",
        "CtOptions": "paraspinal.measurement.ct_options",
        "INFILTRATION_METHODS": "paraspinal.measurement.infiltration:METHODS",
        "ParenchymaSelection": "paraspinal.measurement.parenchyma",
        "select_parenchyma": "paraspinal.measurement.parenchyma",
        "steatosis_categories": "paraspinal.measurement.parenchyma",
        "COLUMNS": "paraspinal.measurement.rows",
    },
)
