"""Name the vertebral bodies of a label map from their order and the labels' level votes.

Works for any field of view (only L3-S1 visible, say) and for imperfect model output:

1. Every voxel labelled with any vertebra (any level, or a generic ``vertebra``) belongs to the
   "any body" mask. It is cut into candidate bodies by shape: the cores deeper than
   :data:`NECK_RADIUS_MM` inside the mask (a body is about 25-30 mm thick; the bridges a model leaves
   across a disc are thinner) seed a watershed on the distance map, so bodies merged through their
   discs come apart whatever labels they carry. Pieces under :data:`FRAGMENT_SHARE` of the largest
   that touch another piece are merged back into it (a spinous process, a lip); the rest under that
   share or ``min_body_mm3`` are discarded. A piece still at least :data:`SPLIT_SIZE` typical bodies
   (median voxel count per level label) in size that holds two or more level labels, each on at
   least :data:`SPLIT_SHARE` of its voxels or :data:`SPLIT_TYPICAL` of a typical body, is split by
   label (several bodies merged so thickly that no neck shows).
2. A labelled sacrum (or S1) is the caudal anchor: its largest component is named S1.
3. Components are sorted cranial to caudal along the spine axis (first principal axis of their
   centroids, signed towards world +z; world +z itself for fewer than three).
4. Names are consecutive in that order; the one offset that maximises the total *votes* (voxels
   whose label names the vertebra the offset assigns) is chosen. With a sacrum anchor the offset is
   fixed by counting up from S1, and the votes only set the confidences. Without one, the lowest
   component may be named S1: a model that knows only lumbar bodies often marks the top of the
   sacrum too, and naming the five bodies above it L1-L5 then wins on votes. That component becomes
   the sacrum (``kind == "sacrum"``) and is not a body.
5. Where the scheme has classes above L1 (``spine_bodies``: T12), the bodies whose voxels mostly vote a lumbar
   level are counted (``lumbar_type_bodies``): six or more is transitional anatomy (a lumbarised S1, a sixth
   lumbar vertebra) or a thoracic body the labels took for lumbar, and the names, counted by position, are a
   guess that :mod:`paraspinal.levels.spine` flags.

Confidence of a body: the share of its voxels voting for the name it got (1 for a consistent mask;
1 for bodies of a level-less scheme counted up from the sacrum; the overall naming confidence for a
component named S1 by position). Overall naming confidence: the
margin between the best and the second-best offset's votes, as a share of all votes (1 when every
vote agrees; 1 when counted from the sacrum without any votes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.segmentation import watershed

from paraspinal.anatomy import AnatomyRegistry, LabelScheme
from paraspinal.errors import LevelsError
from paraspinal.io.image import Image
from paraspinal.levels.spine_geometry import BodyVoxels, unit, voxel_points_mm

SPINE_NAMES: tuple[str, ...] = tuple(
    [f"C{i}" for i in range(1, 8)] + [f"T{i}" for i in range(1, 13)] + [f"L{i}" for i in range(1, 6)] + ["S1"]
)
S1_INDEX = SPINE_NAMES.index("S1")
L1_INDEX = SPINE_NAMES.index("L1")
DEFAULT_MIN_BODY_MM3 = 1000.0
SPLIT_SHARE = 0.4
SPLIT_TYPICAL = 0.5  # ... or on at least half the voxels of a typical body (several bodies merged)
SPLIT_SIZE = 1.5  # only a piece this many typical bodies in size is split by its labels
FRAGMENT_SHARE = 0.2  # a piece under 20 % of the largest body's volume is a fragment, not a body
NECK_RADIUS_MM = 5.0  # watershed seeds: voxels deeper than this inside the "any body" mask


@dataclass(frozen=True)
class NamedBodies:
    """Bodies named cranial to caudal, with their voxels, kinds, confidences and the overall confidence."""

    names: list[str]
    voxels: list[BodyVoxels]
    kinds: list[str]
    confidences: list[float]
    naming_confidence: float
    counted_from_sacrum: bool
    discarded: int
    lumbar_type_bodies: int | None = None  # bodies whose own labels say lumbar; None: the scheme has no class above L1


def body_value_roles(scheme: LabelScheme, registry: AnatomyRegistry) -> tuple[dict[int, int], set[int], set[int]]:
    """``(votes, bodies, anchors)``: label value -> index in :data:`SPINE_NAMES` for values naming a
    vertebra; all values that are a vertebral body (named or generic); the values marking S1/sacrum."""
    votes: dict[int, int] = {}
    bodies: set[int] = set()
    anchors: set[int] = set()
    for value, entry in scheme.labels.items():
        structure = registry[entry.structure]
        if structure.key == "sacrum" or structure.level == "S1":
            anchors.add(value)
        elif structure.category == "vertebra" and structure.key != "vertebral_arch":
            bodies.add(value)
            if structure.level in SPINE_NAMES:
                votes[value] = SPINE_NAMES.index(structure.level)
    return votes, bodies, anchors


def name_bodies(
    labels: Image,
    *,
    scheme: LabelScheme,
    registry: AnatomyRegistry,
    min_body_mm3: float = DEFAULT_MIN_BODY_MM3,
) -> NamedBodies:
    """Find and name the vertebral bodies of ``labels`` (see module docstring)."""
    votes_of, body_values, anchor_values = body_value_roles(scheme, registry)
    array = np.asarray(labels.array)
    min_voxels = max(int(np.ceil(min_body_mm3 / labels.voxel_volume_mm3)), 1)
    lookup_size = int(max([*body_values, *anchor_values, 0])) + 1
    vote_lut = np.full(lookup_size, -1, dtype=np.int64)
    for value, index in votes_of.items():
        vote_lut[value] = index
    components, discarded = _body_pieces(array, body_values, spacing_mm=labels.spacing_mm, min_voxels=min_voxels)
    # a typical body: the median voxel count of the level labels present (for splitting merged bodies)
    per_level = np.bincount(vote_lut[np.clip(array[array > 0], 0, lookup_size - 1)] + 1)[1:]
    typical = float(np.median(per_level[per_level > 0])) if np.any(per_level > 0) else 0.0
    pieces: list[tuple[np.ndarray, np.ndarray]] = []  # (ijk, votes per name)
    for ijk in components:
        values = array[tuple(ijk.T)]
        voted = vote_lut[np.clip(values, 0, lookup_size - 1)]
        if typical > 0 and len(ijk) >= SPLIT_SIZE * typical:
            pieces.extend(_split_bridged(ijk, voted, min_voxels=min_voxels, typical_voxels=typical))
        else:
            pieces.append((ijk, np.bincount(voted[voted >= 0], minlength=len(SPINE_NAMES)).astype(np.float64)))
    if pieces:  # fragments of model output (a blob in a pedicle, a rib tip) would take a level name
        largest = max(len(ijk) for ijk, _ in pieces)
        kept = [piece for piece in pieces if len(piece[0]) >= FRAGMENT_SHARE * largest]
        discarded += len(pieces) - len(kept)
        pieces = kept
    anchor = None
    if anchor_values:
        sacral, _ = _components(array, anchor_values, min_voxels=min_voxels)
        if sacral:
            anchor = max(sacral, key=len)
    if not pieces:
        raise LevelsError(
            f"label map holds no vertebral body of at least {min_body_mm3:g} mm³ to derive levels from",
            path=labels.source,
        )
    affine = labels.affine
    points = [voxel_points_mm(ijk.astype(np.float64), affine) for ijk, _ in pieces]
    order = _cranial_to_caudal([p.mean(axis=0) for p in points])
    pieces = [pieces[i] for i in order]
    points = [points[i] for i in order]
    votes = np.array([counts for _, counts in pieces], dtype=np.float64)  # (m, len(SPINE_NAMES))
    sizes = np.array([len(ijk) for ijk, _ in pieces], dtype=np.float64)
    m = len(pieces)
    scores = _offset_scores(votes, last_may_be_s1=anchor is None)  # score per offset k (names k..k+m-1)
    total_votes = float(votes.sum())
    if anchor is not None:
        best = S1_INDEX - m
        if best < 0:
            raise LevelsError(f"{m} vertebral bodies above the sacrum are more than C1-L5", path=labels.source)
        others = np.delete(scores, best) if len(scores) > 1 else np.zeros(1)
        margin = (scores[best] - max(float(others.max()), 0.0)) / total_votes if total_votes else 1.0
    else:
        if total_votes == 0:
            raise LevelsError(
                "the vertebrae in the label map carry no level names and no sacrum is labelled to count from, "
                "so the levels cannot be named",
                path=labels.source,
            )
        if len(scores) == 0:
            raise LevelsError(f"{m} vertebral bodies are more than C1-L5", path=labels.source)
        best = int(np.argmax(scores))
        ranked = np.sort(scores)[::-1]
        margin = (ranked[0] - (ranked[1] if len(ranked) > 1 else 0.0)) / total_votes
    names = [SPINE_NAMES[best + i] for i in range(m)]
    confidences = [float(votes[i, best + i] / sizes[i]) for i in range(m)]
    if total_votes == 0:  # counted from the sacrum, no level votes at all
        confidences = [1.0] * m
    kinds = ["body"] * m
    if names[-1] == "S1":  # the lowest component is the top of the sacrum (model output without a sacrum class)
        kinds[-1] = "sacrum"
        confidences[-1] = float(np.clip(margin, 0.0, 1.0))
    lumbar_type = None
    if any(index < L1_INDEX for index in votes_of.values()):  # the labels could have said "not lumbar"
        majority = [int(np.argmax(row)) if row.sum() > 0 else -1 for row in votes]
        lumbar_type = sum(L1_INDEX <= v < S1_INDEX for v, kind in zip(majority, kinds, strict=True) if kind == "body")
    voxel_matrix = affine[:3, :3]
    bodies = [BodyVoxels(p, voxel_matrix) for p in points]
    if anchor is not None:
        names.append("S1")
        kinds.append("sacrum")
        confidences.append(1.0)
        bodies.append(BodyVoxels(voxel_points_mm(anchor.astype(np.float64), affine), voxel_matrix))
    return NamedBodies(
        names=names,
        voxels=bodies,
        kinds=kinds,
        confidences=confidences,
        naming_confidence=float(np.clip(margin, 0.0, 1.0)),
        counted_from_sacrum=anchor is not None,
        discarded=discarded,
        lumbar_type_bodies=lumbar_type,
    )


def _components(array: np.ndarray, values: set[int], *, min_voxels: int) -> tuple[list[np.ndarray], int]:
    """Voxel indices (N, 3) of each face-connected component of ``isin(array, values)`` with at least
    ``min_voxels`` voxels, and the number of components discarded as too small."""
    if not values:
        return [], 0
    mask = np.isin(array, np.fromiter(values, dtype=np.int64))
    labelled, n = ndimage.label(mask)
    if n == 0:
        return [], 0
    return _voxel_groups(labelled, min_voxels=min_voxels)


def _voxel_groups(regions: np.ndarray, *, min_voxels: int) -> tuple[list[np.ndarray], int]:
    """Voxel indices (N, 3) of each non-zero region id of ``regions`` with at least ``min_voxels``
    voxels, and the number of regions left out as smaller."""
    flat = np.flatnonzero(regions)
    ids = regions.ravel()[flat]
    order = np.argsort(ids, kind="stable")
    counts = np.unique(ids, return_counts=True)[1]
    groups = np.split(flat[order], np.cumsum(counts)[:-1])
    kept = [np.stack(np.unravel_index(g, regions.shape), axis=1) for g, c in zip(groups, counts, strict=True)
            if c >= min_voxels]  # fmt: skip
    return kept, int(np.sum(counts < min_voxels))


def _body_pieces(
    array: np.ndarray, values: set[int], *, spacing_mm: tuple[float, float, float], min_voxels: int
) -> tuple[list[np.ndarray], int]:
    """Voxel indices (N, 3) of each candidate body of ``isin(array, values)``, cut at thin necks by a
    watershed from the cores deeper than :data:`NECK_RADIUS_MM`; small pieces touching a larger one
    are merged into the one they share most faces with. Also the number of pieces discarded as smaller
    than ``min_voxels``."""
    full = np.isin(array, np.fromiter(values, dtype=np.int64))
    if not full.any():
        return [], 0
    box = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in ndimage.find_objects(full.astype(np.int8))[0])
    mask = full[box]  # work on the mask's bounding box (plus a background margin): far less to transform
    depth = ndimage.distance_transform_edt(mask, sampling=spacing_mm)
    seeds, n_seeds = ndimage.label(depth > NECK_RADIUS_MM)
    regions = watershed(-depth, seeds, mask=mask) if n_seeds else np.zeros(mask.shape, dtype=np.int64)
    rest, _ = ndimage.label(mask & (regions == 0))  # parts without a core: their own pieces
    regions = np.where(rest > 0, rest + n_seeds, regions)
    kept, discarded = _voxel_groups(_merge_small(regions), min_voxels=min_voxels)
    offset = np.array([s.start for s in box])
    return [ijk + offset for ijk in kept], discarded


def _merge_small(regions: np.ndarray) -> np.ndarray:
    """``regions`` with each piece under :data:`FRAGMENT_SHARE` of the largest merged, smallest first,
    into the touching piece it shares most voxel faces with (pieces touching none stay)."""
    sizes = np.bincount(regions.ravel())
    sizes[0] = 0
    if np.count_nonzero(sizes) < 2:
        return regions
    faces = []
    for axis in range(regions.ndim):
        a = np.moveaxis(regions, axis, 0)
        lo, hi = a[:-1].ravel(), a[1:].ravel()
        touching = (lo != hi) & (lo > 0) & (hi > 0)
        faces.append(np.stack([lo[touching], hi[touching]], axis=1))
    both_ways = np.concatenate([*faces, *(f[:, ::-1] for f in faces)])
    pairs, shared = np.unique(both_ways, axis=0, return_counts=True)  # (piece, neighbour), faces shared
    owner = np.arange(len(sizes))  # piece -> the piece it now belongs to (kept flat: owner[owner] == owner)
    for small in np.argsort(sizes, kind="stable"):
        if owner[small] != small or sizes[small] == 0 or sizes[small] >= FRAGMENT_SHARE * sizes.max():
            continue
        mine = owner[pairs[:, 0]] == small
        others = owner[pairs[mine, 1]]
        weights = shared[mine][others != small]
        others = others[others != small]
        if others.size == 0:
            continue
        target = int(np.bincount(others, weights=weights).argmax())
        owner[owner == small] = target
        sizes[target] += sizes[small]
        sizes[small] = 0
    return owner.astype(regions.dtype)[regions]


def _split_bridged(
    ijk: np.ndarray, voted: np.ndarray, *, min_voxels: int, typical_voxels: float = 0.0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The component as one piece with its vote counts, or split by label when two or more labels each
    hold a large share of it or half a typical body (bodies merged through the discs between them)."""
    counts = np.bincount(voted[voted >= 0], minlength=len(SPINE_NAMES)).astype(np.float64)
    share = SPLIT_SHARE * len(ijk)
    if typical_voxels > 0:
        share = min(share, SPLIT_TYPICAL * typical_voxels)
    big = [k for k in np.flatnonzero(counts) if counts[k] >= max(share, min_voxels)]
    if len(big) < 2:
        return [(ijk, counts)]
    pieces = []
    for k in big:
        keep = voted == k
        piece_counts = np.zeros(len(SPINE_NAMES))
        piece_counts[k] = keep.sum()
        pieces.append((ijk[keep], piece_counts))
    return pieces


