"""Add a rough sacrum (top of S1) label to the vertebral body dataset, so a model can learn where the lumbar spine ends.

    python recipes/lumbar_spine/add_sacrum.py /tmp/Dataset905_LumbarSpineMixed /tmp/Dataset906_LumbarSpineSacrum \
        --t2 ../shared/data/spine-sagittal/ivd-t2

None of the training data outlines the sacrum: below L5 is background. A model that knows only L1-L5 then takes the
top of S1 for L5 when the image ends just below it (subjects 02 and 13). Here the top of S1 gets its own value
(6, ``sacrum``; scheme file ``lumbar_bodies_sacrum.toml``), a pseudo-label made from the manual labels:

1. the L5/S1 disc plane: for a T2 spine its manual disc (centroid and least-spread direction); for a Dixon spine
   the estimate :func:`paraspinal.levels.spine.spine_levels_from_labels` makes below L5 (L5's lower endplate
   turned on by the L4/L5 wedge, half a disc height down);
2. L5 mirrored across that plane, kept where it is unlabelled and as bright as L5's marrow (its 1st-99th
   intensity percentiles), opened twice (6-connected) and reduced to its largest piece.

It is a rough outline: the label is there to be counted from (level naming), not to be measured, and the L1-L5
labels are unchanged. QC images of the mid-sagittal slice go to ``qc_sacrum/``. Training data only: never shipped.
Session-14 pilot, not adopted (README.md, "Tried in session 14").
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from add_t2_bodies import T2_PREFIX, disc_planes, link, subject_of
from scipy import ndimage

from paraspinal.anatomy import load_registry, load_scheme
from paraspinal.io import Image, read_image, read_label_map, write_label_map
from paraspinal.levels.spine import spine_levels_from_labels
from paraspinal.levels.spine_geometry import voxel_points_mm

SACRUM = 6
L5 = 5
T2_L5_S1 = 1  # value of the L5/S1 disc in the T2 files (ivd_t2 scheme)


def l5_s1_plane(labels: Image, *, t2_discs: Image | None) -> tuple[np.ndarray, np.ndarray]:
    """Centre (world mm) and cranial unit normal of the L5/S1 disc: manual if given, else estimated below L5."""
    if t2_discs is not None:
        return disc_planes(t2_discs)[T2_L5_S1]
    levels = spine_levels_from_labels(labels, scheme=load_scheme("lumbar_bodies"), registry=load_registry())
    disc = next(d for d in levels.discs if d.name == "L5/S1")
    return np.array(disc.centre_mm), np.array(disc.normal)


def sacrum_label(labels: Image, image: Image, *, centre_mm: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """Boolean mask of the top of S1: L5 mirrored across the plane (``centre_mm``, unit ``normal``), on
    unlabelled voxels as bright as L5, opened and reduced to its largest piece (see the module docstring)."""
    array = np.asarray(labels.array)
    shape = np.array(array.shape)
    ijk = np.indices(array.shape).reshape(3, -1).T.astype(np.float64)
    points = voxel_points_mm(ijk, labels.affine)
    height = (points - centre_mm) @ normal
    below = np.flatnonzero(height < 0)
    mirrored = points[below] - 2.0 * height[below, None] * normal
    inverse = np.linalg.inv(labels.affine)
    source = np.rint(mirrored @ inverse[:3, :3].T + inverse[:3, 3]).astype(np.int64)
    inside = np.all((source >= 0) & (source < shape), axis=1)
    hit = np.zeros(len(below), dtype=bool)
    hit[inside] = array[tuple(source[inside].T)] == L5
    mask = np.zeros(array.shape, dtype=bool)
    mask.ravel()[below[hit]] = True
    intensity = np.asarray(image.array, dtype=np.float64)
    low, high = np.percentile(intensity[array == L5], [1, 99])
    mask &= (array == 0) & (intensity >= low) & (intensity <= high)
    mask = ndimage.binary_opening(mask, structure=ndimage.generate_binary_structure(3, 1), iterations=2)
    pieces, n = ndimage.label(mask)
    if n == 0:
        return mask
    return pieces == int(np.argmax(np.bincount(pieces.ravel())[1:])) + 1


def qc_image(image: np.ndarray, labels: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = int(np.argmax((labels == L5).sum(axis=(0, 1))))
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.imshow(image[:, :, k], cmap="gray")
    for value, colour in ((4, "cyan"), (L5, "lime"), (SACRUM, "red")):
        ax.contour(labels[:, :, k] == value, levels=[0.5], colors=colour, linewidths=0.8)
    ax.set_title(f"{path.stem}: slice {k}")
    ax.axis("off")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)


def main(source: Path, out: Path, *, t2_dir: Path) -> None:
    meta = json.loads((source / "dataset.json").read_text(encoding="utf-8"))
    written: dict[Path, Path] = {}  # resolved label file -> its output (T2 repeats share one file)
    for label_path in sorted((source / "labelsTr").glob("*.nii.gz")):
        case = label_path.name[: -len(".nii.gz")]
        image_path = source / "imagesTr" / f"{case}_0000.nii.gz"
        link(image_path, out / "imagesTr" / image_path.name)
        out_labels = out / "labelsTr" / label_path.name
        resolved = label_path.resolve()
        if resolved in written:
            link(written[resolved], out_labels)
            continue
        if out_labels.is_symlink():
            out_labels.unlink()
        labels, image = read_label_map(label_path), read_image(image_path)
        subject = subject_of(case)[len(T2_PREFIX) :] if case.startswith(T2_PREFIX) else None
        discs = read_label_map(t2_dir / f"{subject}_seg.nii.gz") if subject else None
        centre, normal = l5_s1_plane(labels, t2_discs=discs)
        sacrum = sacrum_label(labels, image, centre_mm=centre, normal=normal)
        array = np.asarray(labels.array).copy()
        array[sacrum] = SACRUM
        write_label_map(labels.with_array(array), out_labels)
        written[resolved] = out_labels
        qc_image(np.asarray(image.array), array, out / "qc_sacrum" / f"{case}.png")
        print(f"{case}: sacrum {int(sacrum.sum())} voxels, L5 {int((array == L5).sum())}", flush=True)
    meta.update(
        name=out.name,
        description=meta["description"] + "; plus a pseudo-label for the top of S1 (L5 mirrored, add_sacrum.py)",
        labels={**meta["labels"], "sacrum": SACRUM},
    )
    (out / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    print(f"{out}: {len(written)} label maps written", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path, help="the mixed body dataset written by add_t2_bodies.py")
    parser.add_argument("out", type=Path)
    parser.add_argument("--t2", type=Path, required=True, help="the NN_img / NN_seg sagittal T2 folder (manual discs)")
    args = parser.parse_args()
    main(args.dataset, args.out, t2_dir=args.t2)
