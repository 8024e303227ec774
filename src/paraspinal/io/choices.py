"""Fixed vocabularies of the io layer: label-map output formats, DICOM-SEG patient policies, DICOM planes and
contrasts. Importable without numpy or pydicom (the CLI names them in its help)."""

from __future__ import annotations

__all__ = ["CONTRASTS", "LABEL_OUTPUT_FORMATS", "PLANES", "SEG_PATIENT_POLICIES"]

LABEL_OUTPUT_FORMATS = ("nifti", "dicom-seg")  # a NIfTI label map, plus a DICOM-SEG next to it
SEG_PATIENT_POLICIES = ("pseudonymise", "keep")  # DICOM-SEG patient module: no identifiers, or the source's
CONTRASTS = ("water", "fat", "in_phase", "opp_phase", "t1", "t2")
PLANES = ("axial", "sagittal", "coronal", "oblique")
