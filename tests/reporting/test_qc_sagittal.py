"""The sagittal levels QC image on the box-spine phantom: disc planes in yellow, and the axial stack's
slice planes (blue) and chosen disc slices (red) only when a matched axial stack is given."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from paraspinal.anatomy import load_scheme
from paraspinal.io import Image
from paraspinal.io.label_map import LabelMap
from paraspinal.levels import match_axial, spine_levels_from_labels
from paraspinal.reporting.qc_sagittal import plot_sagittal_levels
from tests.spine_phantoms import NAMES, axial_stack, spine_phantom


def _pixels(png: Path) -> np.ndarray:
    import matplotlib.image as mpimg

    return mpimg.imread(str(png))[..., :3]


def _count(png: Path, hex_colour: str, *, tol: float = 0.03) -> int:
    """Pixels of exactly this colour (opaque lines and boxes)."""
    rgb = np.array([int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    return int(np.count_nonzero(np.all(np.abs(_pixels(png) - rgb) < tol, axis=-1)))


def _bluish(png: Path) -> int:
    """Pixels of the thin, half-transparent sky-blue axial slice planes (blended into the grey image)."""
    r, _g, b = np.moveaxis(_pixels(png), -1, 0)
    return int(np.count_nonzero((b - r > 0.2) & (b > 0.4)))


def _reddish(png: Path) -> int:
    """Pixels of the vermilion chosen-slice lines and boxes: red with green at 0.3..0.55 of red (orange is 0.69)."""
    r, g, b = np.moveaxis(_pixels(png), -1, 0)
    return int(np.count_nonzero((r > 0.5) & (g > 0.3 * r) & (g < 0.55 * r) & (b < 0.15)))


@pytest.fixture(scope="module")
def spine_case():
    phantom = spine_phantom(tilt_deg=12.0)
    labels = phantom.encode({name: i + 1 for i, name in enumerate(NAMES)})
    spine = spine_levels_from_labels(LabelMap.given(labels, load_scheme("lumbar_bodies")))
    background = Image(np.where(labels.array > 0, 400.0, 50.0), labels.affine)
    axial = axial_stack(tilt_deg=0.0, z0_mm=-60.0, n_slices=40)
    return background, labels, spine, axial, match_axial(spine, axial, tolerance_mm=5.0)


def test_axial_planes_and_chosen_slices_appear_only_with_a_matched_stack(spine_case, tmp_path: Path) -> None:
    background, _labels, spine, axial, matched = spine_case
    assert [d.name for d in spine.discs] == ["L1/L2", "L2/L3", "L3/L4", "L4/L5", "L5/S1"]
    plain = plot_sagittal_levels(background, spine=spine, title="ph", path=tmp_path / "plain.png")
    with_axial = plot_sagittal_levels(
        background, spine=spine, axial=axial, matched=matched, title="ph", path=tmp_path / "axial.png"
    )
    assert plain == tmp_path / "plain.png" and plain.read_bytes()[:4] == b"\x89PNG"
    assert _count(plain, "#F0E442") > 200 and _count(with_axial, "#F0E442") > 200  # disc planes, label boxes
    assert _bluish(plain) == 0 and _reddish(plain) == 0
    assert _bluish(with_axial) > 1000  # 35 thin axial slice planes across the view
    assert _reddish(with_axial) > 1000  # the 5 slices chosen for the discs, with their labels


def test_body_outlines_are_drawn_when_the_labels_are_given(spine_case, tmp_path: Path) -> None:
    background, labels, spine, _axial, _matched = spine_case
    plain = plot_sagittal_levels(background, spine=spine, title="ph", path=tmp_path / "plain.png")
    outlined = plot_sagittal_levels(background, spine=spine, labels=labels, title="ph", path=tmp_path / "bodies.png")
    assert _count(outlined, "#009E73") > 50 and _count(plain, "#009E73") == 0  # L1's body colour
