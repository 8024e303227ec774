"""The privacy scanner itself: it must find planted patient data in every output format it claims to read."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from paraspinal.io.dicom import read_dicom, scan_dicom
from tests.dicom_factory import PLANTED, uid_for, write_series
from tests.privacy import scan_files, scan_texts

NAME_PART = "Qzwbrmpt"


def _clean_outputs(folder: Path) -> None:
    folder.mkdir()
    pd.DataFrame({"case_id": ["c1"], "value": [1.5]}).to_csv(folder / "t.csv", index=False)
    pd.DataFrame({"case_id": ["c1"], "value": [1.5]}).to_parquet(folder / "t.parquet")
    (folder / "c.json").write_text(json.dumps({"case_id": "c1"}))
    (folder / "r.html").write_text("<html><body>c1</body></html>")
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.uint8), np.eye(4)), str(folder / "l.nii.gz"))


def test_clean_outputs_have_no_findings(tmp_path: Path) -> None:
    _clean_outputs(tmp_path / "out")
    assert scan_files(tmp_path / "out", PLANTED.needles()) == []


@pytest.mark.parametrize("kind", ["csv", "parquet_cell", "parquet_metadata", "json_escaped", "html_entity", "nifti",
                                  "gzipped_log"])  # fmt: skip
def test_planted_data_is_found_in_every_format(tmp_path: Path, kind: str) -> None:
    _clean_outputs(tmp_path / "out")
    out = tmp_path / "out"
    if kind == "csv":
        pd.DataFrame({"case_id": [PLANTED.patient_id]}).to_csv(out / "t.csv", index=False)
    elif kind == "parquet_cell":
        frame = pd.DataFrame({"note": [f"born {PLANTED.birth_date}"] * 50})
        frame.to_parquet(out / "t.parquet", compression="gzip", write_statistics=False)
    elif kind == "parquet_metadata":
        frame = pd.DataFrame({"value": [1.0]})
        frame.attrs["patient"] = PLANTED.name
        frame.to_parquet(out / "t.parquet")
    elif kind == "json_escaped":
        (out / "c.json").write_text(
            json.dumps({"who": "\u00e9 " + NAME_PART}, ensure_ascii=True).replace("Q", "\\u0051")
        )
    elif kind == "html_entity":
        (out / "r.html").write_text("<p>&#81;zwbrmpt</p>")
    elif kind == "nifti":
        image = nib.Nifti1Image(np.zeros((2, 2, 2), np.uint8), np.eye(4))
        image.header["descrip"] = f"subject {PLANTED.patient_id}".encode()
        nib.save(image, str(out / "l.nii.gz"))
    elif kind == "gzipped_log":
        (out / "run.log.gz").write_bytes(gzip.compress(f"reading patient {NAME_PART}\n".encode()))
    findings = scan_files(out, PLANTED.needles())
    assert findings, kind
    assert {f.needle for f in findings} <= set(PLANTED.needles())
    if kind == "parquet_cell":  # compressed on disk: only the decoded cells show it
        assert {f.view for f in findings} == {"parquet cells"}


def test_planted_data_found_in_dicom_and_logs(tmp_path: Path) -> None:
    files = write_series(tmp_path, np.zeros((4, 4, 2), np.uint16), np.eye(4), series_uid=uid_for("p"), description="x")
    assert {f.needle for f in scan_files(files[:1], PLANTED.needles())} >= {PLANTED.patient_id, NAME_PART}
    assert scan_texts({"stderr": f"error in {PLANTED.birth_date[:4]}-07-23"}, PLANTED.needles())


def test_listing_and_image_metadata_hold_no_patient_data(tmp_path: Path) -> None:
    write_series(tmp_path, np.ones((4, 4, 3), np.uint16), np.eye(4), series_uid=uid_for("q"), description="axial")
    listing = json.dumps([s.to_dict() for s in scan_dicom(tmp_path).series])
    metadata = json.dumps(read_dicom(tmp_path).metadata)
    assert scan_texts({"listing": listing, "metadata": metadata}, PLANTED.needles()) == []
