"""Faults at the edges of input and output, in real ``paraspinal`` processes: no silent wrong numbers.

Bad headers (zero spacing, a size the file cannot hold), doubtful voxels (complex, blank, constant),
file-system failures (read-only folder, a parent that is a file, a full disk: a tmpfs of a few kB in
a private mount namespace), output modes under the umask, and DICOM free text (markup, escape codes,
patient names) in listings and outputs. Each error is exactly one line; failed commands leave nothing.
"""

from __future__ import annotations

import gzip
import json
import os
import stat
import struct
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from paraspinal.sample import sample_case
from tests.conftest import in_ci
from tests.dicom_factory import uid_for, write_series
from tests.phantoms import two_muscle_phantom
from tests.privacy import scan_files
from tests.reliability.support import PARASPINAL, cli_env, one_error_line, run_cli

DESCRIPTION = "John Smith [/] \x1b[31mRED"  # a patient's name, rich markup that crashed `series`, an escape code
ESCAPED = "John Smith [/] \\x1b[31mRED"  # how paraspinal prints and stores it (with --keep-descriptions)
NAME = "John Smith"
NEEDLES = [NAME, "31mRED"]  # the name, and the text after the escape code (escaped or not)
EIGHT_GB = (2000, 2000, 2000)  # uint8 voxels: 8.0 GB declared
DEFLATE_BOUND = 1032  # the reader's bound on how far a gzip stream can inflate, plus 1 kB


def _require_root() -> None:
    """Mount namespaces and tmpfs need root; CI runs as root, so there these tests never skip."""
    if os.geteuid() != 0 and not in_ci():
        pytest.skip("needs root (unshare -m, mount)")


def _patched_nifti(source: Path, target: Path, fields: dict[int, tuple[str, float]]) -> Path:
    """``source`` with raw header bytes overwritten (offset -> struct format, value): no nibabel fix-ups."""
    raw = bytearray(gzip.decompress(source.read_bytes()))
    for offset, (fmt, value) in fields.items():
        struct.pack_into(fmt, raw, offset, value)
    target.write_bytes(gzip.compress(bytes(raw)))
    return target


ZERO_SLICE_SPACING = {88: ("<f", 0.0), 252: ("<h", 0), 254: ("<h", 0)}  # pixdim[3] = 0, qform/sform codes 0


def _small_water(tmp_path: Path) -> Path:
    """A 200 x 200 x 3 crop of TUM01 water (segments in a few seconds; its label map is < 4 kB)."""
    water = nib.load(str(sample_case().water))
    crop = np.asanyarray(water.dataobj)[100:300, 100:300, 10:13]
    path = tmp_path / "small.nii.gz"
    nib.save(nib.Nifti1Image(crop, water.affine), str(path))
    return path


def _files_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


# --- headers -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_zero_slice_spacing_is_refused_instead_of_a_quarter_of_the_volume(tmp_path: Path) -> None:
    case = sample_case()
    labels = _patched_nifti(case.labels, tmp_path / "z_labels.nii.gz", ZERO_SLICE_SPACING)
    water = _patched_nifti(case.water, tmp_path / "z_water.nii.gz", ZERO_SLICE_SPACING)
    fat = _patched_nifti(case.fat, tmp_path / "z_fat.nii.gz", ZERO_SLICE_SPACING)
    out = tmp_path / "out"
    # before: read as 1 mm slices, ES both 98.5 mL (394.2 mL with the real 4 mm), exit 0
    args = ["measure", "--labels", labels, "--water", water, "--fat", fat, "--levels", case.levels]
    result = run_cli([*args, "--assume-aligned", "--methods", "", "-o", out])
    assert result.returncode == 1
    assert one_error_line(result.stderr) == (
        f"paraspinal: error: {labels}: voxel spacing along axis 3 is 0 in the NIfTI header (pixdim[3]) and no "
        "sform gives another; volumes would be wrong: fix the header"
    )
    assert "setting 0 dims to 1" not in result.stderr  # refused before nibabel's fix-up
    assert not out.exists()
    # the real header still measures the real volume
    result = run_cli(["measure", "--sample", "--methods", "", "-o", tmp_path / "sample", "-q"])
    assert result.returncode == 0, result.stderr
    summary = pd.read_csv(tmp_path / "sample" / "TUM01_summary.csv").set_index(["structure", "side"])
    assert summary.loc[("erector_spinae", "both"), "volume_mL"] == pytest.approx(394.2, abs=0.05)


