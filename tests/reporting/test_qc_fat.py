"""The threshold fat map: the voxels drawn yellow are those above the muscle's threshold in the table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from paraspinal.anatomy import load_scheme
from paraspinal.io import Image
from paraspinal.reporting.qc import qc_slices
from paraspinal.reporting.qc_fat import muscle_values, plot_threshold_map
from tests.reporting.support import phantom_case


def _yellow(png: Path) -> int:
    import matplotlib.image as mpimg

    r, g, b = np.moveaxis(mpimg.imread(str(png))[..., :3], -1, 0)
    return int(np.count_nonzero((r > 0.8) & (g > 0.75) & (b < 0.4)))


def test_muscle_values_leave_out_organs_and_bones() -> None:
    assert muscle_values(load_scheme("lpm4")) == (1, 2, 3, 4)
    total = muscle_values(load_scheme("total"))
    assert 86 in total and 87 in total  # autochthon left, right
    assert 5 not in total  # liver


@pytest.fixture(scope="module")
def t1_case():
    """The phantom's labels with a 'T1' image: one half of each muscle (along i) at 500, the other at 100."""
    case = phantom_case()
    labels = case.label_map.labels
    t1 = np.where(labels.array > 0, 100.0, 20.0)
    for i_low, i_high in ((28, 32), (20, 22), (16, 18), (8, 11)):  # half of labels 1, 2, 3, 4
        region = np.zeros(labels.shape, dtype=bool)
        region[i_low:i_high] = True
        t1[region & (labels.array > 0)] = 500.0
    return case, Image(t1, labels.affine)


def _table(threshold: float) -> pd.DataFrame:
    rows = [
        {"structure": s, "side": side, "metric": "fat_threshold", "method": "m", "image": "t1", "value": threshold}
        for s in ("erector_spinae", "multifidus")
        for side in ("right", "left")
    ]
    return pd.DataFrame(rows)


def test_yellow_voxels_follow_the_tables_thresholds(t1_case, tmp_path: Path) -> None:
    case, t1 = t1_case
    labels = case.label_map.labels
    slices = qc_slices(labels, case.levels)

    def draw(threshold: float, name: str) -> int:
        path = plot_threshold_map(
            t1,
            labels,
            scheme=case.label_map.scheme,
            table=_table(threshold),
            image_name="t1",
            methods=("m",),
            slices=slices,
            title="ph",
            path=tmp_path / name,
        )
        assert path.read_bytes()[:4] == b"\x89PNG"
        return _yellow(path)

    every = draw(50.0, "all.png")
    half = draw(300.0, "half.png")
    assert draw(1000.0, "none.png") == 0
    assert draw(float("nan"), "nan.png") == 0  # no threshold for the muscle: nothing is called fat
    assert every > 1000
    assert half == pytest.approx(every / 2, rel=0.1)  # half of each muscle's voxels are above 300
