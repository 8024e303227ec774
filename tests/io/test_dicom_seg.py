"""DICOM-SEG output: read back with highdicom on the source geometry, coded segments, patient module policy."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

from paraspinal.anatomy import load_scheme
from paraspinal.errors import GeometryError, ParaspinalError
from paraspinal.io import Image, read_label_map
from paraspinal.io.dicom import read_dicom
from paraspinal.io.dicom_seg import FALLBACK_SCHEME, segment_specs, write_dicom_seg, write_label_output
from tests.dicom_factory import PLANTED, Tum01Study, uid_for, write_series, write_tum01_study
from tests.privacy import scan_files

hd = pytest.importorskip("highdicom")
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@pytest.fixture(scope="module")
def tum01(tmp_path_factory: pytest.TempPathFactory) -> Tum01Study:
    return write_tum01_study(tmp_path_factory.mktemp("tum01"))


@pytest.fixture(scope="module")
def labels(tum01: Tum01Study) -> Image:
    """TUM01 labels on the grid read from the axial water series (as a segmentation backend would give them)."""
    water = read_dicom(tum01.study, uid=tum01.water_uid)
    return water.with_array(tum01.labels.astype(np.int32))


@pytest.fixture(scope="module")
def seg_path(tum01: Tum01Study, labels: Image, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dicom_seg(labels, scheme="lpm4", source=tum01.study, path=tmp_path_factory.mktemp("seg") / "seg.dcm")


def _as_labels(segment_array: np.ndarray, seg) -> np.ndarray:
    """Segment numbers -> the label values recorded in each segment's tracking id ("label N")."""
    lookup = np.zeros(len(seg.SegmentSequence) + 1, dtype=np.int32)
    for item in seg.SegmentSequence:
        lookup[item.SegmentNumber] = int(item.TrackingID.split()[-1])
    return lookup[segment_array]


def test_seg_reads_back_per_source_instance(tum01: Tum01Study, seg_path: Path) -> None:
    seg = hd.seg.segread(seg_path)
    assert (
        seg.SeriesInstanceUID != tum01.water_uid
        and seg.StudyInstanceUID
        == pydicom.dcmread(next((tum01.study / "w").iterdir()), stop_before_pixels=True).StudyInstanceUID
    )
    referenced = {item.SeriesInstanceUID for item in seg.ReferencedSeriesSequence}
    assert referenced == {tum01.water_uid}
    source_uids = [uid_for(tum01.water_uid, k) for k in range(29)]  # the factory's SOP UIDs, in slice order
    pixels = seg.get_pixels_by_source_instance(source_uids, combine_segments=True)
    assert pixels.shape == (29, 400, 400)
    np.testing.assert_array_equal(_as_labels(pixels, seg).transpose(2, 1, 0), tum01.labels)


def test_seg_volume_lies_on_the_source_geometry(tum01: Tum01Study, labels: Image, seg_path: Path) -> None:
    seg = hd.seg.segread(seg_path)
    volume = seg.get_volume(combine_segments=True)
    # voxel (slice, row, column) of the SEG volume -> voxel (i, j, k) of our RAS+ label grid
    to_ours = np.linalg.inv(labels.affine) @ LPS_TO_RAS @ volume.affine
    np.testing.assert_allclose(to_ours, np.rint(to_ours), atol=1e-6)
    index = np.rint(to_ours).astype(np.int64)
    src = np.indices(volume.array.shape, dtype=np.int64).reshape(3, -1)
    ijk = index[:3, :3] @ src + index[:3, 3:4]
    ours = labels.array[ijk[0], ijk[1], ijk[2]]
    np.testing.assert_array_equal(_as_labels(volume.array.reshape(-1), seg), ours)
    assert volume.spacing == pytest.approx((4.0, 1.018518567, 1.018518567))


def test_segments_are_coded_from_the_registry_with_laterality(seg_path: Path) -> None:
    seg = hd.seg.segread(seg_path)
    items = {item.SegmentLabel: item for item in seg.SegmentSequence}
    assert sorted(items) == ["left erector spinae", "left multifidus", "right erector spinae", "right multifidus"]
    es_right = items["right erector spinae"]
    prop = es_right.SegmentedPropertyTypeCodeSequence[0]
    assert (prop.CodingSchemeDesignator, prop.CodeValue) == ("SCT", "44947003")
    assert prop.SegmentedPropertyTypeModifierCodeSequence[0].CodeValue == "24028007"  # Right
    category = es_right.SegmentedPropertyCategoryCodeSequence[0]
    assert (category.CodingSchemeDesignator, category.CodeValue) == ("SCT", "91723000")
    assert es_right.SegmentAlgorithmType == "MANUAL"
    mf_left = items["left multifidus"].SegmentedPropertyTypeCodeSequence[0]
    assert (mf_left.CodingSchemeDesignator, mf_left.CodeValue) == (FALLBACK_SCHEME, "multifidus")
    assert mf_left.CodeMeaning == "multifidus (no SNOMED code in paraspinal registry)"
    assert mf_left.SegmentedPropertyTypeModifierCodeSequence[0].CodeValue == "7771000"  # Left


def test_unsided_and_midline_structures_get_right_and_left_or_no_modifier() -> None:
    specs = {s.structure: s for s in segment_specs([0, 1, 2, 5], scheme=load_scheme("xu7"))}
    assert [s.segment_number for s in specs.values()] == [1, 2, 3]
    assert specs["longissimus"].laterality.value == "51440002"  # bilateral, labelled without a side
    assert specs["disc"].laterality is None and not specs["disc"].coded
    assert specs["vertebral_arch"].coded and specs["vertebral_arch"].property_type.value == "40265002"


