"""SPINEPS (Hendrik-code/spineps): a placeholder that says, in one line, what to do instead.

SPINEPS is its own package (``pip install "paraspinal[spineps]"``, PyPI ``spineps``) with its own model
loading (``spineps.get_models``) and a two-phase pipeline (semantic, then instance segmentation, then its
labelling) that paraspinal does not reproduce or call yet. Until it does, running SPINEPS is left to its own
tool, and its instance mask (``seg-vert``) is read with ``--labels FILE --scheme spineps``, which keeps
T13 and L6 under their own names.
"""

from __future__ import annotations

from pathlib import Path

from paraspinal.backends.catalog import BackendOptions
from paraspinal.errors import InputError

NOT_YET = (
    "paraspinal does not run SPINEPS models yet: run `spineps` itself and give its instance mask "
    "(seg-vert) with --labels FILE --scheme spineps"
)


class SpinepsBackend:
    """Refuses to build: see the module docstring."""

    name = "spineps"

    @classmethod
    def from_options(cls, model: Path | None, options: BackendOptions) -> SpinepsBackend:
        """Always a one-line :class:`InputError` (:data:`NOT_YET`)."""
        raise InputError(NOT_YET, path=model)
