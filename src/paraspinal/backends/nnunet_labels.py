"""Map an nnU-Net model's label list onto a paraspinal label scheme (shared by the v1 and v2 backends).

nnU-Net models name their output values in ``dataset.json``: v2 writes ``{"labels": {"background": 0,
"ES": 1, ...}}``, v1 writes ``{"labels": {"0": "background", "1": "ES1", ...}}``. The scheme is chosen
in this order:

1. the user's ``--scheme`` (a bundled key or a TOML/JSON file), which must cover every model value;
2. a published model this module knows by its exact value -> name list (``KNOWN_MODELS``), e.g.
   LPM_Segmentator's Task515 (``ES1, MF1, ES2, MF2`` -> ``lpm4``; the names there do not say the side);
3. a bundled scheme whose label names equal the model's names for every value (case, ``_``/``-`` and
   spaces ignored), e.g. TotalSegmentator's ``total_mr``;
4. otherwise a one-line error asking for ``--scheme``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from paraspinal.anatomy import LabelScheme, list_schemes, load_scheme
from paraspinal.errors import InputError, LabelSchemeError

#: Published models identified by their exact label list (value -> dataset.json name) -> bundled scheme key.
KNOWN_MODELS: tuple[tuple[dict[int, str], str], ...] = (
    # LPM_Segmentator, nnunet/dataset_conversion/515_muscle_4class_seg.py (Task515_muscle).
    ({1: "ES1", 2: "MF1", 3: "ES2", 4: "MF2"}, "lpm4"),
)

#: nnU-Net v1 trainer folders carry no label names; these task folder names identify published models.
KNOWN_V1_TASKS: dict[str, str] = {"Task515_muscle": "lpm4"}


def dataset_labels(dataset: Mapping[str, object], *, path: str | Path) -> dict[int, str]:
    """Output value -> name from a dataset.json's ``labels`` (background and nnU-Net's ``ignore`` left out).

    Region-based v2 models (a label maps to a list of values) output the values of
    ``regions_class_order`` in the order the regions are listed.
    """
    labels = dataset.get("labels")
    if not isinstance(labels, Mapping) or not labels:
        raise InputError("dataset.json has no 'labels' table", path=path)
    out: dict[int, str] = {}
    try:
        if all(_is_int_text(key) for key in labels):  # v1: {"0": "background", "1": "ES1"}
            for key, name in labels.items():
                out[int(key)] = str(name)
        else:  # v2: {"background": 0, "ES": 1} or regions {"whole": [1, 2, 3]}
            regions_order = dataset.get("regions_class_order")
            region_index = 0
            for name, value in labels.items():
                if name == "ignore":
                    continue
                if isinstance(value, (list, tuple)):
                    if value == [0] or value == (0,) or list(value) == []:
                        continue
                    if not isinstance(regions_order, (list, tuple)) or region_index >= len(regions_order):
                        raise InputError("region-based labels need 'regions_class_order' in dataset.json", path=path)
                    out[int(regions_order[region_index])] = str(name)
                    region_index += 1
                else:
                    out[int(value)] = str(name)
    except (TypeError, ValueError):
        raise InputError("dataset.json 'labels' must map names to integer values", path=path) from None
    out.pop(0, None)
    if not out:
        raise InputError("dataset.json lists no foreground labels", path=path)
    return dict(sorted(out.items()))


def resolve_scheme(
    labels: Mapping[int, str], *, override: str | None, path: str | Path, hint: str | None = None
) -> LabelScheme:
    """The label scheme for a model with output ``labels`` (value -> name); see the module docstring.

    ``hint`` is a bundled scheme key found by other means (a known v1 task folder); it is used only
    when it covers every value. Errors name ``path`` (the model folder or its dataset.json).
    """
    if override is not None:
        try:
            scheme = load_scheme(override)
        except LabelSchemeError as exc:
            raise InputError(f"--scheme: {exc}") from None
        missing = sorted(set(labels) - set(scheme.values))
        if missing:
            raise InputError(
                f"scheme '{scheme.key}' does not cover the model's label values {missing} "
                f"({', '.join(f'{v}={labels[v]}' for v in missing)})",
                path=path,
            )
        return scheme
    plain = dict(labels)
    for known, key in KNOWN_MODELS:
        if known == plain:
            return load_scheme(key)
    if hint is not None:
        scheme = load_scheme(hint)
        if set(labels) <= set(scheme.values):
            return scheme
    matches = [scheme for scheme in (load_scheme(key) for key in list_schemes()) if _names_match(labels, scheme)]
    if matches:
        # Prefer the scheme with the fewest values the model does not produce; ties by key.
        return min(matches, key=lambda s: (len(s.values) - len(labels), s.key))
    shown = ", ".join(f"{value}={name}" for value, name in list(labels.items())[:8])
    more = f", ... ({len(labels)} labels)" if len(labels) > 8 else ""
    raise InputError(
        f"no bundled label scheme matches the model's labels ({shown}{more}); "
        "pass --scheme with a bundled scheme key or a scheme TOML file",
        path=path,
    )


def dataset_scheme(dataset: Mapping[str, object], *, override: str | None, path: str | Path) -> LabelScheme:
    """The label scheme for the labels of a dataset.json (read from ``path``); see :func:`resolve_scheme`."""
    return resolve_scheme(dataset_labels(dataset, path=path), override=override, path=path)


def _names_match(labels: Mapping[int, str], scheme: LabelScheme) -> bool:
    for value, name in labels.items():
        entry = scheme.labels.get(value)
        if entry is None or _normal(entry.name) != _normal(name):
            return False
    return True


def _normal(name: str) -> str:
    return re.sub(r"[\s_\-]+", " ", name.strip().lower())


def _is_int_text(key: object) -> bool:
    return isinstance(key, str) and key.strip().lstrip("-").isdigit()
