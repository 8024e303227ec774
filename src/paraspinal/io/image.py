"""The one image type: a 3-D array plus its voxel-to-world affine.

Conventions
-----------
* ``array`` is indexed ``(i, j, k)`` exactly as stored on disk (NIfTI order).
* ``affine`` maps voxel indices ``(i, j, k, 1)`` to world coordinates in millimetres, RAS+
  (the NIfTI convention): +x towards the patient's Right, +y Anterior, +z Superior.
  DICOM/ITK images (LPS+) are converted on read by negating x and y.
* Everything about patient sides is derived from the affine, never from array indices.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, eq=False)
class Image:
    """A 3-D image on a voxel grid.

    Attributes:
        array: voxel values, shape ``(ni, nj, nk)``, native dtype as read.
        affine: 4x4 float64 voxel-index -> RAS+ world (mm) transform.
        source: where the image came from (a path, or a description for derived images).
    """

    array: np.ndarray
    affine: np.ndarray
    source: str = "<memory>"
    metadata: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        affine = np.asarray(self.affine, dtype=np.float64)
        if affine.shape != (4, 4):
            raise ValueError(f"affine must be 4x4, got {affine.shape}")
        if self.array.ndim != 3:
            raise ValueError(f"Image arrays are 3-D, got shape {self.array.shape}")
        object.__setattr__(self, "affine", affine)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.array.shape)  # type: ignore[return-value]

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """Voxel edge lengths along i, j, k in mm (column norms of the affine)."""
        return tuple(float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]

    @property
    def voxel_volume_mm3(self) -> float:
        """Volume of one voxel in mm³ (absolute determinant; exact for sheared grids too)."""
        return float(abs(np.linalg.det(self.affine[:3, :3])))

    def with_array(self, array: np.ndarray, *, source: str | None = None) -> Image:
        """A new image on the same grid with other voxel values."""
        if array.shape != self.array.shape:
            raise ValueError(f"shape {array.shape} does not match grid {self.array.shape}")
        return Image(array=array, affine=self.affine.copy(), source=source or self.source, metadata=dict(self.metadata))
