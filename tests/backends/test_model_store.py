"""The model store: published layouts recognised, installed atomically, verified; wrong downloads refused."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from paraspinal.backends.catalog import BackendOptions, model_factory
from paraspinal.backends.model_catalogue import load_catalogue
from paraspinal.backends.model_store import (
    install_model,
    installed_models,
    read_installed,
    recognise,
    verify_installed,
)
from paraspinal.errors import InputError
from tests.model_layouts import PARASPINALSEG_TRAINER, musclemap_abdomen, paraspinalseg_export, zip_folder

TINY = """\
[[models]]
key = "tiny"
name = "tiny test model"
backend = "nnunet"
scheme = "paraspinalseg"
role = "muscle"
modality = "MR"
contrast = "T2"
plane = "axial"
licence = "Apache-2.0"
citation = "none"
project_page = "https://example.org/tiny"
get = "tiny.zip"
source = "this test"
sha256 = "{sha}"

[models.layout]
model_dir = ["tiny"]
files = ["weights.bin"]
"""


def _tiny_zip(tmp_path: Path) -> Path:
    folder = tmp_path / "tiny_src"
    (folder / "tiny").mkdir(parents=True)
    (folder / "tiny" / "weights.bin").write_bytes(b"\x00\x01weights")
    return zip_folder(folder, tmp_path / "tiny.zip")


def _tiny_catalogue(tmp_path: Path, sha: str):
    path = tmp_path / "catalogue.toml"
    path.write_text(TINY.format(sha=sha), encoding="utf-8")
    return load_catalogue(path)


def test_paraspinalseg_zip_is_recognised_installed_and_verified(tmp_path):
    archive = zip_folder(paraspinalseg_export(tmp_path / "download"), tmp_path / "ParaspinalMuscle_nnUNet_2D.zip")
    store = tmp_path / "store"
    item = install_model(archive, store=store)
    assert item.key == "paraspinalseg"
    assert item.folder == store / "paraspinalseg" / "model"
    assert sorted(item.record["files"]) == [
        "dataset.json",
        "fold_0/checkpoint_final.pth",
        "fold_1/checkpoint_final.pth",
        "fold_2/checkpoint_final.pth",
        "fold_3/checkpoint_final.pth",
        "fold_4/checkpoint_final.pth",
        "plans.json",
    ]
    assert item.record["download_sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert item.record["checksum"] == "none published"
    assert [p.name for p in store.iterdir()] == ["paraspinalseg"]  # no staging folder left behind
    assert [i.key for i in installed_models(store=store)] == ["paraspinalseg"]
    assert verify_installed(read_installed("paraspinalseg", store=store)).ok


def test_verify_names_changed_missing_and_extra_files(tmp_path):
    store = tmp_path / "store"
    item = install_model(paraspinalseg_export(tmp_path / "download"), store=store)
    (item.folder / "fold_2" / "checkpoint_final.pth").write_bytes(b"tampered")
    (item.folder / "plans.json").unlink()
    (item.folder / "notes.txt").write_text("x", encoding="utf-8")
    result = verify_installed(read_installed("paraspinalseg", store=store))
    assert result.problems == ("missing plans.json", "changed fold_2/checkpoint_final.pth", "unexpected notes.txt")


def test_a_folder_installs_too_and_a_reinstall_replaces_the_old_copy(tmp_path):
    store = tmp_path / "store"
    download = paraspinalseg_export(tmp_path / "download")
    first = install_model(download / PARASPINALSEG_TRAINER, store=store)  # the trainer folder itself
    (first.folder / "stale.txt").write_text("old", encoding="utf-8")
    second = install_model(download, store=store, key="paraspinalseg")
    assert second.folder == first.folder
    assert not (second.folder / "stale.txt").exists()
    assert second.record["download_sha256"] is None


def test_musclemap_abdomen_folder_is_recognised(tmp_path):
    item = install_model(musclemap_abdomen(tmp_path / "abdomen"), store=tmp_path / "store")
    assert item.key == "musclemap_abdomen"


def test_missing_fold_is_refused_naming_what_was_expected(tmp_path):
    download = paraspinalseg_export(tmp_path / "download", folds=4)
    with pytest.raises(InputError) as info:
        install_model(download, key="paraspinalseg", store=tmp_path / "store")
    assert str(info.value) == (
        f"{download}: not a paraspinalseg model: nnUNetTrainer__nnUNetPlans__2d has no fold_4/checkpoint_final.pth "
        "(expected a folder Dataset004_*/nnUNetTrainer__nnUNetPlans__2d or "
        "*/Dataset004_*/nnUNetTrainer__nnUNetPlans__2d holding dataset.json, plans.json, "
        "fold_0/checkpoint_final.pth, fold_1/checkpoint_final.pth, fold_2/checkpoint_final.pth, "
        "fold_3/checkpoint_final.pth, fold_4/checkpoint_final.pth)"
    )
    assert not (tmp_path / "store" / "paraspinalseg").exists()


def test_other_label_values_are_refused(tmp_path):
    labels = {"background": 0, "ES1": 1, "MF1": 2, "ES2": 3, "MF2": 4}
    download = paraspinalseg_export(tmp_path / "download", labels=labels)
    with pytest.raises(InputError, match=r"dataset.json has label values \[1, 2, 3, 4\], the published model "):
        install_model(download, key="paraspinalseg", store=tmp_path / "store")


def test_a_file_matching_no_entry_is_refused_in_one_line(tmp_path):
    folder = tmp_path / "random"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"x")
    with pytest.raises(InputError) as info:
        install_model(zip_folder(folder, tmp_path / "random.zip"), store=tmp_path / "store")
    text = str(info.value)
    assert text.startswith(f"{tmp_path / 'random.zip'}: matches no known model (expected one of lpm_segmentator: ")
    assert "paraspinalseg: a folder Dataset004_*/nnUNetTrainer__nnUNetPlans__2d" in text and "\n" not in text
    assert list((tmp_path / "store").iterdir()) == []


def test_not_a_zip_is_refused(tmp_path):
    path = tmp_path / "model.pth"
    path.write_bytes(b"not a zip")
    with pytest.raises(InputError, match="expected a model's zip file or its unpacked folder"):
        install_model(path, store=tmp_path / "store")


def test_published_checksum_is_checked(tmp_path):
    archive = _tiny_zip(tmp_path)
    good = hashlib.sha256(archive.read_bytes()).hexdigest()
    item = install_model(archive, store=tmp_path / "store", catalogue=_tiny_catalogue(tmp_path, good))
    assert item.record["checksum"] == "matches the published one"
    wrong = "0" * 64
    with pytest.raises(InputError) as info:
        install_model(archive, store=tmp_path / "store2", catalogue=_tiny_catalogue(tmp_path, wrong))
    assert str(info.value) == (
        f"{archive}: checksum mismatch for tiny: the file's SHA-256 is {good}, the published one {wrong} "
        "(download it again)"
    )
    assert not (tmp_path / "store2" / "tiny").exists()


def test_zip_members_outside_the_archive_are_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("../outside.txt", "x")
    with pytest.raises(InputError, match=r"zip member '../outside.txt' points outside the archive"):
        install_model(archive, store=tmp_path / "store")
    assert not (tmp_path / "outside.txt").exists()


def test_several_matches_need_a_key(tmp_path):
    catalogue = _tiny_catalogue(tmp_path, "0" * 64)
    doubled = tmp_path / "double.toml"
    text = (tmp_path / "catalogue.toml").read_text(encoding="utf-8")
    doubled.write_text(text + "\n" + text.replace('key = "tiny"', 'key = "tiny2"'), encoding="utf-8")
    root = tmp_path / "tiny_src"
    _tiny_zip(tmp_path)
    with pytest.raises(InputError, match=r"matches several models \(tiny, tiny2\): choose one with --key"):
        recognise(root, catalogue=load_catalogue(doubled))
    assert recognise(root, catalogue=catalogue)[0].key == "tiny"


# --------------------------------------------------------------------------------------- --model KEY


def test_model_key_resolves_to_the_installed_folder_and_the_entrys_options(tmp_path):
    store = tmp_path / "store"
    install_model(paraspinalseg_export(tmp_path / "download"), store=store)
    factory = model_factory(model="paraspinalseg", store=store, options=BackendOptions(device="cpu"))
    assert factory.name == "nnunet"
    assert factory.model == str(store / "paraspinalseg" / "model")
    assert factory.options.folds == ("0", "1", "2", "3", "4")
    assert factory.options.scheme == "paraspinalseg"
    chosen = model_factory(model="paraspinalseg", store=store, options=BackendOptions(folds=("0",)))
    assert chosen.options.folds == ("0",)  # what the user gave wins


def test_model_key_errors(tmp_path):
    store = tmp_path / "store"
    with pytest.raises(InputError, match=rf"model 'paraspinalseg' is not installed in {store}: get "):
        model_factory(model="paraspinalseg", store=store)
    with pytest.raises(InputError, match="model 'paraspinalseg' runs with backend 'nnunet', not 'musclemap'"):
        model_factory(backend="musclemap", model="paraspinalseg", store=store)
    with pytest.raises(InputError, match=r"model 'totalseg_vertebrae_mr' is a spine model: use it with levels"):
        model_factory(model="totalseg_vertebrae_mr", store=store)
    with pytest.raises(InputError, match="paraspinal has no backend that runs spineps yet: run it with its own tool"):
        model_factory(model="spineps", store=store, role="spine")


def test_an_existing_path_wins_over_a_key(tmp_path):
    folder = tmp_path / "paraspinalseg"
    folder.mkdir()
    factory = model_factory(backend="nnunet", model=folder, store=tmp_path / "store")
    assert factory.model == str(folder) and factory.options.scheme is None


def test_install_record_is_json_with_versions(tmp_path):
    store = tmp_path / "store"
    install_model(musclemap_abdomen(tmp_path / "abdomen"), store=store)
    record = json.loads((store / "musclemap_abdomen" / "install.json").read_text(encoding="utf-8"))
    assert record["key"] == "musclemap_abdomen" and record["backend"] == "musclemap"
    assert set(record) >= {"installed_from", "download_sha256", "published_sha256", "paraspinal_version", "files"}
