"""Pseudo-label the body above L1 (T12) and the top of the sacrum in a lumbar_bodies dataset (scheme spine_bodies).

    python recipes/lumbar_spine/add_neighbour_bodies.py /tmp/Dataset902_LumbarSpine /tmp/Dataset906_SpineBodies
    python recipes/lumbar_spine/add_neighbour_bodies.py /tmp/Dataset905_LumbarSpineMixed \
        /tmp/Dataset907_SpineBodiesMixed

The MyoSegmenTUM spines label L1-L5 only, but most show part of T12 above L1 and part of S1 below L5 (a median
26 and 22 mm of image beyond them). A model trained on them learns those as background, and on a scan with more
in view squeezes T12 into L1-L5. Here each neighbour gets a pseudo-label from the bodies' positions:

* **T12**: L1's mask moved by one segment, the step from L2's centroid to L1's (bodies a segment apart have about
  the same shape); **sacrum**: L5's mask moved by the step from L4 to L5.
* Kept only where the image looks like the body it was copied from (between the 5th and 95th percentile of that
  body's intensities), inside the field of view and off the manual labels; opened by one voxel, largest piece.
* A pseudo-label under 400 voxels (0.4 mL) or under 25 % of its moved template is dropped (left background, as
  before). ``qc.png`` shows the mid-sagittal slice of every case for checking them by eye.

Writes ``imagesTr`` (copied), ``labelsTr`` (6 = T12, 7 = sacrum added) and ``dataset.json``; prints per case the
voxels kept. The image's axis 0 must run superior to inferior (as in these files).

The second command does the same for the Dixon + T2 dataset of ``add_t2_bodies.py``: its T2 bodies were outlined by
a Dixon-only model and named from the manual discs, so their T12 and sacrum come from those L1 and L5 in the same
way (none where that image was cut at L1/L2, or the sacrum is unlike L5).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
from scipy import ndimage

from paraspinal.io import read_image, read_label_map, write_label_map

T12, SACRUM = 6, 7
MIN_VOXELS = 400
MIN_KEPT_SHARE = 0.25
LABELS = {"background": 0, "L1": 1, "L2": 2, "L3": 3, "L4": 4, "L5": 5, "T12": T12, "sacrum": SACRUM}


def _centroid(labels: np.ndarray, value: int) -> np.ndarray:
    return np.argwhere(labels == value).mean(axis=0)


def neighbour_label(image: np.ndarray, labels: np.ndarray, *, source: int, towards: int) -> tuple[np.ndarray, int]:
    """Pseudo-label mask of the body one segment beyond ``source`` (away from ``towards``) and its template size."""
    body = labels == source
    step = np.round(_centroid(labels, source) - _centroid(labels, towards))  # one segment, whole voxels
    template = ndimage.shift(body.astype(np.uint8), step, order=0, mode="constant", cval=0) > 0
    lo, hi = np.percentile(image[body], [5, 95])
    keep = template & (image >= lo) & (image <= hi) & (labels == 0)
    keep = ndimage.binary_opening(keep, iterations=1)
    parts, n = ndimage.label(keep)
    if n == 0:
        return keep, int(template.sum())
    sizes = np.bincount(parts.ravel())[1:]
    return parts == 1 + int(np.argmax(sizes)), int(template.sum())


def add_neighbours(image: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    """``labels`` with T12 and sacrum pseudo-labels added (where they pass the checks) and the voxels kept."""
    out = labels.copy()
    kept = {}
    for name, value, source, towards in (("T12", T12, 1, 2), ("sacrum", SACRUM, 5, 4)):
        mask, template = neighbour_label(image, labels, source=source, towards=towards)
        n = int(mask.sum())
        ok = n >= MIN_VOXELS and n >= MIN_KEPT_SHARE * max(template, 1)
        if ok:
            out[mask] = value
        kept[name] = n if ok else 0
    return out, kept


def _qc(rows: list[tuple[str, np.ndarray, np.ndarray]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 9
    fig, axes = plt.subplots(int(np.ceil(len(rows) / cols)), cols, figsize=(2.2 * cols, 2.4 * len(rows) / cols + 1))
    for ax in np.ravel(axes):
        ax.axis("off")
    for ax, (case, image, labels) in zip(np.ravel(axes), rows, strict=False):
        k = int(np.median(np.nonzero(labels)[2]))
        ax.imshow(image[:, :, k], cmap="gray")
        for value, colour in ((1, "y"), (5, "y"), (T12, "c"), (SACRUM, "m")):
            if (labels[:, :, k] == value).any():
                ax.contour(labels[:, :, k] == value, levels=[0.5], colors=colour, linewidths=0.6)
        ax.set_title(case, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path, help="lumbar_bodies dataset (make_dataset.py, or add_t2_bodies.py's)")
    ap.add_argument("out", type=Path, help="dataset folder to write")
    args = ap.parse_args()
    meta = json.loads((args.source / "dataset.json").read_text(encoding="utf-8"))
    (args.out / "labelsTr").mkdir(parents=True, exist_ok=True)
    shutil.copytree(args.source / "imagesTr", args.out / "imagesTr", dirs_exist_ok=True)
    rows = []
    for path in sorted((args.source / "labelsTr").glob("*.nii.gz")):
        case = path.name[: -len(".nii.gz")]
        labels = read_label_map(path)
        image = np.asarray(read_image(args.source / "imagesTr" / f"{case}_0000.nii.gz").array)
        new, kept = add_neighbours(image, np.asarray(labels.array))
        write_label_map(labels.with_array(new.astype(np.uint8)), args.out / "labelsTr" / path.name)
        rows.append((case, image, new))
        print(case, kept, flush=True)
    _qc(rows, args.out / "qc.png")
    meta.update(
        name=args.out.name,
        description=f"{meta.get('description', 'L1-L5 bodies')}; plus T12 and sacrum pseudo-labels (spine_bodies)",
        labels=LABELS,
    )
    (args.out / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