def test_patient_module_pseudonymised_by_default_and_kept_on_request(
    tum01: Tum01Study, labels: Image, seg_path: Path, tmp_path: Path
) -> None:
    seg = pydicom.dcmread(seg_path, stop_before_pixels=True)
    assert (str(seg.PatientName), seg.PatientID, seg.PatientBirthDate, seg.AccessionNumber) == ("", "", "", "")
    assert seg.PatientIdentityRemoved == "YES"
    assert scan_files([seg_path], [*PLANTED.needles(), "ACC-55102-QZX"]) == []
    kept = write_dicom_seg(labels, scheme="lpm4", source=tum01.study, path=tmp_path / "kept.dcm", patient="keep")
    ds = pydicom.dcmread(kept, stop_before_pixels=True)
    assert (str(ds.PatientName), ds.PatientID, ds.PatientBirthDate) == (
        PLANTED.name,
        PLANTED.patient_id,
        PLANTED.birth_date,
    )
    assert {f.needle for f in scan_files([kept], PLANTED.needles())} == set(PLANTED.needles()) - {"1941-07-23"}


def test_same_seg_from_shuffled_datasets_and_deterministic_uids(
    tum01: Tum01Study, labels: Image, seg_path: Path, tmp_path: Path
) -> None:
    datasets = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted((tum01.study / "w").iterdir())]
    datasets = datasets[::2] + datasets[1::2]
    again = write_dicom_seg(labels, scheme="lpm4", source=datasets, path=tmp_path / "again.dcm")
    first, second = hd.seg.segread(seg_path), hd.seg.segread(again)
    assert (first.SOPInstanceUID, first.SeriesInstanceUID) == (second.SOPInstanceUID, second.SeriesInstanceUID)
    source_uids = [uid_for(tum01.water_uid, k) for k in range(29)]
    np.testing.assert_array_equal(
        first.get_pixels_by_source_instance(source_uids, combine_segments=True),
        second.get_pixels_by_source_instance(source_uids, combine_segments=True),
    )


def test_enhanced_multiframe_source(tum01: Tum01Study, tmp_path: Path) -> None:
    write_series(
        tmp_path / "mf", tum01.water, tum01.affine, series_uid=uid_for("seg-mf"), description="w", enhanced=True
    )
    water = read_dicom(tmp_path / "mf")
    path = write_dicom_seg(
        water.with_array(tum01.labels),
        scheme="lpm4",
        source=tmp_path / "mf",
        path=tmp_path / "mf.dcm",
        algorithm_name="nnunet",
    )
    seg = hd.seg.segread(path)
    sop = pydicom.dcmread(tmp_path / "mf" / "enhanced.dcm", stop_before_pixels=True).SOPInstanceUID
    frames = seg.get_pixels_by_source_frame(sop, source_frame_numbers=list(range(1, 30)), combine_segments=True)
    # the factory stores frames last slice first: frame n holds slice 28 - (n - 1)
    np.testing.assert_array_equal(_as_labels(frames, seg)[::-1].transpose(2, 1, 0), tum01.labels)
    assert seg.SegmentSequence[0].SegmentAlgorithmType == "AUTOMATIC"
    assert seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0].AlgorithmName == "nnunet"


def test_labels_off_the_source_grid_are_refused(tum01: Tum01Study, labels: Image, tmp_path: Path) -> None:
    shifted = labels.affine.copy()
    shifted[0, 3] += 2.0
    with pytest.raises(GeometryError, match=r"label map is not on the grid of source series .*: origin"):
        write_dicom_seg(Image(labels.array, shifted), scheme="lpm4", source=tum01.study, path=tmp_path / "x.dcm",
                        series_uid=tum01.water_uid)  # fmt: skip
    assert not (tmp_path / "x.dcm").exists()


def test_missing_highdicom_is_one_clear_line(labels: Image, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "highdicom", None)
    with pytest.raises(ParaspinalError) as caught:
        write_dicom_seg(labels, scheme="lpm4", source=tmp_path, path=tmp_path / "x.dcm")
    assert (
        str(caught.value) == f"{tmp_path / 'x.dcm'}: DICOM-SEG output needs highdicom: pip install 'paraspinal[dicom]'"
    )


def test_label_output_hook_writes_either_format(tum01: Tum01Study, labels: Image, tmp_path: Path) -> None:
    nifti = write_label_output(labels, tmp_path / "c_dseg.nii.gz", output_format="nifti")
    np.testing.assert_array_equal(read_label_map(nifti).array, tum01.labels)
    seg = write_label_output(
        labels, tmp_path / "c_seg.dcm", output_format="dicom-seg", scheme="lpm4", source=tum01.study
    )
    assert pydicom.dcmread(seg, stop_before_pixels=True).Modality == "SEG"
    with pytest.raises(ParaspinalError, match=r"DICOM-SEG output needs the label scheme and the source DICOM series"):
        write_label_output(labels, tmp_path / "y.dcm", output_format="dicom-seg")


def test_seg_given_as_input_is_refused_clearly(seg_path: Path) -> None:
    with pytest.raises(ParaspinalError) as caught:
        read_label_map(seg_path)
    assert str(caught.value) == (
        f"{seg_path}: this file holds only 1 DICOM-SEG object(s) and no image series; "
        "DICOM-SEG cannot be read as an image or label map yet"
    )


def test_cli_hook_checks_output_format_words() -> None:
    import typer

    from paraspinal.cli.series_cmd import check_output_format

    check_output_format("dicom-seg", seg_patient="keep")
    with pytest.raises(typer.BadParameter, match="choose from nifti, dicom-seg"):
        check_output_format("dicomseg")
    with pytest.raises(typer.BadParameter, match="choose from pseudonymise, keep"):
        check_output_format("nifti", seg_patient="drop")
