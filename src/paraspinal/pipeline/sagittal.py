"""Levels from a sagittal image: segment the vertebral bodies (or take given labels), place the discs,
and put them on an axial stack. Shared by ``paraspinal levels`` and ``paraspinal run``.

Files written by :func:`write_levels_outputs` (names prefixed by ``prefix``):
``levels.csv`` (one row per disc: level, centre_x/y/z_mm, normal_x/y/z, confidence, estimated, and
with an axial stack disc_slice, distance_mm, signed_distance_mm, angle_deg, slice_start,
slice_stop), ``levels.json`` (the same plus bodies, sources, method, notes and ``quality``: ``{"status", "score",
"reasons"}`` of the level names), ``levels_qc.png``
(sagittal QC) and, when the sagittal image was segmented, ``sagittal_dseg.nii.gz``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from paraspinal import __version__
from paraspinal.anatomy import LabelScheme, load_registry
from paraspinal.backends import SegmentationBackend, segment_on_grid
from paraspinal.errors import InputError
from paraspinal.io import Image, LabelMap, write_label_map
from paraspinal.levels import AxialLevels, SpineLevels, match_axial, spine_levels_from_labels
from paraspinal.levels.axial_match import DEFAULT_TOLERANCE_MM
from paraspinal.levels.naming import named_label_map
from paraspinal.quality import Assessment
from paraspinal.quality.levels import assess_levels
from paraspinal.reporting import AtomicOutputs
from paraspinal.reporting.qc import QcImage
from paraspinal.reporting.qc_sagittal import plot_sagittal_levels
from paraspinal.safe_text import write_csv

NIFTI_ASSUMPTION = (
    "no DICOM frame of reference on both images: the sagittal and axial images are assumed to share scanner "
    "coordinates (checked only by the disc centres lying within the axial stack)"
)


@dataclass(frozen=True)
class SagittalLevels:
    """Everything ``levels`` found for one sagittal image (and, optionally, one axial stack).

    ``label_map`` is the sagittal label map: given, or the spine model's with each body relabelled to the
    level it was named (its provenance says which). ``quality``: how far to trust the level names
    (:func:`paraspinal.quality.levels.assess_levels`).
    """

    sagittal: Image
    label_map: LabelMap
    spine: SpineLevels
    matched: AxialLevels | None = None
    axial: Image | None = None
    notes: tuple[str, ...] = ()
    quality: Assessment | None = None

    @property
    def segmented(self) -> bool:
        return self.label_map.provenance.segmented

    @property
    def labels(self) -> Image:
        return self.label_map.labels

    @property
    def scheme(self) -> LabelScheme:
        return self.label_map.scheme

    @property
    def model(self) -> dict[str, object]:
        return dict(self.label_map.provenance.model)

    @property
    def source(self) -> str:
        """How the levels were found, for level tables and manifests."""
        model = self.model.get("model") or self.model.get("name", "?")
        how = f"model {model}" if self.segmented else f"labels ({self.scheme.key})"
        return f"sagittal {Path(self.sagittal.source).name} ({how}, {self.spine.method})"


def sagittal_levels(
    sagittal: Image,
    *,
    labels: LabelMap | None = None,
    backend: SegmentationBackend | None = None,
    axial: Image | None = None,
    tolerance_mm: float = DEFAULT_TOLERANCE_MM,
) -> SagittalLevels:
    """Disc planes of ``sagittal`` from ``labels`` (on its grid) or, without labels, from the spine model
    ``backend``; placed on ``axial`` when given (see :func:`paraspinal.levels.match_axial`)."""
    if labels is None:
        if backend is None:
            raise InputError(
                "no sagittal label map and no spine model to segment the sagittal image", path=sagittal.source
            )
        labels = segment_on_grid(backend, sagittal)
    spine = spine_levels_from_labels(labels)
    quality = assess_levels(spine=spine, label_map=labels)
    if labels.provenance.segmented and spine.named is not None:
        # the model's voxel labels are level votes; what we keep is each body with the name it was given
        registry = load_registry()
        named = named_label_map(labels.labels, spine.named, scheme=labels.scheme, registry=registry)
        labels = labels.with_labels(named, step={"step": "bodies named", "method": spine.method})
    notes = list(spine.warnings)
    if quality.status != "ok":
        notes.append(quality_note(quality))
    matched = None
    if axial is not None:
        frames = [img.metadata.get("frame_of_reference_uid") for img in (sagittal, axial)]
        if not all(frames):
            notes.append(NIFTI_ASSUMPTION)
        source = SagittalLevels(sagittal, labels, spine).source
        matched = match_axial(spine, axial, sagittal=sagittal, tolerance_mm=tolerance_mm, source=source)
        notes.extend(matched.warnings)
    return SagittalLevels(sagittal, labels, spine, matched=matched, axial=axial, notes=tuple(notes), quality=quality)


def quality_note(quality: Assessment) -> str:
    """The warning line of a levels assessment that is not ``ok``."""
    because = "; ".join(quality.reasons) or "no single reason"
    return (
        f"level names need {'review' if quality.status == 'review' else 'checking: likely wrong'} "
        f"(quality {quality.status}, score {quality.score:.2f}): {because}; check the QC image (a real L5 taken for "
        "the sacrum, or a missed or extra body, shifts every name by one)"
    )


def levels_frame(result: SagittalLevels):
    """The levels CSV table: per disc, with the axial match columns when there is one."""
    if result.matched is not None:
        return result.matched.to_frame()
    return result.spine.to_frame()


def levels_document(result: SagittalLevels) -> dict[str, object]:
    """The ``levels.json`` content (JSON-ready)."""
    frame = levels_frame(result)
    return {
        "paraspinal_version": __version__,
        "sagittal": result.sagittal.source,
        "axial": None if result.axial is None else result.axial.source,
        "source": result.source,
        "method": result.spine.method,
        "segmented": result.segmented,
        "model": {k: v for k, v in result.model.items() if isinstance(v, str | int | float | bool)},
        "scheme": result.scheme.key,
        "naming_confidence": result.spine.naming_confidence,
        "quality": result.quality.to_json() if result.quality is not None else None,
        "notes": list(result.notes),
        "conventions": "world coordinates RAS+ mm; normals are unit vectors pointing cranial; slice ranges half-open",
        "levels": json.loads(frame.to_json(orient="records")),
        "bodies": [
            {
                "name": b.name,
                "kind": b.kind,
                "centroid_mm": list(b.centroid_mm),
                "axis": list(b.axis),
                "volume_mm3": b.volume_mm3,
                "confidence": b.confidence,
            }
            for b in result.spine.bodies
        ],
    }


def write_levels_outputs(
    outputs: AtomicOutputs,
    result: SagittalLevels,
    *,
    prefix: str = "",
    dseg_name: str = "sagittal_dseg.nii.gz",
    qc: bool = True,
) -> dict[str, Path]:
    """Stage ``{prefix}levels.csv``, ``{prefix}levels.json``, ``{prefix}levels_qc.png`` (when ``qc``) and,
    when the sagittal image was segmented, its label map as ``dseg_name``."""
    written: dict[str, Path] = {}

    def stage(kind: str, name: str) -> Path:
        written[kind] = outputs.out_dir / name
        return outputs.path(name)

    write_csv(levels_frame(result), stage("levels_csv", f"{prefix}levels.csv"))
    stage("levels_json", f"{prefix}levels.json").write_text(json.dumps(levels_document(result), indent=2), "utf-8")
    if qc:
        plot_sagittal_levels(
            result.sagittal,
            spine=result.spine,
            labels=result.labels,
            axial=result.axial,
            matched=result.matched,
            title=f"Levels: {Path(result.sagittal.source).name}",
            path=stage("levels_qc", f"{prefix}levels_qc.png"),
        )
    if result.segmented:
        write_label_map(result.labels, stage("sagittal_dseg", dseg_name), compressed=dseg_name.endswith(".gz"))
    return written


def sagittal_qc_image(written: dict[str, Path], result: SagittalLevels) -> QcImage | None:
    """The staged sagittal levels QC image as a case page shows it (None when none was written)."""
    path = written.get("levels_qc")
    if path is None:
        return None
    how = "segmented by the spine model" if result.segmented else f"labels in scheme {result.scheme.key}"
    caption = (
        f"Mid-sagittal slice of {Path(result.sagittal.source).name} ({how}): named bodies, disc planes and "
        "confidences" + (", with the axial slice planes and the slice chosen per disc" if result.matched else "")
    )
    return QcImage(kind="sagittal", path=Path(path.name), title="Sagittal levels", caption=caption)
