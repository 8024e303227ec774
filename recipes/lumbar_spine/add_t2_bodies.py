"""Add the sagittal T2 spines to the vertebral body dataset, with body labels named from their manual discs.

    python recipes/lumbar_spine/add_t2_bodies.py ../shared/data/spine-sagittal/ivd-t2 \
        /tmp/Dataset902_LumbarSpine /tmp/Dataset905_LumbarSpineMixed --model /tmp/lumbar_spine_dixon

The 54 Dixon spines alone teach the model one contrast and one field of view: on the five 1.5 T T2 spines
the bodies are found but named one level off in most subjects (the sacrum's top taken for L5, or T12 for
L1). The T2 files carry disc masks, not body masks, so their body labels are made here:

1. ``--model`` (a body model trained on Dixon only) segments each T2 volume; its foreground, less pieces under
   ``MIN_PIECE_VOXELS`` and pieces away from the spine, is the body outline;
2. each foreground voxel is named from the manual discs: the planes of the five discs (centroid and the
   direction of least spread of each disc's voxels) cut the spine into L1 (above L1/L2, up to one motion
   segment), L2 ... L5, and the sacrum below L5/S1, which becomes background (as T12 above L1);
3. where the model missed most of L1, the image is cut at the top of the L1/L2 disc, so that an unlabelled L1
   is never taught as background.

With a Dixon dataset in scheme ``spine_bodies`` (``add_neighbour_bodies.py``) and a ``--model`` of that scheme,
the foreground above L1 (up to one more motion segment) becomes T12 (6) and below L5/S1 the sacrum (7); where
the model found under half of either (against L1 / L5), the image is cut at that end (through the top of L1,
above the L5/S1 disc, so that nothing of the tilted neighbour is left), so that a missed T12 or sacrum is never
taught as background either.

The outlines are the model's, so they are only as good as its Dice; the names are the manual ones. The
output dataset holds the Dixon cases (links to the source dataset's files) and each T2 case ``REPEATS``
times (``t2-NN-rK``), so T2 makes up about a fifth of the training slices. ``cross_validate.py`` keeps the
repeats of one subject in one fold. A QC image of the mid-sagittal slice of each T2 case is written to
``qc/``. Training data only: never shipped.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

import numpy as np
from scipy import ndimage

from paraspinal.backends import UNetOnnxBackend
from paraspinal.io import Image, read_image, read_label_map, write_label_map, write_nifti
from paraspinal.levels.spine_geometry import disc_plane, voxel_points_mm

REPEATS = 3
MIN_PIECE_VOXELS = 500
CORRIDOR_VOXELS = 30  # 1 mm voxels
T2_PREFIX = "t2-"


def subject_of(case_id: str) -> str:
    """The subject a case belongs to: a T2 subject is repeated as ``t2-NN-r1``, ``t2-NN-r2``, ..."""
    return re.sub(r"-r\d+$", "", case_id)


def disc_planes(discs: Image) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Centre (world mm) and cranial unit normal of each disc value (see :func:`disc_plane`)."""
    planes = {}
    array = np.asarray(discs.array)
    for value in range(1, 6):
        ijk = np.argwhere(array == value)
        if len(ijk) < 10:
            raise SystemExit(f"{discs.source}: disc {value} has {len(ijk)} voxels")
        planes[value] = disc_plane(voxel_points_mm(ijk, discs.affine))
    return planes


T12, SACRUM = 6, 7  # scheme spine_bodies (1-5 = L1-L5 as in lumbar_bodies)


