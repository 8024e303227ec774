"""Measure the anatomical laterality check (paraspinal.quality.laterality) on the data at hand.

Each case runs with its true header and with a left/right-swapped one: the world x axis mirrored
(affine' = diag(-1, 1, 1) @ affine, the array unchanged) and the sided labels swapped through the scheme, as
a model run on the mirrored image would name them; unsided organ labels stay where they are. Prints a
markdown table (case x header -> result, method, key numbers).

    PYTHONPATH=src python3 recipes/quality/laterality_table.py [--shared /work/shared/data]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from paraspinal.anatomy import load_scheme
from paraspinal.io import Image, LabelMap, read_image
from paraspinal.quality.laterality import check_laterality

SAMPLE = Path(__file__).resolve().parents[2] / "src" / "paraspinal" / "sample"


def mirrored(image: Image) -> Image:
    """The same array with the world x axis mirrored (a left/right-swapped header)."""
    return Image(image.array, np.diag([-1.0, 1.0, 1.0, 1.0]) @ image.affine, image.source + " (L/R swapped)")


def swapped_labels(label_map: LabelMap) -> LabelMap:
    """Mirrored header, sided labels renamed to the other side (as a model would name the mirrored image)."""
    swap = label_map.scheme.side_swap_map()
    lut = np.arange(int(label_map.array.max()) + 1, dtype=label_map.array.dtype)
    for value, other in swap.items():
        if value < lut.size:
            lut[value] = other
    mirrored_labels = mirrored(label_map.labels)
    return LabelMap.given(mirrored_labels.with_array(lut[label_map.array]), label_map.scheme)


def cut(image: Image, start: int, stop: int) -> Image:
    """Slices ``start:stop`` along the third axis, affine shifted to keep world positions."""
    affine = image.affine.copy()
    affine[:3, 3] += affine[:3, 2] * start
    return Image(np.ascontiguousarray(image.array[:, :, start:stop]), affine, image.source)


def keep_values(label_map: LabelMap, values: list[int]) -> LabelMap:
    kept = np.where(np.isin(label_map.array, values), label_map.array, 0)
    return LabelMap.given(label_map.labels.with_array(kept), label_map.scheme)


def _musclemap_abdomen():
    """The MuscleMap sample's abdomen scheme (its README: odd values right)."""
    import tempfile

    rows = [(1, "multifidus", "right"), (2, "multifidus", "left"), (3, "erector_spinae", "right")]
    rows += [(4, "erector_spinae", "left"), (5, "psoas_major", "right"), (6, "psoas_major", "left")]
    rows += [(7, "quadratus_lumborum", "right"), (8, "quadratus_lumborum", "left")]
    text = 'key = "musclemap_abdomen"\nname = "MuscleMap abdomen"\n' + "".join(
        f'[[labels]]\nvalue = {v}\nname = "{side} {s}"\nstructure = "{s}"\nside = "{side}"\n' for v, s, side in rows
    )
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as handle:
        handle.write(text)
    return load_scheme(handle.name)