def _declaring_8_gb(tmp_path: Path, kind: str) -> Path:
    """A ~2 kB file whose header declares 2000^3 uint8 voxels (8.0 GB)."""
    if kind in (".nii", ".nii.gz"):
        header = nib.Nifti1Header()
        header.set_data_dtype(np.uint8)
        header.set_data_shape(EIGHT_GB)
        header.set_zooms((1.0, 1.0, 1.0))
        raw = header.binaryblock + b"\0" * 4
        raw += b"\0" * (2000 - len(raw))
        path = tmp_path / f"big{kind}"
        path.write_bytes(gzip.compress(raw) if kind == ".nii.gz" else raw)
        return path
    if kind == ".mha":
        text = (
            b"ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
            b"CompressedData = False\nElementSpacing = 1 1 1\nDimSize = 2000 2000 2000\n"
            b"ElementType = MET_UCHAR\nElementDataFile = LOCAL\n"
        )
        path = tmp_path / "big.mha"
        path.write_bytes(text + b"\0" * (2000 - len(text)))
        return path
    text = b"NRRD0004\ntype: uint8\ndimension: 3\nsizes: 2000 2000 2000\nencoding: raw\nendian: little\n\n"
    path = tmp_path / "big.nrrd"
    path.write_bytes(text + b"\0" * (2000 - len(text)))
    return path


# A fresh, small interpreter starts paraspinal and reports its child's peak RSS: measured from the test
# process itself, ``ru_maxrss`` would include the pages of the (large) pytest process the child was forked from.
_PEAK_RSS = (
    "import os, subprocess, sys\n"
    "child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
    "_, status, usage = os.wait4(child.pid, 0)\n"
    "print(os.waitstatus_to_exitcode(status), usage.ru_maxrss * 1024)\n"  # ru_maxrss is in kB on Linux
)


def _run_measuring_memory(args: list[str | Path]) -> tuple[int, str, int, float]:
    """Exit code, stderr, peak RSS (bytes) and seconds of one ``paraspinal`` process."""
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS, *PARASPINAL, *map(str, args)],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=300,
    )
    seconds = time.perf_counter() - start
    assert result.returncode == 0, result.stderr
    code, peak_rss = (int(word) for word in result.stdout.split())
    return code, result.stderr, peak_rss, seconds


@pytest.mark.slow
@pytest.mark.parametrize("kind", [".nii", ".nii.gz", ".mha", ".nrrd"])
def test_header_declaring_8_gb_in_2_kb_errors_fast_with_bounded_memory(tmp_path: Path, kind: str) -> None:
    path = _declaring_8_gb(tmp_path, kind)
    size = path.stat().st_size
    out = tmp_path / "out"
    code, stderr, peak_rss, seconds = _run_measuring_memory(["measure", "--labels", path, "-o", out])
    assert code == 1
    if kind == ".nii.gz":
        bound = size * DEFLATE_BOUND + 1024
        held = f"the file ({size} B compressed) can hold at most {bound / 1000:.1f} kB"
    else:
        assert size == 2000
        held = "the file holds 2.0 kB"
    assert one_error_line(stderr) == (
        f"paraspinal: error: {path}: header declares 8.0 GB of voxels but {held} (truncated or corrupt)"
    )
    assert peak_rss < 1e9, f"peak RSS {peak_rss / 1e6:.0f} MB for a file declaring 8 GB"  # before: 7.9 GB
    assert seconds < 60
    assert not out.exists()


# --- doubtful images -----------------------------------------------------------------------------


def _phantom_files(tmp_path: Path) -> dict[str, Path]:
    labels, water, fat, affine = two_muscle_phantom()
    arrays = {
        "labels": labels.astype(np.uint8),
        "water": water.astype(np.float32),
        "fat": fat.astype(np.float32),
        "complex": (water + 1j * fat).astype(np.complex64),
        "blank": np.zeros(water.shape, np.float32),
        "constant": np.full(water.shape, 7.5, np.float32),
        "no_labels": np.zeros(labels.shape, np.uint8),
    }
    paths = {}
    for name, array in arrays.items():
        paths[name] = tmp_path / f"ph_{name}.nii.gz"
        nib.save(nib.Nifti1Image(array, affine), str(paths[name]))
    return paths


