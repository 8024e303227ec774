"""TotalSpineSeg's post-processing of its two nnU-Net outputs, reimplemented on arrays (no files).

The raw classes are those ``totalspineseg/inference.py`` hands to its ``iterative_label``:

* step 1 (``Dataset101``): 1 disc, 2 C2/C3, 3 C7/T1, 4 T12/L1, 5 L5/S (landmark discs), 6 sacrum, 7 C1,
  8 spinal canal, 9 spinal cord;
* step 2 (``Dataset102``): 1-5 discs as in step 1, 6 C1 (an extra vertebra class), 7 and 8 vertebrae
  (alternating), 9 sacrum, 10 spinal canal, 11 spinal cord.

Both are labelled here as TotalSpineSeg labels them in outline: the largest connected structure is kept,
disc components are ordered from superior to inferior and numbered from the landmark discs (priority C2/C3,
L5/S, C7/T1, T12/L1, as its ``selected_disc_landmarks=[2, 5, 3, 4]``), each vertebra takes the level below
the nearest disc above it (C3 below C2/C3, as its landmark outputs 13, 21, 41, 50 say) or, at the top,
the level above the disc below it. Its iterative algorithm (region growing along the canal, per-landmark
re-anchoring) is simplified to this ordering; see :mod:`paraspinal.backends.totalspineseg`.

Transitional anatomy: when both T12/L1 and L5/S are found with five discs between them (not four), the
extra lumbar disc is L5/L6 (96) and the vertebra below it L6 (46), as TotalSpineSeg's own level tags name
them; nothing is forced into L1-L5. T13 is never produced (TotalSpineSeg has no T13 class).
"""

from __future__ import annotations

import numpy as np

#: TotalSpineSeg's disc values from superior to inferior (C2/C3 ... L4/L5, L5/S).
DISCS: tuple[int, ...] = (*range(63, 68), *range(71, 83), *range(91, 96), 100)
#: Vertebra values from superior to inferior (C1 ... L5), then the sacrum (50).
VERTEBRAE: tuple[int, ...] = (*range(11, 18), *range(21, 33), *range(41, 46), 50)
DISC_L5_L6, VERTEBRA_L6 = 96, 46
#: raw landmark class -> output disc value, in TotalSpineSeg's priority order.
LANDMARKS: tuple[tuple[int, int], ...] = ((2, 63), (5, 100), (3, 71), (4, 91))
STEP1 = {"discs": (1, 2, 3, 4, 5), "sacrum": 6, "c1": 7, "canal": 8, "cord": 9}
STEP2 = {"discs": (1, 2, 3, 4, 5), "c1": 6, "vertebrae": (7, 8), "sacrum": 9, "canal": 10, "cord": 11}
CANAL, CORD, SACRUM, C1 = 2, 1, 50, 11


def largest_component(raw: np.ndarray, *, dilate_voxels: int = 5) -> np.ndarray:
    """``raw`` with only the voxels of the largest connected structure (all foreground classes together,
    dilated by ``dilate_voxels`` before the components are found, as TotalSpineSeg's ``largest_component``)."""
    from scipy import ndimage

    foreground = raw > 0
    if not foreground.any():
        return raw.copy()
    grown = ndimage.binary_dilation(foreground, iterations=dilate_voxels) if dilate_voxels else foreground
    components, n = ndimage.label(grown, structure=np.ones((3, 3, 3)))
    if n <= 1:
        return raw.copy()
    sizes = np.bincount(components[foreground], minlength=n + 1)
    sizes[0] = 0
    return np.where(components == int(np.argmax(sizes)), raw, 0).astype(raw.dtype)


def _components(mask: np.ndarray, superior_axis: int, superior_sign: int) -> list[np.ndarray]:
    """Connected components of ``mask`` (26-connected), as boolean masks ordered superior to inferior."""
    from scipy import ndimage

    labelled, n = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    if n == 0:
        return []
    centres = ndimage.center_of_mass(mask, labelled, range(1, n + 1))
    order = sorted(range(n), key=lambda i: -superior_sign * centres[i][superior_axis])
    return [labelled == i + 1 for i in order]


def _centre(mask: np.ndarray, axis: int) -> float:
    return float(np.nonzero(mask)[axis].mean())


