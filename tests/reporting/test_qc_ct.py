"""The CT QC image: which slice it shows, and the muscles' adipose-window voxels drawn in yellow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from paraspinal.anatomy import load_scheme
from paraspinal.io import Image
from paraspinal.io.label_map import LabelMap
from paraspinal.measurement.parenchyma import select_parenchyma
from paraspinal.reporting.qc_ct import COLOURS, ct_qc_slice, plot_ct_axial_qc
from tests.ct_support import ct_image

LIVER, AUTOCHTHON_RIGHT = 5, 87


def _case(*, muscle_hu: int) -> tuple[Image, LabelMap, np.ndarray]:
    """40 x 40 x 8 voxels of 1 mm: a liver box on slices 1..6 (widest on slice 5), a muscle box on every slice."""
    hu = np.full((40, 40, 8), 40, dtype=np.int16)
    labels = np.zeros(hu.shape, dtype=np.int16)
    labels[5:20, 5:20, 1:7] = LIVER
    labels[5:30, 5:20, 5] = LIVER
    labels[24:34, 24:34, :] = AUTOCHTHON_RIGHT
    hu[labels == LIVER] = 60
    hu[labels == AUTOCHTHON_RIGHT] = muscle_hu
    ct = ct_image(hu)
    return ct, LabelMap.given(ct.with_array(labels), load_scheme("total")), labels == LIVER


def _yellow_pixels(png: Path) -> int:
    import matplotlib.image as mpimg

    pixels = mpimg.imread(str(png))[..., :3]
    return int(np.count_nonzero(np.all(np.abs(pixels - np.asarray(COLOURS["imat"])) < 0.06, axis=-1)))


def test_the_slice_with_most_parenchyma_is_shown_else_the_most_labelled_one() -> None:
    ct, labels, liver = _case(muscle_hu=50)
    selection = select_parenchyma(ct, liver, erosion_mm=0.0, outliers="none")
    assert ct_qc_slice(labels, {"liver": selection}) == 5  # 25 x 15 liver voxels there, 15 x 15 elsewhere
    only_muscle = labels.array.copy()
    only_muscle[only_muscle == LIVER] = 0
    only_muscle[24:34, 24:34, 2] = 0
    only_muscle[24:36, 24:36, 6] = AUTOCHTHON_RIGHT
    assert ct_qc_slice(ct.with_array(only_muscle), {}) == 6  # no organ: the slice with most labelled voxels


def test_imat_voxels_are_drawn_in_yellow(tmp_path: Path) -> None:
    lean_ct, labels, liver = _case(muscle_hu=50)
    fatty_ct, _, _ = _case(muscle_hu=-100)  # inside the adipose window: every muscle voxel is IMAT
    selections = {"liver": select_parenchyma(lean_ct, liver, erosion_mm=0.0, outliers="none")}
    lean = plot_ct_axial_qc(
        lean_ct, labels, selections=selections, slice_index=5, title="lean", path=tmp_path / "a.png"
    )
    fatty = plot_ct_axial_qc(
        fatty_ct, labels, selections=selections, slice_index=5, title="fat", path=tmp_path / "b.png"
    )
    # the legend's yellow patch is in both; the 10 x 10 mm muscle adds hundreds of yellow pixels
    assert _yellow_pixels(fatty) > _yellow_pixels(lean) + 500


def test_a_bare_label_image_needs_its_scheme(tmp_path: Path) -> None:
    ct, labels, _ = _case(muscle_hu=50)
    with pytest.raises(ValueError, match=r"plot_ct_axial_qc needs the label scheme \(pass a LabelMap or scheme=\)"):
        plot_ct_axial_qc(ct, labels.labels, selections={}, slice_index=0, title="x", path=tmp_path / "x.png")
    png = plot_ct_axial_qc(ct, labels.labels, scheme=labels.scheme, selections={}, slice_index=0, title="x",
                           path=tmp_path / "x.png")  # fmt: skip
    assert png.read_bytes()[:4] == b"\x89PNG"
