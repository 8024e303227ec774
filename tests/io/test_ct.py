"""CT input: DICOM CT facts (contrast, kernel, rescale to HU, padding), declared CT, the HU plausibility check."""

from __future__ import annotations

import numpy as np
import pytest

from paraspinal.errors import InputError
from paraspinal.io import read_image
from paraspinal.io.ct import as_ct, check_hounsfield, contrast_state, ct_header, padding_mask
from paraspinal.io.dicom import scan_dicom
from tests.ct_support import CT_DICOM, CT_NIFTI, body_in_air, ct_image, needs_ct_dicom, needs_ct_example
from tests.dicom_factory import uid_for, write_series

AFFINE = np.diag([0.8, 0.8, 3.0, 1.0])


def _phantom_hu() -> np.ndarray:
    hu = body_in_air((24, 20, 4), body_hu=45).astype(np.int16)
    hu[10:14, 8:12, :] = -100  # fat
    hu[0, 0, :] = -1024
    return hu


# --------------------------------------------------------------------------- DICOM CT facts


def test_ct_series_is_read_as_hu_with_its_contrast_kernel_and_rescale(tmp_path):
    hu = _phantom_hu()
    extra = {"ContrastBolusAgent": "Iomeprol 400", "ConvolutionKernel": ["B30f"], "KVP": "120", "RescaleType": "HU"}
    write_series(tmp_path / "ct", hu, AFFINE, series_uid=uid_for("ct"), description="abdomen", modality="CT",
                 rescale=(1.0, -1024.0), extra=extra)  # fmt: skip
    image = read_image(tmp_path / "ct")
    np.testing.assert_array_equal(image.array, hu)  # stored = HU + 1024, intercept applied exactly
    assert image.array.dtype == np.int16  # whole-number rescale keeps integers
    meta = image.metadata
    assert (meta["modality"], meta["contrast_agent"], meta["contrast_evidence"]) == (
        "CT",
        "applied",
        "ContrastBolusAgent",
    )
    assert (meta["kernel"], meta["kvp"], meta["rescale_type"]) == ("B30f", 120.0, "HU")
    assert (meta["rescale_applied"], meta["rescale_slope"], meta["rescale_intercept"]) == (True, 1.0, -1024.0)
    assert meta["padding_hu"] is None
    assert "Iomeprol" not in str(meta)  # the agent's free text is not copied, only the state
    assert check_hounsfield(image).air_hu == -1000.0


@pytest.mark.parametrize(
    ("extra", "state", "evidence"),
    [
        ({}, "unknown", "no contrast field"),
        ({"ContrastBolusAgent": "NONE"}, "none", "ContrastBolusAgent"),
        (
            {"ContrastBolusRoute": "IV", "ContrastBolusVolume": "80"},
            "applied",
            "ContrastBolusRoute, ContrastBolusVolume",
        ),
        ({"ContrastBolusVolume": "0"}, "unknown", "no contrast field"),
    ],
)
def test_contrast_state_comes_from_the_contrast_bolus_module(extra, state, evidence):
    from pydicom.dataset import Dataset

    ds = Dataset()
    for name, value in extra.items():
        setattr(ds, name, value)
    header = ct_header(ds)
    assert (header["contrast_agent"], header["contrast_evidence"]) == (state, evidence)


def test_padding_value_declared_by_the_header_is_known_in_hu_and_masked(tmp_path):
    hu = _phantom_hu()
    hu[:, :2, :] = -3024  # outside the reconstructed circle
    write_series(tmp_path / "ct", hu, AFFINE, series_uid=uid_for("pad"), description="ct", modality="CT",
                 rescale=(1.0, -1024.0), extra={"PixelPaddingValue": -2000, "PixelRepresentation": 1})  # fmt: skip
    image = read_image(tmp_path / "ct")
    assert image.metadata["padding_hu"] == -3024.0
    found = check_hounsfield(image)
    assert (found.padding_hu, found.n_padding) == (-3024.0, 24 * 2 * 4)
    assert int(padding_mask(image).sum()) == 24 * 2 * 4


def test_mr_series_carries_no_ct_facts(tmp_path):
    write_series(tmp_path / "mr", _phantom_hu() + 1100, AFFINE, series_uid=uid_for("mr"), description="t2")
    image = read_image(tmp_path / "mr")
    assert "contrast_agent" not in image.metadata and "rescale_applied" not in image.metadata
    with pytest.raises(InputError, match="is a MR series, not CT"):
        as_ct(image)


