"""Quality of a muscle segmentation: per structure/side and per slice, from signals scored by calibrated data.

:func:`assess_muscles` measures the signals of :mod:`.muscle_signals` (model confidence when the label map
carries it, anatomy and intensity always), turns each slice's signals into a score with the calibrated slice
model, then each structure's summary into a score with the structure model (:mod:`.muscle_model`, weights and
thresholds in ``data/muscle.toml``). Reasons name the signals that pushed a score down, with their values.
"""

from __future__ import annotations

from collections.abc import Mapping

from paraspinal.errors import GeometryError
from paraspinal.io import Image, LabelMap
from paraspinal.quality.assessment import Assessment, StructureQuality, status_of
from paraspinal.quality.logistic import LogisticModel
from paraspinal.quality.muscle_model import MuscleModel, load_muscle_model
from paraspinal.quality.muscle_signals import StructureSignals, muscle_signals, structure_features

__all__ = ["assess_muscles", "slice_reason", "structure_reason"]

_MAX_SLICES_LISTED = 8
# the paraspinal muscles every lumbar axial slice shows: absent ones are flagged, not passed as ok
EXPECTED_STRUCTURES = frozenset({"erector_spinae", "multifidus", "autochthon"})


def assess_muscles(
    *, label_map: LabelMap, image: Image, model: MuscleModel | None = None
) -> tuple[StructureQuality, ...]:
    """One :class:`StructureQuality` per structure and side of ``label_map``'s scheme, with an assessment of
    every slice inside the label map's extent (first to last slice with any label; ``image``: intensities on the label
    grid; ``model``: the calibrated model, default the bundled one)."""
    if image.shape != label_map.shape:
        raise GeometryError(
            f"image {image.shape} and label map {label_map.shape} are not on one grid", path=image.source
        )
    model = model if model is not None else load_muscle_model()
    confident = "margin" in label_map.confidence
    slice_model = model.pick("slice", confidence=confident)
    structure_model = model.pick("structure", confidence=confident)
    signals = muscle_signals(label_map, image)
    volumes = {(s.structure, s.side): s.volume_mm3 for s in signals}
    out: list[StructureQuality] = []
    for sig in signals:
        slices: dict[int, Assessment] = {}
        risks: dict[int, float] = {}
        for k, values in sig.slices.items():
            risks[k] = slice_model.risk(values)
            names = _drivers(slice_model, values, model.reason_min_logit)
            slices[k] = _assessment(slice_model, risks[k], [slice_reason(n, sig, k) for n in names])
        other = {"left": "right", "right": "left"}.get(sig.side, "")
        other_volume = volumes.get((sig.structure, other))
        features = structure_features(sig, risks, other_volume)
        names = _drivers(structure_model, features, model.reason_min_logit)
        reasons = [structure_reason(n, features, sig, other_volume) for n in names]
        flagged = [k for k, a in slices.items() if a.status != "ok"]
        if flagged:
            listed = ", ".join(str(k) for k in flagged[:_MAX_SLICES_LISTED])
            more = ", ..." if len(flagged) > _MAX_SLICES_LISTED else ""
            reasons.insert(0, f"{len(flagged)} of {len(slices)} slices flagged ({listed}{more})")
        out.append(
            StructureQuality(
                sig.structure, sig.side, _assessment(structure_model, structure_model.risk(features), reasons), slices
            )
        )
    return tuple(_absences(out, volumes, label_map=label_map, slice_model=slice_model))


def _absences(
    assessed: list[StructureQuality],
    volumes: Mapping[tuple[str, str], float],
    *,
    label_map: LabelMap,
    slice_model: LogisticModel,
) -> list[StructureQuality]:
    """Make absences visible: an expected structure (:data:`EXPECTED_STRUCTURES`, or one whose other side is
    labelled) with no voxel fails, on every slice; a slice of the image with no label at all, outside the
    assessed extent, is ``review`` for each expected structure (a lumbar axial slice shows them)."""
    import numpy as np

    n_slices = label_map.shape[2]
    labelled = np.any(label_map.array > 0, axis=(0, 1))
    t = slice_model.thresholds
    middle = (t.ok + t.fail) / 2.0
    out = []
    for sq in assessed:
        other = {"left": "right", "right": "left"}.get(sq.side, "")
        other_present = volumes.get((sq.structure, other), 0.0) > 0
        expected = sq.structure in EXPECTED_STRUCTURES
        if volumes.get((sq.structure, sq.side), 0.0) <= 0 and (expected or other_present):
            why = f"not found, while the {other} side is" if other_present else "not found in the image"
            slices = {k: Assessment("fail", 0.0, (why,)) for k in range(n_slices)}
            out.append(StructureQuality(sq.structure, sq.side, Assessment("fail", 0.0, (why,)), slices))
            continue
        if expected:
            empty = {
                k: Assessment("review", middle, ("no muscle labelled on this slice",))
                for k in range(n_slices)
                if not labelled[k] and k not in sq.slices
            }
            if empty:
                sq = StructureQuality(sq.structure, sq.side, sq.assessment, {**sq.slices, **empty})
        out.append(sq)
    return out