def name_by_discs(foreground: np.ndarray, discs: Image, *, neighbours: bool = False) -> np.ndarray:
    """Body labels (1 = L1 ... 5 = L5) for ``foreground`` voxels (on the grid of ``discs``), named from
    the disc planes (disc values 1 = L5/S1 ... 5 = L1/L2). ``neighbours`` (scheme ``spine_bodies``): also T12
    (6, the motion segment above L1) and the sacrum (7, below L5/S1); otherwise those are background."""
    planes = disc_planes(discs)
    ijk = np.argwhere(foreground)
    points = voxel_points_mm(ijk, discs.affine)
    below = np.zeros(len(points), dtype=int)
    for centre, normal in planes.values():
        below += (points - centre) @ normal < 0
    segment = float(np.linalg.norm(planes[5][0] - planes[4][0]))
    above_l1l2 = (points - planes[5][0]) @ planes[5][1]
    level = below + 1  # below no disc: L1; below L1/L2 only: L2; ...; below all five: 6 (sacrum)
    above_l1 = (below == 0) & (above_l1l2 > segment)
    sacrum = level == 6
    level[above_l1 | sacrum] = 0  # T12 and above, the sacrum: background in lumbar_bodies
    if neighbours:
        level[above_l1 & (above_l1l2 <= 2.0 * segment)] = T12
        level[sacrum] = SACRUM
    out = np.zeros(foreground.shape, dtype=np.uint8)
    out[tuple(ijk.T)] = level
    return out


def missing_neighbour_rows(bodies: np.ndarray, discs: np.ndarray) -> tuple[int, int]:
    """Rows ``[top, bottom)`` (axis 0, superior to inferior) to keep when T12 or the sacrum was mostly missed
    (under half of L1's / L5's voxels); otherwise the whole image. Discs and endplates are tilted, so the cuts
    are made where nothing of the missed neighbour can remain: below the lowest point of L1's upper edge (the
    deepest first L1 row of any column; the top of L1 goes too) and above the highest row of the L5/S1 disc."""
    counts = np.bincount(bodies.ravel(), minlength=SACRUM + 1)
    top, bottom = 0, bodies.shape[0]
    if counts[1] > 0 and counts[T12] < 0.5 * counts[1]:
        l1 = bodies == 1
        columns = l1.any(axis=0)
        top = int(np.argmax(l1, axis=0)[columns].max())
    if counts[5] > 0 and counts[SACRUM] < 0.5 * counts[5]:
        bottom = int(np.argwhere(discs == 1)[:, 0].min())
    return top, bottom


def body_foreground(labels: np.ndarray, discs: np.ndarray) -> np.ndarray:
    """The model's foreground pieces of at least ``MIN_PIECE_VOXELS`` that touch the spine corridor
    (within ``CORRIDOR_VOXELS`` front to back of the line through the disc centroids)."""
    centres = np.array([np.argwhere(discs == v).mean(axis=0) for v in range(5, 0, -1)])  # voxels, cranial to caudal
    rows = np.arange(labels.shape[0])
    spine_ap = np.interp(rows, centres[:, 0], centres[:, 1])  # constant beyond the first and last disc
    inside = np.abs(np.arange(labels.shape[1])[None, :] - spine_ap[:, None]) <= CORRIDOR_VOXELS
    pieces, n = ndimage.label(labels > 0)
    sizes = np.bincount(pieces.ravel(), minlength=n + 1)
    touching = np.zeros(n + 1, dtype=bool)
    touching[np.unique(pieces[inside[:, :, None] & (pieces > 0)])] = True
    keep = (sizes >= MIN_PIECE_VOXELS) & touching
    keep[0] = False
    return keep[pieces]


def missed_l1(bodies: np.ndarray) -> bool:
    """Whether the outline has under half as many L1 voxels as L2 voxels (labels 1 = L1 ... 5 = L5)."""
    counts = np.bincount(bodies.ravel(), minlength=6)
    return bool(counts[1] < 0.5 * counts[2])


def missing_l1_crop(bodies: np.ndarray, discs: np.ndarray) -> int:
    """First row (index 0, superior to inferior) to keep: the top of L1/L2 when the model missed most of
    L1 (under half L2's voxels), so that an unlabelled L1 is not taught as background; else 0."""
    if not missed_l1(bodies):
        return 0
    return int(np.argwhere(discs == 5)[:, 0].min())


def rows_from(image: Image, top: int, bottom: int | None = None) -> Image:
    """``image`` without its first ``top`` rows (array axis 0) and from row ``bottom`` on, on the matching grid."""
    affine = image.affine.copy()
    affine[:3, 3] += affine[:3, 0] * top
    array = np.asarray(image.array)[top:bottom]
    return Image(array=array, affine=affine, source=image.source, metadata=dict(image.metadata))