def test_images_without_series_uid_are_grouped_not_skipped(tmp_path):
    write_series(tmp_path / "ct", _phantom_hu(), AFFINE, series_uid="", description="ct", modality="CT",
                 rescale=(1.0, -1024.0))  # fmt: skip
    scan = scan_dicom(tmp_path / "ct")
    assert len(scan.series) == 1 and scan.series[0].uid.startswith("no-uid-") and scan.series[0].n_files == 4
    assert scan.skipped == {}


@needs_ct_dicom
def test_missing_decoder_names_the_extra(monkeypatch):
    from paraspinal.io import dicom_files

    monkeypatch.setattr(dicom_files, "decoder_available", lambda syntax: False)
    with pytest.raises(InputError) as caught:
        read_image(CT_DICOM)
    message = str(caught.value)
    assert message.startswith(str(CT_DICOM)) and "\n" not in message
    assert "no JPEG 2000 Image Compression (Lossless Only) decoder is installed" in message
    assert "pip install 'paraspinal[ct]'" in message


# --------------------------------------------------------------------------- the real Siemens JPEG 2000 series


@needs_ct_dicom
def test_real_jpeg2000_siemens_series_reads_as_contrast_enhanced_hu():
    image = read_image(CT_DICOM)
    meta = image.metadata
    assert image.shape == (512, 512, 20) and image.spacing_mm == pytest.approx((0.9765625, 0.9765625, 2.0))
    assert (meta["modality"], meta["contrast_agent"], meta["kernel"], meta["kvp"]) == ("CT", "applied", "Br38f\\3", 120)
    assert (meta["rescale_applied"], meta["rescale_intercept"], meta["rescale_type"]) == (True, -1024.0, "HU")
    assert image.array.dtype == np.int16
    found = check_hounsfield(image)
    assert found.air_hu == -1024.0 and found.padding_hu is None  # Siemens clips air at -1024
    assert int(image.array.min()) == -1024 and 1000 < int(image.array.max()) < 3072
    body = image.array[image.array > -200]
    assert -100 < float(np.median(body)) < 100  # soft tissue, not stored values (which would sit near 1000)


# --------------------------------------------------------------------------- declared CT and the HU check


@needs_ct_example
def test_real_nifti_ct_declared_ct_has_unknown_contrast_unless_said():
    image = read_image(CT_NIFTI)
    ct = as_ct(image)
    assert (ct.metadata["modality"], ct.metadata["contrast_agent"], ct.metadata["padding_hu"]) == (
        "CT",
        "unknown",
        None,
    )
    assert as_ct(image, contrast="unenhanced").metadata["contrast_agent"] == "none"
    assert check_hounsfield(ct).air_hu == pytest.approx(float(np.percentile(image.array, 0.5)))


def test_contrast_words():
    assert [contrast_state(w) for w in ("applied", "Enhanced", "none", "native", "unknown")] == [
        "applied",
        "applied",
        "none",
        "none",
        "unknown",
    ]
    with pytest.raises(InputError, match="unknown contrast state 'maybe'"):
        contrast_state("maybe")


@pytest.mark.parametrize("padding", [-2048, -3024, -32768])
def test_usual_padding_values_are_recognised_and_masked(padding):
    hu = body_in_air()
    hu[:3] = padding
    found = check_hounsfield(ct_image(hu))
    assert (found.padding_hu, found.n_padding, found.air_hu) == (float(padding), 3 * 40 * 6, -1000.0)
    assert int(padding_mask(ct_image(hu)).sum()) == 3 * 40 * 6


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (body_in_air(air_hu=0, body_hu=1064) + np.int16(0), "where air (about -1000 HU) should be"),
        (body_in_air(air_hu=24, body_hu=2100), "stored CT numbers without the rescale intercept"),
        (body_in_air(air_hu=-2048, body_hu=-984) + np.arange(40, dtype=np.int16)[:, None, None], "not one padding"),
        (np.full((8, 8, 2), 30, dtype=np.int16), "where air"),
    ],
)
def test_images_not_in_hu_are_refused_in_one_line(array, message):
    with pytest.raises(InputError) as caught:
        check_hounsfield(ct_image(array, source="scan.nii.gz"))
    text = str(caught.value)
    assert text.startswith("scan.nii.gz: ") and message in text and "\n" not in text


def test_all_padding_is_refused():
    with pytest.raises(InputError, match="every voxel holds the padding value -2048 HU"):
        check_hounsfield(ct_image(np.full((4, 4, 2), -2048, dtype=np.int16)))
