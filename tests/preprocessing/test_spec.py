"""Model input preparation: percentile scaling, exact reorientation, in-plane resampling, body box."""

from __future__ import annotations

import numpy as np
import pytest

from paraspinal.io import Image
from paraspinal.preprocessing import (
    InputSpec,
    context_slices,
    foreground_box,
    percentile_scale,
    prepare_volume,
    reorient,
    resize_inplane,
    restore_orientation,
)
from tests.phantoms import ras_affine
from tests.phantoms import reorient as store_differently

STORAGE = [
    ((False, False, False), (0, 1, 2)),
    ((True, False, False), (0, 1, 2)),
    ((True, True, False), (1, 0, 2)),
    ((False, True, True), (2, 0, 1)),
    ((True, True, True), (1, 2, 0)),
]


def test_percentile_scale_maps_percentiles_to_0_and_1() -> None:
    array = np.arange(1000, dtype=np.float64).reshape(10, 10, 10)
    scaled = percentile_scale(array, lower_percentile=10, upper_percentile=90)
    assert scaled.dtype == np.float32
    assert scaled.min() == 0.0 and scaled.max() == 1.0
    middle = np.percentile(array, 50)
    assert scaled.ravel()[int(middle)] == pytest.approx(0.5, abs=2e-3)
    assert np.count_nonzero(scaled == 0.0) == 100  # the lowest 10 % (values <= p10 = 99.9)
    assert not percentile_scale(np.full((3, 3, 3), 7.0)).any()


def test_percentile_scale_does_not_depend_on_units() -> None:
    rng = np.random.default_rng(0)
    array = rng.gamma(2.0, 100.0, size=(20, 20, 5))
    np.testing.assert_allclose(percentile_scale(array), percentile_scale(array * 37.5 + 0.0), atol=1e-5)


@pytest.mark.parametrize(("flips", "order"), STORAGE)
def test_reorient_gives_the_same_array_for_any_storage_order(flips, order) -> None:
    rng = np.random.default_rng(1)
    array = rng.random((6, 5, 4))
    affine = ras_affine((1.0, 2.0, 3.0), (10.0, -5.0, 2.0))
    stored, stored_affine = store_differently(array, affine, flips=flips, order=order)
    oriented = reorient(Image(stored, stored_affine), axcodes=("R", "A", "S"))
    np.testing.assert_array_equal(oriented.array, array)
    np.testing.assert_allclose(oriented.affine, affine, atol=1e-9)
    assert oriented.spacing_mm == pytest.approx((1.0, 2.0, 3.0))
    np.testing.assert_array_equal(restore_orientation(oriented.array, oriented), stored)


def test_reorient_follows_a_mirrored_affine() -> None:
    array = np.zeros((4, 3, 2))
    array[0] = 1.0  # voxel i = 0
    affine = ras_affine((1.0, 1.0, 1.0))
    mirrored = np.diag([-1.0, 1.0, 1.0, 1.0]) @ affine  # the same array, patient mirrored
    left_first = reorient(Image(array, affine), axcodes=("R", "A", "S")).array
    right_first = reorient(Image(array, mirrored), axcodes=("R", "A", "S")).array
    assert left_first[0].all() and not left_first[-1].any()  # i = 0 is the leftmost voxel
    assert right_first[-1].all() and not right_first[0].any()  # now the rightmost


def test_resize_inplane_keeps_field_of_view_and_labels() -> None:
    labels = np.zeros((40, 30, 2), dtype=np.uint8)
    labels[10:20, 6:24] = 3  # blocks aligned to the 2x grid
    small = resize_inplane(labels, shape_xy=(20, 15), order=0)
    assert small.shape == (20, 15, 2) and set(np.unique(small)) == {0, 3}
    assert np.count_nonzero(small == 3) == 5 * 9 * 2
    back = resize_inplane(small, shape_xy=(40, 30), order=0)
    np.testing.assert_array_equal(back, labels)
    ramp = np.tile(np.arange(8, dtype=np.float32)[:, None, None], (1, 4, 1))
    up = resize_inplane(ramp, shape_xy=(16, 4), order=1)
    assert up[:, 0, 0].mean() == pytest.approx(ramp[:, 0, 0].mean(), abs=0.05)


