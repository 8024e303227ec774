"""`paraspinal backends`, `--backend/--model` on segment and run, and the catalog's factory.

Fake backends (tests/fake_backends.py) are added to the catalog with monkeypatch; the real
``unet_onnx`` entry covers the default path.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import paraspinal.cli.backends_cmd
import paraspinal.cli.run_cmd
import paraspinal.cli.segment_cmd  # noqa: F401
from paraspinal.backends import catalog
from paraspinal.backends.catalog import BACKENDS, BackendFactory, BackendOptions, create_backend
from paraspinal.cli.main import main
from paraspinal.errors import InputError
from tests.fake_backends import FAKE_MASK, FAKE_MISSING, NO_SUCH_MODULE, write_model

SHAPE = (24, 20, 6)
AFFINE = np.diag([1.0, 1.0, 3.0, 1.0])
JSON_KEYS = ["name", "description", "installed", "missing", "extra", "needs_model", "model_hint"]


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog, "BACKENDS", (*BACKENDS, FAKE_MASK, FAKE_MISSING))


def _mask() -> np.ndarray:
    lab = np.zeros(SHAPE, dtype=np.uint8)
    lab[14:18, 4:10, :] = 1  # lpm4: right ES, right MF, left MF, left ES
    lab[12:14, 10:14, :] = 2
    lab[10:12, 10:14, :] = 3
    lab[6:10, 4:10, :] = 4
    return lab


@pytest.fixture
def image(tmp_path: Path) -> Path:
    array = np.where(_mask() > 0, 300.0, 20.0).astype(np.float32)
    path = tmp_path / "in" / "ph_t2.nii.gz"
    path.parent.mkdir()
    nib.save(nib.Nifti1Image(array, AFFINE), str(path))
    return path


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_backends_json_lists_every_catalog_entry_with_stable_keys(fakes, capsys) -> None:
    code, out, _ = _cli(["backends", "--json"], capsys)
    assert code == 0
    rows = json.loads(out)
    assert [r["name"] for r in rows] == [s.name for s in (*BACKENDS, FAKE_MASK, FAKE_MISSING)]
    assert all(list(r) == JSON_KEYS for r in rows)
    by_name = {r["name"]: r for r in rows}
    assert by_name["unet_onnx"]["installed"] is True and by_name["unet_onnx"]["needs_model"] is False
    assert by_name["nnunet"]["extra"] == "nnunet" and by_name["nnunet"]["needs_model"] is True
    missing = by_name["fake_missing"]
    assert missing["installed"] is False and missing["missing"] == [NO_SUCH_MODULE]
    assert missing["extra"] == "fakeextra" and missing["model_hint"] == "anything"


def test_backends_table_shows_the_install_command_for_what_is_missing(fakes, capsys) -> None:
    code, out, _ = _cli(["backends"], capsys)
    assert code == 0
    assert 'pip install "paraspinal[fakeextra]"' in out and f"no (missing {NO_SUCH_MODULE})" in out
    assert "unet_onnx" in out and "totalsegmentator" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backend", "nosuch"], "unknown backend 'nosuch' (known: unet_onnx, nnunet, nnunet-v1, "),
        (
            ["--backend", "fake_missing", "--model", "."],
            f"backend 'fake_missing' needs {NO_SUCH_MODULE}, which is not installed: "
            'pip install "paraspinal[fakeextra]"',
        ),
        (["--backend", "fake_mask"], "backend 'fake_mask' needs --model: a folder with mask.npy and scheme.txt"),
        (["--scheme", "nosuch_scheme"], "no bundled label scheme or file named 'nosuch_scheme'"),
    ],
)
def test_segment_backend_errors_are_one_line_and_write_nothing(fakes, image, tmp_path, capsys, args, message) -> None:
    out = tmp_path / "seg"
    code, _, err = _cli(["segment", image, "-o", out, *args], capsys)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("paraspinal: error: ")
    assert message in lines[0] and not out.exists()


def test_missing_model_folder_names_the_path(fakes, image, tmp_path, capsys) -> None:
    missing = tmp_path / "no_model"
    code, _, err = _cli(["segment", image, "-o", tmp_path / "seg", "--backend", "fake_mask", "-m", missing], capsys)
    assert code == 1
    assert err.strip() == (
        f"paraspinal: error: {missing}: model folder not found; backend 'fake_mask' expects "
        "a folder with mask.npy and scheme.txt"
    )


@pytest.mark.parametrize("folds", ["0,x", "1,1", "all,0", ""])
def test_bad_folds_are_usage_errors(image, tmp_path, capsys, folds) -> None:
    code, _, err = _cli(["segment", image, "-o", tmp_path / "seg", "--folds", folds], capsys)
    assert code == 2 and "--folds" in err


def test_segment_with_a_catalog_backend_records_backend_and_options(fakes, image, tmp_path, capsys) -> None:
    model = write_model(tmp_path / "model", _mask(), "lpm4")
    out = tmp_path / "seg"
    args = ["segment", image, "-o", out, "--backend", "fake_mask", "--model", model, "--folds", "0,1"]
    args += ["--checkpoint", "best.pth", "--task", "muscles", "--no-tta", "--no-cleanup", "-q"]
    code, _, err = _cli(args, capsys)
    assert code == 0, err
    np.testing.assert_array_equal(np.asarray(nib.load(out / "ph_t2_dseg.nii.gz").dataobj), _mask())
    sidecar = json.loads((out / "ph_t2_dseg.json").read_text(encoding="utf-8"))
    assert sidecar["backend"] == "fake_mask" and sidecar["scheme"] == "lpm4"
    assert sidecar["provenance"]["version"] == "fake-1" and sidecar["provenance"]["backend"] == "fake_mask"
    assert sidecar["provenance"]["backend_options"] == {
        "role": "muscle",
        "model": str(model.absolute()),
        "device": "cpu",
        "threads": None,
        "test_time_flip": False,
        "folds": ["0", "1"],
        "checkpoint": "best.pth",
        "task": "muscles",
        "scheme": None,
    }
    assert sidecar["segmentation"] == {"fake": True}


def test_native_scheme_option_reaches_the_backend(fakes, image, tmp_path, capsys) -> None:
    total = np.where(np.isin(_mask(), (1, 2)), 47, np.where(_mask() > 0, 46, 0)).astype(np.uint8)
    model = write_model(tmp_path / "model", total, "lpm4")  # the flag overrides the folder's scheme.txt
    out = tmp_path / "seg"
    args = ["segment", image, "-o", out, "-b", "fake_mask", "-m", model, "--scheme", "total_mr", "--no-cleanup"]
    code, stdout, err = _cli(args, capsys)
    assert code == 0, err
    sidecar = json.loads((out / "ph_t2_dseg.json").read_text(encoding="utf-8"))
    assert sidecar["scheme"] == "total_mr" and sidecar["labels"]["47"] == "autochthon_right"
    assert sidecar["provenance"]["backend_options"]["scheme"] == "total_mr"
    assert "autochthon_right" in stdout


def test_default_backend_is_the_bundled_model_through_the_catalog() -> None:
    factory = BackendFactory()
    assert factory.is_default and not BackendFactory(options=BackendOptions(device="auto")).is_default
    backend = factory()
    assert backend.name == "unet_onnx" and backend.scheme.key == "lpm4"
    assert backend.provenance["model"] == "tum01_muscle" and backend.provenance["backend_options"]["model"] is None
    assert backend.card.name == "tum01_muscle"  # attributes of the wrapped backend stay reachable


def test_create_backend_accepts_a_spec_and_the_factory_pickles(tmp_path) -> None:
    model = write_model(tmp_path / "model", _mask(), "lpm4")
    factory = BackendFactory("fake_mask", str(model), BackendOptions(folds=("all",)), spec=FAKE_MASK)
    clone = pickle.loads(pickle.dumps(factory))
    assert clone == factory and not clone.is_default
    backend = clone()
    assert backend.inner.options.folds == ("all",) and backend.scheme.key == "lpm4"
    with pytest.raises(InputError, match=f"needs {NO_SUCH_MODULE}, which is not installed"):
        create_backend(FAKE_MISSING, model=model, options=BackendOptions())


def test_run_with_a_catalog_backend_in_two_workers_records_it_in_the_manifests(fakes, tmp_path, capsys) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for case in ("c1", "c2"):
        array = np.where(_mask() > 0, 300.0, 20.0).astype(np.float32)
        nib.save(nib.Nifti1Image(array, AFFINE), str(folder / f"{case}_t2.nii.gz"))
    model = write_model(tmp_path / "model", _mask(), "lpm4")
    out = tmp_path / "run"
    args = ["run", folder, "-o", out, "--backend", "fake_mask", "--model", model, "--folds", "2"]
    args += ["--workers", "2", "--no-qc", "--no-report", "-q"]
    code, _, err = _cli(args, capsys)
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["segmentation_backend"]["backend"] == "fake_mask"
    assert manifest["segmentation_backend"]["backend_options"]["folds"] == ["2"]
    assert f"--backend=fake_mask --model={model.absolute()} --folds=2" in " ".join(manifest["command"])
    for case in ("c1", "c2"):
        np.testing.assert_array_equal(np.asarray(nib.load(out / case / f"{case}_dseg.nii.gz").dataobj), _mask())
        case_manifest = json.loads((out / case / f"{case}_manifest.json").read_text(encoding="utf-8"))
        assert case_manifest["segmentation"]["backend"]["backend_options"]["model"] == str(model.absolute())


def test_run_backend_errors_come_before_any_output(fakes, image, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    code, _, err = _cli(["run", image, "-o", out, "--backend", "fake_mask"], capsys)
    assert code == 1 and not out.exists()
    assert err.strip() == "paraspinal: error: backend 'fake_mask' needs --model: a folder with mask.npy and scheme.txt"
