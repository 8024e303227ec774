"""A small bilateral Dixon phantom with known areas, volumes and fat fractions, measured, for the reporting tests.

Grid 40 x 30 x 10 voxels of (1, 1, 4) mm, RAS+ (i towards the patient's right), lpm4 labels, so one voxel is
1 mm² in plane and 4 mm³:

=====  ======================  ===============  =======  ======  ==============  =====
label  structure, side         box (i, j, k)    CSA mm²  slices  volume mL       FF %
=====  ======================  ===============  =======  ======  ==============  =====
1      erector_spinae, right   24:32, 5:15, 1:9    80    8       2.56            25
2      multifidus, right       20:24, 5:10, 2:8    20    6       0.48            10
3      multifidus, left        16:20, 5:10, 2:8    20    6       0.48            20
4      erector_spinae, left     8:14, 5:15, 0:10   60    10 (the whole stack)  2.40  50
=====  ======================  ===============  =======  ======  ==============  =====

Only the left erector spinae touches the first and last slice (flag ``fov_truncated``). Levels: L4/L5 at
disc slice 3, L3/L4 at disc slice 6.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from paraspinal.anatomy import load_scheme
from paraspinal.io import Image
from paraspinal.io.label_map import LabelMap
from paraspinal.levels import LevelTable, levels_from_mapping
from paraspinal.measurement import Measurements, measure_case
from tests.phantoms import box_labels, ras_affine

SHAPE = (40, 30, 10)
BOXES = {
    1: (slice(24, 32), slice(5, 15), slice(1, 9)),
    2: (slice(20, 24), slice(5, 10), slice(2, 8)),
    3: (slice(16, 20), slice(5, 10), slice(2, 8)),
    4: (slice(8, 14), slice(5, 15), slice(0, 10)),
}
# (water, fat) per label: fat fraction 100 F / (F + W)
SIGNALS = {1: (300.0, 100.0), 2: (270.0, 30.0), 3: (240.0, 60.0), 4: (200.0, 200.0)}
# known values per (structure, side)
CSA_MM2 = {("erector_spinae", "right"): 80.0, ("multifidus", "right"): 20.0, ("multifidus", "left"): 20.0,
           ("erector_spinae", "left"): 60.0}  # fmt: skip
VOLUME_ML = {("erector_spinae", "right"): 2.56, ("multifidus", "right"): 0.48, ("multifidus", "left"): 0.48,
             ("erector_spinae", "left"): 2.40}  # fmt: skip
FF_PERCENT = {("erector_spinae", "right"): 25.0, ("multifidus", "right"): 10.0, ("multifidus", "left"): 20.0,
              ("erector_spinae", "left"): 50.0}  # fmt: skip
DISC_SLICES = {"L4/L5": 3, "L3/L4": 6}


@dataclass(frozen=True)
class PhantomCase:
    label_map: LabelMap
    water: Image
    fat: Image
    levels: LevelTable
    measurements: Measurements


def phantom_case(*, case_id: str = "ph", scale: float = 1.0, swap: bool = False, mirror: bool = False) -> PhantomCase:
    """The phantom measured as ``case_id`` (its label map named as read from ``/data/<case_id>_dseg.nii.gz``);
    ``scale`` multiplies both signals (fat fractions unchanged), ``swap`` exchanges the water and fat images,
    ``mirror`` flips the affine's x axis (the labels named right then lie on the patient's left)."""
    affine = ras_affine((1.0, 1.0, 4.0), (-20.0, -15.0, 0.0))
    if mirror:
        affine[0, 0], affine[0, 3] = -1.0, 20.0
    labels = box_labels(SHAPE, BOXES)
    water = np.full(SHAPE, 10.0)
    fat = np.full(SHAPE, 10.0)
    for value, (w, f) in SIGNALS.items():
        water[labels == value], fat[labels == value] = w * scale, f * scale
    if swap:
        water, fat = fat, water
    label_map = LabelMap.given(Image(labels, affine, source=f"/data/{case_id}_dseg.nii.gz"), load_scheme("lpm4"))
    levels = levels_from_mapping(DISC_SLICES, n_slices=SHAPE[2])
    water_image, fat_image = Image(water, affine), Image(fat, affine)
    measurements = measure_case(label_map, case_id=case_id, water=water_image, fat=fat_image, levels=levels)
    return PhantomCase(label_map, water_image, fat_image, levels, measurements)
