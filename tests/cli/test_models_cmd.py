"""``paraspinal models``: the catalogue listed, a download installed and verified, and run by --model KEY."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from paraspinal.cli.main import main
from tests.model_layouts import PARASPINALSEG_LABELS, paraspinalseg_export, zip_folder


def _cli(args: list[object], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_models_json_lists_every_entry_with_a_scheme_labels_accepts(tmp_path, capsys):
    code, out, _ = _cli(["models", "--json", "--store", tmp_path], capsys)
    assert code == 0
    rows = json.loads(out)
    keys = [row["key"] for row in rows]
    assert {"lpm_segmentator", "paraspinalseg", "musclemap_abdomen", "totalseg_total_mr"} <= set(keys)
    assert {"totalseg_vertebrae_mr", "totalseg_total_ct", "totalspineseg", "spineps"} <= set(keys)
    assert all(row["installed"] is False and row["folder"] is None for row in rows)
    for row in rows:
        assert set(row) >= {"structures", "backend", "licence", "citation", "project_page", "get", "layout", "sha256"}
        assert _cli(["labels", "--scheme", row["scheme"]], capsys)[0] == 0


def test_install_then_list_then_verify(tmp_path, capsys):
    archive = zip_folder(paraspinalseg_export(tmp_path / "dl"), tmp_path / "ParaspinalMuscle_nnUNet_2D.zip")
    store = tmp_path / "store"
    code, out, err = _cli(["models", "install", archive, "--store", store], capsys)
    assert (code, err) == (0, "")
    assert out.strip() == f"installed paraspinalseg (7 files; checksum: none published) in {store / 'paraspinalseg'}"
    rows = {row["key"]: row for row in json.loads(_cli(["models", "--json", "--store", store], capsys)[1])}
    assert rows["paraspinalseg"]["installed"] is True
    assert rows["paraspinalseg"]["folder"] == str(store / "paraspinalseg" / "model")
    assert _cli(["models", "verify", "--store", store], capsys)[:2] == (0, "paraspinalseg: ok\n")
    (store / "paraspinalseg" / "model" / "fold_3" / "checkpoint_final.pth").write_bytes(b"x")
    code, out, err = _cli(["models", "verify", "--store", store], capsys)
    assert code == 1
    assert out == "paraspinalseg: changed fold_3/checkpoint_final.pth\n"
    assert err == "paraspinal: error: 1 installed model(s) differ from their install: paraspinalseg (install again)\n"


def test_install_refusals_are_one_line(tmp_path, capsys):
    folder = tmp_path / "dl"
    paraspinalseg_export(folder, folds=2)
    code, _, err = _cli(["models", "install", folder, "--key", "paraspinalseg", "--store", tmp_path / "s"], capsys)
    assert code == 1
    assert err.startswith(f"paraspinal: error: {folder}: not a paraspinalseg model: nnUNetTrainer__nnUNetPlans__2d ")
    assert err.count("\n") == 1
    code, _, err = _cli(["models", "install", folder, "--key", "nope", "--store", tmp_path / "s"], capsys)
    assert code == 1 and err.startswith("paraspinal: error: ") and "unknown model 'nope' (known: lpm_segmentator" in err


def test_segment_with_a_key_that_is_not_installed_says_how_to_get_it(tmp_path, capsys):
    image = tmp_path / "t2.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 4), np.float32), np.eye(4)), str(image))
    code, _, err = _cli(
        ["segment", image, "-o", tmp_path / "out", "--model", "paraspinalseg", "--store", tmp_path / "s"], capsys
    )
    assert code == 1
    assert err == (
        f"paraspinal: error: model 'paraspinalseg' is not installed in {tmp_path / 's'}: get "
        "ParaspinalMuscle_nnUNet_2D.zip from the latest GitHub release from "
        "https://github.com/LukasSchoennagel/ParaspinalSeg, then run `paraspinal models install FILE`\n"
    )


@pytest.mark.slow
def test_segment_runs_an_installed_paraspinalseg_zip_end_to_end(tmp_path, capsys):
    """A real nnU-Net v2 2-D model (random weights) in ParaspinalSeg's export layout: zip -> install -> segment."""
    from tests.nnunet_support import affine_ras, build_model, phantom, write_nifti

    trainer = build_model("v2", tmp_path / "build", labels=PARASPINALSEG_LABELS, dataset="Dataset004_Paraspinal")
    for fold in range(1, 5):  # the release has five folds; these are copies of the one built
        shutil.copytree(trainer / "fold_0", trainer / f"fold_{fold}")
    export = tmp_path / "export"
    shutil.copytree(trainer.parent, export / trainer.parent.name)
    archive = zip_folder(export, tmp_path / "ParaspinalMuscle_nnUNet_2D.zip")
    store = tmp_path / "store"
    assert _cli(["models", "install", archive, "--store", store], capsys)[0] == 0
    image, _ = phantom(seed=7)
    path = write_nifti(image, affine_ras(), tmp_path / "case_t2.nii.gz")
    out = tmp_path / "out"
    code, stdout, err = _cli(["segment", path, "-o", out, "--model", "paraspinalseg", "--store", store], capsys)
    assert code == 0, err
    labels = np.asarray(nib.load(out / "case_t2_dseg.nii.gz").dataobj)
    assert labels.shape == image.shape
    assert set(np.unique(labels)) <= {0, 1, 2, 3, 4, 5} and len(np.unique(labels)) > 2
    sidecar = json.loads((out / "case_t2_dseg.json").read_text(encoding="utf-8"))
    assert sidecar["scheme"] == "paraspinalseg"
    model = sidecar["provenance"]
    assert model["backend"] == "nnunet"
    assert model["backend_options"]["model"] == str(store / "paraspinalseg" / "model")
    assert model["backend_options"]["folds"] == ["0", "1", "2", "3", "4"]
    assert "quadratus lumborum" in stdout