def _cranial_to_caudal(centroids: list[np.ndarray]) -> list[int]:
    """Indices of ``centroids`` sorted cranial to caudal along the spine axis (see module docstring)."""
    points = np.asarray(centroids)
    axis = np.array([0.0, 0.0, 1.0])
    if len(points) >= 3:
        centred = points - points.mean(axis=0)
        _values, vectors = np.linalg.eigh(centred.T @ centred)
        axis = unit(vectors[:, -1])
        if axis[2] < 0:
            axis = -axis
    return [int(i) for i in np.argsort(-(points @ axis), kind="stable")]


def _offset_scores(votes: np.ndarray, *, last_may_be_s1: bool) -> np.ndarray:
    """Total votes for each offset ``k`` naming body ``i`` ``SPINE_NAMES[k + i]``: bodies within C1-L5,
    and with ``last_may_be_s1`` the last of two or more components possibly S1 (the sacrum's top)."""
    m = votes.shape[0]
    n_offsets = S1_INDEX - m + 1  # last body at most L5 (index S1_INDEX - 1)
    if last_may_be_s1 and m > 1:
        n_offsets += 1
    if n_offsets <= 0:
        return np.zeros(0)
    rows = np.arange(m)
    return np.array([votes[rows, rows + k].sum() for k in range(n_offsets)])


def named_label_map(labels: Image, named: NamedBodies, *, scheme: LabelScheme, registry: AnatomyRegistry) -> Image:
    """``labels`` rewritten so each found body carries the value of the level it was named.

    Every voxel of a named body gets the ``scheme`` value whose structure has that level (bodies named
    outside the scheme, e.g. T12 for a lumbar-only scheme, become 0); voxels not in a named body
    (fragments below ``min_body_mm3``) become 0. Same grid as ``labels``.
    """
    value_of = {registry[entry.structure].level: value for value, entry in scheme.labels.items()}
    out = np.zeros(labels.shape, dtype=np.asarray(labels.array).dtype)
    inverse = np.linalg.inv(labels.affine)
    for name, body in zip(named.names, named.voxels, strict=True):
        value = value_of.get(name, 0)
        if value == 0:
            continue
        ijk = np.rint(body.points_mm @ inverse[:3, :3].T + inverse[:3, 3]).astype(np.int64)
        out[tuple(ijk.T)] = value
    return labels.with_array(out)
