"""Pipelines: read inputs, check geometry, run the layers below, write outputs."""

from paraspinal.pipeline.measure import MeasureRequest, MeasureResult, case_id_from_path, measure_request

__all__ = ["MeasureRequest", "MeasureResult", "case_id_from_path", "measure_request"]
