"""Split a cohort into parts for array jobs (Slurm ``--array``), as nnU-Net's ``-num_parts/-part_id`` do."""

from __future__ import annotations

from collections.abc import Sequence


def select_part(case_ids: Sequence[str], *, num_parts: int, part_id: int) -> list[str]:
    """The cases of part ``part_id`` (0-based) out of ``num_parts``.

    Cases are sorted by id and dealt round-robin, so every case lands in exactly one part, the
    parts differ in size by at most one, and the split does not depend on the input order.
    """
    if num_parts < 1:
        raise ValueError(f"num_parts must be >= 1, got {num_parts}")
    if not 0 <= part_id < num_parts:
        raise ValueError(f"part_id must be in 0..{num_parts - 1}, got {part_id}")
    ordered = sorted(dict.fromkeys(case_ids))
    return ordered[part_id::num_parts]
