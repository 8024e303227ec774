"""The local model store: published models the user downloaded, recognised, verified and installed.

Layout of a store folder (default :func:`default_store`; ``--store DIR`` elsewhere)::

    STORE/<key>/model/...        the folder the backend loads (as the catalogue's layout names it)
    STORE/<key>/install.json     what was installed from where: the download's SHA-256, every file's SHA-256

An install unpacks (a zip) or reads (a folder) the download, finds which catalogue entry it is from its layout,
label values and published checksum, copies the model folder into a hidden staging folder inside the store and
renames it into place, so a store entry is complete or absent. Nothing is unpickled or imported on the way: an
nnU-Net v1 model's pickles are loaded only later, by its backend, from the store. Nothing downloads.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from paraspinal import __version__
from paraspinal.backends.model_catalogue import ModelCatalogue, ModelEntry, load_catalogue
from paraspinal.errors import InputError
from paraspinal.io.files import file_sha256

INSTALL_RECORD = "install.json"
MODEL_FOLDER = "model"


def default_store() -> Path:
    """The per-user model store: ``~/.local/share/paraspinal/models`` (no environment variable is read)."""
    return Path.home() / ".local" / "share" / "paraspinal" / "models"


@dataclass(frozen=True)
class Installed:
    """One installed model: its entry key, folder (what the backend loads) and install record."""

    key: str
    folder: Path
    record: dict[str, object]


@dataclass(frozen=True)
class Verified:
    """The result of re-checking one installed model: ``problems`` empty when every file is as installed."""

    key: str
    folder: Path
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


# --------------------------------------------------------------------------------------- recognising


def _candidates(root: Path, pattern: str) -> Iterator[Path]:
    """Folders under ``root`` matching ``pattern``, and ``root`` itself when its path ends like the pattern."""
    if pattern == ".":
        yield root
        return
    if fnmatch.fnmatch(root.resolve().as_posix(), f"*/{pattern.removeprefix('**/')}"):
        yield root
    yield from sorted(p for p in root.glob(pattern) if p.is_dir())


def _labels_in(path: Path) -> tuple[int, ...]:
    """Label values of a model's JSON (nnU-Net ``dataset.json`` or MuscleMap config); one-line errors."""
    from paraspinal.backends.model_files import read_json_object
    from paraspinal.backends.nnunet_labels import dataset_labels

    document = read_json_object(path, what=path.name)
    labels = document.get("labels")
    if isinstance(labels, list):  # MuscleMap: [{"value": 1, ...}, ...]
        try:
            return tuple(sorted(int(item["value"]) for item in labels))
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{path.name} 'labels' entries need a 'value'", path=path) from None
    return tuple(sorted(dataset_labels(document, path=path)))


def _problem(entry: ModelEntry, folder: Path) -> str | None:
    """Why ``folder`` is not ``entry``'s model folder (None: it is)."""
    layout = entry.layout
    missing = [pattern for pattern in layout.files if not any(p.is_file() for p in folder.glob(pattern))]
    if missing:
        return f"{folder.name} has no {', '.join(missing)}"
    if layout.label_values is not None and layout.labels_file is not None:
        found = _labels_in(folder / layout.labels_file)
        if found != layout.label_values:
            return (
                f"{layout.labels_file} has label values {list(found)}, the published model {list(layout.label_values)}"
            )
    return None


def _match(entry: ModelEntry, root: Path) -> tuple[Path | None, str]:
    """``entry``'s model folder inside ``root`` (None and the reason when there is none)."""
    reason = f"no folder {' or '.join(entry.layout.model_dir)}"
    for pattern in entry.layout.model_dir:
        for folder in _candidates(root, pattern):
            problem = _problem(entry, folder)
            if problem is None:
                return folder, ""
            reason = problem
    return None, reason


def recognise(root: Path, *, catalogue: ModelCatalogue, key: str | None = None) -> tuple[ModelEntry, Path]:
    """The catalogue entry that ``root`` (an unpacked download) is, and its model folder.

    With ``key``, only that entry is tried. One-line :class:`InputError` naming what was expected when nothing
    matches, or the entries that match when several do.
    """
    if key is not None:
        entry = catalogue.entry(key)
        folder, reason = _match(entry, root)
        if folder is None:
            raise InputError(f"not a {entry.key} model: {reason} (expected {entry.layout.describe()})")
        return entry, folder
    found = [(entry, folder) for entry in catalogue.entries for folder in [_match(entry, root)[0]] if folder]
    if not found:
        expected = "; ".join(f"{e.key}: {e.layout.describe()}" for e in catalogue.entries)
        raise InputError(f"matches no known model (expected one of {expected})")
    if len(found) > 1:
        keys = ", ".join(e.key for e, _ in found)
        raise InputError(f"matches several models ({keys}): choose one with --key")
    return found[0]


# --------------------------------------------------------------------------------------- installing


def _unzip(archive: Path, target: Path) -> None:
    """Extract ``archive`` into ``target``; members that are absolute, climb out with ``..`` or are links fail."""
    try:
        with zipfile.ZipFile(archive) as zipped:
            for info in zipped.infolist():
                parts = Path(info.filename).parts
                is_link = (info.external_attr >> 16) & 0o170000 == 0o120000
                if Path(info.filename).is_absolute() or ".." in parts or is_link:
                    raise InputError(f"zip member {info.filename!r} points outside the archive", path=archive)
            zipped.extractall(target)
    except zipfile.BadZipFile as exc:
        raise InputError(f"not a readable zip file ({exc})", path=archive) from None


