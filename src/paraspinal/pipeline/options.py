"""How the cases of a run are processed: one :class:`RunOptions` for every case."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from paraspinal.levels.defaults import DEFAULT_TOLERANCE_MM
from paraspinal.measurement.ct_options import CtOptions
from paraspinal.measurement.infiltration_methods import METHODS as INFILTRATION_METHODS

__all__ = ["RunOptions"]


@dataclass(frozen=True)
class RunOptions:
    """How cases are processed (the same for every case of a run)."""

    scheme: str = "lpm4"  # scheme of given label maps (segmented ones use the backend's)
    sagittal_scheme: str = "lumbar_bodies"  # scheme of given sagittal label maps (<case>_sag_dseg)
    levels_csv: Path | None = None  # one CSV for all cases (case_id/pid column), unless a case has its own
    assume_aligned: bool = False
    largest_component: bool = True  # applied to segmentations, never to given label maps
    infiltration_methods: tuple[str, ...] = INFILTRATION_METHODS  # on the T1/T2 image, when there is one
    qc: bool = True
    report: bool = True
    embed_images: bool = True  # case pages embed their PNGs (one file to share)
    qc_slices: int = 5  # evenly spaced QC slices when there are no levels
    seed: int = 0
    # DICOM inputs: which series (``UID`` or ``ROLE=UID`` words), plane/contrast rules, uneven spacing
    series: tuple[str, ...] = ()
    plane: str | None = None
    contrast: str | None = None
    resample_uneven: bool = False
    output_format: str = "nifti"  # "dicom-seg" adds <case>_dseg.dcm next to the NIfTI label map
    seg_patient: str = "pseudonymise"
    levels_tolerance_mm: float = DEFAULT_TOLERANCE_MM  # how far a disc centre may lie outside the axial stack
    # a DICOM study given as one case: find its Dixon pair and sagittal series (run); segment and measure take
    # the series they are told
    study_roles: bool = True
    keep_descriptions: bool = False  # DICOM series descriptions (free text) into error messages
    # CT: "auto" takes a DICOM series' Modality; "ct" declares the T1/T2 role's image a CT in HU (NIfTI has no
    # modality field); "mr" refuses nothing but never measures HU. How CT is measured: ``ct``.
    modality: str = "auto"
    ct: CtOptions = field(default_factory=CtOptions)
