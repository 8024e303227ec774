"""The ``measure`` job: label map (+ images, levels) from files -> tidy tables on disk."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from paraspinal.anatomy import load_registry, load_scheme
from paraspinal.errors import InputError
from paraspinal.io import Image, check_same_grid, read_image, read_label_map, strip_image_suffix
from paraspinal.io.orientation import axial_frame
from paraspinal.levels import LevelTable, levels_from_disc_mask, read_levels_csv
from paraspinal.measurement import INFILTRATION_METHODS, Measurements, measure_case
from paraspinal.reporting import AtomicOutputs, write_measurements

_ROLE_SUFFIX = re.compile(r"[_\-.](water|fat|labels?|seg|dseg|mask|t1|t2|img|image)$", re.IGNORECASE)


def case_id_from_path(path: str | Path) -> str:
    """Case id from a file name: image suffix and a trailing role word removed (``TUM01_water.nii.gz`` -> ``TUM01``)."""
    stem = strip_image_suffix(path)
    while True:
        shorter = _ROLE_SUFFIX.sub("", stem)
        if shorter == stem or not shorter:
            return stem
        stem = shorter


@dataclass(frozen=True)
class MeasureRequest:
    """Everything ``paraspinal measure`` needs for one case (paths, not data)."""

    labels: Path
    out_dir: Path
    image: Path | None = None
    image_name: str = "image"
    water: Path | None = None
    fat: Path | None = None
    levels: Path | None = None
    scheme: str = "lpm4"
    case_id: str | None = None
    assume_aligned: bool = False
    infiltration_methods: tuple[str, ...] = INFILTRATION_METHODS
    seed: int = 0


@dataclass(frozen=True)
class MeasureResult:
    case_id: str
    measurements: Measurements
    levels: LevelTable | None
    files: dict[str, Path] = field(default_factory=dict)


def measure_request(request: MeasureRequest) -> MeasureResult:
    """Read, check, measure and write one case; nothing is written unless every step succeeds."""
    if (request.water is None) != (request.fat is None):
        given = request.water or request.fat
        raise InputError("Dixon fat fraction needs both --water and --fat", path=given)
    scheme = load_scheme(request.scheme)
    labels = read_label_map(request.labels)
    images: dict[str, Image | None] = {}
    for role, path in (("water", request.water), ("fat", request.fat), ("image", request.image)):
        images[role] = (
            None if path is None else check_same_grid(labels, read_image(path), assume_aligned=request.assume_aligned)
        )
    case_id = request.case_id or case_id_from_path(request.image or request.water or request.labels)
    levels = _levels(request, labels=labels, scheme_key=request.scheme, case_id=case_id)
    measurements = measure_case(
        labels,
        scheme=scheme,
        case_id=case_id,
        water=images["water"],
        fat=images["fat"],
        image=images["image"],
        image_name=request.image_name,
        levels=levels,
        infiltration_methods=request.infiltration_methods,
        seed=request.seed,
    )
    inputs = {
        k: str(v)
        for k, v in (
            ("labels", request.labels),
            ("water", request.water),
            ("fat", request.fat),
            ("image", request.image),
            ("levels", request.levels),
        )
        if v is not None
    }
    with AtomicOutputs(request.out_dir) as outputs:
        files = write_measurements(measurements, outputs, case_id=case_id, levels=levels, inputs=inputs)
    return MeasureResult(case_id, measurements, levels, files)


def _levels(request: MeasureRequest, *, labels: Image, scheme_key: str, case_id: str) -> LevelTable | None:
    """Levels from the CSV when given, else from named discs in the label map, else none (per slice only)."""
    n_slices = axial_frame(labels).n_slices
    if request.levels is not None:
        return read_levels_csv(request.levels, n_slices=n_slices, case_id=case_id)
    scheme = load_scheme(scheme_key)
    registry = load_registry()
    present = {int(v) for v in np.unique(labels.array)} & set(scheme.values)
    has_named_discs = any(
        registry[scheme.entry(v).structure].category == "disc" and registry[scheme.entry(v).structure].level
        for v in present
    )
    return levels_from_disc_mask(labels, scheme=scheme, registry=registry) if has_named_discs else None
