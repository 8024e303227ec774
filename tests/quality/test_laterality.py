"""The anatomical laterality check: phantoms of an abdomen (spine muscles, liver right, spleen left) with true
and mirrored headers, the real TotalSegmentator CT, TUM01's Dixon pair."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from paraspinal.anatomy import load_scheme
from paraspinal.io import Image, LabelMap, read_image
from paraspinal.quality.laterality import check_laterality
from paraspinal.quality.laterality_evidence import load_laterality_settings

SAMPLE = Path(__file__).resolve().parents[2] / "src" / "paraspinal" / "sample"
CT_DIR = Path("/work/shared/data/totalseg-ct-example")
AFFINE = np.array([[-3.0, 0, 0, 180.0], [0, -3.0, 0, 150.0], [0, 0, 5.0, 0], [0, 0, 0, 1]])  # LPS storage
SHAPE = (120, 100, 12)
TOTAL = load_scheme("total")
LIVER, SPLEEN, AUTO_L, AUTO_R = 5, 1, 86, 87


def _ellipse(cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    """Voxels inside an elliptic cylinder (world mm) on the phantom grid."""
    i, j, _ = np.indices(SHAPE)
    x, y = AFFINE[0, 0] * i + AFFINE[0, 3], AFFINE[1, 1] * j + AFFINE[1, 3]
    return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0


def _abdomen(*, liver: bool = True) -> dict[str, np.ndarray]:
    """Masks: body, autochthon right/left (x = +-30 mm, posterior), kidneys both sides, a liver right-anterior
    (top 8 slices), a small spleen left (top 8 slices)."""
    top = np.zeros(SHAPE, bool)
    top[..., 4:] = True
    masks = {
        "body": _ellipse(0, 0, 160, 120),
        "right": _ellipse(30, -70, 22, 16),
        "left": _ellipse(-30, -70, 22, 16),
        "kidneys": _ellipse(65, -25, 15, 20) | _ellipse(-65, -25, 15, 20),
        "spleen": _ellipse(-95, -30, 18, 22) & top,
    }
    masks["liver"] = (_ellipse(80, 40, 55, 50) & top) if liver else np.zeros(SHAPE, bool)
    return masks


def _labels(masks: dict[str, np.ndarray], *, organs: bool) -> LabelMap:
    labels = np.zeros(SHAPE, np.int16)
    labels[masks["right"]], labels[masks["left"]] = AUTO_R, AUTO_L
    if organs:
        labels[masks["liver"]], labels[masks["spleen"]] = LIVER, SPLEEN
    return LabelMap.given(Image(labels, AFFINE), TOTAL)


def _ct(masks: dict[str, np.ndarray]) -> Image:
    hu = np.full(SHAPE, -1000.0)
    hu[masks["body"]] = -100.0
    for name, value in (("right", 50.0), ("left", 50.0), ("kidneys", 30.0), ("spleen", 50.0), ("liver", 60.0)):
        hu[masks[name]] = value
    return Image(hu + np.random.default_rng(0).normal(0, 4, SHAPE), AFFINE)


def _dixon(masks: dict[str, np.ndarray]) -> tuple[Image, Image]:
    water, fat = np.zeros(SHAPE), np.zeros(SHAPE)
    water[masks["body"]], fat[masks["body"]] = 30.0, 300.0
    for name in ("right", "left", "kidneys", "spleen", "liver"):
        water[masks[name]], fat[masks[name]] = 250.0, 20.0
    rng = np.random.default_rng(1)
    return Image(water + rng.normal(0, 3, SHAPE), AFFINE), Image(fat + rng.normal(0, 3, SHAPE), AFFINE)


def _mirrored(image: Image) -> Image:
    """The same array under a left/right-swapped header (world x mirrored)."""
    return Image(image.array, np.diag([-1.0, 1.0, 1.0, 1.0]) @ image.affine)


def _swapped(label_map: LabelMap) -> LabelMap:
    """Mirrored header with the sided labels renamed, as a model would name the mirrored image."""
    lut = np.arange(int(label_map.array.max()) + 1, dtype=label_map.array.dtype)
    for value, other in label_map.scheme.side_swap_map().items():
        if value < lut.size:
            lut[value] = other
    return LabelMap.given(_mirrored(label_map.labels).with_array(lut[label_map.array]), label_map.scheme)


def test_organ_labels_agree_with_the_true_header_and_contradict_a_swapped_one() -> None:
    masks = _abdomen()
    labels = _labels(masks, organs=True)
    image = _ct(masks)
    true = check_laterality(image=image, label_map=labels, ct=True)
    assert true.result == "agrees" and true.evidence["method"] == "organ labels"
    liver = next(c for c in true.evidence["cues"] if c["what"] == "liver")
    assert liver["side"] == "right" and liver["centroid_from_midline_mm"] == pytest.approx(80.0, abs=3.0)
    swapped = check_laterality(image=_mirrored(image), label_map=_swapped(labels), ct=True)
    assert swapped.result == "contradicted" and swapped.assessment.status == "fail"
    assert {c["what"]: c["side"] for c in swapped.evidence["cues"]} == {"liver": "left", "spleen": "right"}
    assert swapped.reasons[0].startswith("left and right look swapped in the header")


def test_conflicting_organ_labels_are_not_checked() -> None:
    masks = _abdomen()
    masks["spleen"] = _ellipse(95, -30, 18, 22) & masks["liver"].any(axis=(0, 1))  # spleen drawn on the right
    masks["liver"] &= ~masks["spleen"]
    check = check_laterality(image=_ct(masks), label_map=_labels(masks, organs=True), ct=True)
    assert check.result == "not checked" and check.reasons[0].startswith("anatomical cues disagree")


def test_ct_liver_parenchyma_without_organ_labels() -> None:
    masks = _abdomen()
    labels, image = _labels(masks, organs=False), _ct(masks)
    true = check_laterality(image=image, label_map=labels, ct=True)
    assert true.result == "agrees" and true.evidence["method"] == "CT liver parenchyma"
    assert true.evidence["largest_right_cm3"] > load_laterality_settings()["ct"]["min_liver_volume_cm3"]
    assert check_laterality(image=_mirrored(image), label_map=_swapped(labels), ct=True).result == "contradicted"
    no_liver = _abdomen(liver=False)
    check = check_laterality(image=_ct(no_liver), label_map=_labels(no_liver, organs=False), ct=True)
    assert check.result == "not checked" and check.reasons[0].startswith("no liver in view on CT")


def test_dixon_liver_true_swapped_and_absent() -> None:
    masks = _abdomen()
    labels = _labels(masks, organs=False)
    water, fat = _dixon(masks)
    true = check_laterality(image=water, label_map=labels, fat=fat)
    assert true.result == "agrees" and true.evidence["liver_slices_right"] == 8
    assert true.evidence["liver_slices_left"] == 0
    swapped = check_laterality(image=_mirrored(water), label_map=_swapped(labels), fat=_mirrored(fat))
    assert swapped.result == "contradicted" and swapped.evidence["liver_slices_left"] == 8
    no_liver = _abdomen(liver=False)
    water, fat = _dixon(no_liver)
    check = check_laterality(image=water, label_map=_labels(no_liver, organs=False), fat=fat)
    assert check.result == "not checked" and check.evidence["liver_slices_right"] == 0


def test_what_cannot_tell_is_not_checked() -> None:
    masks = _abdomen()
    labels = _labels(masks, organs=False)
    water, _ = _dixon(masks)
    single = check_laterality(image=water, label_map=labels)
    assert single.reasons == ("MR without a Dixon fat image: no calibrated anatomical evidence for this contrast",)
    one_side = LabelMap.given(labels.labels.with_array(np.where(labels.array == AUTO_L, 0, labels.array)), TOTAL)
    check = check_laterality(image=water, label_map=one_side, fat=water)
    assert check.reasons == ("no muscle labelled on both sides, so the spine midline is unknown",)
    assert check.assessment.status == "ok"


def test_settings_are_complete() -> None:
    settings = load_laterality_settings()
    assert settings["dixon"]["min_slices"] == 2.0 and settings["ct"]["min_ratio"] == 2.5


@pytest.mark.slow
def test_real_ct_with_and_without_totalsegmentator_organs() -> None:
    image = read_image(CT_DIR / "example_ct_sm.nii.gz")
    seg = LabelMap.given(read_image(CT_DIR / "example_seg.nii.gz"), TOTAL)
    true = check_laterality(image=image, label_map=seg, ct=True)
    cues = {c["what"]: c for c in true.evidence["cues"]}
    assert true.result == "agrees" and set(cues) == {"liver", "gallbladder", "spleen", "stomach", "inferior vena cava"}
    assert cues["liver"]["centroid_from_midline_mm"] == pytest.approx(67.7, abs=0.5)
    assert cues["inferior vena cava"]["ivc_right_of_aorta_mm"] == pytest.approx(30.5, abs=0.5)
    assert check_laterality(image=_mirrored(image), label_map=_swapped(seg), ct=True).result == "contradicted"
    muscles = seg.labels.with_array(np.where(np.isin(seg.array, [AUTO_L, AUTO_R]), seg.array, 0))
    hu_only = check_laterality(image=image, label_map=LabelMap.given(muscles, TOTAL), ct=True)
    assert hu_only.result == "agrees" and hu_only.evidence["method"] == "CT liver parenchyma"
    assert hu_only.evidence["largest_right_cm3"] == pytest.approx(850.7, abs=1.0)
    assert hu_only.evidence["largest_left_cm3"] == pytest.approx(269.5, abs=1.0)
    swapped = check_laterality(image=_mirrored(image), label_map=_swapped(LabelMap.given(muscles, TOTAL)), ct=True)
    assert swapped.result == "contradicted"


@pytest.mark.slow
def test_tum01_dixon_shows_the_liver_on_its_top_slices() -> None:
    labels = read_image(SAMPLE / "TUM01_labels.nii.gz")
    lm = LabelMap.given(labels, load_scheme("lpm4"))
    water = Image(read_image(SAMPLE / "TUM01_water.nii.gz").array, labels.affine)  # water header lacks the origin
    fat = read_image(SAMPLE / "TUM01_fat.nii.gz")
    true = check_laterality(image=water, label_map=lm, fat=fat)
    assert true.result == "agrees" and true.evidence["cues"][0]["slices"] == "26,27,28"  # the three top slices
    assert true.evidence["cues"][0]["largest_liver_area_cm2"] == pytest.approx(23.3, abs=0.5)
    assert true.evidence["liver_slices_left"] == 0
    swapped = check_laterality(image=_mirrored(water), label_map=_swapped(lm), fat=_mirrored(fat))
    assert swapped.result == "contradicted"
    low = slice(0, 21)  # L3-L5 only: no liver in view
    cut = [Image(np.ascontiguousarray(im.array[..., low]), labels.affine) for im in (water, fat, labels)]
    check = check_laterality(image=cut[0], label_map=LabelMap.given(cut[2], lm.scheme), fat=cut[1])
    assert check.result == "not checked"
