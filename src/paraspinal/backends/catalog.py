"""Every segmentation backend paraspinal knows, whether it is installed, and how to build one.

A backend class named by :class:`BackendSpec.target` provides
``from_options(model: Path | None, options: BackendOptions) -> SegmentationBackend``: it checks the
model folder, loads the weights once and returns a ready backend. Heavy libraries are imported
only there, so listing backends never imports torch.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from paraspinal.anatomy import LabelScheme
from paraspinal.backends.base import BackendInfo, SegmentationBackend
from paraspinal.backends.bundled import BUNDLED_MODELS, Role, bundled_model_dir
from paraspinal.backends.model_catalogue import ModelCatalogue, load_catalogue
from paraspinal.backends.model_store import installed_folder
from paraspinal.backends.specs import (
    BACKENDS,
    BackendOptions,
    BackendSpec,
    install_command,
    missing_requirements,
)
from paraspinal.errors import InputError
from paraspinal.io.image import Image
from paraspinal.io.label_map import LabelMap


def backend_spec(name: str) -> BackendSpec:
    """The catalog entry for ``name``; a one-line error listing the known names otherwise (looked up in this
    module's :data:`BACKENDS`)."""
    for spec in BACKENDS:
        if spec.name == name:
            return spec
    known = ", ".join(s.name for s in BACKENDS)
    raise InputError(f"unknown backend '{name}' (known: {known})")


def backend_info(spec: BackendSpec) -> BackendInfo:
    """Whether ``spec`` is installed, what is missing, and what model folder it needs."""
    missing = missing_requirements(spec)
    return BackendInfo(
        name=spec.name,
        description=spec.description,
        installed=not missing,
        missing=missing,
        extra=spec.extra,
        needs_model=spec.needs_model,
        model_hint=spec.model_hint,
    )


def list_backends() -> list[BackendInfo]:
    """Every catalog entry with its install status."""
    return [backend_info(spec) for spec in BACKENDS]


def _resolve(backend: str | BackendSpec) -> BackendSpec:
    return backend if isinstance(backend, BackendSpec) else backend_spec(backend)


def check_backend(backend: str | BackendSpec, *, model: str | Path | None, role: Role = "muscle") -> BackendSpec:
    """Check, without importing or loading anything, that ``backend`` can be built with ``model``.

    Returns the catalog entry; one-line :class:`InputError` for an unknown name, a missing pip
    extra, a missing ``--model``, a model folder that does not exist, or a bundled model that is not
    installed.
    """
    spec = _resolve(backend)
    missing = missing_requirements(spec)
    if missing:
        raise InputError(
            f"backend '{spec.name}' needs {', '.join(missing)}, which is not installed: {install_command(spec)}"
        )
    if model is None and spec.needs_model:
        raise InputError(f"backend '{spec.name}' needs --model: {spec.model_hint}")
    if model is not None and not Path(model).exists():
        raise InputError(f"model folder not found; backend '{spec.name}' expects {spec.model_hint}", path=model)
    if model is None and not (bundled_model_dir(role) / "model.json").is_file():
        raise InputError(
            f"the bundled {role} model ({BUNDLED_MODELS[role]}) is not installed; "
            + ("give label maps to measure existing masks" if role == "muscle" else "give the sagittal label map")
        )
    return spec


def options_record(*, model: str | Path | None, options: BackendOptions) -> dict[str, object]:
    """``model`` and ``options`` as JSON-ready provenance (tuples as lists)."""
    record: dict[str, object] = {"model": None if model is None else str(model)}
    for key, value in asdict(options).items():
        record[key] = list(value) if isinstance(value, tuple) else value
    return record


class CatalogBackend:
    """A backend built through the catalog: the loaded backend plus the options it was built with.

    ``segment`` and ``scheme`` are the wrapped backend's; ``provenance`` adds ``backend`` (the
    catalog name) and ``backend_options`` (``--model`` and :class:`BackendOptions`), so sidecars and
    run manifests record how the model was run. Other attributes are read from the wrapped backend.
    """

    def __init__(self, spec: BackendSpec, inner: SegmentationBackend, record: dict[str, object]) -> None:
        self.name = spec.name
        self.spec = spec
        self.inner = inner
        self._record = record

    @property
    def scheme(self) -> LabelScheme:
        return self.inner.scheme

    @property
    def provenance(self) -> dict[str, object]:
        return {**dict(self.inner.provenance), "backend": self.name, "backend_options": dict(self._record)}

    def segment(self, image: Image) -> LabelMap:
        result = self.inner.segment(image)
        return dataclasses.replace(result, provenance=dataclasses.replace(result.provenance, model=self.provenance))

    def __getattr__(self, attr: str) -> object:
        if attr in ("inner", "spec", "name", "_record") or attr.startswith("__"):
            raise AttributeError(attr)
        return getattr(self.inner, attr)


def create_backend(
    backend: str | BackendSpec, *, model: str | Path | None, options: BackendOptions, role: Role = "muscle"
) -> CatalogBackend:
    """Build ``backend`` (a catalog name or entry; weights loaded once); ``model`` None: the bundled model of
    ``role``. One-line errors for an unknown name, a missing extra or model folder (see :func:`check_backend`)."""
    spec = check_backend(backend, model=model, role=role)
    module_name, _, attr = spec.target.partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    folder = bundled_model_dir(role) if model is None else Path(model)
    inner = cls.from_options(folder, options)
    return CatalogBackend(spec, inner, {**options_record(model=model, options=options), "role": role})


@dataclass(frozen=True)
class BackendFactory:
    """A picklable recipe for a backend, so batch workers each build their own once.

    ``role`` says what the model is for, and so which bundled model stands in when ``model`` is None
    (``muscle``: ``tum01_muscle``, ``spine``: ``lumbar_spine``). ``spec`` (optional) is used instead of looking
    ``name`` up in :data:`BACKENDS`.
    """

    name: str = "unet_onnx"
    model: str | None = None
    options: BackendOptions = BackendOptions()  # noqa: RUF009 (frozen: one shared default is safe)
    spec: BackendSpec | None = None
    role: Role = "muscle"

    @property
    def is_default(self) -> bool:
        """True for the role's bundled model with default options."""
        return (
            self.name == "unet_onnx"
            and self.model is None
            and self.options == BackendOptions()
            and (self.spec is None or self.spec == backend_spec("unet_onnx"))
        )

    def check(self) -> BackendSpec:
        """:func:`check_backend` for this recipe (nothing is loaded)."""
        return check_backend(self.spec or self.name, model=self.model, role=self.role)

    def __call__(self) -> CatalogBackend:
        return create_backend(self.spec or self.name, model=self.model, options=self.options, role=self.role)


DEFAULT_BACKEND = "unet_onnx"


def model_factory(
    *,
    backend: str = DEFAULT_BACKEND,
    model: str | Path | None,
    options: BackendOptions = BackendOptions(),
    store: str | Path | None = None,
    role: Role = "muscle",
    catalogue: ModelCatalogue | None = None,
) -> BackendFactory:
    """The one place ``--backend`` and ``--model`` become a backend recipe.

    ``model`` is a folder (or file) for ``backend``, None for the role's bundled model, or the key of a published
    model installed in ``store`` (``paraspinal models``): then the catalogue entry picks the backend and fills the
    options the user left unset (task, folds, native label scheme). A path that exists wins over a key of the same
    name. One-line errors for an unknown backend, a model installed nowhere, a model for the other role, a
    ``--backend`` that is not the model's, and a published model paraspinal has no backend for.
    """
    if model is not None and not Path(model).exists():
        entry = (catalogue if catalogue is not None else load_catalogue()).get(str(model))
        if entry is not None:
            if entry.backend is None:
                raise InputError(
                    f"paraspinal has no backend that runs {entry.key} yet: run it with its own tool and give its "
                    f"mask with --labels FILE --scheme {entry.scheme}"
                )
            if backend not in (DEFAULT_BACKEND, entry.backend):
                raise InputError(f"model '{entry.key}' runs with backend '{entry.backend}', not '{backend}'")
            if entry.role != role:
                use = "levels (sagittal)" if entry.role == "spine" else "segment and run (axial muscles)"
                raise InputError(f"model '{entry.key}' is a {entry.role} model: use it with {use}")
            folder = installed_folder(entry, store=store)
            filled = dataclasses.replace(
                options,
                task=options.task or entry.task,
                folds=options.folds or entry.folds,
                scheme=options.scheme or entry.scheme,
            )
            spec = backend_spec(entry.backend)
            return BackendFactory(name=spec.name, model=str(folder), options=filled, spec=spec, role=role)
    spec = backend_spec(backend)
    path = None if model is None else str(Path(model).absolute())
    return BackendFactory(name=spec.name, model=path, options=options, spec=spec, role=role)


ModelSource = Callable[[], SegmentationBackend] | SegmentationBackend


class Models:
    """The models a run may use, one per role, each built the first time it is needed and then kept: a
    process loads each model at most once, and never one it does not use (a driver whose workers segment
    loads none). Each role takes a factory (picklable, for worker processes) or a ready backend; None means
    the role has no model (a case that needs one fails, saying so). Pickling drops what was loaded.
    """

    def __init__(
        self,
        *,
        muscle: ModelSource | None = BackendFactory(role="muscle"),
        spine: ModelSource | None = BackendFactory(role="spine"),
    ) -> None:
        self._sources: dict[str, ModelSource | None] = {"muscle": muscle, "spine": spine}
        self._loaded: dict[str, SegmentationBackend] = {}

    def __getstate__(self) -> dict[str, object]:
        return {"_sources": self._sources, "_loaded": {}}

    def source(self, role: Role) -> ModelSource | None:
        """The factory or backend given for ``role``."""
        return self._sources[role]

    def get(self, role: Role) -> SegmentationBackend:
        """The loaded model of ``role`` (built now if it was not yet); one-line error when there is none."""
        if role not in self._loaded:
            source = self._sources[role]
            if source is None:
                raise InputError(f"no {role} model was given for this run")
            self._loaded[role] = source if isinstance(source, SegmentationBackend) else source()
        return self._loaded[role]

    def check(self, role: Role) -> None:
        """Fail now, in one line and without loading anything, when ``role``'s model cannot be built."""
        source = self._sources[role]
        if source is None:
            raise InputError(f"no {role} model was given for this run")
        if isinstance(source, BackendFactory):
            source.check()

    def replace(self, **sources: ModelSource | None) -> Models:
        """The same models with some roles' sources replaced (nothing loaded carries over)."""
        return Models(**{**self._sources, **sources})  # type: ignore[arg-type]
