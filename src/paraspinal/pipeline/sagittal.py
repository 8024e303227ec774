"""Levels from a sagittal image: segment the vertebral bodies (or take given labels), place the discs,
and put them on an axial stack. Shared by ``paraspinal levels`` and ``paraspinal run``.

Files written by :func:`write_levels_outputs` (names prefixed by ``prefix``):
``levels.csv`` (one row per disc: level, centre_x/y/z_mm, normal_x/y/z, confidence, estimated, and
with an axial stack disc_slice, distance_mm, signed_distance_mm, angle_deg, slice_start,
slice_stop), ``levels.json`` (the same plus bodies, sources, method and notes), ``levels_qc.png``
(sagittal QC) and, when the sagittal image was segmented, ``sagittal_dseg.nii.gz``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from paraspinal import __version__
from paraspinal.anatomy import LabelScheme, load_registry, load_scheme
from paraspinal.backends import SegmentationBackend, UNetOnnxBackend, bundled_model_dir
from paraspinal.errors import GeometryError, InputError
from paraspinal.io import Image, check_same_grid, image_suffix, read_image, read_label_map, write_label_map
from paraspinal.io.dicom import is_dicom_path
from paraspinal.io.dicom_select import SeriesChoice
from paraspinal.levels import AxialLevels, SpineLevels, match_axial, spine_levels_from_labels
from paraspinal.levels.axial_match import DEFAULT_TOLERANCE_MM
from paraspinal.levels.naming import name_bodies, named_label_map
from paraspinal.levels.spine import METHOD_BODIES
from paraspinal.pipeline.cases import Case, sagittal_from_dicom, uses_sagittal_levels
from paraspinal.reporting import AtomicOutputs
from paraspinal.reporting.qc import QcImage
from paraspinal.reporting.qc_sagittal import plot_sagittal_levels
from paraspinal.safe_text import write_csv

SPINE_MODEL = "lumbar_spine"
NIFTI_ASSUMPTION = (
    "no DICOM frame of reference on both images: the sagittal and axial images are assumed to share scanner "
    "coordinates (checked only by the disc centres lying within the axial stack)"
)


@dataclass(frozen=True)
class SagittalLevels:
    """Everything ``levels`` found for one sagittal image (and, optionally, one axial stack)."""

    sagittal: Image
    labels: Image
    scheme: LabelScheme
    spine: SpineLevels
    matched: AxialLevels | None = None
    axial: Image | None = None
    segmented: bool = False
    model: dict[str, object] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def source(self) -> str:
        """How the levels were found, for level tables and manifests."""
        how = f"model {self.model.get('name', SPINE_MODEL)}" if self.segmented else f"labels ({self.scheme.key})"
        return f"sagittal {Path(self.sagittal.source).name} ({how}, {self.spine.method})"


def spine_model_installed() -> bool:
    """Whether the bundled ``lumbar_spine`` model folder holds a model card."""
    return (bundled_model_dir(SPINE_MODEL) / "model.json").is_file()


def spine_backend(*, device: str = "cpu", threads: int | None = None) -> SegmentationBackend:
    """The bundled sagittal vertebral-body model; a one-line InputError when it is not installed."""
    if not spine_model_installed():
        raise InputError(
            f"the bundled {SPINE_MODEL} model is not installed; give the sagittal label map with --labels and --scheme"
        )
    return UNetOnnxBackend(bundled_model_dir(SPINE_MODEL), device=device, test_time_flip=False, threads=threads)


def segment_sagittal(backend: SegmentationBackend, sagittal: Image) -> tuple[Image, LabelScheme, dict[str, object]]:
    """The backend's label map of ``sagittal`` (integer, on its grid), its scheme and provenance."""
    result = backend.segment(sagittal)
    labels = result.labels
    if labels.shape != sagittal.shape or not np.allclose(labels.affine, sagittal.affine, atol=1e-4):
        raise GeometryError(
            f"spine model returned labels of shape {labels.shape} not on the sagittal grid {sagittal.shape}",
            path=sagittal.source,
        )
    array = labels.array if np.issubdtype(labels.array.dtype, np.integer) else np.rint(labels.array).astype(np.int32)
    provenance = dict(getattr(backend, "provenance", {}) or {})
    provenance.setdefault("name", getattr(backend, "name", type(backend).__name__))
    return Image(array, sagittal.affine.copy(), source=f"{sagittal.source} (segmented)"), result.scheme, provenance


