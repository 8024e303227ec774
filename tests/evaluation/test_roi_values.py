"""CT in ``evaluate``: both masks measured in HU, and manual ROI values paired with the automatic ones."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from paraspinal.errors import InputError
from paraspinal.evaluation.evaluate import evaluate
from paraspinal.evaluation.roi_values import read_manual_values
from paraspinal.measurement.ct import CtOptions

LIVER, AUTO_L, AUTO_R = 5, 86, 87  # TotalSegmentator `total` values


def _write(tmp_path: Path) -> dict[str, Path]:
    """A 1 mm CT: air, a 40 HU body; the right autochthon (value 87) 50 HU with a fat column at -100 HU;
    the left 30 HU. The automatic mask adds one 150 HU column to the right autochthon."""
    shape = (60, 40, 4)
    ct = np.full(shape, -1000, dtype=np.int16)
    ct[4:-4, 4:-4] = 40
    manual = np.zeros(shape, dtype=np.uint8)
    manual[10:20, 10:20] = AUTO_L
    manual[40:50, 10:20] = AUTO_R
    ct[10:20, 10:20] = 30
    ct[40:50, 10:20] = 50
    ct[40, 10:20] = -100  # one of ten columns in the adipose window
    auto = manual.copy()
    auto[50, 10:20] = AUTO_R
    ct[50, 10:20] = 150
    manual[20:40, 25:36] = LIVER
    auto[20:40, 25:36] = LIVER
    ct[20:40, 25:36] = 60
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    paths = {}
    for name, array in (("ct", ct), ("manual", manual), ("auto", auto)):
        paths[name] = tmp_path / name / "C1.nii.gz"  # the case id is the file's stem
        paths[name].parent.mkdir()
        nib.save(nib.Nifti1Image(array, affine), paths[name])
    return paths


def test_masks_are_compared_in_hu_and_manual_roi_values_join_them(tmp_path: Path) -> None:
    paths = _write(tmp_path)
    values = tmp_path / "rois.csv"
    values.write_text("case_id,structure,side,metric,value\nC1,liver,none,hu_mean,58\nC1,autochthon,right,hu_mean,41\n")
    result = evaluate(
        paths["auto"],
        paths["manual"],
        scheme="total",
        ct=paths["ct"],
        ct_options=CtOptions(erosion_mm=1.0, contrast="none"),
        manual_values=values,
    )
    pairs = result.pairs
    masks = pairs[(pairs["source"] == "manual mask") & (pairs["scope"] == "structure")]
    right = masks[(masks["structure"] == "autochthon") & (masks["side"] == "right")]
    hu = right[(right["metric"] == "hu_mean") & (right["method"] == "mask")].iloc[0]
    assert hu["manual"] == pytest.approx((9 * 50 - 100) / 10)  # 35 HU
    assert hu["auto"] == pytest.approx((9 * 50 - 100 + 150) / 11)
    imat = right[right["metric"] == "imat_share"].iloc[0]
    assert (imat["manual"], imat["auto"]) == (pytest.approx(10.0), pytest.approx(100 / 11))
    rois = pairs[pairs["source"] == "manual ROI"].set_index("structure")
    assert rois.loc["liver", "auto"] == pytest.approx(60.0)  # the eroded parenchyma of a uniform 60 HU liver
    assert rois.loc["liver", "method"].startswith("manual ROI vs parenchyma:erode1mm")
    assert rois.loc["autochthon", "method"] == "manual ROI vs mask"
    assert rois.loc["autochthon", "difference"] == pytest.approx(hu["auto"] - 41)
    groups = set(result.agreement["method"])
    assert "manual ROI vs mask" in groups and "mask" in groups


def test_a_manual_value_with_no_automatic_counterpart_is_a_warning(tmp_path: Path) -> None:
    paths = _write(tmp_path)
    values = tmp_path / "rois.csv"
    values.write_text("case_id,structure,side,metric,value\nC1,spleen,none,hu_mean,50\n")
    result = evaluate(paths["auto"], paths["manual"], scheme="total", ct=paths["ct"], manual_values=values)
    assert any("spleen (none) hu_mean: no automatic value" in w for w in result.warnings)


def test_bad_manual_values_files_are_one_line_errors(tmp_path: Path) -> None:
    bad = tmp_path / "v.csv"
    bad.write_text("case_id,structure,metric,value\nC1,liver,hu_mean,50\n")
    with pytest.raises(InputError, match="lacks column\\(s\\) side"):
        read_manual_values(bad)
    bad.write_text("case_id,structure,side,metric,value\nC1,liver,none,hu_mean,fifty\n")
    with pytest.raises(InputError, match="row 2: value 'fifty' is not a number"):
        read_manual_values(bad)
    bad.write_text("case_id,structure,side,metric,value,unit\nC1,liver,none,hu_mean,50, HU \n")
    assert read_manual_values(bad).iloc[0].to_dict() == {
        "case_id": "C1",
        "structure": "liver",
        "side": "none",
        "metric": "hu_mean",
        "value": 50.0,
        "level": "",
        "method": "",
        "unit": "HU",
    }
