"""How much to trust a result: per-case, per-structure, per-slice and per-level quality (see :mod:`.assessment`)."""

from paraspinal.quality.assessment import (
    NOT_CHECKED,
    Assessment,
    CaseQuality,
    LateralityCheck,
    StructureQuality,
    Thresholds,
    combine,
    status_of,
    worst_status,
)

__all__ = [
    "NOT_CHECKED",
    "Assessment",
    "CaseQuality",
    "LateralityCheck",
    "StructureQuality",
    "Thresholds",
    "combine",
    "status_of",
    "worst_status",
]