@pytest.mark.slow
def test_totalsegmentator_total_mr_from_its_two_zips_runs_by_key(tmp_path, capsys):
    """TotalSegmentator's total_mr comes as one zip per dataset: both installed at once, then run by key."""
    from tests import totalseg_support

    home = totalseg_support.make_weights_folder(tmp_path / "ts_home", task="total_mr", seed=1)
    results = home / "nnunet" / "results"
    zips = [zip_folder_with_root(folder, tmp_path / f"{folder.name}.zip") for folder in sorted(results.iterdir())]
    store = tmp_path / "store"
    code, out, err = _cli(["models", "install", *zips, "--store", store], capsys)
    assert code == 0, err
    assert out.startswith("installed totalseg_total_mr (6 files; checksum: none published)")
    volume = totalseg_support.smooth_volume((24, 20, 16), seed=3)
    affine = np.diag([1.5, 1.5, 1.5, 1.0])
    image = tmp_path / "mr.nii.gz"
    nib.save(nib.Nifti1Image(volume, affine), str(image))
    code, _, err = _cli(
        ["segment", image, "-o", tmp_path / "out", "--model", "totalseg_total_mr", "--store", store], capsys
    )
    assert code == 0, err
    sidecar = json.loads((tmp_path / "out" / "mr_dseg.json").read_text(encoding="utf-8"))
    assert sidecar["scheme"] == "total_mr"
    assert sidecar["provenance"]["backend"] == "totalsegmentator"
    assert sidecar["provenance"]["backend_options"]["task"] == "total_mr"


def zip_folder_with_root(folder: Path, archive: Path) -> Path:
    """``folder`` zipped with its own name as the top folder (as TotalSegmentator's weight zips hold it)."""
    import zipfile

    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zipped.write(path, path.relative_to(folder.parent).as_posix())
    return archive


def test_levels_model_keys_are_checked_before_any_image_is_read(tmp_path, capsys):
    sagittal = tmp_path / "sag.nii.gz"  # never read: the model is refused first
    store = tmp_path / "s"
    code, _, err = _cli(
        ["levels", sagittal, "-o", tmp_path / "o", "--model", "paraspinalseg", "--store", store], capsys
    )
    assert (code, err) == (
        1,
        "paraspinal: error: model 'paraspinalseg' is a muscle model: use it with segment and run (axial muscles)\n",
    )
    code, _, err = _cli(
        ["levels", sagittal, "-o", tmp_path / "o", "--model", "totalseg_vertebrae_mr", "--store", store], capsys
    )
    assert code == 1 and err.startswith(
        f"paraspinal: error: model 'totalseg_vertebrae_mr' is not installed in {store}: "
    )
    code, _, err = _cli(["levels", sagittal, "-o", tmp_path / "o", "--model", "spineps", "--store", store], capsys)
    assert err == (
        "paraspinal: error: paraspinal has no backend that runs spineps yet: run it with its own tool and give its "
        "mask with --labels FILE --scheme spineps\n"
    )


@pytest.mark.slow
def test_lpm_segmentator_v1_zip_installs_and_runs_from_the_store(tmp_path, capsys):
    """LPM_Segmentator's nnU-Net v1 layout (nnUNet/<config>/Task515_muscle/<trainer>/), zipped as its release
    holds it: installed without unpickling anything, then loaded (pickles and all) from the store."""
    from tests.nnunet_support import affine_ras, build_model, phantom, write_nifti

    trainer = build_model("v1", tmp_path / "build")
    results = trainer.parents[3]  # results_v1/nnUNet/2d/Task515_muscle/<trainer>
    archive = zip_folder(results, tmp_path / "nnUNet_trained_models.zip")
    store = tmp_path / "store"
    code, out, err = _cli(["models", "install", archive, "--store", store], capsys)
    assert code == 0, err
    assert out.startswith("installed lpm_segmentator (")
    image, _ = phantom(seed=5)
    path = write_nifti(image, affine_ras(), tmp_path / "case_t2.nii.gz")
    code, _, err = _cli(
        ["segment", path, "-o", tmp_path / "out", "--model", "lpm_segmentator", "--store", store], capsys
    )
    assert code == 0, err
    sidecar = json.loads((tmp_path / "out" / "case_t2_dseg.json").read_text(encoding="utf-8"))
    assert sidecar["scheme"] == "lpm4"
    assert sidecar["provenance"]["backend"] == "nnunet-v1"
    assert sidecar["provenance"]["backend_options"]["model"] == str(store / "lpm_segmentator" / "model")
    assert set(np.unique(np.asarray(nib.load(tmp_path / "out" / "case_t2_dseg.nii.gz").dataobj))) <= {0, 1, 2, 3, 4}
