"""What a DICOM image series is, as discovery describes it (:class:`SeriesInfo`), without any patient data.

Discovery (:mod:`paraspinal.io.dicom`) makes these and the rules of :mod:`paraspinal.io.dicom_select` choose
among them; both take the type from here, so neither imports the other's module for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from paraspinal.io.dicom_files import Frame
from paraspinal.io.dicom_geometry import StackGeometry


@dataclass(frozen=True)
class SeriesInfo:
    """One image series (or one stack of a split series), described without any patient data."""

    uid: str
    stack: str
    description: str
    number: int | None
    modality: str
    plane: str
    tilt_deg: float
    n_slices: int
    n_files: int
    multiframe: bool
    rows: int
    columns: int
    pixel_spacing_mm: tuple[float, float] | None
    slice_spacing_mm: float | None
    contrasts: tuple[str, ...]
    image_type: str
    problems: tuple[str, ...]
    uneven: str | None
    source: str
    frame_of_reference_uid: str = ""
    ct: Mapping[str, object] = field(default_factory=dict, compare=False)  # CT facts (contrast, kernel) when CT
    frames: tuple[Frame, ...] = field(repr=False, compare=False, default=())
    geometry: StackGeometry | None = field(repr=False, compare=False, default=None)

    @property
    def key(self) -> str:
        """``UID`` or, for one stack of a split series, ``UID:stack``."""
        return f"{self.uid}:{self.stack}" if self.stack else self.uid

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready description (no frames, no patient data)."""
        return {
            "series_instance_uid": self.uid,
            "key": self.key,
            "stack": self.stack,
            "series_number": self.number,
            "description": self.description,
            "modality": self.modality,
            "plane": self.plane,
            "tilt_deg": None if self.tilt_deg != self.tilt_deg else round(self.tilt_deg, 3),
            "n_slices": self.n_slices,
            "n_files": self.n_files,
            "multiframe": self.multiframe,
            "rows": self.rows,
            "columns": self.columns,
            "pixel_spacing_mm": list(self.pixel_spacing_mm) if self.pixel_spacing_mm else None,
            "slice_spacing_mm": self.slice_spacing_mm,
            "contrasts": list(self.contrasts),
            "image_type": self.image_type,
            "problems": list(self.problems) + ([self.uneven] if self.uneven else []),
            **({"contrast_agent": self.ct["contrast_agent"], "kernel": self.ct["kernel"]} if self.ct else {}),
        }