def qc_image(image: np.ndarray, labels: np.ndarray, discs: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = int(np.argmax((labels > 0).sum(axis=(0, 1))))
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.imshow(image[:, :, k], cmap="gray")
    ax.imshow(np.ma.masked_equal(labels[:, :, k], 0), cmap="tab10", vmin=0, vmax=9, alpha=0.45)
    ax.contour(discs[:, :, k] > 0, levels=[0.5], colors="yellow", linewidths=0.8)
    ax.set_title(f"{path.stem}: slice {k}")
    ax.axis("off")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)


def link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() or target.is_symlink():
        target.unlink()
    os.symlink(source.resolve(), target)


def main(t2_dir: Path, dixon: Path, out: Path, *, model: Path) -> None:
    backend = UNetOnnxBackend(model)
    meta = json.loads((dixon / "dataset.json").read_text(encoding="utf-8"))
    neighbours = "T12" in meta["labels"]  # the spine_bodies dataset of add_neighbour_bodies.py
    if neighbours and backend.scheme.key != "spine_bodies":
        raise SystemExit(f"{model}: a {backend.scheme.key} model cannot outline T12 and the sacrum (spine_bodies)")
    cases = []
    for image_path in sorted((dixon / "imagesTr").glob("*_0000.nii.gz")):
        case = image_path.name[: -len("_0000.nii.gz")]
        link(image_path, out / "imagesTr" / image_path.name)
        link(dixon / "labelsTr" / f"{case}.nii.gz", out / "labelsTr" / f"{case}.nii.gz")
        cases.append(case)
    for image_path in sorted(t2_dir.glob("*_img.nii.gz")):
        subject = image_path.name[: -len("_img.nii.gz")]
        image = read_image(image_path)
        discs = read_label_map(t2_dir / f"{subject}_seg.nii.gz")
        predicted = backend.segment(image).labels
        disc_array = np.asarray(discs.array)
        bodies = name_by_discs(body_foreground(np.asarray(predicted.array), disc_array), discs, neighbours=neighbours)
        top, bottom = missing_l1_crop(bodies, disc_array), bodies.shape[0]
        if neighbours:  # both ends, whatever the L1 check cut
            t12_top, bottom = missing_neighbour_rows(bodies, disc_array)
            top = max(top, t12_top)
        if top or bottom < bodies.shape[0]:
            image, discs = rows_from(image, top, bottom), rows_from(discs, top, bottom)
            bodies, disc_array = bodies[top:bottom], disc_array[top:bottom]
        counts = np.bincount(bodies.ravel(), minlength=8)[1:].tolist()
        print(f"{subject}: voxels per body L1-L5, T12, sacrum {counts}; rows kept {top}-{bottom}", flush=True)
        first = out / "imagesTr" / f"{T2_PREFIX}{subject}-r1_0000.nii.gz"
        write_nifti(image.with_array(np.asarray(image.array, dtype=np.float32)), first)
        first_labels = out / "labelsTr" / f"{T2_PREFIX}{subject}-r1.nii.gz"
        write_label_map(discs.with_array(bodies), first_labels)
        qc_image(np.asarray(image.array), bodies, disc_array, out / "qc" / f"{subject}.png")
        cases.append(f"{T2_PREFIX}{subject}-r1")
        for repeat in range(2, REPEATS + 1):
            case = f"{T2_PREFIX}{subject}-r{repeat}"
            link(first, out / "imagesTr" / f"{case}_0000.nii.gz")
            link(first_labels, out / "labelsTr" / f"{case}.nii.gz")
            cases.append(case)
    meta.update(
        name=out.name,
        description=meta["description"]
        + "; plus sagittal 1.5 T T2 spines (Menezes-Reis 2016), bodies named from manual discs",
        channel_names={"0": "sagittal"},
        numTraining=len(cases),
    )
    (out / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    print(f"{out}: {len(cases)} cases", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("t2", type=Path, help="folder of NN_img / NN_seg sagittal T2 files with disc masks")
    parser.add_argument("dixon", type=Path, help="the Dixon body dataset written by make_dataset.py")
    parser.add_argument("out", type=Path)
    parser.add_argument("--model", type=Path, required=True, help="a body model trained on the Dixon spines alone")
    args = parser.parse_args()
    main(args.t2, args.dixon, args.out, model=args.model)
