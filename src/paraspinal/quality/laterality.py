"""Laterality against anatomy: does the header's patient right agree with what the image shows?

The header alone cannot tell a mirrored image: a left/right-swapped affine makes a model name every muscle
by the wrong side and the affine check still agrees. Here the sides are checked against organs whose side is
fixed in normal anatomy (situs solitus), in order of directness (:mod:`.laterality_evidence`):

1. organ labels in the label map (liver, gallbladder, spleen, stomach; aorta left of the inferior vena cava);
2. without them, on CT (HU): the liver as the much larger homogeneous soft-tissue part on one side;
3. on MR with a Dixon fat image: the liver as a large homogeneous lean (water-dominant) region anterolateral
   of the spine on one side, on at least two slices.

``agrees`` / ``contradicted`` need every cue found to point the same way; conflicting cues, too little
evidence, single-contrast MR (no calibrated evidence: on TUM01's water image alone lower slices show
liver-sized one-sided regions) and label maps without muscles on both sides give ``not checked`` with the
reason. ``evidence`` holds the measured numbers and ``confidence`` in [0, 1] (the strongest cue's).
Situs inversus would read as ``contradicted``: the result says what to check, not what to change.
"""

from __future__ import annotations

import numpy as np

from paraspinal.io import Image, LabelMap, axial_frame
from paraspinal.quality.assessment import LateralityCheck
from paraspinal.quality.laterality_evidence import (
    Cue,
    axial_last,
    ct_liver_cues,
    dixon_liver_cues,
    organ_label_cues,
    spine_frame,
)

__all__ = ["MAX_TILT_DEG", "check_laterality"]

MAX_TILT_DEG = 30.0


def _not_checked(reason: str, evidence: dict[str, object] | None = None) -> LateralityCheck:
    return LateralityCheck("not checked", (reason,), evidence or {})


def _decide(cues: list[Cue], *, method: str, extra: dict[str, object]) -> LateralityCheck:
    evidence: dict[str, object] = {
        "method": method,
        **extra,
        "cues": [{"what": c.what, "side": c.side, **c.measured} for c in cues],
    }
    described = tuple(c.describe() for c in cues)
    if all(c.agrees for c in cues):
        evidence["confidence"] = round(max(c.strength for c in cues), 3)
        return LateralityCheck(
            "agrees", ("the header's patient right agrees with anatomy: " + "; ".join(described),), evidence
        )
    if not any(c.agrees for c in cues):
        evidence["confidence"] = round(max(c.strength for c in cues), 3)
        reason = (
            "left and right look swapped in the header (or situs inversus): "
            + "; ".join(described)
            + "; every sided label and number is on the wrong side"
        )
        return LateralityCheck("contradicted", (reason,), evidence)
    return _not_checked("anatomical cues disagree, so they cannot tell: " + "; ".join(described), evidence)


def check_laterality(
    *, image: Image, label_map: LabelMap, fat: Image | None = None, ct: bool = False
) -> LateralityCheck:
    """The header's sides checked against anatomy in view (``image``: the anatomical image on the label map's
    grid, the water image of a Dixon pair; ``fat``: a Dixon fat image when there is one; ``ct``: ``image`` is
    in HU). See the module docstring for the evidence used and what each result means."""
    frame_info = axial_frame(label_map.labels)
    if frame_info.tilt_deg > MAX_TILT_DEG:
        return _not_checked(f"not an axial stack (slices tilted {frame_info.tilt_deg:.0f} deg from axial)")
    axis = frame_info.slice_axis
    frame = spine_frame(label_map, slice_axis=axis)
    if frame is None:
        return _not_checked("no muscle labelled on both sides, so the spine midline is unknown")
    base = {"midline_x_mm": round(frame.midline_x_mm, 1)}
    cues = organ_label_cues(label_map, frame, slice_axis=axis)
    if cues:
        return _decide(cues, method="organ labels", extra=base)
    if image.shape != label_map.shape:
        return _not_checked("image and label map are on different grids: no image evidence used")
    values, _ = axial_last(np.asarray(image.array), image.affine, axis)
    if ct:
        cues, measured = ct_liver_cues(values, frame)
        if cues:
            return _decide(cues, method="CT liver parenchyma", extra={**base, **measured})
        return _not_checked(
            "no liver in view on CT (no homogeneous soft-tissue part large enough, or not one-sided enough)",
            {"method": "CT liver parenchyma", **base, **measured},
        )
    if fat is None:
        return _not_checked("MR without a Dixon fat image: no calibrated anatomical evidence for this contrast")
    if fat.shape != label_map.shape:
        return _not_checked("fat image and label map are on different grids: no image evidence used")
    fat_values, _ = axial_last(np.asarray(fat.array), fat.affine, axis)
    cues, measured = dixon_liver_cues(values, fat_values, frame)
    if cues:
        return _decide(cues, method="Dixon liver", extra={**base, **measured})
    return _not_checked(
        "no liver in view on the Dixon images (no one-sided homogeneous lean region on two slices)",
        {"method": "Dixon liver", **base, **measured},
    )
