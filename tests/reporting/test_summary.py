"""The wide summary: one row per structure and side with the phantom's known volumes, fat fractions and CSA."""

from __future__ import annotations

import pandas as pd
import pytest

from paraspinal.reporting import summary_frame
from tests.reporting.support import CSA_MM2, FF_PERCENT, VOLUME_ML, phantom_case


@pytest.fixture(scope="module")
def summary() -> pd.DataFrame:
    return summary_frame(phantom_case(case_id="ph").measurements.table)


def test_rows_are_structures_then_right_left_both(summary: pd.DataFrame) -> None:
    assert list(zip(summary["structure"], summary["side"], strict=True)) == [
        ("erector_spinae", "right"),
        ("erector_spinae", "left"),
        ("erector_spinae", "both"),
        ("multifidus", "right"),
        ("multifidus", "left"),
        ("multifidus", "both"),
    ]
    assert set(summary["case_id"]) == {"ph"}
    assert list(summary.columns) == [
        "case_id",
        "structure",
        "side",
        "volume_mL",
        "ff_signal_weighted_%",
        "ff_voxel_mean_%",
        "csa_L3/L4_mm2",
        "csa_L4/L5_mm2",
        "flags",
    ]


def test_values_are_the_phantoms_known_volumes_fat_fractions_and_areas(summary: pd.DataFrame) -> None:
    rows = summary.set_index(["structure", "side"])
    for key, volume in VOLUME_ML.items():
        assert rows.loc[key, "volume_mL"] == pytest.approx(volume)
        assert rows.loc[key, "ff_signal_weighted_%"] == pytest.approx(FF_PERCENT[key])
        assert rows.loc[key, "ff_voxel_mean_%"] == pytest.approx(FF_PERCENT[key])
        assert rows.loc[key, "csa_L4/L5_mm2"] == pytest.approx(CSA_MM2[key])
        assert rows.loc[key, "csa_L3/L4_mm2"] == pytest.approx(CSA_MM2[key])
    both = rows.loc[("erector_spinae", "both")]
    assert both["volume_mL"] == pytest.approx(2.56 + 2.40)
    assert both["csa_L4/L5_mm2"] == pytest.approx(140.0)
    # signal-weighted over both sides: all fat over all signal (640 voxels at 100/400, 600 at 200/400)
    assert both["ff_signal_weighted_%"] == pytest.approx(100 * (640 * 100 + 600 * 200) / (640 * 400 + 600 * 400))


def test_flags_come_from_the_structure_volume_row(summary: pd.DataFrame) -> None:
    flags = summary.set_index(["structure", "side"])["flags"].fillna("")
    assert flags[("erector_spinae", "left")] == "fov_truncated"  # spans every slice
    assert flags[("erector_spinae", "both")] == "fov_truncated"
    assert flags[("erector_spinae", "right")] == "" and flags[("multifidus", "left")] == ""


def _row(structure: str, side: str, scope: str, metric: str, method: str, value: float, level=None, unit="%"):
    return {
        "case_id": "ct",
        "structure": structure,
        "side": side,
        "scope": scope,
        "level": level,
        "metric": metric,
        "method": method,
        "image": "ct",
        "value": value,
        "unit": unit,
        "flags": "",
    }


def test_ct_table_gives_hu_and_imat_columns_and_level_mean_csa_without_a_disc_slice() -> None:
    table = pd.DataFrame(
        [
            _row("psoas", "right", "structure", "volume", "voxel_count", 10.0, unit="mL"),
            _row("psoas", "right", "structure", "hu_mean", "mask", 48.5, unit="HU"),
            _row("psoas", "right", "structure", "imat_share", "-190..-30", 3.25),
            _row("psoas", "none", "structure", "volume", "voxel_count", 1.0, unit="mL"),
            _row("psoas", "right", "level", "csa", "level_mean", 612.0, level="L3", unit="mm2"),
        ]
    )
    summary = summary_frame(table)
    assert list(summary.columns) == [
        "case_id",
        "structure",
        "side",
        "volume_mL",
        "hu_mean_HU",
        "imat_-190..-30_%",
        "csa_L3_mm2",
        "flags",
    ]
    assert "ff_signal_weighted_%" not in summary.columns  # no Dixon rows: no fat-fraction columns
    right = summary.iloc[0]
    assert (right["side"], right["hu_mean_HU"], right["imat_-190..-30_%"], right["csa_L3_mm2"]) == (
        "right",
        48.5,
        3.25,
        612.0,
    )
    assert list(summary["side"]) == ["right", "none"]
