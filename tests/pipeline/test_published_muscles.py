"""Psoas, quadratus lumborum and iliacus end to end, as a published model (MuscleMap's codes) labels them:
volume, CSA, fat fraction and fat infiltration per level and side, QC colours from the registry, the report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image as PILImage

from paraspinal.anatomy import LabelScheme, load_scheme
from paraspinal.backends.base import segmentation
from paraspinal.backends.catalog import Models
from paraspinal.batch import run_batch
from paraspinal.io import Image
from paraspinal.io.label_map import LabelMap
from paraspinal.pipeline.case import Case
from paraspinal.pipeline.options import RunOptions
from paraspinal.reporting.qc import label_colours
from tests.phantoms import box_labels, ras_affine, save_nifti

SHAPE = (40, 30, 10)  # 1 x 1 x 4 mm, RAS+: high i is the patient's right (tests/phantoms.py)
BOXES = {  # MuscleMap codes: 5121/5122 psoas major L/R, 5131/5132 quadratus lumborum L/R, 6141/6142 iliacus L/R
    5122: (slice(24, 29), slice(18, 25), slice(0, 10)),  # 5 x 7 = 35 mm2 per slice
    5121: (slice(11, 16), slice(18, 25), slice(0, 10)),
    5132: (slice(30, 35), slice(14, 18), slice(0, 10)),  # 5 x 4 = 20 mm2
    5131: (slice(5, 10), slice(14, 18), slice(0, 10)),
    6142: (slice(26, 31), slice(25, 28), slice(5, 10)),  # 5 x 3 = 15 mm2, caudal half only
    6141: (slice(9, 14), slice(25, 28), slice(5, 10)),
}
WATER_FAT = {"psoas": (360.0, 40.0), "ql": (300.0, 100.0), "iliacus": (200.0, 200.0)}  # FF 10, 25, 50 %


class FixedMask:
    """A published model's output stand-in: the phantom's mask in MuscleMap's scheme."""

    name = "fixed-musclemap"

    def __init__(self, mask: np.ndarray) -> None:
        self.mask = mask

    @property
    def scheme(self) -> LabelScheme:
        return load_scheme("musclemap")

    @property
    def provenance(self) -> dict[str, object]:
        return {"name": self.name, "version": "0", "weights_sha256": "cd" * 32}

    def segment(self, image: Image) -> LabelMap:
        return segmentation(image, self.mask.copy(), scheme=self.scheme, model=self.provenance, info={}, source="x")


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> dict[str, object]:
    folder = tmp_path_factory.mktemp("published")
    labels = box_labels(SHAPE, BOXES).astype(np.uint16)
    water, fat = np.full(SHAPE, 10.0), np.full(SHAPE, 10.0)
    for values, (w, f) in zip(((5121, 5122), (5131, 5132), (6141, 6142)), WATER_FAT.values(), strict=True):
        inside = np.isin(labels, values)
        water[inside], fat[inside] = w, f
    affine = ras_affine((1.0, 1.0, 4.0), (-20.0, -15.0, 0.0))
    t2 = np.where(labels > 0, np.tile(np.linspace(100, 400, 10), (40, 30, 1)), 10.0)
    levels = folder / "levels.csv"
    levels.write_text("level,slice_start,slice_stop\nL3/L4,0,5\nL4/L5,5,10\n", encoding="utf-8")
    return {
        "labels": labels,
        "water": save_nifti(folder / "ph_water.nii.gz", water.astype(np.float32), affine),
        "fat": save_nifti(folder / "ph_fat.nii.gz", fat.astype(np.float32), affine),
        "t2": save_nifti(folder / "ph_t2.nii.gz", t2.astype(np.float32), affine),
        "levels": levels,
        "folder": folder,
    }


def _run(phantom, case: Case, out: Path) -> Path:
    options = RunOptions(levels_csv=phantom["levels"])
    result = run_batch([case], options=options, out_dir=out, models=Models(muscle=FixedMask(phantom["labels"])))
    assert result.cases[0].ok, result.cases[0].error
    return out / case.case_id


def test_dixon_volume_csa_and_fat_fraction_per_level_and_side(phantom, tmp_path):
    folder = _run(phantom, Case("ph", water=phantom["water"], fat=phantom["fat"]), tmp_path / "out")
    summary = pd.read_csv(folder / "ph_summary.csv").set_index(["structure", "side"])
    expected = {  # volume mL, FF %, CSA at L3/L4 and L4/L5 (mm2)
        "psoas_major": (1.4, 10.0, 35.0, 35.0),
        "quadratus_lumborum": (0.8, 25.0, 20.0, 20.0),
        "iliacus": (0.3, 50.0, 0.0, 15.0),
    }
    for structure, (volume, ff, csa_34, csa_45) in expected.items():
        for side in ("right", "left"):
            row = summary.loc[(structure, side)]
            assert row["volume_mL"] == pytest.approx(volume)
            assert row["ff_signal_weighted_%"] == pytest.approx(ff)
            assert (row["csa_L3/L4_mm2"], row["csa_L4/L5_mm2"]) == pytest.approx((csa_34, csa_45))
    rows = pd.read_csv(folder / "ph_measurements.csv")
    ff = rows[(rows.metric == "fat_fraction") & (rows.scope == "level") & (rows.level == "L4/L5")]
    assert {(s, side) for s, side in zip(ff.structure, ff.side, strict=True)} >= {
        (s, side) for s in expected for side in ("right", "left")
    }

    # QC: each structure in its registry colour on the patient's side (radiological view: right on the left)
    colours = label_colours(load_scheme("musclemap"))
    assert (colours[5122], colours[5132], colours[6142]) == ("#009E73", "#CC79A7", "#D55E00")
    png = np.asarray(PILImage.open(folder / "qc" / "ph_axial_L4-L5.png").convert("RGB"), dtype=np.int32)
    image_area = png[: int(png.shape[0] * 0.8)]
    width = png.shape[1]
    for right, left in ((5122, 5121), (5132, 5131), (6142, 6141)):
        columns = {}
        for value in (right, left):
            target = np.array([int(colours[value][i : i + 2], 16) for i in (1, 3, 5)])
            columns[value] = np.nonzero(np.abs(image_area - target).sum(axis=2) < 15)[1]  # the contour lines
            assert columns[value].size > 100, value
        assert columns[right].mean() < width / 2 < columns[left].mean()
    html = (folder / "ph_report.html").read_text(encoding="utf-8")
    assert all(name in html for name in ("psoas_major", "quadratus_lumborum", "iliacus"))


def test_t2_fat_infiltration_per_level_and_side(phantom, tmp_path):
    folder = _run(phantom, Case("t2c", image=phantom["t2"]), tmp_path / "out")
    rows = pd.read_csv(folder / "t2c_measurements.csv")
    infiltration = rows[(rows.metric == "fat_infiltration") & (rows.scope == "level")]
    found = {
        (s, side, lv) for s, side, lv in zip(infiltration.structure, infiltration.side, infiltration.level, strict=True)
    }
    for structure in ("psoas_major", "quadratus_lumborum"):
        for side in ("right", "left"):
            assert {(structure, side, "L3/L4"), (structure, side, "L4/L5")} <= found
    assert {("iliacus", "right", "L4/L5"), ("iliacus", "left", "L4/L5")} <= found
