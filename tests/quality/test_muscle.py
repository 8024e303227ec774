"""Muscle quality (issue 30): known defects on phantoms are flagged with their reason; TUM01 is mostly ok."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from paraspinal.anatomy import load_scheme
from paraspinal.errors import InputError
from paraspinal.io import Image, LabelMap
from paraspinal.quality.muscle import assess_muscles
from paraspinal.quality.muscle_model import default_model_path, load_muscle_model
from tests.phantoms import ras_affine

NK = 20
FAT, MUSCLE = 400.0, 100.0
# lpm4: 1 right ES, 2 right MF, 3 left MF, 4 left ES; centres in voxels (i: +x = patient right, j: +y = anterior)
CENTRES = {1: (70, 40), 2: (56, 36), 3: (44, 36), 4: (30, 40)}
RADII = {1: (9, 8), 2: (5, 6), 3: (5, 6), 4: (9, 8)}


def _ellipse(shape: tuple[int, int], centre: tuple[float, float], radii: tuple[float, float]) -> np.ndarray:
    i, j = np.ogrid[: shape[0], : shape[1]]
    return ((i - centre[0]) / radii[0]) ** 2 + ((j - centre[1]) / radii[1]) ** 2 <= 1.0


def phantom() -> tuple[np.ndarray, np.ndarray]:
    """Four paraspinal muscles on 20 slices (1 x 1 x 4 mm), muscle 100 in fat 400, slight noise."""
    labels = np.zeros((100, 80, NK), dtype=np.uint8)
    for k in range(NK):
        grow = 1.0 + 0.01 * k
        for value, centre in CENTRES.items():
            ry, rx = RADII[value]
            labels[:, :, k][_ellipse(labels.shape[:2], centre, (ry * grow, rx * grow))] = value
    rng = np.random.default_rng(0)
    image = np.where(labels > 0, MUSCLE, FAT) + rng.normal(scale=10.0, size=labels.shape)
    return labels, image.astype(np.float32)


def _assess(labels: np.ndarray, image: np.ndarray):
    affine = ras_affine((1.0, 1.0, 4.0), (-50.0, -40.0, 0.0))
    lm = LabelMap.given(Image(labels, affine), load_scheme("lpm4"))
    return {(q.structure, q.side): q for q in assess_muscles(label_map=lm, image=Image(image, affine))}


def _flagged_text(quality, key, k) -> str:
    slice_assessment = quality[key].slices[k]
    assert slice_assessment.status != "ok", slice_assessment
    return " ".join(slice_assessment.reasons)


def test_clean_phantom_is_ok():
    quality = _assess(*phantom())
    assert len(quality) == 4
    for q in quality.values():
        assert q.assessment.status == "ok", q
        assert sorted(q.slices) == list(range(NK))
        assert all(a.status == "ok" for a in q.slices.values())


def test_missing_slice_is_flagged():
    labels, image = phantom()
    labels[:, :, 10][labels[:, :, 10] == 1] = 0
    quality = _assess(labels, image)
    text = _flagged_text(quality, ("erector_spinae", "right"), 10)
    assert "no voxels on this slice" in text or "mm² vs" in text
    assert quality[("erector_spinae", "right")].slices[9].status == "ok"


def test_far_blob_is_flagged():
    labels, image = phantom()
    s = labels[:, :, 8]
    s[s == 1] = 0
    blob = _ellipse(s.shape, (92, 72), (6, 6))  # 22 mm further lateral, 32 mm anterior: a kidney-like blob
    s[blob] = 1
    image[:, :, 8][blob] = MUSCLE
    quality = _assess(labels, image)
    text = _flagged_text(quality, ("erector_spinae", "right"), 8)
    assert "mm from the" in text


def test_one_sided_loss_is_flagged():
    labels, image = phantom()
    for k in range(5, 15):
        labels[:, :, k][labels[:, :, k] == 4] = 0
    quality = _assess(labels, image)
    left = quality[("erector_spinae", "left")]
    assert all(left.slices[k].status != "ok" for k in range(5, 15))
    assert left.assessment.status != "ok"
    assert any("slices flagged" in r for r in left.assessment.reasons)


def test_label_on_bright_fat_is_flagged():
    labels, image = phantom()
    s = labels[:, :, 12]
    spill = _ellipse(s.shape, (44, 24), (7, 9)) & (s == 0)  # multifidus spread posteriorly into the fat
    s[spill] = 3
    quality = _assess(labels, image)
    text = _flagged_text(quality, ("multifidus", "left"), 12)
    # the calibrated weights give intensity little weight; the spill shows as area against the other side
    assert "intensit" in text or "mm² vs" in text


def test_image_off_the_label_grid_is_an_error():
    labels, image = phantom()
    with pytest.raises(Exception, match="not on one grid"):
        _assess(labels, image[:, :, :10])


@pytest.mark.slow
def test_tum01_bundled_model_is_mostly_ok():
    from paraspinal.backends.bundled import bundled_model_dir
    from paraspinal.backends.unet_onnx import UNetOnnxBackend
    from paraspinal.io import read_image
    from paraspinal.postprocessing.components import clean_label_map
    from paraspinal.sample import sample_case

    water = read_image(sample_case().water)
    backend = UNetOnnxBackend(bundled_model_dir("muscle"), threads=1)
    lm, _ = clean_label_map(backend.segment(water))
    quality = assess_muscles(label_map=lm, image=water)
    slices = [a for q in quality for a in q.slices.values()]
    assert len(slices) == 4 * 29
    ok_share = np.mean([a.status == "ok" for a in slices])
    assert ok_share >= 0.97, ok_share  # 116 of 116 slices ok when calibrated
    assert all(q.assessment.status == "ok" for q in quality)


def test_bundled_model_file_loads():
    model = load_muscle_model()
    assert model.pick("slice", confidence=True).features[0] == "missing"
    assert "margin_deficit" not in model.pick("slice", confidence=False).features
    assert 0.0 <= model.pick("structure", confidence=True).thresholds.fail <= 1.0


def _write_bad(tmp_path: Path, old: str, new: str) -> Path:
    text = default_model_path().read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "muscle.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def test_bad_model_file_errors(tmp_path):
    path = _write_bad(tmp_path, 'features = ["missing"', 'features = ["nonsense"')
    with pytest.raises(InputError, match=r"slice.with_confidence.features has unknown names \['nonsense'\]"):
        load_muscle_model(path)
    path = _write_bad(tmp_path, "[structure.anatomy_only]", "[structure.other]")
    with pytest.raises(InputError, match=r"missing table \[structure.anatomy_only\]"):
        load_muscle_model(path)
    path = _write_bad(tmp_path, "weights = [", "weights = [1.0, ")
    with pytest.raises(InputError, match=r"slice.with_confidence.weights must list 14 numbers"):
        load_muscle_model(path)
    with pytest.raises(InputError, match="muscle quality model file not found"):
        load_muscle_model(tmp_path / "none.toml")


def test_an_empty_segmentation_fails_every_structure_on_every_slice():
    labels, image = phantom()
    quality = _assess(np.zeros_like(labels), image)
    for q in quality.values():
        assert (q.assessment.status, q.assessment.reasons) == ("fail", ("not found in the image",))
        assert sorted(q.slices) == list(range(NK)) and {a.status for a in q.slices.values()} == {"fail"}


def test_a_side_never_found_fails_and_says_the_other_side_is_there():
    labels, image = phantom()
    labels[labels == 4] = 0  # the left erector spinae lost on every slice
    q = _assess(labels, image)[("erector_spinae", "left")]
    assert (q.assessment.status, q.assessment.reasons) == ("fail", ("not found, while the right side is",))


def test_slices_with_no_label_at_all_are_review_not_ok():
    labels, image = phantom()
    labels[:, :, 16:] = 0  # the model found nothing on the top four slices
    for q in _assess(labels, image).values():
        for k in range(16, NK):
            assert q.slices[k].status == "review", (q.structure, q.side, k)
            assert q.slices[k].reasons == ("no muscle labelled on this slice",)