def run(name: str, image: Image, label_map: LabelMap, *, fat: Image | None = None, ct: bool = False) -> None:
    for header in ("true", "swapped"):
        if header == "swapped":
            image, label_map = mirrored(image), swapped_labels(label_map)
            fat = mirrored(fat) if fat is not None else None
        check = check_laterality(image=image, label_map=label_map, fat=fat, ct=ct)
        ev = {k: v for k, v in check.evidence.items() if k not in ("cues", "midline_x_mm")}
        cues = "; ".join(
            f"{c['what']} {c['side']}"
            for c in check.evidence.get("cues", [])  # type: ignore[union-attr]
        )
        print(f"| {name} | {header} | {check.result} | {cues} | {ev} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("/work/shared/data"))
    args = parser.parse_args()
    print("| case | header | result | cues | evidence |\n|---|---|---|---|---|")
    labels = read_image(SAMPLE / "TUM01_labels.nii.gz")
    lm = LabelMap.given(labels, load_scheme("lpm4"))
    water = Image(read_image(SAMPLE / "TUM01_water.nii.gz").array, labels.affine, "TUM01_water")
    fat = read_image(SAMPLE / "TUM01_fat.nii.gz")
    run("TUM01 Dixon (water+fat)", water, lm, fat=fat)
    run("TUM01 water only", water, lm)
    with_model(water, fat)
    bias = np.linspace(0.6, 1.4, water.shape[0])[:, None, None]
    rng = np.random.default_rng(0)
    noisy = water.array * bias + rng.normal(0, 15, water.shape)
    run("TUM01 Dixon, bias x0.6-1.4 + noise", water.with_array(noisy), lm, fat=fat.with_array(fat.array * bias))
    rough = water.array.max() * (water.array / water.array.max()) ** 0.7
    run("TUM01 Dixon, gamma 0.7 on water", water.with_array(rough), lm, fat=fat)
    n = water.shape[2]
    for start, stop, what in ((0, 21, "slices 0-20 (no liver)"), (n - 4, n, "top 4 slices"), (n - 8, n, "top 8")):
        sub = LabelMap.given(cut(labels, start, stop), lm.scheme)
        run(f"TUM01 Dixon, {what}", cut(water, start, stop), sub, fat=cut(fat, start, stop))
    ctimg = read_image(args.shared / "totalseg-ct-example" / "example_ct_sm.nii.gz")
    seg = LabelMap.given(read_image(args.shared / "totalseg-ct-example" / "example_seg.nii.gz"), load_scheme("total"))
    run("CT, TotalSegmentator labels", ctimg, seg, ct=True)
    muscles = keep_values(seg, [86, 87])
    run("CT, autochthon labels only (HU)", ctimg, muscles, ct=True)
    for start, stop, what in ((0, 8, "bottom 8 slices"), (22, 30, "top 8 slices")):
        sub = LabelMap.given(cut(muscles.labels, start, stop), seg.scheme)
        run(f"CT HU, {what}", cut(ctimg, start, stop), sub, ct=True)
    mm = read_image(args.shared / "musclemap-sample" / "image.nii.gz")
    mml = LabelMap.given(read_image(args.shared / "musclemap-sample" / "labels.nii.gz"), _musclemap_abdomen())
    run("MuscleMap sample (single MR)", mm, mml)
    sweep(water, fat, labels, lm)


def with_model(water: Image, fat: Image) -> None:
    """TUM01 segmented by the bundled muscle model from the true and from the mirrored image (the model, not a
    label flip, names the sides: on the mirrored image its "right" lands on the header's right)."""
    from paraspinal.backends.bundled import bundled_model_dir
    from paraspinal.backends.unet_onnx import UNetOnnxBackend

    backend = UNetOnnxBackend(bundled_model_dir("muscle"))
    for header in ("true", "swapped"):
        w, f = (water, fat) if header == "true" else (mirrored(water), mirrored(fat))
        label_map = backend.segment(w)
        right = np.isin(label_map.array, label_map.scheme.values_for("erector_spinae", side="right"))
        x_mm = (np.argwhere(right) @ label_map.affine[:3, :3].T + label_map.affine[:3, 3])[:, 0].mean()
        check = check_laterality(image=w, label_map=label_map, fat=f)
        cues = "; ".join(f"{c['what']} {c['side']}" for c in check.evidence.get("cues", []))  # type: ignore[union-attr]
        where = f"model's right ES at x {x_mm:+.0f} mm"
        print(f"| TUM01 Dixon, bundled model labels | {header} | {check.result} | {cues} | {where} |")


def sweep(water: Image, fat: Image, labels: Image, lm: LabelMap) -> None:
    """False alarms over cut fields of view: every window of 4-12 TUM01 slices, true header."""
    from collections import Counter

    n = water.shape[2]
    for width in (4, 6, 8, 12):
        counts: Counter[tuple[str, bool]] = Counter()
        for start in range(n - width + 1):
            sub = LabelMap.given(cut(labels, start, start + width), lm.scheme)
            check = check_laterality(
                image=cut(water, start, start + width), label_map=sub, fat=cut(fat, start, start + width)
            )
            counts[(check.result, start + width >= n - 1)] += 1
        shown = ", ".join(f"{r} ({'top in view' if top else 'top cut'}): {c}" for (r, top), c in sorted(counts.items()))
        print(f"TUM01 windows of {width} slices, true header: {shown}")


if __name__ == "__main__":
    main()
