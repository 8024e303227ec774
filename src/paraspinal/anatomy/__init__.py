"""Anatomy registry and label schemes, both loaded from validated TOML data files.

- :func:`load_registry` gives the :class:`AnatomyRegistry` of known structures and their hierarchy.
- :func:`load_scheme` gives a :class:`LabelScheme`: what each label value of a mask means
  (structure and patient side); :func:`list_schemes` names the bundled ones.
"""

from paraspinal.anatomy.registry import (
    CATEGORIES,
    AnatomyRegistry,
    Category,
    CodedConcept,
    Structure,
    load_registry,
)
from paraspinal.anatomy.schemes import SIDES, LabelEntry, LabelScheme, Side, list_schemes, load_scheme

__all__ = [
    "CATEGORIES",
    "SIDES",
    "AnatomyRegistry",
    "Category",
    "CodedConcept",
    "LabelEntry",
    "LabelScheme",
    "Side",
    "Structure",
    "list_schemes",
    "load_registry",
    "load_scheme",
]