@pytest.mark.slow
def test_complex_blank_and_constant_images_are_refused_in_one_line(tmp_path: Path) -> None:
    files = _phantom_files(tmp_path)
    out = tmp_path / "out"
    expected = {
        "complex": "image holds complex values (complex64); save the magnitude (or the real part) as a real-valued "
        "image",
        "blank": "every voxel of the image is 0 (blank image: a failed export or the wrong file?); nothing to "
        "segment or measure",
        "constant": "every voxel of the image is 7.5 (constant image: a failed export or the wrong file?); nothing "
        "to segment or measure",
    }
    for name, message in expected.items():  # before: the imaginary part dropped, a 42 % fat fraction, exit 0
        args = ["measure", "--labels", files["labels"], "--water", files[name], "--fat", files["fat"], "-o", out]
        result = run_cli(args)
        assert result.returncode == 1, name
        assert one_error_line(result.stderr) == f"paraspinal: error: {files[name]}: {message}"
        assert not out.exists()
    result = run_cli(["segment", files["blank"], "-o", out])  # before: an empty label map, exit 0
    assert result.returncode == 1
    assert one_error_line(result.stderr) == f"paraspinal: error: {files['blank']}: {expected['blank']}"
    assert not out.exists()
    # a label map without labels is read (all zero is a valid label map) and refused by measurement itself
    result = run_cli(["measure", "--labels", files["no_labels"], "--water", files["water"], "--fat", files["fat"],
                      "-o", out])  # fmt: skip
    assert result.returncode == 1
    assert one_error_line(result.stderr) == (
        f"paraspinal: error: {files['no_labels']}: label map is empty (no labelled voxels)"
    )
    result = run_cli(["measure", "--labels", files["labels"], "--water", files["water"], "--fat", files["fat"],
                      "-o", out, "-q"])  # fmt: skip
    assert result.returncode == 0, result.stderr


# --- file-system faults --------------------------------------------------------------------------

_TMPFS = 'mount -t tmpfs -o size="$1"k tmpfs "$2" || exit 99; dir=$2; keep=$3; shift 3; "$@"; rc=$?; cp -a "$dir"/. "$keep"; exit $rc'  # noqa: E501
_READ_ONLY = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" || exit 99; shift; exec "$@"'


