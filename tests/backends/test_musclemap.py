"""MuscleMap backend: a model folder as MuscleMap lays it out, checked against a direct MONAI reference.

The reference follows mm_segment's file-based pipeline with MONAI's dictionary transforms
(LoadImaged ... CropForegroundd, SliceInferer, Invertd, AsDiscreted, label remapping per slab of 25
slices saved as NIfTI, then the largest 26-connected piece per label); the backend builds the same
steps from arrays. Weights are random from a seeded generator; nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

import nibabel as nib  # noqa: E402

from paraspinal.backends.catalog import BackendOptions, create_backend  # noqa: E402
from paraspinal.backends.musclemap import MuscleMapBackend, keep_largest_per_label  # noqa: E402
from paraspinal.errors import InputError  # noqa: E402
from paraspinal.io import read_image  # noqa: E402

LABELS = [5101, 5102, 5111, 5112, 5121, 5122, 5131, 5132, 6160]
SHAPE = (40, 34, 28)  # 28 slices: two slabs of 25 + 3
SPACING = (1.25, 0.9, 3.0)


def _config() -> dict:
    return {
        "parameters": {"roi_size": [64, 64], "spatial_window_batch_size": 4, "pix_dim": [1, 1, -1]},
        "model": {
            "spatial_dims": 2,
            "in_channels": 1,
            "out_channels": len(LABELS) + 1,
            "channels": [4, 8],
            "act": "LeakyReLU",
            "strides": [2],
            "num_res_units": 1,
            "norm": "instance",
        },
        "labels": [{"region": "lumbar", "anatomy": "x", "side": "left", "value": v} for v in LABELS],
    }


def _network(config: dict):
    from monai.networks.layers import Norm
    from monai.networks.nets import UNet

    net = config["model"]
    return UNet(
        spatial_dims=net["spatial_dims"],
        in_channels=net["in_channels"],
        out_channels=net["out_channels"],
        channels=net["channels"],
        strides=net["strides"],
        num_res_units=net["num_res_units"],
        act=net["act"],
        norm=Norm.INSTANCE,
    )


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """contrast_agnostic_lumbar_model.json + .pth, as in MuscleMap's scripts/models/<region>/ folders."""
    folder = tmp_path_factory.mktemp("musclemap") / "lumbar"
    folder.mkdir()
    config = _config()
    (folder / "contrast_agnostic_lumbar_model.json").write_text(json.dumps(config))
    state = _network(config).state_dict()
    generator = torch.Generator().manual_seed(7)
    for key, value in state.items():
        if value.dtype.is_floating_point:
            state[key] = torch.randn(value.shape, generator=generator) * 0.6
    torch.save(state, folder / "contrast_agnostic_lumbar_model.pth")
    return folder


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One smooth volume with a zero-intensity border, stored RAS and LPS (same world content)."""
    from scipy.ndimage import gaussian_filter

    folder = tmp_path_factory.mktemp("mm_images")
    rng = np.random.default_rng(11)
    volume = gaussian_filter(rng.normal(size=SHAPE), sigma=2.5)
    volume = (300 + 600 * volume / volume.std()).clip(0, None).astype(np.float32)
    volume[:3] = 0  # air, as MuscleMap's foreground crop and non-zero normalisation see it
    ras = np.diag([*SPACING, 1.0])
    ras[:3, 3] = [-25.0, -12.0, 40.0]
    lps = ras.copy()
    lps[:3, 0] *= -1
    lps[:3, 1] *= -1
    lps[:3, 3] += ras[:3, 0] * (SHAPE[0] - 1) + ras[:3, 1] * (SHAPE[1] - 1)
    nib.save(nib.Nifti1Image(volume, ras), folder / "ras.nii.gz")
    nib.save(nib.Nifti1Image(np.ascontiguousarray(volume[::-1, ::-1]), lps), folder / "lps.nii.gz")
    return {"ras": folder / "ras.nii.gz", "lps": folder / "lps.nii.gz"}


def monai_reference(image_path: Path, model_dir: Path, tmp: Path, *, chunk: int = 25) -> np.ndarray:
    """mm_segment's steps with MONAI's dictionary transforms, slab files and Invertd (nearest_interp off)."""
    from monai.inferers import SliceInferer
    from monai.transforms import (
        AsDiscreted,
        Compose,
        CropForegroundd,
        EnsureChannelFirstd,
        EnsureTyped,
        Invertd,
        LoadImaged,
        NormalizeIntensityd,
        Orientationd,
        Spacingd,
    )

    config = json.loads((model_dir / "contrast_agnostic_lumbar_model.json").read_text(encoding="utf-8"))
    network = _network(config)
    network.load_state_dict(torch.load(model_dir / "contrast_agnostic_lumbar_model.pth", weights_only=True))
    network.eval()
    pre = Compose(
        [
            LoadImaged(keys=["image"], image_only=False),
            EnsureChannelFirstd(keys=["image"]),
            Orientationd(keys=["image"], axcodes="RAS"),
            Spacingd(keys=["image"], pixdim=config["parameters"]["pix_dim"], mode="bilinear"),
            NormalizeIntensityd(keys=["image"], nonzero=True),
            CropForegroundd(keys=["image"], source_key="image", margin=20),
            EnsureTyped(keys=["image"]),
        ]
    )
    post = Compose(
        [
            Invertd(
                keys="pred",
                transform=pre,
                orig_keys="image",
                meta_keys="pred_meta_dict",
                orig_meta_keys="image_meta_dict",
                meta_key_postfix="meta_dict",
                nearest_interp=False,
                to_tensor=True,
                device="cpu",
            ),
            AsDiscreted(keys="pred", argmax=True),
        ]
    )
    inferer = SliceInferer(
        roi_size=config["parameters"]["roi_size"],
        sw_batch_size=config["parameters"]["spatial_window_batch_size"],
        spatial_dim=2,
        mode="gaussian",
        overlap=0.9,
    )
    values = np.array([0, *sorted(v["value"] for v in config["labels"])])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the backends under test: float sums depend on the thread count
    try:
        return largest_components(_reference_labels(image_path, pre, post, inferer, network, values, tmp, chunk))
    finally:
        torch.set_num_threads(threads)


def _reference_labels(image_path, pre, post, inferer, network, values, tmp: Path, chunk: int) -> np.ndarray:
    source = nib.load(image_path)
    data = source.get_fdata().astype(np.float32)
    full = np.zeros(data.shape, dtype=np.int16)
    for start in range(0, data.shape[-1], chunk):
        stop = min(start + chunk, data.shape[-1])
        slab_path = tmp / f"chunk_{start}.nii.gz"
        nib.save(nib.Nifti1Image(data[..., start:stop], source.affine, source.header), slab_path)
        prepared = pre({"image": str(slab_path)})
        with torch.inference_mode():
            pred = inferer(prepared["image"].float()[None], network)[0]
        out = post({"pred": pred, "image": prepared["image"], "image_meta_dict": prepared["image_meta_dict"]})
        full[..., start:stop] = values[out["pred"][0].numpy().astype(int)]
    return full


def largest_components(labels: np.ndarray) -> np.ndarray:
    """MuscleMap's connected_chunks rule on the whole volume: per label, keep the largest 26-connected piece.

    Ties go to the piece met first in C order (scipy's numbering), as in MuscleMap; MONAI's
    KeepLargestConnectedComponent breaks ties differently, so it is not used here.
    """
    from scipy import ndimage

    out = labels.copy()
    for value in np.unique(labels[labels != 0]):
        pieces, _ = ndimage.label(labels == value, structure=np.ones((3, 3, 3)))
        sizes = np.bincount(pieces.ravel())
        sizes[0] = 0
        out[(pieces > 0) & (pieces != np.argmax(sizes))] = 0
    return out


@pytest.fixture(scope="module")
def backend(model_dir: Path) -> MuscleMapBackend:
    return create_backend("musclemap", model=model_dir, options=BackendOptions(threads=1))


def test_matches_direct_monai_reference_on_the_input_grid(backend, model_dir, images, tmp_path) -> None:
    image = read_image(images["ras"])
    result = backend.segment(image)
    expected = monai_reference(images["ras"], model_dir, tmp_path)
    assert result.labels.shape == image.shape
    np.testing.assert_allclose(result.labels.affine, image.affine)
    np.testing.assert_array_equal(result.labels.array, expected)
    present = set(np.unique(result.labels.array).tolist()) - {0}
    assert len(present) >= 3 and present <= set(LABELS)
    assert result.scheme.key == "musclemap"


def test_lps_input_gives_the_same_world_labels(model_dir, images) -> None:
    # without the largest-component step: its ties (equal-size pieces) go to the piece first in array order
    raw = MuscleMapBackend(model_dir, keep_largest=False, threads=1)
    ras = raw.segment(read_image(images["ras"])).labels.array
    lps = raw.segment(read_image(images["lps"])).labels.array
    np.testing.assert_array_equal(lps, ras[::-1, ::-1])
    assert len(np.unique(ras)) >= 4


def test_one_slab_when_chunks_cover_the_volume(model_dir, images, tmp_path) -> None:
    whole = MuscleMapBackend(model_dir, chunk_slices=40, threads=1).segment(read_image(images["ras"]))
    np.testing.assert_array_equal(whole.labels.array, monai_reference(images["ras"], model_dir, tmp_path, chunk=40))


def test_keep_largest_per_label_drops_smaller_pieces() -> None:
    labels = np.zeros((9, 9, 3), dtype=np.int16)
    labels[0:3, 0:3, :] = 5  # 27 voxels
    labels[6:8, 6:8, 0] = 5  # 4 voxels, separate
    labels[5, 0, 0] = 7  # single voxel, only piece of label 7
    kept = keep_largest_per_label(labels)
    assert (kept == 5).sum() == 27 and (kept == 7).sum() == 1 and not kept[6:8, 6:8].any()


def test_model_folder_errors(tmp_path, model_dir) -> None:
    with pytest.raises(InputError) as err:
        create_backend("musclemap", model=tmp_path / "missing", options=BackendOptions())
    assert str(err.value) == (
        f"{tmp_path / 'missing'}: model folder not found; backend 'musclemap' expects "
        "a MuscleMap model folder (its config .json and .pth weights)"
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError) as err:
        MuscleMapBackend(empty)
    assert str(err.value) == f"{empty}: no .pth weights file in the MuscleMap model folder"
    no_config = tmp_path / "no_config"
    no_config.mkdir()
    (no_config / "m.pth").write_bytes((model_dir / "contrast_agnostic_lumbar_model.pth").read_bytes())
    with pytest.raises(InputError) as err:
        MuscleMapBackend(no_config)
    assert str(err.value) == f"{no_config}: no MuscleMap config m.json next to the weights"
    (no_config / "m.json").write_text(json.dumps({**_config(), "labels": []}))
    with pytest.raises(InputError) as err:
        MuscleMapBackend(no_config)
    assert (
        str(err.value) == f"{no_config / 'm.json'}: MuscleMap config lists no 'labels', so its outputs cannot be named"
    )
    bad = _config()
    del bad["parameters"]["roi_size"]
    (no_config / "m.json").write_text(json.dumps(bad))
    with pytest.raises(InputError) as err:
        MuscleMapBackend(no_config)
    assert (
        str(err.value) == f"{no_config / 'm.json'}: MuscleMap config is incomplete or malformed (KeyError: 'roi_size')"
    )
    (no_config / "m.json").write_text(json.dumps({**_config(), "labels": [{"value": 9999}] * 1}))
    with pytest.raises(InputError) as err:
        MuscleMapBackend(no_config)
    assert "lists 1 labels but the network has 10 outputs" in str(err.value)


def test_missing_extra_is_a_one_line_error(monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "monai" else real(name))
    with pytest.raises(InputError) as err:
        create_backend("musclemap", model=None, options=BackendOptions())
    assert (
        str(err.value)
        == "backend 'musclemap' needs monai, which is not installed: pip install \"paraspinal[musclemap]\""
    )
