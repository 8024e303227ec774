"""Signals that predict a misnamed spine: how the named bodies of :func:`paraspinal.levels.spine_levels_from_labels`
sit along the column, and how far the level votes agree.

The typical failure is a numbering one level off: a real L5 taken for the top of the sacrum (every name shifts up),
a sacrum top or a thoracic body taken for a lumbar body, a missed body. Each such error leaves traces that do not
depend on the votes alone: the lowest piece is a whole lumbar-sized body rather than a sacral fragment, more bodies
are in view than there are lumbar classes, the spacing along the column jumps, the lowest piece is tilted or shaped
like a sacrum, or the field of view ends at it. All lengths are mm along the local column axis (the line through
neighbouring body centroids); ratios are natural logs (0 = like the neighbours).

Every signal is a float, oriented so that larger is more suspicious (the calibration keeps every weight >= 0); one
that cannot be measured (too few bodies) takes its neutral value 0. The margin signals need the model's
probability margin (``LabelMap.confidence["margin"]``); for a label map without one (given labels) they are NaN,
which the logistic model counts as no evidence either way.
"""

from __future__ import annotations

import numpy as np

from paraspinal.io.image import Image
from paraspinal.levels import SpineLevels
from paraspinal.levels.naming import NamedBodies

__all__ = ["MARGIN_SIGNALS", "SIGNALS", "level_signals"]

# name -> (neutral value, what it measures): the order is the order of the calibrated weights
SIGNALS: dict[str, tuple[float, str]] = {
    "vote_disagreement": (0.0, "1 - margin between the best and second-best numbering's votes (share of all votes)"),
    "body_disagreement": (0.0, "1 - the lowest share of a body's voxels voting for the name it got"),
    "extra_bodies": (0.0, "bodies in view beyond the five lumbar classes"),
    "sacrum_by_position": (0.0, "1 when the lowest piece was named S1 by its position (no sacrum class)"),
    "sacrum_like_body": (
        0.0,
        "for a piece named S1 by position: exp(-|log height ratio| - |log volume ratio|) to "
        "the bodies above (1 = a whole lumbar-sized body, 0 = a sacral fragment)",
    ),
    "lowest_height_dev": (0.0, "|log| of the lowest body's height over the median height of the bodies above"),
    "lowest_volume_dev": (0.0, "|log| of the lowest body's volume over the median volume of the bodies above"),
    "lowest_pitch_dev": (0.0, "|log| of the centroid spacing above the lowest piece over the median spacing above"),
    "pitch_irregularity": (0.0, "largest |log| of a centroid spacing over the median spacing (lowest one excluded)"),
    "height_irregularity": (0.0, "largest |log| of a body's height over the median (lowest piece and cut bodies out)"),
    "lowest_tilt_deg": (0.0, "angle between the lowest piece's thinnest axis and the column axis above it (deg)"),
    "lowest_flatness_dev": (0.0, "|log| of the lowest body's height/depth over the median of the bodies above"),
    "lowest_at_edge": (0.0, "1 when the lowest piece touches the inferior end of the field of view"),
    "top_at_edge": (0.0, "1 when the top body touches the superior end of the field of view"),
    "short_fov_below": (0.0, "1 - the field of view below the lowest piece / 40 mm (0 from 40 mm on)"),
    "weakest_body_margin": (
        0.0,
        "1 - the lowest mean probability margin (top-1 minus top-2) over a found piece's voxels (model output only)",
    ),
    "lowest_margin": (0.0, "1 - the mean probability margin over the lowest piece's voxels (model output only)"),
}
MARGIN_SIGNALS = ("weakest_body_margin", "lowest_margin")  # NaN (not measured) without the model's margin map
_PERCENTILE = 2.0  # extents are 2nd-98th percentiles of the voxels' positions (a stray voxel does not count)
_ENOUGH_BELOW_MM = 40.0


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def _extent(points: np.ndarray, direction: np.ndarray) -> float:
    t = points @ direction
    return float(np.percentile(t, 100 - _PERCENTILE) - np.percentile(t, _PERCENTILE))


def _log_ratio(value: float, reference: float) -> float:
    return float(np.log(value / reference)) if value > 0 and reference > 0 else 0.0


