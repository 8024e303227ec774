"""Synthesised contrasts from a case's channels: tissue classes, channel mixes, thick slices, config checks."""

from __future__ import annotations

import numpy as np
import pytest

from paraspinal.errors import InputError
from paraspinal.training.synth import SynthSource, synthesise_slice, through_plane_slice, tissue_classes


def _two_channel_phantom() -> tuple[np.ndarray, np.ndarray]:
    """(2, 60, 60, 3) water/fat-like stack with four regions: air, 'fat' (bright in channel 1), 'muscle'
    (mid in channel 0), 'fluid' (bright in channel 0); and the region index of every pixel."""
    region = np.zeros((60, 60), dtype=np.uint8)
    region[5:55, 5:55] = 1  # fat
    region[15:45, 15:45] = 2  # muscle
    region[25:35, 25:35] = 3  # fluid
    water = np.array([0.0, 0.1, 0.5, 1.0])[region]
    fat = np.array([0.0, 1.0, 0.05, 0.0])[region]
    channels = np.stack([water, fat])[:, :, :, None].repeat(3, axis=3).astype(np.float32)
    return channels, region


def test_tissue_classes_recover_the_regions_of_a_two_channel_phantom() -> None:
    channels, region = _two_channel_phantom()
    rng = np.random.default_rng(0)
    noisy = channels + rng.normal(0, 0.01, channels.shape).astype(np.float32)
    tissue = tissue_classes(noisy, n_classes=4, seed=0)
    assert tissue.shape == (60, 60, 3) and tissue.dtype == np.uint8
    for r in range(4):  # one class per region, each region one class
        assert len(np.unique(tissue[:, :, 1][region == r])) == 1
    assert len({int(tissue[:, :, 1][region == r][0]) for r in range(4)}) == 4
    assert tissue[0, 0, 0] == 0  # classes sorted by mean intensity: air is class 0


def test_a_channel_mix_keeps_every_region_uniform_and_the_labels_aligned() -> None:
    channels, region = _two_channel_phantom()
    source = SynthSource(channels=channels, tissue=np.stack([region] * 3, axis=2))
    for seed in range(5):
        x = synthesise_slice(source, 1, rng=np.random.default_rng(seed), mix_fraction=1.0)
        assert x.shape == (60, 60) and x.dtype == np.float32 and x.min() >= 0.0
        for r in range(4):  # a mix of noise-free channels is constant inside each region
            assert np.ptp(x[region == r]) < 1e-5


def test_per_tissue_intensities_differ_between_draws_and_are_reproducible() -> None:
    channels, region = _two_channel_phantom()
    source = SynthSource(channels=channels, tissue=np.stack([region] * 3, axis=2))
    a = synthesise_slice(source, 1, rng=np.random.default_rng(1), mix_fraction=0.0)
    b = synthesise_slice(source, 1, rng=np.random.default_rng(1), mix_fraction=0.0)
    c = synthesise_slice(source, 1, rng=np.random.default_rng(2), mix_fraction=0.0)
    np.testing.assert_array_equal(a, b)
    order_a = np.argsort([np.median(a[region == r]) for r in range(4)])
    orders = {tuple(order_a)}
    for seed in range(3, 12):
        x = synthesise_slice(source, 1, rng=np.random.default_rng(seed), mix_fraction=0.0)
        orders.add(tuple(np.argsort([np.median(x[region == r]) for r in range(4)])))
    assert not np.allclose(a, c)
    assert len(orders) >= 4  # the tissues' brightness order changes from draw to draw (new contrasts)


def test_a_thick_slice_blends_its_neighbours_with_the_given_weight() -> None:
    volume = np.stack([np.full((4, 4), v, dtype=np.float32) for v in (0.0, 1.0, 3.0)], axis=2)
    np.testing.assert_allclose(through_plane_slice(volume, 1, weight=0.5), 0.5 * 1.0 + 0.25 * (0.0 + 3.0))
    np.testing.assert_allclose(through_plane_slice(volume, 0, weight=0.4), 0.6 * 0.0 + 0.2 * (0.0 + 1.0))


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[augment]\nsynth_probability = 1.5\n", "synth_probability must be between 0 and 1, got 1.5"),
        ("[augment]\nthick_slice_max_weight = 1.0\n", "thick_slice_max_weight must be in [0, 1), got 1"),
        ("[augment]\nsynth_tissue_classes = 1\n", "synth_tissue_classes must be 2 to 16, got 1"),
        (
            "[augment]\nsynth_probability = 0.5\n[input]\ncontext_mm = 4.0\n",
            "synth_probability needs a single-slice model (context_mm = 0)",
        ),
        ('[training]\nclass_weights = { "MF" = 2.0 }\n', "class_weights key 'MF' is not a label value"),
        ('[training]\nclass_weights = { "2" = 0 }\n', "class_weights[2] must be a number in (0, 100], got 0"),
    ],
)
def test_bad_synthesis_and_weight_settings_are_refused_naming_the_file(tmp_path, toml, message) -> None:
    from paraspinal.training.config import load_config

    path = tmp_path / "bad.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(InputError) as info:
        load_config(path)
    assert message in str(info.value) and "bad.toml" in str(info.value)


def test_class_weights_are_read_as_sorted_value_weight_pairs(tmp_path) -> None:
    from paraspinal.training.config import load_config

    path = tmp_path / "ok.toml"
    path.write_text('[training]\nclass_weights = { "3" = 1.5, "2" = 2 }\n', encoding="utf-8")
    assert load_config(path).class_weights == ((2, 2.0), (3, 1.5))


def test_every_case_gets_a_synthesis_source_single_channel_ones_too() -> None:
    pytest.importorskip("torch")
    from paraspinal.training.augment import AugmentConfig
    from paraspinal.training.config import TrainConfig
    from paraspinal.training.dataset import TrainingImage
    from paraspinal.training.trainer import synth_sources

    channels, region = _two_channel_phantom()
    classes = np.zeros((*region.shape, 3), dtype=np.uint8)
    images = [
        TrainingImage("a/water", "a", "water", channels[0], classes),
        TrainingImage("a/fat", "a", "fat", channels[1], classes),
        TrainingImage("b/t2", "b", "t2", channels[0], classes),
    ]
    sources = synth_sources(images, config=TrainConfig(augment=AugmentConfig(synth_tissue_classes=4)))
    assert sources["a"].channels.shape == (2, 60, 60, 3) and sources["b"].channels.shape == (1, 60, 60, 3)
    assert len(np.unique(sources["b"].tissue)) == 4  # water alone: air, fat, muscle, fluid all differ
