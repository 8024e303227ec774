"""Endplate planes: the disc normal comes from the facing endplates, not the body's overall shape.

Synthetic bodies on voxel grids with known endplate planes: a wedge-shaped body (upper and lower
endplates tilted differently), with a posterior bony block that tilts its principal axes, sampled at
1 mm and in 4 mm sagittal slices; and a lordotic stack of such bodies whose disc normals (the
bisector of the facing endplates) differ from the line between the bodies' centres.
"""

from __future__ import annotations

import numpy as np
import pytest

from paraspinal.levels.spine_geometry import (
    BodyVoxels,
    discs_between,
    endplate_normal,
    estimated_l5_s1_normal,
    unit,
)

UP = np.array([0.0, 0.0, 1.0])
TOLERANCE_DEG = 1.5  # a plane fitted to a voxel staircase is good to about 1 degree


def _tilted(angle_deg: float) -> np.ndarray:
    """Cranial unit vector tilted ``angle_deg`` from +z towards +y (anterior), in the sagittal plane."""
    t = np.radians(angle_deg)
    return np.array([0.0, np.sin(t), np.cos(t)])


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip(np.dot(unit(np.asarray(a)), unit(np.asarray(b))), -1.0, 1.0))))


def _wedge_body(
    *, centre_mm: np.ndarray, upper_deg: float, lower_deg: float, spacing_mm=(1.0, 1.0, 1.0), block: bool = True
) -> BodyVoxels:
    """A 40 x 32 mm (x, y) body whose upper endplate is the plane through ``centre + 12.5 mm`` with normal
    ``_tilted(upper_deg)`` and lower endplate through ``centre - 12.5 mm`` with normal ``_tilted(lower_deg)``;
    ``block`` adds a 16 mm posterior bony block across its upper half (pedicle-like)."""
    sx, sy, sz = spacing_mm
    xs = np.arange(-30.0, 30.0 + 1e-9, sx)
    ys = np.arange(-40.0, 40.0 + 1e-9, sy)
    zs = np.arange(-30.0, 30.0 + 1e-9, sz)
    x, y, z = np.meshgrid(xs, ys, zs, indexing="ij")
    rel = np.stack([x, y, z], axis=-1)
    inside = (np.abs(x) <= 20.0) & (np.abs(y) <= 16.0)
    inside &= (rel - [0.0, 0.0, 12.5]) @ _tilted(upper_deg) <= 0
    inside &= (rel - [0.0, 0.0, -12.5]) @ _tilted(lower_deg) >= 0
    if block:
        inside |= (np.abs(x) <= 10.0) & (y >= -32.0) & (y < -16.0) & (z >= 0.0) & (z <= 10.0)
    points = rel[inside] + centre_mm
    return BodyVoxels(points, np.diag([sx, sy, sz]))


@pytest.mark.parametrize("spacing_mm", [(1.0, 1.0, 1.0), (4.0, 1.0, 1.0), (4.0, 0.6, 0.6)])
def test_each_endplate_plane_is_recovered_whatever_the_body_shape(spacing_mm) -> None:
    body = _wedge_body(centre_mm=np.zeros(3), upper_deg=4.0, lower_deg=14.0, spacing_mm=spacing_mm)
    # the posterior block and the wedge tilt the body's principal axes: its least-variance axis is off
    centred = body.points_mm - body.centroid
    least = np.linalg.eigh(centred.T @ centred)[1][:, 0]
    assert min(_angle_deg(least, _tilted(4.0)), _angle_deg(-least, _tilted(4.0))) > 3.0
    for side, expected_deg in (("upper", 4.0), ("lower", 14.0)):
        normal = endplate_normal(body, direction=UP, side=side)
        assert _angle_deg(normal, _tilted(expected_deg)) < TOLERANCE_DEG, side
        assert normal[2] > 0  # cranial


def test_an_endplate_is_not_trusted_beyond_45_degrees_from_the_spine_axis() -> None:
    body = _wedge_body(centre_mm=np.zeros(3), upper_deg=50.0, lower_deg=0.0, block=False)
    np.testing.assert_array_equal(endplate_normal(body, direction=UP, side="upper"), UP)
    assert _angle_deg(endplate_normal(body, direction=_tilted(20.0), side="upper"), _tilted(50.0)) < TOLERANCE_DEG


def test_lordotic_discs_follow_the_endplates_not_the_line_between_centres() -> None:
    # endplates turn 4 degrees per endplate going down (8 per body and per disc); centres on a straight line
    tilts = [(8.0 * k, 8.0 * k + 4.0) for k in range(3)]  # (upper, lower) endplate tilt of L3, L4, L5
    bodies = [
        _wedge_body(centre_mm=np.array([0.0, 0.0, -37.0 * k]), upper_deg=up, lower_deg=low)
        for k, (up, low) in enumerate(tilts)
    ]
    discs, axes = discs_between(["L3", "L4", "L5"], bodies, ["body"] * 3, [1.0] * 3, next_name={"L3": "L4", "L4": "L5"})
    assert [d.name for d in discs] == ["L3/L4", "L4/L5", "L5/S1"]
    # the disc between endplates at 4 and 8 degrees lies at 6; between 12 and 16, at 14 (the centres' line: 0)
    assert _angle_deg(discs[0].normal, _tilted(6.0)) < TOLERANCE_DEG
    assert _angle_deg(discs[1].normal, _tilted(14.0)) < TOLERANCE_DEG
    # L5/S1, no sacrum: L5's lower endplate (20 degrees) turned on by the L4/L5 wedge (12 -> 16: 4 degrees)
    assert discs[2].estimated and _angle_deg(discs[2].normal, _tilted(24.0)) < TOLERANCE_DEG
    for axis, (up, low) in zip(axes, tilts, strict=True):  # a body's axis: between its two endplates
        assert _angle_deg(axis, _tilted((up + low) / 2)) < TOLERANCE_DEG


def test_without_l4_the_estimated_l5_s1_disc_is_parallel_to_l5s_lower_endplate() -> None:
    l5 = _wedge_body(centre_mm=np.zeros(3), upper_deg=10.0, lower_deg=18.0)
    assert _angle_deg(estimated_l5_s1_normal(l5, None, spine_axis=UP), _tilted(18.0)) < TOLERANCE_DEG
