"""The real TUM01 case: our numbers against an independent calculation done here with nibabel."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from paraspinal.cli.main import main
from paraspinal.sample import sample_case


@pytest.fixture(scope="module")
def tum01_table(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("tum01")
    assert main(["measure", "--sample", "-o", str(out), "--quiet"]) == 0
    return pd.read_parquet(out / "TUM01_measurements.parquet")


def _independent() -> dict[int, dict[str, float]]:
    case = sample_case()
    lab_img = nib.load(str(case.labels))
    labels = np.asarray(lab_img.dataobj)
    water = np.asarray(nib.load(str(case.water)).dataobj).astype(np.float64)
    fat = np.asarray(nib.load(str(case.fat)).dataobj).astype(np.float64)
    voxel_ml = abs(np.linalg.det(lab_img.affine[:3, :3])) / 1000.0
    out = {}
    for value in (1, 2, 3, 4):
        m = labels == value
        f, w = fat[m], water[m]
        ok = (f + w) > 0
        out[value] = {
            "volume": m.sum() * voxel_ml,
            "ff_sw": 100 * f.sum() / (f + w).sum(),
            "ff_vm": 100 * np.mean(f[ok] / (f[ok] + w[ok])),
            "csa_mid": (labels[:, :, 14] == value).sum() * abs(np.linalg.det(lab_img.affine[:2, :2])),
        }
    return out


LPM4 = {
    1: ("erector_spinae", "right"),
    2: ("multifidus", "right"),
    3: ("multifidus", "left"),
    4: ("erector_spinae", "left"),
}


def test_tum01_volumes_and_fat_fractions_match_independent_calculation(tum01_table: pd.DataFrame) -> None:
    t = tum01_table
    s = t[t.scope == "structure"]
    for value, expected in _independent().items():
        structure, side = LPM4[value]
        rows = s[(s.structure == structure) & (s.side == side)].set_index(["metric", "method"])["value"]
        assert rows[("volume", "voxel_count")] == pytest.approx(expected["volume"], rel=1e-9)
        assert rows[("fat_fraction", "signal_weighted")] == pytest.approx(expected["ff_sw"], rel=1e-9)
        assert rows[("fat_fraction", "voxel_mean")] == pytest.approx(expected["ff_vm"], rel=1e-9)
        sl = t[
            (t.scope == "slice") & (t.slice == 14) & (t.metric == "csa") & (t.structure == structure) & (t.side == side)
        ]
        assert float(sl.value.iloc[0]) == pytest.approx(expected["csa_mid"], rel=1e-9)


def test_tum01_known_values(tum01_table: pd.DataFrame) -> None:
    """Pinned real numbers (computed once with the independent calculation above) guard regressions."""
    s = tum01_table[tum01_table.scope == "structure"].set_index(["structure", "side", "metric", "method"])["value"]
    assert s[("erector_spinae", "right", "volume", "voxel_count")] == pytest.approx(203.13, abs=0.01)
    assert s[("multifidus", "left", "volume", "voxel_count")] == pytest.approx(69.59, abs=0.01)
    assert s[("erector_spinae", "right", "fat_fraction", "signal_weighted")] == pytest.approx(14.568, abs=0.001)
    assert s[("multifidus", "right", "fat_fraction", "signal_weighted")] == pytest.approx(16.007, abs=0.001)


def test_tum01_every_muscle_is_flagged_truncated_and_laterality_is_consistent(tum01_table: pd.DataFrame) -> None:
    vol = tum01_table[(tum01_table.scope == "structure") & (tum01_table.metric == "volume")]
    assert vol["flags"].str.contains("fov_truncated").all()  # the crop cuts every muscle at both ends
    assert not tum01_table["flags"].str.contains("laterality_mismatch").any()
    assert not tum01_table["flags"].str.contains("fat_water_swap").any()


def test_tum01_levels_and_infiltration_present(tum01_table: pd.DataFrame) -> None:
    lv = tum01_table[
        (tum01_table.scope == "level") & (tum01_table.metric == "csa") & (tum01_table.method == "disc_slice")
    ]
    assert set(lv.level) == {"L2/L3", "L3/L4", "L4/L5"}
    inf = tum01_table[(tum01_table.scope == "structure") & (tum01_table.metric == "fat_infiltration")]
    assert set(inf.method) == {"otsu", "otsu_xu", "kmeans2", "kmeans3", "gmm2", "gmm3"}
    assert inf.value.between(0, 100).all()
