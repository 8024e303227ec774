"""A compact wide summary of a tidy measurement table: one row per structure and side."""

from __future__ import annotations

import pandas as pd

_SIDE_ORDER = {"right": 0, "left": 1, "both": 2, "none": 3}


def summary_frame(table: pd.DataFrame) -> pd.DataFrame:
    """Volume, both Dixon fat fractions (or, for CT, the mask's mean HU and IMAT share), and CSA at each level's
    disc slice (or level mean) per structure/side, then its flags and (when the table has one) its ``qc``: the
    worst of its structure row's and its level rows'."""
    structure_rows = table[table["scope"] == "structure"]
    parts: dict[str, pd.Series] = {}
    keys = ["case_id", "structure", "side"]

    def pick(frame: pd.DataFrame, metric: str, method: str) -> pd.Series:
        rows = frame[(frame["metric"] == metric) & (frame["method"] == method)]
        return rows.set_index(keys)["value"]

    parts["volume_mL"] = pick(structure_rows, "volume", "voxel_count")
    ff_sw = pick(structure_rows, "fat_fraction", "signal_weighted")
    if not ff_sw.empty:
        parts["ff_signal_weighted_%"] = ff_sw
        parts["ff_voxel_mean_%"] = pick(structure_rows, "fat_fraction", "voxel_mean")
    hu = pick(structure_rows, "hu_mean", "mask")
    if not hu.empty:  # CT: attenuation of the whole mask and the IMAT share in the adipose window
        parts["hu_mean_HU"] = hu
        imat = structure_rows[structure_rows["metric"] == "imat_share"]
        for method in dict.fromkeys(imat["method"]):
            parts[f"imat_{method}_%"] = pick(imat, "imat_share", method)
    levels = table[table["scope"] == "level"]
    for level in dict.fromkeys(levels["level"].dropna()):
        at_level = levels[levels["level"] == level]
        csa = pick(at_level, "csa", "disc_slice")
        if csa.empty:
            csa = pick(at_level, "csa", "level_mean")
        parts[f"csa_{level}_mm2"] = csa
    summary = pd.DataFrame(parts).reset_index()
    flags = structure_rows[structure_rows["metric"] == "volume"].set_index(keys)["flags"]
    summary = summary.merge(flags.rename("flags").reset_index(), on=keys, how="left")
    if "qc" in table.columns:
        rank = {"ok": 0, "review": 1, "fail": 2}
        rows = table[table["scope"].isin(["structure", "level"])]
        worst = rows.assign(_r=rows["qc"].map(rank)).groupby(keys)["_r"].max()
        qc = worst.map({v: k for k, v in rank.items()}).rename("qc").reset_index()
        summary = summary.merge(qc, on=keys, how="left")
    order = summary["side"].map(_SIDE_ORDER).fillna(9)
    return (
        summary.assign(_o=order).sort_values(["case_id", "structure", "_o"]).drop(columns="_o").reset_index(drop=True)
    )
