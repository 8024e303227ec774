"""Field-of-view cut augmentation: crops blanked beyond a random line on a chosen patient side."""

from __future__ import annotations

import numpy as np
import pytest

from paraspinal.training.augment import AugmentConfig, augment_slice, fov_cut_directions
from paraspinal.training.config import load_config

# intensity changes off, so blanked pixels stay exactly 0 and kept pixels match an uncut crop
_PLAIN = {
    "crop_px": 40,
    "foreground_fraction": 1.0,
    "rotation_deg": 0.0,
    "scale_min": 1.0,
    "scale_max": 1.0,
    "anisotropy": 0.0,
    "elastic_probability": 0.0,
    "bias_probability": 0.0,
    "curve_probability": 0.0,
    "invert_probability": 0.0,
    "gamma_min": 1.0,
    "gamma_max": 1.0,
    "contrast_min": 1.0,
    "contrast_max": 1.0,
    "brightness": 0.0,
    "blur_probability": 0.0,
    "noise_probability": 0.0,
    "lowres_probability": 0.0,
    "flip_probability": 0.0,
}


def _sagittal_slice() -> tuple[np.ndarray, np.ndarray]:
    """(P, S) slice: five 'bodies' stacked along axis 1 (high index = superior), L1 on top (value 1), far
    enough from the edges that a 40-pixel crop centred on one never leaves the image."""
    image = np.full((120, 140), 0.3, dtype=np.float32)
    classes = np.zeros((120, 140), dtype=np.int64)
    for value in range(1, 6):
        top = 100 - 10 * value
        classes[40:60, top + 2 : top + 9] = value
    image[classes > 0] = 0.8
    return image, classes


def test_cut_sides_map_to_the_in_plane_axis_and_end() -> None:
    assert fov_cut_directions(("S",), inplane_axcodes=("P", "S")) == [(1, True)]
    assert fov_cut_directions(("i", "A"), inplane_axcodes=("P", "S")) == [(1, False), (0, False)]
    assert fov_cut_directions(("L",), inplane_axcodes=("R", "A")) == [(0, False)]
    with pytest.raises(ValueError, match="'R' runs across the slices"):
        fov_cut_directions(("R",), inplane_axcodes=("P", "S"))
    with pytest.raises(ValueError, match="'X' is not one of R, L, A, P, S, I"):
        fov_cut_directions(("X",), inplane_axcodes=("P", "S"))


def test_cranial_cut_blanks_image_and_labels_above_a_line_only() -> None:
    image, classes = _sagittal_slice()
    cuts = fov_cut_directions(("S",), inplane_axcodes=("P", "S"))
    cut_config = AugmentConfig(**_PLAIN, fov_cut_probability=1.0, fov_cut_max_fraction=0.6)
    plain_config = AugmentConfig(**_PLAIN)
    widths = []
    for seed in range(40):
        x, y = augment_slice(
            image, classes, rng=np.random.default_rng(seed), config=cut_config, swap_lut=np.arange(6), lr_axis=None,
            fov_cuts=cuts,
        )  # fmt: skip
        x0, y0 = augment_slice(
            image, classes, rng=np.random.default_rng(seed), config=plain_config, swap_lut=np.arange(6), lr_axis=None
        )
        assert np.all(x0 > 0.0)  # the uncut crop lies inside the image
        width = int(np.count_nonzero(np.all(x == 0.0, axis=0)))  # columns blanked by the cut
        kept = 40 - width
        assert np.all(x[:, kept:] == 0.0) and np.all(y[:, kept:] == 0)  # the superior end, all of it
        np.testing.assert_array_equal(x[:, :kept], x0[:, :kept])  # the rest untouched
        np.testing.assert_array_equal(y[:, :kept], y0[:, :kept])
        widths.append(width)
    assert min(widths) > 0 and max(widths) <= 24  # 60 % of a 40-pixel crop
    assert len(set(widths)) > 10


def test_cut_probability_is_honoured_and_zero_changes_nothing() -> None:
    image, classes = _sagittal_slice()
    cuts = fov_cut_directions(("S",), inplane_axcodes=("P", "S"))
    config = AugmentConfig(**_PLAIN, fov_cut_probability=0.33)
    rng = np.random.default_rng(1)
    cut = 0
    for _ in range(300):
        x, _ = augment_slice(image, classes, rng=rng, config=config, swap_lut=np.arange(6), lr_axis=None, fov_cuts=cuts)
        cut += int(np.all(x[:, -1] == 0.0))  # the superior edge blanked (an uncut crop shows 0.3 there)
    assert 75 <= cut <= 125  # a third of 300
    off = AugmentConfig(**_PLAIN)
    a = augment_slice(image, classes, rng=np.random.default_rng(3), config=off, swap_lut=np.arange(6), lr_axis=None)
    b = augment_slice(
        image, classes, rng=np.random.default_rng(3), config=off, swap_lut=np.arange(6), lr_axis=None, fov_cuts=cuts
    )
    np.testing.assert_array_equal(a[0], b[0])  # probability 0 draws nothing: existing recipes train as before
    np.testing.assert_array_equal(a[1], b[1])


def test_spine_recipe_cuts_the_cranial_and_caudal_sides() -> None:
    from pathlib import Path

    config = load_config(Path(__file__).parents[2] / "recipes" / "lumbar_spine" / "config.toml")
    assert config.augment.fov_cut_probability > 0
    assert fov_cut_directions(config.augment.fov_cut_sides, inplane_axcodes=config.input.axcodes[:2]) == [
        (1, True),  # superior: the high end of the cranio-caudal axis
        (1, False),  # inferior: its low end
    ]