def _on_full_disk(
    size_kb: int, mount: Path, args: list[str | Path], *, cwd: Path
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """``paraspinal ARGS`` with a ``size_kb`` tmpfs on ``mount`` (private mount namespace); what it left there is
    copied to the returned folder before the namespace goes away."""
    mount.mkdir()
    kept = cwd / f"left_on_{mount.name}"
    kept.mkdir()
    command = ["unshare", "-m", "sh", "-c", _TMPFS, "sh", str(size_kb), str(mount), str(kept), *PARASPINAL]
    result = subprocess.run([*command, *map(str, args)], capture_output=True, text=True, env=cli_env(), cwd=cwd,
                            timeout=300)  # fmt: skip
    assert result.returncode != 99, result.stderr
    return result, kept


def _in_read_only(folder: Path, args: list[str | Path]) -> subprocess.CompletedProcess[str]:
    """``paraspinal ARGS`` with ``folder`` bind-mounted read-only (root ignores chmod)."""
    command = ["unshare", "-m", "sh", "-c", _READ_ONLY, "sh", str(folder), *PARASPINAL, *map(str, args)]
    result = subprocess.run(command, capture_output=True, text=True, env=cli_env(), timeout=300)
    assert result.returncode != 99, result.stderr
    return result


@pytest.mark.slow
def test_full_disk_under_segment_leaves_neither_label_map_nor_json(tmp_path: Path) -> None:
    _require_root()
    image = _small_water(tmp_path)
    # one 4 kB page: the label map fits, its JSON files do not (before: the label map stayed, alone)
    result, left = _on_full_disk(
        4, tmp_path / "disk", ["segment", image, "-o", tmp_path / "disk" / "seg"], cwd=tmp_path
    )
    assert result.returncode == 1
    assert one_error_line(result.stderr) == f"paraspinal: error: {tmp_path / 'disk' / 'seg'}: No space left on device"
    assert _files_under(left) == []
    result, left = _on_full_disk(16, tmp_path / "roomy", ["segment", image, "-o", tmp_path / "roomy" / "seg", "-q"],
                                 cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert _files_under(left) == ["seg", "seg/small_dseg.json", "seg/small_dseg.nii.gz", "seg/small_quality.json"]
    assert json.loads((left / "seg" / "small_dseg.json").read_text(encoding="utf-8"))["scheme"] == "lpm4"


@pytest.mark.slow
def test_full_disk_under_measure_is_one_line_naming_the_folder(tmp_path: Path) -> None:
    _require_root()
    out = tmp_path / "disk" / "m"
    result, left = _on_full_disk(64, tmp_path / "disk", ["measure", "--sample", "-o", out, "-q"], cwd=tmp_path)
    assert result.returncode == 1
    # before: "paraspinal: error: [Errno 28] Error writing bytes to file. Detail: [errno 28] No space left on device"
    assert one_error_line(result.stderr) == f"paraspinal: error: {out}: No space left on device"
    assert _files_under(left) == []


@pytest.mark.slow
def test_read_only_output_folder_is_one_line_and_stays_empty(tmp_path: Path) -> None:
    _require_root()
    image = _small_water(tmp_path)
    folder = tmp_path / "ro"
    folder.mkdir()
    result = _in_read_only(folder, ["segment", image, "-o", folder])
    assert result.returncode == 1
    assert one_error_line(result.stderr) == f"paraspinal: error: {folder / 'small_dseg.nii.gz'}: Read-only file system"
    result = _in_read_only(folder, ["measure", "--sample", "-o", folder, "-q"])
    assert result.returncode == 1
    assert one_error_line(result.stderr) == (
        f"paraspinal: error: {folder / 'TUM01_measurements.csv'}: Read-only file system"
    )
    result = _in_read_only(folder, ["measure", "--sample", "-o", folder / "sub", "-q"])
    assert result.returncode == 1
    assert one_error_line(result.stderr) == f"paraspinal: error: {folder / 'sub'}: Read-only file system"
    assert _files_under(folder) == []


@pytest.mark.slow
def test_output_path_through_a_file_is_one_line(tmp_path: Path) -> None:
    image = _small_water(tmp_path)
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder\n")
    result = run_cli(["segment", image, "-o", blocker / "case_dseg.nii.gz"], cwd=tmp_path)
    assert result.returncode == 1
    assert one_error_line(result.stderr) == f"paraspinal: error: {blocker}: Not a directory"
    result = run_cli(["measure", "--sample", "-o", blocker / "m", "-q"], cwd=tmp_path)
    assert result.returncode == 1
    assert one_error_line(result.stderr) == f"paraspinal: error: {blocker / 'm'}: Not a directory"
    assert blocker.read_text(encoding="utf-8") == "not a folder\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "small.nii.gz"]


# --- modes ---------------------------------------------------------------------------------------


def _modes(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in [folder, *folder.rglob("*")]}


@pytest.mark.slow
@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_outputs_follow_the_umask(tmp_path: Path, umask: int) -> None:
    image = _small_water(tmp_path)

    def with_umask() -> None:
        os.umask(umask)

    seg, measured, ran = tmp_path / "seg", tmp_path / "measured", tmp_path / "ran"
    result = run_cli(["segment", image, "-o", seg, "-q"], preexec_fn=with_umask)
    assert result.returncode == 0, result.stderr
    labels = seg / "small_dseg.nii.gz"
    result = run_cli(["measure", image, "--labels", labels, "-o", measured, "-q"], preexec_fn=with_umask)
    assert result.returncode == 0, result.stderr
    result = run_cli(["run", image, "--labels", labels, "-o", ran, "-q"], preexec_fn=with_umask)
    assert result.returncode == 0, result.stderr
    expected = {"file": 0o666 & ~umask, "folder": 0o777 & ~umask}  # before: 0600 files and 0700 folders
    for folder in (seg, measured, ran):
        modes = _modes(folder)
        assert len(modes) > 2
        for name, mode in modes.items():
            kind = "folder" if (folder / name).is_dir() else "file"
            if name == "ledger.sqlite":  # SQLite creates its own file 0644 less the umask (readable by all)
                assert mode == 0o644 & ~umask, name
                continue
            assert mode == expected[kind], f"{folder.name}/{name}: {oct(mode)}"
    assert {"small/small_dseg.nii.gz", "small/small_report.html", "manifest.json"} <= set(_modes(ran))


# --- DICOM free text -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dicom_study(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Phantom labels and water as DICOM series described ``DESCRIPTION``, alone and together in one folder."""
    root = tmp_path_factory.mktemp("described")
    labels, water, _, affine = two_muscle_phantom()
    write_series(root / "labels", labels, affine, series_uid=uid_for("desc-labels"), description=DESCRIPTION)
    write_series(root / "water", water, affine, series_uid=uid_for("desc-water"), description=DESCRIPTION,
                 series_number=2)  # fmt: skip
    for name in ("labels", "water"):  # both in one study: ambiguous without --series
        for file in (root / name).iterdir():
            (root / "both").mkdir(exist_ok=True)
            (root / "both" / f"{name}_{file.name}").write_bytes(file.read_bytes())
    return {"labels": root / "labels", "water": root / "water", "both": root / "both"}


def test_series_prints_descriptions_literally_with_control_characters_escaped(dicom_study: dict[str, Path]) -> None:
    result = run_cli(["series", dicom_study["both"]])
    assert result.returncode == 0, result.stderr  # before: rich MarkupError on "[/]"
    assert "\x1b" not in result.stdout
    assert result.stdout.count(f"\n      {ESCAPED} | axial, tilt 0.0 deg | 10 slices, 40 x 30 px |") == 2
    result = run_cli(["series", dicom_study["both"], "--json"])
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout
    assert [s["description"] for s in json.loads(result.stdout)["series"]] == [ESCAPED, ESCAPED]


@pytest.mark.slow
def test_descriptions_stay_out_of_measure_outputs_and_messages_unless_kept(
    dicom_study: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = run_cli(["measure", dicom_study["water"], "--labels", dicom_study["labels"], "-o", out])
    assert result.returncode == 0, result.stderr
    assert scan_files(out, NEEDLES) == []
    assert NAME not in result.stdout + result.stderr
    case = json.loads((out / "water_case.json").read_text(encoding="utf-8"))
    assert case["inputs"]["labels_series"] == f"{uid_for('desc-labels')} (axial; 40x30x10 voxels)"
    kept = tmp_path / "kept"
    args = ["measure", "--labels", dicom_study["labels"], "--keep-descriptions", "-o", kept, "-q"]
    result = run_cli(args)
    assert result.returncode == 0, result.stderr
    case = json.loads((kept / "labels_case.json").read_text(encoding="utf-8"))
    assert case["inputs"]["labels_series"] == f"{uid_for('desc-labels')} ({ESCAPED}; axial; 40x30x10 voxels)"
    assert b"\x1b" not in (kept / "labels_case.json").read_bytes()
    # an ambiguous folder lists its series by UID; with --keep-descriptions by description too
    for flag, listed in (([], ""), (["--keep-descriptions"], f"{ESCAPED}, ")):
        result = run_cli(["measure", "--labels", dicom_study["both"], *flag, "-o", tmp_path / "none"])
        assert result.returncode == 1
        assert one_error_line(result.stderr) == (
            f"paraspinal: error: {dicom_study['both']}: folder holds 2 DICOM series, choose one: "
            f"{uid_for('desc-labels')} ({listed}10 files); {uid_for('desc-water')} ({listed}10 files); "
            "pick one with --series UID or narrow with --plane/--contrast (see `paraspinal series`)"
        )
        assert "\x1b" not in result.stderr


@pytest.mark.slow
def test_descriptions_stay_out_of_run_outputs_unless_kept(dicom_study: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = run_cli(["run", dicom_study["water"], "--labels", dicom_study["labels"], "-o", out, "--log-json"])
    assert result.returncode == 0, result.stderr
    assert scan_files(out, NEEDLES) == []
    assert NAME not in result.stdout + result.stderr
    # a failed case's error goes into cases.csv, the manifest, the report and the JSON log
    failed = tmp_path / "failed"
    result = run_cli(["run", dicom_study["both"], "--labels", dicom_study["labels"], "-o", failed, "--log-json"])
    assert result.returncode == 1
    assert "folder holds 2 DICOM series, choose one" in (failed / "manifest.json").read_text(encoding="utf-8")
    assert scan_files(failed, NEEDLES) == []
    assert NAME not in result.stdout + result.stderr
    kept = tmp_path / "kept"
    result = run_cli(["run", dicom_study["both"], "--labels", dicom_study["labels"], "-o", kept, "--keep-descriptions",
                      "--log-json"])  # fmt: skip
    assert result.returncode == 1
    error = json.loads((kept / "manifest.json").read_text(encoding="utf-8"))["cases"][0]["error"]
    assert f"{uid_for('desc-labels')} ({ESCAPED}, 10 files)" in error
    assert "\x1b" not in result.stderr and b"\x1b" not in (kept / "manifest.json").read_bytes()