def sagittal_levels(
    sagittal: Image,
    *,
    labels: Image | None = None,
    scheme: LabelScheme | None = None,
    backend: SegmentationBackend | None = None,
    axial: Image | None = None,
    assume_aligned: bool = False,
    tolerance_mm: float = DEFAULT_TOLERANCE_MM,
) -> SagittalLevels:
    """Disc planes of ``sagittal`` from ``labels`` (with ``scheme``) or, without labels, from ``backend``;
    placed on ``axial`` when given (see :func:`paraspinal.levels.match_axial`)."""
    model: dict[str, object] = {}
    if labels is not None:
        if scheme is None:
            raise InputError("a sagittal label map needs its label scheme", path=labels.source)
        labels = check_same_grid(sagittal, labels, assume_aligned=assume_aligned)
        scheme.check_values(np.unique(labels.array), path=labels.source)
        segmented = False
    else:
        if backend is None:
            raise InputError(
                "no sagittal label map and no spine model to segment the sagittal image", path=sagittal.source
            )
        labels, scheme, model = segment_sagittal(backend, sagittal)
        segmented = True
    spine = spine_levels_from_labels(labels, scheme=scheme)
    if segmented and spine.method == METHOD_BODIES:
        # the model's voxel labels are level votes; what we write is each body with the name it was given
        registry = load_registry()
        named = name_bodies(labels, scheme=scheme, registry=registry)
        labels = named_label_map(labels, named, scheme=scheme, registry=registry)
    result = SagittalLevels(sagittal, labels, scheme, spine, segmented=segmented, model=model)
    notes = list(spine.warnings)
    matched = None
    if axial is not None:
        frames = [img.metadata.get("frame_of_reference_uid") for img in (sagittal, axial)]
        if not all(frames):
            notes.append(NIFTI_ASSUMPTION)
        matched = match_axial(spine, axial, sagittal=sagittal, tolerance_mm=tolerance_mm, source=result.source)
        notes.extend(matched.warnings)
    return SagittalLevels(
        sagittal, labels, scheme, spine, matched=matched, axial=axial, segmented=segmented, model=model,
        notes=tuple(notes),
    )  # fmt: skip


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


def case_sagittal_levels(
    case: Case,
    *,
    labels: Image,
    axial: Image,
    levels_csv: str | Path | None,
    sagittal_scheme: str,
    assume_aligned: bool,
    backend: SegmentationBackend | str | None,
) -> tuple[SagittalLevels | None, tuple[str, ...]]:
    """Levels from the case's sagittal image (a DICOM study's sagittal series too), with notes; None when the
    case has none, a levels CSV applies, or no spine model is available for an unlabelled sagittal image."""
    if case.sagittal is None and case.levels is None and levels_csv is None:
        case = sagittal_from_dicom(case)
    if not uses_sagittal_levels(case, levels_csv=levels_csv):
        return None, ()
    assert case.sagittal is not None
    if case.sagittal_labels is None and not isinstance(backend, SegmentationBackend):
        reason = backend if isinstance(backend, str) else "no spine model was given"
        return None, (f"sagittal image {case.sagittal.name} not used for levels: {reason}",)
    sagittal = read_image(case.sagittal, series=_sagittal_choice(case.sagittal, case.sagittal_series))
    sagittal_labels = None
    if case.sagittal_labels is not None:
        sagittal_labels = read_label_map(case.sagittal_labels, series=_sagittal_choice(case.sagittal_labels, None))
    grid = Image(labels.array, labels.affine, source=axial.source, metadata=dict(axial.metadata))
    result = sagittal_levels(
        sagittal,
        labels=sagittal_labels,
        scheme=load_scheme(sagittal_scheme) if sagittal_labels is not None else None,
        backend=backend if sagittal_labels is None and isinstance(backend, SegmentationBackend) else None,
        axial=grid,
        assume_aligned=assume_aligned,
    )
    return result, result.notes


def _sagittal_choice(path: Path, series_key: str | None) -> SeriesChoice | None:
    """DICOM series choice of a sagittal input: its series key when known, else the sagittal plane."""
    if image_suffix(path) is not None or not is_dicom_path(path):
        return None
    return SeriesChoice(uids=(series_key,)) if series_key else SeriesChoice(plane="sagittal")
