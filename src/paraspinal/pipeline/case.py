"""One case of a run: its input files by role (paths only, typed), validated when made.

A case is one image (T1/T2), a Dixon water/fat pair, or either of these plus an existing label map (then
segmentation is skipped), optionally with its own levels CSV and a sagittal image (with or without its
label map) for levels. Cases come from file names and cases CSVs (:mod:`paraspinal.pipeline.discovery`);
their DICOM roles are resolved, and their files read, by :mod:`paraspinal.pipeline.read`. A case id that
would collide with the run's own files, be hidden, or be run as a spreadsheet formula is refused
(:func:`paraspinal.io.case_names.check_case_id`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from paraspinal.errors import InputError
from paraspinal.io.case_names import check_case_id
from paraspinal.safe_text import identifier_problem

__all__ = ["Case"]


@dataclass(frozen=True)
class Case:
    """One case's input files (paths only). ``labels`` set means: measure this mask, do not segment.

    A ``run`` case has an axial image (discovery makes sure); ``measure`` takes a label map alone (areas and
    volumes only) and ``levels`` a sagittal image alone.
    """

    case_id: str
    image: Path | None = None
    image_name: str = "image"
    water: Path | None = None
    fat: Path | None = None
    labels: Path | None = None
    levels: Path | None = None
    sagittal: Path | None = None
    sagittal_labels: Path | None = None
    sagittal_series: str | None = None  # series key of the sagittal image inside a DICOM study

    def __post_init__(self) -> None:
        check_case_id(self.case_id)
        problem = identifier_problem(self.image_name)
        if problem is not None:
            raise InputError(f"case {self.case_id}: image name {self.image_name!r} {problem}")
        if (self.water is None) != (self.fat is None):
            given = self.water or self.fat
            raise InputError(f"case {self.case_id}: a Dixon case needs both a water and a fat image", path=given)
        if self.image is None and self.water is None and self.labels is None and self.sagittal is None:
            raise InputError(f"case {self.case_id}: no image (T1/T2, water/fat, a label map or a sagittal image)")
        if self.sagittal_labels is not None and self.sagittal is None:
            raise InputError(
                f"case {self.case_id}: a sagittal label map needs its sagittal image", path=self.sagittal_labels
            )

    @property
    def needs_segmentation(self) -> bool:
        return self.labels is None

    @property
    def segmentation_input(self) -> Literal["water", "image"]:
        """Role of the image a backend segments: the water image of a Dixon pair, else the T1/T2 image."""
        return "water" if self.water is not None else "image"

    def inputs(self) -> dict[str, Path]:
        """Input files by role (only those given)."""
        found = {
            "image": self.image,
            "water": self.water,
            "fat": self.fat,
            "labels": self.labels,
            "levels": self.levels,
            "sagittal": self.sagittal,
            "sagittal_labels": self.sagittal_labels,
        }
        return {role: path for role, path in found.items() if path is not None}