def level_signals(spine: SpineLevels, *, grid: Image, margin: Image | None = None) -> dict[str, float]:
    """The signals (see :data:`SIGNALS`) of ``spine``'s named bodies on the label ``grid`` they were found on;
    ``margin``: the model's top-1 minus top-2 probability on that grid (None: margin signals NaN).

    Levels from labelled discs (no named bodies) give every signal its neutral value.
    """
    out = {name: neutral for name, (neutral, _) in SIGNALS.items()}
    named: NamedBodies | None = spine.named
    if named is None or not named.names:
        return out
    # the pieces found in the image (a labelled sacrum anchor is not one of them: it was given)
    n = len(named.names) - (1 if named.counted_from_sacrum else 0)
    points = [v.points_mm for v in named.voxels[:n]]
    kinds = named.kinds[:n]
    body_conf = [c for c, k in zip(named.confidences[:n], kinds, strict=True) if k == "body"]
    # with a sacrum to count from the votes still say how well the count fits the labels (0 without votes)
    out["vote_disagreement"] = 1.0 - float(named.naming_confidence)
    out["body_disagreement"] = 1.0 - min(body_conf) if body_conf else 0.0
    out["extra_bodies"] = float(max(0, kinds.count("body") - 5))
    out["sacrum_by_position"] = float(not named.counted_from_sacrum and kinds[-1] == "sacrum")
    if margin is None:
        out.update(dict.fromkeys(MARGIN_SIGNALS, float("nan")))
    else:
        margins = [_mean_margin(p, margin) for p in points]
        out["weakest_body_margin"] = 1.0 - min(margins)
        out["lowest_margin"] = 1.0 - margins[-1]
    centroids = np.array([p.mean(axis=0) for p in points])
    axes = []
    for i in range(n):  # local column axis (cranial): central difference of the neighbours' centroids
        above, below = centroids[max(i - 1, 0)], centroids[min(i + 1, n - 1)]
        axes.append(_unit(above - below) if n > 1 else np.array([0.0, 0.0, 1.0]))
    heights = np.array([_extent(p, a) for p, a in zip(points, axes, strict=True)])
    depths = np.array([_extent(p, _unit(np.cross(a, [1.0, 0.0, 0.0]))) for p, a in zip(points, axes, strict=True)])
    volumes = np.array([len(p) for p in points], dtype=np.float64)
    top_edge, bottom_edge, below_mm = _edges(points, grid=grid, axis=axes[-1])
    out["lowest_at_edge"] = float(bottom_edge)
    out["top_at_edge"] = float(top_edge)
    out["short_fov_below"] = 1.0 - float(min(below_mm, _ENOUGH_BELOW_MM)) / _ENOUGH_BELOW_MM
    above = list(range(1 if top_edge else 0, n - 1))  # whole bodies above the lowest piece
    if above:
        height_log = _log_ratio(heights[-1], float(np.median(heights[above])))
        volume_log = _log_ratio(volumes[-1], float(np.median(volumes[above])))
        flat = heights / np.maximum(depths, 1e-6)
        flat_log = _log_ratio(flat[-1], float(np.median(flat[above])))
        if out["sacrum_by_position"]:
            out["sacrum_like_body"] = float(np.exp(-abs(height_log) - abs(volume_log)))
        else:
            out["lowest_height_dev"], out["lowest_volume_dev"] = abs(height_log), abs(volume_log)
            out["lowest_flatness_dev"] = abs(flat_log)
    if len(above) >= 2:
        typical = float(np.median(heights[above]))
        out["height_irregularity"] = float(np.max(np.abs(np.log(np.maximum(heights[above], 1e-6) / typical))))
    if n >= 3:
        pitches = np.linalg.norm(np.diff(centroids, axis=0), axis=1)
        reference = float(np.median(pitches[:-1]))
        out["lowest_pitch_dev"] = abs(_log_ratio(float(pitches[-1]), reference))
        if n >= 4:
            out["pitch_irregularity"] = float(np.max(np.abs(np.log(pitches[:-1] / reference))))
    if n >= 2:
        column = _unit(centroids[-3] - centroids[-2]) if n >= 3 else axes[-1]
        out["lowest_tilt_deg"] = _tilt_deg(points[-1], column)
    return out


def _mean_margin(points_mm: np.ndarray, margin: Image) -> float:
    """Mean of ``margin`` (0-1) at the voxels whose world positions are ``points_mm`` (N, 3)."""
    inverse = np.linalg.inv(margin.affine)
    ijk = np.rint(points_mm @ inverse[:3, :3].T + inverse[:3, 3]).astype(np.intp)
    ijk = np.clip(ijk, 0, np.array(margin.shape[:3]) - 1)
    values = np.asarray(margin.array)[ijk[:, 0], ijk[:, 1], ijk[:, 2]]
    return float(np.clip(values.astype(np.float64).mean(), 0.0, 1.0)) if len(values) else 1.0


def _tilt_deg(points: np.ndarray, column: np.ndarray) -> float:
    """Angle (deg, 0-90) between the piece's least-variance axis in the sagittal plane and ``column``."""
    centred = points - points.mean(axis=0)
    sagittal = centred[:, 1:]  # world y (A-P) and z (S-I): the plane the bodies are stacked in
    _values, vectors = np.linalg.eigh(sagittal.T @ sagittal)
    thin = np.array([0.0, *vectors[:, 0]])
    in_plane = _unit(np.array([0.0, column[1], column[2]]))
    return float(np.degrees(np.arccos(min(abs(float(thin @ in_plane)), 1.0))))


def _edges(points: list[np.ndarray], *, grid: Image, axis: np.ndarray) -> tuple[bool, bool, float]:
    """Whether the top / lowest piece touches the field of view's superior / inferior end (within one voxel)
    along the grid axis nearest the column, and the field of view left below the lowest piece (mm along it)."""
    matrix = grid.affine[:3, :3]
    inverse = np.linalg.inv(grid.affine)
    grid_axis = int(np.argmax(np.abs(matrix.T @ axis) / np.linalg.norm(matrix, axis=0)))
    up = float(matrix[:, grid_axis] @ axis) > 0  # index grows towards cranial
    size = grid.shape[grid_axis]
    step_mm = float(np.linalg.norm(matrix[:, grid_axis]))

    def rows(p: np.ndarray) -> np.ndarray:
        return p @ inverse[:3, :3].T[:, grid_axis] + inverse[grid_axis, 3]

    top_rows, low_rows = rows(points[0]), rows(points[-1])
    if up:
        top_edge = float(top_rows.max()) >= size - 1.5
        low_edge = float(low_rows.min()) <= 0.5
        below = float(low_rows.min()) * step_mm
    else:
        top_edge = float(top_rows.min()) <= 0.5
        low_edge = float(low_rows.max()) >= size - 1.5
        below = (size - 1 - float(low_rows.max())) * step_mm
    return top_edge, low_edge, max(below, 0.0)
