"""Laterality against anatomy: does the header's patient right agree with what the image shows?

Placeholder interface (issue 30): the anatomical evidence is filled in by the laterality work.
"""

from __future__ import annotations

from paraspinal.io import Image, LabelMap
from paraspinal.quality.assessment import LateralityCheck

__all__ = ["check_laterality"]


def check_laterality(
    *, image: Image, label_map: LabelMap, fat: Image | None = None, ct: bool = False
) -> LateralityCheck:
    """The header's sides checked against anatomy in view (``image``: the anatomical image on the label map's
    grid; ``fat``: a Dixon fat image when there is one; ``ct``: ``image`` is in HU)."""
    return LateralityCheck("not checked", ("no anatomical laterality check implemented yet",))
