"""A case's tables on disk: CSV and Parquet equal the tidy table, the summary and level CSVs, the case JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from paraspinal import __version__
from paraspinal.reporting import AtomicOutputs, summary_frame, write_measurements
from paraspinal.reporting.tables import read_measurements
from tests.reporting.support import VOLUME_ML, phantom_case


@pytest.fixture(scope="module")
def case():
    return phantom_case(case_id="ph")


def test_every_file_is_written_and_reads_back_equal(case, tmp_path: Path) -> None:
    with AtomicOutputs(tmp_path / "ph") as outputs:
        written = write_measurements(
            case.measurements, outputs, case_id="ph", levels=case.levels, inputs={"water": "ph_water.nii.gz"}
        )
    folder = tmp_path / "ph"
    assert written == {
        "csv": folder / "ph_measurements.csv",
        "parquet": folder / "ph_measurements.parquet",
        "summary": folder / "ph_summary.csv",
        "levels": folder / "ph_levels.csv",
        "json": folder / "ph_case.json",
    }
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in written.values())  # no temporaries
    table = case.measurements.table
    parquet = read_measurements(written["parquet"])
    pd.testing.assert_frame_equal(parquet, table.reset_index(drop=True))
    csv = read_measurements(written["csv"])
    assert len(csv) == len(table)
    assert csv["value"].to_numpy() == pytest.approx(table["value"].to_numpy())
    volume = csv[(csv["scope"] == "structure") & (csv["metric"] == "volume")].set_index(["structure", "side"])
    for key, expected in VOLUME_ML.items():
        assert volume.loc[key, "value"] == pytest.approx(expected)
    summary = pd.read_csv(written["summary"])
    expected_summary = summary_frame(table)
    assert list(summary.columns) == list(expected_summary.columns)
    assert summary["volume_mL"].to_numpy() == pytest.approx(expected_summary["volume_mL"].to_numpy())
    levels = pd.read_csv(written["levels"])
    assert list(levels["level"]) == ["L3/L4", "L4/L5"] and list(levels["disc_slice"]) == [6, 3]


def test_case_json_records_the_grid_regions_and_inputs(case, tmp_path: Path) -> None:
    with AtomicOutputs(tmp_path) as outputs:
        written = write_measurements(case.measurements, outputs, case_id="ph", inputs={"water": "w.nii.gz"})
    info = json.loads(written["json"].read_text(encoding="utf-8"))
    assert info["case_id"] == "ph" and info["paraspinal_version"] == __version__
    frame = info["axial_frame"]
    assert (frame["n_slices"], frame["pixel_area_mm2"], frame["slice_spacing_mm"]) == (10, 1.0, 4.0)
    assert frame["tilt_deg"] == pytest.approx(0.0) and frame["axis_codes"] == "RAS"
    regions = {(r["structure"], r["side"]): r["labels"] for r in info["regions"]}
    assert regions == {
        ("erector_spinae", "right"): [1],
        ("multifidus", "right"): [2],
        ("multifidus", "left"): [3],
        ("erector_spinae", "left"): [4],
    }
    assert info["inputs"] == {"water": "w.nii.gz"} and info["warnings"] == []
    assert "levels" not in written  # no level table given: no levels CSV


def test_a_failing_case_leaves_no_file(case, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="stop"), AtomicOutputs(tmp_path / "out") as outputs:
        write_measurements(case.measurements, outputs, case_id="ph", levels=case.levels)
        raise RuntimeError("stop")
    assert not (tmp_path / "out").exists()  # the folder it created is removed with the files
