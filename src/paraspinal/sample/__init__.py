"""The bundled TUM01 sample (MyoSegmenTUM spine, via LPM_Segmentator; see NOTICE)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import as_file, files
from pathlib import Path


@dataclass(frozen=True)
class SampleCase:
    """Paths of the bundled sample case."""

    case_id: str
    water: Path
    fat: Path
    labels: Path
    levels: Path
    scheme: str


def sample_case() -> SampleCase:
    """The bundled TUM01 case (files live inside the installed package)."""
    root = files("paraspinal.sample")
    with as_file(root) as folder:
        base = Path(folder)
    return SampleCase(
        case_id="TUM01",
        water=base / "TUM01_water.nii.gz",
        fat=base / "TUM01_fat.nii.gz",
        labels=base / "TUM01_labels.nii.gz",
        levels=base / "TUM01_levels.csv",
        scheme="lpm4",
    )
