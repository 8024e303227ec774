"""Write the bundled TUM01 sample as an nnU-Net v2 raw dataset (one case, channels water and fat).

    python recipes/tum01_muscle/make_dataset.py /tmp/Dataset901_TUM01

The water file's header differs from the labels' on the same voxels (see the sample README), so
both images are written with the label map's affine. Values are stored as float32.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from paraspinal.io import Image, read_image, read_label_map, write_label_map, write_nifti
from paraspinal.sample import sample_case


def make_dataset(out: Path) -> Path:
    """Write ``out/dataset.json``, ``out/imagesTr/TUM01_000{0,1}.nii.gz`` and ``out/labelsTr/TUM01.nii.gz``."""
    case = sample_case()
    labels = read_label_map(case.labels)
    for channel, path in enumerate((case.water, case.fat)):
        image = read_image(path)
        aligned = Image(array=image.array.astype(np.float32), affine=labels.affine, source=str(path))
        write_nifti(aligned, out / "imagesTr" / f"TUM01_{channel:04d}.nii.gz")
    write_label_map(labels, out / "labelsTr" / "TUM01.nii.gz")
    meta = {
        "name": "Dataset901_TUM01",
        "description": "MyoSegmenTUM TUM01 (bundled paraspinal sample), Dixon water and fat, lpm4 labels",
        "channel_names": {"0": "water", "1": "fat"},
        "labels": {"background": 0, "ES_R": 1, "MF_R": 2, "MF_L": 3, "ES_L": 4},
        "numTraining": 1,
        "file_ending": ".nii.gz",
    }
    (out / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="dataset folder to write")
    print(make_dataset(parser.parse_args().out))