def label_discs(
    raw: np.ndarray, *, disc_classes: tuple[int, ...], superior_axis: int, superior_sign: int
) -> tuple[list[np.ndarray], list[int]]:
    """Disc components (superior to inferior) and their TotalSpineSeg values (0: not numbered).

    The first landmark found (priority C2/C3, L5/S, C7/T1, T12/L1; a component is a landmark when most of
    its voxels carry that class) anchors the numbering; the others move it only through the L5/L6 rule.
    """
    comps = _components(np.isin(raw, disc_classes), superior_axis, superior_sign)
    if not comps:
        return [], []
    found: dict[int, int] = {}
    for raw_class, value in LANDMARKS:
        for index, comp in enumerate(comps):
            votes = np.bincount(raw[comp], minlength=max(disc_classes) + 1)
            votes[0] = 0
            if int(np.argmax(votes)) == raw_class and value not in found.values():
                found[index] = value
                break
    values = [0] * len(comps)
    if not found:
        return comps, values
    position = {v: i for i, v in enumerate(DISCS)}
    anchor_index, anchor_value = next(iter(found.items()))
    for index in range(len(comps)):
        seq = position[anchor_value] + index - anchor_index
        values[index] = DISCS[seq] if 0 <= seq < len(DISCS) else 0
    t12 = next((i for i, v in found.items() if v == 91), None)
    ls = next((i for i, v in found.items() if v == 100), None)
    if t12 is not None and ls is not None and ls - t12 == 6:  # five lumbar discs: an L6
        for k, index in enumerate(range(t12, ls + 1)):
            values[index] = (91, 92, 93, 94, 95, DISC_L5_L6, 100)[k]
        for index in range(ls + 1, len(comps)):
            values[index] = 0
    elif ls is not None and anchor_value != 100:
        values[ls] = 100  # the lumbosacral disc keeps its name when the counts above it differ
    return comps, values


def _vertebra_value(disc_above: int | None, disc_below: int | None) -> int:
    """The vertebra between two numbered discs: the level below the disc above, else above the disc below."""
    if disc_above == DISC_L5_L6:
        return VERTEBRA_L6
    if disc_above is not None:
        if disc_above == 100:
            return SACRUM
        return VERTEBRAE[DISCS.index(disc_above) + 2]
    if disc_below is not None:
        if disc_below == 100:
            return VERTEBRAE[-2]  # L5
        if disc_below == DISC_L5_L6:
            return VERTEBRAE[-2]
        return VERTEBRAE[DISCS.index(disc_below) + 1]
    return 0


def label_step2(raw: np.ndarray, *, superior_axis: int, superior_sign: int) -> np.ndarray:
    """TotalSpineSeg output values (scheme ``totalspineseg``) from step 2's raw classes."""
    raw = largest_component(raw)
    out = np.zeros(raw.shape, dtype=np.uint8)
    comps, values = label_discs(
        raw, disc_classes=STEP2["discs"], superior_axis=superior_axis, superior_sign=superior_sign
    )
    numbered = [(superior_sign * _centre(c, superior_axis), v) for c, v in zip(comps, values, strict=True) if v]
    for comp, value in zip(comps, values, strict=True):
        out[comp] = value
    for comp in _components(np.isin(raw, STEP2["vertebrae"]), superior_axis, superior_sign):
        height = superior_sign * _centre(comp, superior_axis)
        above = [(h, v) for h, v in numbered if h > height]
        below = [(h, v) for h, v in numbered if h < height]
        value = _vertebra_value(min(above)[1] if above else None, max(below)[1] if below else None)
        out[comp & (out == 0)] = value
    out[(raw == STEP2["c1"]) & (out == 0)] = C1
    out[(raw == STEP2["sacrum"]) & (out == 0)] = SACRUM
    out[(raw == STEP2["canal"]) & (out == 0)] = CANAL
    out[(raw == STEP2["cord"]) & (out == 0)] = CORD
    return out


def label_step1(raw: np.ndarray, *, superior_axis: int, superior_sign: int) -> np.ndarray:
    """Step 1's raw classes as TotalSpineSeg values: numbered discs, C1, sacrum, canal and cord."""
    raw = largest_component(raw)
    out = np.zeros(raw.shape, dtype=np.uint8)
    comps, values = label_discs(
        raw, disc_classes=STEP1["discs"], superior_axis=superior_axis, superior_sign=superior_sign
    )
    for comp, value in zip(comps, values, strict=True):
        out[comp] = value
    out[raw == STEP1["c1"]] = C1
    out[raw == STEP1["sacrum"]] = SACRUM
    out[raw == STEP1["canal"]] = CANAL
    out[raw == STEP1["cord"]] = CORD
    return out


def odd_discs(step1: np.ndarray, *, superior_axis: int, superior_sign: int) -> np.ndarray:
    """Step 2's second input channel: a binary mask of every other disc from the most superior one
    (TotalSpineSeg's ``extract_alternate`` for inference)."""
    comps = _components(np.isin(step1, DISCS), superior_axis, superior_sign)
    mask = np.zeros(step1.shape, dtype=np.float32)
    for comp in comps[::2]:
        mask[comp] = 1.0
    return mask