def _drivers(model: LogisticModel, values: Mapping[str, float], min_logit: float) -> list[str]:
    """The (up to 3) features whose logit terms push the risk up by at least ``min_logit``, largest first.

    Every signal is a badness (larger = worse); a term that raises the risk because a signal is *lower* than
    usual (a negative weight, a side effect of correlated signals in the fit) is not given as a reason."""
    terms = zip(model.contributions(values), model.weights, model.features, strict=True)
    ranked = sorted(((term, name) for term, weight, name in terms if weight > 0), reverse=True)
    return [name for term, name in ranked[:3] if term >= min_logit]


def _assessment(model: LogisticModel, risk: float, reasons: list[str]) -> Assessment:
    """Score ``1 - risk``, its status, and (unless ok) the non-empty reasons."""
    score = 1.0 - risk
    status = status_of(score, model.thresholds)
    if status == "ok":
        return Assessment(status, score)
    text = tuple(dict.fromkeys(r for r in reasons if r))
    return Assessment(status, score, text or ("several weak signals together",))


def slice_reason(name: str, sig: StructureSignals, k: int) -> str:
    """A one-line reason for slice signal ``name`` of ``sig`` on slice ``k``."""
    v, f = sig.slices[k], sig.facts[k]
    text = {
        "missing": "no voxels on this slice, inside the labelled extent",
        "area_drop": f"area {f['area_mm2']:.0f} mm² vs {f['neighbour_area_mm2']:.0f} mm² on neighbouring slices",
        "lr_asym": f"area {f['area_mm2']:.0f} mm² vs {f.get('other_area_mm2', 0.0):.0f} mm² on the other side",
        "low_margin": f"model unsure: {v['low_margin']:.0%} of voxels with probability margin < 0.5",
        "margin_deficit": f"model unsure: mean probability margin {f.get('margin', 0.0):.2f}",
        "mirror_disagreement": f"plain and mirrored passes disagree (agreement {1 - v['mirror_disagreement']:.2f})",
        "fragments": f"{v['fragments']:.0%} of the area apart from the main piece",
        "intensity_z": f"intensity unlike the rest of the structure (robust z {f.get('intensity_z', 0.0):+.1f})",
        "outlier_fraction": f"{v['outlier_fraction']:.0%} of voxels with intensities unlike the rest of the structure",
        "offset_cm": f"centroid {v['offset_cm'] * 10:.0f} mm from the neighbouring slices' centroids",
        "position_cm": f"centroid {v['position_cm'] * 10:.0f} mm from the structure's median position",
        "wrong_side_cm": f"centroid {v['wrong_side_cm'] * 10:.0f} mm across the midline",
        "mf_lateral_cm": f"multifidus {v['mf_lateral_cm'] * 10:.0f} mm lateral to erector spinae",
        "mf_anterior_cm": f"multifidus {v['mf_anterior_cm'] * 10:.0f} mm anterior to erector spinae",
    }[name]
    return f"slice {k}: {text}"


def structure_reason(
    name: str, features: Mapping[str, float], sig: StructureSignals, other_volume_mm3: float | None
) -> str:
    """A one-line reason for structure signal ``name`` (empty when the slice list says it already)."""
    if name == "missing_fraction":
        return f"missing on {features[name]:.0%} of the slices in the labelled extent"
    if name == "fragments_3d":
        return f"{features[name]:.0%} of the volume apart from the largest piece"
    if name == "volume_asym":
        other = (other_volume_mm3 or 0.0) / 1000.0
        return f"volume {sig.volume_mm3 / 1000:.1f} cm³ vs {other:.1f} cm³ on the other side"
    if name == "margin_deficit":
        return f"model unsure: mean probability margin {1 - features[name]:.2f}"
    if name == "mirror_disagreement":
        return f"plain and mirrored passes disagree (mean agreement {1 - features[name]:.2f})"
    return ""  # slice risks: the flagged-slice list says it