def _hash_files(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): file_sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def install_model(
    path: str | Path | Sequence[str | Path],
    *,
    key: str | None = None,
    store: str | Path | None = None,
    catalogue: ModelCatalogue | None = None,
) -> Installed:
    """Recognise the download at ``path`` (a zip file or a folder, or several that together make one model, as
    TotalSegmentator's and TotalSpineSeg's per-dataset zips do), verify it and copy it into ``store``.

    A published checksum (catalogue ``sha256``) is checked against the zip files' SHA-256; a folder has no
    download checksum, which the install record says. An earlier install of the same entry is replaced only
    once the new one is complete.
    """
    catalogue = catalogue if catalogue is not None else load_catalogue()
    sources = [Path(p) for p in ([path] if isinstance(path, (str, Path)) else path)]
    if not sources:
        raise InputError("no model download given")
    named = sources[0] if len(sources) == 1 else ", ".join(str(p) for p in sources)
    store_dir = Path(store) if store is not None else default_store()
    for source in sources:
        if not source.exists():
            raise InputError("model download not found", path=source)
        if not source.is_dir() and not zipfile.is_zipfile(source):
            raise InputError("expected a model's zip file or its unpacked folder", path=source)
    store_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=store_dir))
    try:
        archives = {str(p.resolve()): file_sha256(p) for p in sources if not p.is_dir()}
        if len(sources) == 1 and sources[0].is_dir():
            root = sources[0]
        else:
            root = staging / "unpacked"
            for source in sources:
                if source.is_dir():
                    shutil.copytree(source, root / source.name, symlinks=False, dirs_exist_ok=True)
                else:
                    _unzip(source, root)
        try:
            entry, folder = recognise(root, catalogue=catalogue, key=key)
        except InputError as exc:
            raise InputError(exc.message, path=named) from None
        if entry.sha256 is not None and archives and entry.sha256 not in archives.values():
            found = ", ".join(archives.values())
            raise InputError(
                f"checksum mismatch for {entry.key}: the file's SHA-256 is {found}, "
                f"the published one {entry.sha256} (download it again)",
                path=named,
            )
        built = staging / "entry"
        shutil.copytree(folder, built / MODEL_FOLDER, symlinks=False)
        record = {
            "key": entry.key,
            "installed_from": [str(p.resolve()) for p in sources],
            "download_sha256": next(iter(archives.values())) if len(sources) == 1 and archives else None,
            "downloads_sha256": archives,
            "published_sha256": entry.sha256,
            "checksum": _checksum_state(entry, bool(archives)),
            "backend": entry.backend,
            "paraspinal_version": __version__,
            "files": _hash_files(built / MODEL_FOLDER),
        }
        (built / INSTALL_RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        target = store_dir / entry.key
        old = staging / "replaced"
        if target.exists():
            os.replace(target, old)
        os.replace(built, target)
        return Installed(entry.key, target / MODEL_FOLDER, record)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _checksum_state(entry: ModelEntry, from_zip: bool) -> str:
    if entry.sha256 is None:
        return "none published"
    return "matches the published one" if from_zip else "not checked (installed from a folder)"


# --------------------------------------------------------------------------------------- reading the store


def read_installed(key: str, *, store: str | Path | None = None) -> Installed | None:
    """The installed model ``key`` in ``store``, or None when it is not installed there."""
    entry_dir = (Path(store) if store is not None else default_store()) / key
    record_path = entry_dir / INSTALL_RECORD
    if not record_path.is_file():
        return None
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError("install record is not valid JSON (install the model again)", path=record_path) from None
    if not isinstance(record, dict) or not isinstance(record.get("files"), dict):
        raise InputError("install record lists no files (install the model again)", path=record_path)
    return Installed(key, entry_dir / MODEL_FOLDER, record)


def installed_models(*, store: str | Path | None = None, catalogue: ModelCatalogue | None = None) -> list[Installed]:
    """Every catalogue entry installed in ``store``, in catalogue order."""
    catalogue = catalogue if catalogue is not None else load_catalogue()
    found = (read_installed(e.key, store=store) for e in catalogue.entries)
    return [item for item in found if item is not None]


def verify_installed(item: Installed) -> Verified:
    """Re-hash every file of ``item`` against its install record: changed, missing and extra files."""
    recorded: dict[str, str] = dict(item.record["files"])  # type: ignore[arg-type]
    present = _hash_files(item.folder) if item.folder.is_dir() else {}
    problems = [f"missing {name}" for name in recorded if name not in present]
    problems += [f"changed {name}" for name in recorded if name in present and present[name] != recorded[name]]
    problems += [f"unexpected {name}" for name in present if name not in recorded]
    return Verified(item.key, item.folder, tuple(problems))


def installed_folder(entry: ModelEntry, *, store: str | Path | None = None) -> Path:
    """The folder of installed ``entry``; a one-line error saying how to install it otherwise."""
    item = read_installed(entry.key, store=store)
    where = Path(store) if store is not None else default_store()
    if item is None:
        raise InputError(
            f"model '{entry.key}' is not installed in {where}: get {entry.get} from {entry.project_page}, "
            f"then run `paraspinal models install FILE`"
        )
    return item.folder