@pytest.mark.parametrize(
    ("shape", "shape_xy"), [((149, 149, 7, 6), (224, 224)), ((40, 30, 3), (16, 45)), ((9, 17), (40, 5))]
)
def test_linear_resize_equals_scipys_multilinear_zoom(shape, shape_xy) -> None:
    from scipy import ndimage

    array = np.random.default_rng(5).random(shape).astype(np.float32)
    zoom = [shape_xy[0] / shape[0], shape_xy[1] / shape[1]] + [1.0] * (len(shape) - 2)
    expected = ndimage.zoom(array, zoom, order=1, mode="nearest", grid_mode=True, prefilter=False)
    actual = resize_inplane(array, shape_xy=shape_xy, order=1)
    assert actual.shape == expected.shape and actual.dtype == np.float32
    np.testing.assert_allclose(actual, expected, atol=1e-6)


def test_prepare_volume_resamples_only_beyond_tolerance() -> None:
    array = np.random.default_rng(2).random((50, 40, 3)) * 100
    spec = InputSpec(spacing_mm=(1.0, 1.0), spacing_tolerance=0.1)
    close, _ = prepare_volume(Image(array, ras_affine((1.05, 0.95, 4.0))), spec)
    assert not close.resampled and close.array.shape == (50, 40, 3)
    far, labels = prepare_volume(
        Image(array, ras_affine((2.0, 0.5, 4.0))), spec, labels=Image(np.ones((50, 40, 3), np.uint8), np.eye(4))
    )
    assert far.resampled and far.array.shape == (100, 20, 3) and labels is not None and labels.shape == (100, 20, 3)
    assert far.spacing_mm == pytest.approx((1.0, 1.0))
    assert far.array.min() >= 0.0 and far.array.max() <= 1.0


def test_inputspec_axcodes_name_each_axis_pair_once_and_give_the_plane() -> None:
    with pytest.raises(ValueError, match="axcodes"):
        InputSpec(axcodes=("S", "A", "I"))
    axial = InputSpec(axcodes=("a", "r", "s"))
    assert axial.lr_axis == 1 and axial.plane == "axial"
    sagittal = InputSpec(axcodes=("P", "S", "R"))
    assert sagittal.lr_axis is None and sagittal.plane == "sagittal"


def test_foreground_box_covers_the_body_with_margin() -> None:
    volume = np.zeros((100, 80, 3), dtype=np.float32)
    volume[30:60, 20:40, 1] = 1.0
    assert foreground_box(volume, margin_px=5) == (slice(25, 65), slice(15, 45))
    assert foreground_box(np.zeros((10, 10, 2)), margin_px=5) == (slice(0, 10), slice(0, 10))


def test_context_slices_give_the_image_a_fixed_distance_either_side_in_mm() -> None:
    # the value of every voxel is its position along the slice axis in mm: slices 4 mm apart
    volume = np.broadcast_to(np.arange(6, dtype=np.float32) * 4.0, (3, 2, 6)).copy()
    plain = context_slices(volume, [0, 3], slice_spacing_mm=4.0, context_mm=0.0)
    assert plain.shape == (2, 1, 3, 2)
    np.testing.assert_array_equal(plain[:, 0, 0, 0], [0.0, 12.0])
    stack = context_slices(volume, range(6), slice_spacing_mm=4.0, context_mm=2.0)
    assert stack.shape == (6, 3, 3, 2) and stack.dtype == np.float32
    # 2 mm either side is half-way to the next slice; beyond the ends the edge slice is repeated
    np.testing.assert_allclose(
        stack[:, :, 1, 1], [[0, 0, 2], [2, 4, 6], [6, 8, 10], [10, 12, 14], [14, 16, 18], [18, 20, 20]]
    )
    # 1 mm slices, 2 mm context: exactly the slices two away
    thin = np.broadcast_to(np.arange(5, dtype=np.float32), (2, 2, 5)).copy()
    np.testing.assert_array_equal(
        context_slices(thin, [2, 4], slice_spacing_mm=1.0, context_mm=2.0)[:, :, 0, 0], [[0, 2, 4], [2, 4, 4]]
    )


def test_inputspec_context_round_trips_and_sets_the_channels() -> None:
    spec = InputSpec(axcodes=("P", "S", "R"), spacing_mm=(1.5, 1.5), context_mm=2.0)
    assert spec.in_channels == 3 and InputSpec().in_channels == 1
    assert InputSpec.from_dict(spec.to_dict()) == spec
    old_card = {k: v for k, v in spec.to_dict().items() if k != "context_mm"}  # written before 2.5-D existed
    assert InputSpec.from_dict(old_card).context_mm == 0.0
    with pytest.raises(ValueError, match="context_mm must be between 0 and 20 mm, got -1"):
        InputSpec(context_mm=-1.0)
