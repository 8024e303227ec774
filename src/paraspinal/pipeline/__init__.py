"""Pipelines: read inputs, check geometry, run the layers below, write outputs.

The ``run`` job (segment, measure, QC images, reports) lives in :mod:`paraspinal.pipeline.run`; it is
not imported here so that light commands do not pay for matplotlib and Jinja2 at start-up.
"""

from paraspinal.pipeline.cases import Case, Discovery, discover_cases
from paraspinal.pipeline.measure import MeasureRequest, MeasureResult, case_id_from_path, measure_request

__all__ = [
    "Case",
    "Discovery",
    "MeasureRequest",
    "MeasureResult",
    "case_id_from_path",
    "discover_cases",
    "measure_request",
]
