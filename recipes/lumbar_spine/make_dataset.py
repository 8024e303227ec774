"""Write the sagittal MyoSegmenTUM vertebra data as an nnU-Net v2 raw dataset for `paraspinal train`.

    python recipes/lumbar_spine/make_dataset.py ../shared/data/spine-sagittal/myosegmentum-vertebrae \
        /tmp/Dataset902_LumbarSpine

Each ``NN_img.nii.gz`` becomes ``imagesTr/NN_0000.nii.gz`` and ``NN_seg.nii.gz`` ``labelsTr/NN.nii.gz``
(channel ``dixon``; 1 = L1 ... 5 = L5 vertebral bodies, scheme ``lumbar_bodies``). The files are training
data only: they are never shipped with paraspinal (see the data's README).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from paraspinal.io import read_image, read_label_map, write_label_map, write_nifti

VERTEBRAE = {
    "name": "Dataset902_LumbarSpine",
    "description": "MyoSegmenTUM spine sagittal Dixon, L1-L5 vertebral bodies (lumbar_bodies scheme)",
    "channel_names": {"0": "dixon"},
    "labels": {"background": 0, "L1": 1, "L2": 2, "L3": 3, "L4": 4, "L5": 5},
}


def make_dataset(source: Path, out: Path) -> list[str]:
    """Convert every ``NN_img``/``NN_seg`` pair in ``source``; returns the case ids written."""
    cases = sorted(p.name[: -len("_img.nii.gz")] for p in source.glob("*_img.nii.gz"))
    if not cases:
        raise SystemExit(f"{source}: no *_img.nii.gz files")
    for case in cases:
        image = read_image(source / f"{case}_img.nii.gz")
        labels = read_label_map(source / f"{case}_seg.nii.gz")
        values = set(np.unique(labels.array).tolist())
        if not values <= {0, 1, 2, 3, 4, 5}:
            raise SystemExit(f"{source / f'{case}_seg.nii.gz'}: unexpected label values {sorted(values)}")
        write_nifti(image.with_array(image.array.astype(np.float32)), out / "imagesTr" / f"{case}_0000.nii.gz")
        write_label_map(labels, out / "labelsTr" / f"{case}.nii.gz")
    meta = {**VERTEBRAE, "numTraining": len(cases), "file_ending": ".nii.gz"}
    (out / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return cases


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="folder with NN_img.nii.gz / NN_seg.nii.gz pairs")
    parser.add_argument("out", type=Path, help="dataset folder to write")
    args = parser.parse_args()
    n = len(make_dataset(args.source, args.out))
    print(n, "cases written to", args.out)
