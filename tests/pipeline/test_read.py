"""`run` on a DICOM study: the study's sagittal series is found and used for the levels.

The study (tests/dicom_factory.py) holds axial Dixon water/fat, a 50-slice sagittal reformat and the
label map; localizers and a second, longer sagittal series are added to check which one is taken.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from paraspinal.anatomy import LabelScheme, load_scheme
from paraspinal.backends.base import segmentation
from paraspinal.backends.catalog import Models
from paraspinal.io import Image
from paraspinal.io.label_map import LabelMap
from paraspinal.pipeline.case import Case
from paraspinal.pipeline.options import RunOptions
from paraspinal.pipeline.read import sagittal_from_dicom
from paraspinal.pipeline.stages import CaseState, StageContext, run_stages
from tests.dicom_factory import Tum01Study, sagittal_reformat, uid_for, write_series, write_tum01_study


@pytest.fixture(scope="module")
def tum01(tmp_path_factory: pytest.TempPathFactory) -> Tum01Study:
    return write_tum01_study(tmp_path_factory.mktemp("tum01_sag"))


def _study_copy(tum01: Tum01Study, root: Path) -> Path:
    study = root / "study"
    shutil.copytree(tum01.study, study)
    return study


def test_the_sagittal_series_of_a_study_is_picked(tum01: Tum01Study) -> None:
    case = sagittal_from_dicom(Case(case_id="study", image=tum01.study))
    assert case.sagittal == tum01.study
    assert case.sagittal_series is not None and case.sagittal_series.startswith(tum01.sagittal_uid)


def test_a_localizer_is_passed_over_and_the_longest_sagittal_series_wins(tum01: Tum01Study, tmp_path: Path) -> None:
    study = _study_copy(tum01, tmp_path)
    sag, sag_affine = sagittal_reformat(tum01.water, tum01.affine, every=8)
    localizer = uid_for("tum01", "localizer")
    write_series(study / "loc", sag[:, :, 20:23], sag_affine, series_uid=localizer, description="localizer",
                 series_number=1)  # fmt: skip
    assert sagittal_from_dicom(Case(case_id="s", image=study)).sagittal_series.startswith(tum01.sagittal_uid)
    longer_array, longer_affine = sagittal_reformat(tum01.water, tum01.affine, every=4)
    longer = uid_for("tum01", "sagittal-fine")
    write_series(study / "sag4", longer_array, longer_affine, series_uid=longer, description="t2_tse_sag_fine",
                 series_number=5)  # fmt: skip
    assert sagittal_from_dicom(Case(case_id="s", image=study)).sagittal_series.startswith(longer)


def test_a_study_without_a_sagittal_series_or_a_nifti_case_is_left_alone(tum01: Tum01Study, tmp_path: Path) -> None:
    study = _study_copy(tum01, tmp_path)
    shutil.rmtree(study / "sag")
    case = Case(case_id="s", image=study)
    assert sagittal_from_dicom(case) == case
    nifti = Case(case_id="n", image=tum01.nifti / "TUM01_water.nii.gz")
    assert sagittal_from_dicom(nifti) == nifti


class _RecordingSpine:
    """A spine 'model' that records the image it was given and returns no bodies."""

    name = "recording"

    def __init__(self) -> None:
        self.seen: list[Image] = []

    @property
    def scheme(self) -> LabelScheme:
        return load_scheme("lumbar_bodies")

    @property
    def provenance(self) -> dict[str, object]:
        return {"name": self.name}

    def segment(self, image: Image) -> LabelMap:
        self.seen.append(image)
        return segmentation(
            image, np.zeros(image.shape, dtype=np.int16), scheme=self.scheme, model=self.provenance, source=image.source
        )


def test_levels_read_the_picked_series_not_the_axial_one(tum01: Tum01Study) -> None:
    from paraspinal.errors import LevelsError

    spine = _RecordingSpine()
    case = Case(case_id="study", image=tum01.study, labels=tum01.nifti / "TUM01_labels.nii.gz")
    state = CaseState(case, RunOptions(series=(f"image={tum01.water_uid}",), assume_aligned=True))
    context = StageContext(models=Models(muscle=None, spine=spine))
    with pytest.raises(LevelsError, match="holds no vertebral body"):  # the recording model finds none
        run_stages(state, ("read", "levels"), context)
    (seen,) = spine.seen
    assert seen.shape == (400, 29, 50)  # the sagittal reformat: A-P x S-I x every 8th L-R column
    assert (seen.metadata["series_instance_uid"], seen.metadata["plane"]) == (tum01.sagittal_uid, "sagittal")
