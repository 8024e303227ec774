"""The U-Net backend's confidence maps: margin and mirror agreement on the input grid (labels unchanged)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from paraspinal.backends import UNetOnnxBackend, bundled_model_dir
from paraspinal.backends.base import segment_on_grid
from paraspinal.io import Image, read_image
from paraspinal.sample import sample_case


@pytest.fixture(scope="module")
def slab() -> Image:
    water = read_image(sample_case().water)
    shift = np.eye(4)
    shift[2, 3] = 12
    return Image(water.array[:, :, 12:16], water.affine @ shift, source="TUM01 water 12-16")


def test_margin_and_mirror_agreement_on_the_grid(slab):
    seg = segment_on_grid(UNetOnnxBackend(bundled_model_dir(), threads=1), slab)
    assert sorted(seg.confidence) == ["margin", "mirror_agreement"]
    for image in seg.confidence.values():
        assert image.shape == slab.shape and image.array.dtype == np.float32
        np.testing.assert_array_equal(image.affine, slab.affine)
        assert image.array.min() >= 0.0 and image.array.max() <= 1.0 + 1e-6
    margin = seg.confidence["margin"].array
    muscle = seg.array > 0
    in_plane = np.ones((3, 3, 1), dtype=bool)
    edge = muscle & ~ndimage.binary_erosion(muscle, in_plane, iterations=2)
    core = ndimage.binary_erosion(muscle, in_plane, iterations=4)
    # the model is sure inside the muscles and unsure at their borders
    assert margin[core].mean() > 0.9
    assert margin[edge].mean() < margin[core].mean() - 0.1
    assert seg.confidence["mirror_agreement"].array[core].mean() > 0.95


def test_no_mirror_agreement_without_the_mirrored_pass(slab):
    seg = UNetOnnxBackend(bundled_model_dir(), threads=1, test_time_flip=False).segment(slab)
    assert list(seg.confidence) == ["margin"]


def test_resampled_input_gets_confidence_on_its_own_grid(slab):
    coarse = Image(slab.array[::2, ::2], slab.affine @ np.diag([2.0, 2.0, 1.0, 1.0]))
    seg = UNetOnnxBackend(bundled_model_dir(), threads=1).segment(coarse)
    assert seg.provenance.info["resampled_inplane"] is True
    assert seg.confidence["margin"].shape == (200, 200, 4)
    assert seg.confidence["mirror_agreement"].shape == (200, 200, 4)


def test_top_two_is_exactly_argmax_and_the_gap_between_the_two_largest_probabilities_on_any_axis() -> None:
    from paraspinal.backends.unet_onnx import top_two

    rng = np.random.default_rng(4)
    probs = rng.dirichlet(np.ones(5), size=(6, 7, 3)).astype(np.float32)  # (6, 7, 3, 5): classes last
    probs[0, 0, 0] = [0.1, 0.4, 0.1, 0.4, 0.0]  # tied maxima: argmax keeps the first
    probs[0, 0, 1] = [0.2, 0.2, 0.2, 0.2, 0.2]
    top = np.sort(probs, axis=-1)
    expected = top[..., -1] - top[..., -2]
    for arranged, axis in ((probs, -1), (np.moveaxis(probs, -1, 1), 1), (np.moveaxis(probs, -1, 0), 0)):
        winner, margin = top_two(arranged, axis=axis)
        np.testing.assert_array_equal(winner, np.argmax(arranged, axis=axis))
        np.testing.assert_array_equal(margin, expected)
    assert winner.dtype == np.uint8 and (winner[0, 0, 0], winner[0, 0, 1]) == (1, 0)
    assert top_two(np.array([0.5, 0.5, 0.0], dtype=np.float32))[1] == 0.0
