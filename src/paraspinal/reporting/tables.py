"""Write a case's measurements as CSV + Parquet, with its level table and a JSON summary."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from paraspinal import __version__
from paraspinal.levels import LevelTable
from paraspinal.measurement import Measurements
from paraspinal.reporting.files import AtomicOutputs
from paraspinal.reporting.summary import summary_frame
from paraspinal.safe_text import write_csv


def write_measurements(
    measurements: Measurements,
    outputs: AtomicOutputs,
    *,
    case_id: str,
    levels: LevelTable | None = None,
    inputs: dict[str, str] | None = None,
) -> dict[str, Path]:
    """Write ``{case}_measurements.csv/.parquet``, ``_summary.csv``, ``_levels.csv`` and ``_case.json``.

    Files are staged in ``outputs`` (renamed into place only when the whole case succeeds).
    Returns the final paths by kind.
    """
    table = measurements.table
    written: dict[str, Path] = {}

    def stage(kind: str, name: str) -> Path:
        tmp = outputs.path(name)
        written[kind] = outputs.out_dir / name
        return tmp

    write_csv(table, stage("csv", f"{case_id}_measurements.csv"))
    table.to_parquet(stage("parquet", f"{case_id}_measurements.parquet"), index=False)
    write_csv(summary_frame(table), stage("summary", f"{case_id}_summary.csv"))
    if levels is not None and len(levels):
        write_csv(levels.to_frame(), stage("levels", f"{case_id}_levels.csv"))
    frame = measurements.frame
    info = {
        "case_id": case_id,
        "paraspinal_version": __version__,
        "warnings": list(measurements.warnings),
        "flags": {k: list(v) for k, v in measurements.flags.items()},
        "axial_frame": {
            "slice_axis": frame.slice_axis,
            "n_slices": frame.n_slices,
            "pixel_area_mm2": frame.pixel_area_mm2,
            "slice_spacing_mm": frame.slice_spacing_mm,
            "tilt_deg": frame.tilt_deg,
            "axis_codes": "".join(frame.axis_codes),
        },
        "regions": [
            {"structure": r.structure, "side": r.side, "labels": list(r.labels), "category": r.category}
            for r in measurements.regions
        ],
        "inputs": inputs or {},
    }
    stage("json", f"{case_id}_case.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    return written


def read_measurements(path: str | Path) -> pd.DataFrame:
    """Read a measurements table written by :func:`write_measurements` (CSV or Parquet)."""
    p = Path(path)
    return pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_csv(p)
