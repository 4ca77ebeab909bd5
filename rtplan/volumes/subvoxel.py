"""A region on a voxel grid with its boundary known inside the voxels.

:class:`SubvoxelMask` is what the margin, boolean and recipe code passes around.  Every
voxel is one of:

* **full** (``phi = -inf``): the whole voxel box is inside;
* **empty** (``phi = +inf``): none of it is;
* **partial** (``phi`` finite): inside is ``box ∩ {n . (x - c) <= -phi}``, where ``c`` is
  the voxel centre and ``n`` the outward unit normal stored in ``normal``.  ``phi`` is
  the signed distance (mm) of the centre from that plane (negative inside), so a partial
  voxel always has ``|phi| < (|n_k| h_k + |n_j| h_j + |n_i| h_i) / 2``.

This piecewise-planar reconstruction (PLIC, see :mod:`rtplan.volumes.plic`) keeps the
sub-voxel position of the boundary: its volume equals the partial-volume mask it came from,
booleans are exact on the planes (``min`` / ``max`` of ``phi``), and its cross-section on a
slice through voxel centres gives the in-plane fractions from which contours are drawn.

Arrays are indexed ``[k, j, i]`` with ``spacing_mm`` in the same order (see
:mod:`rtplan.grid`); a normal's components follow the array axes, in mm space.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from rtplan.errors import GeometryError
from rtplan.volumes.plic import (
    FRACTION_TOLERANCE,
    box_plane_fraction,
    box_plane_offset,
    youngs_normals,
)


@dataclass(frozen=True, eq=False)
class SubvoxelMask:
    """A region with a planar boundary piece in each partly covered voxel.

    Parameters
    ----------
    phi : numpy.ndarray
        float32 ``[k, j, i]``: ``-inf`` full, ``+inf`` empty, finite: signed distance (mm,
        negative inside) of the voxel centre from the voxel's boundary plane.
    normal : numpy.ndarray
        float32 ``(3, k, j, i)``: outward unit normal of each partial voxel's plane
        (array-axis components; ignored where ``phi`` is infinite).
    spacing_mm : tuple of float
        Voxel size (mm) along the array axes.
    """

    phi: np.ndarray
    normal: np.ndarray
    spacing_mm: tuple[float, float, float]

    def __post_init__(self):
        if self.phi.ndim != 3 or self.normal.shape != (3, *self.phi.shape):
            raise GeometryError(
                f"phi {self.phi.shape} and normal {self.normal.shape} do not describe one grid"
            )
        object.__setattr__(self, "spacing_mm", tuple(float(v) for v in self.spacing_mm))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_fraction(
        cls, fraction: np.ndarray, spacing_mm, *, slabs: bool = False
    ) -> SubvoxelMask:
        """Reconstruct the boundary from a partial-volume (or binary) mask.

        Voxels with a fraction within 1e-6 of 1 are full, of 0 empty; every other voxel
        gets the plane with Youngs' normal that cuts off exactly its fraction
        (:func:`rtplan.volumes.plic.box_plane_offset`).  A boolean mask therefore stands
        for the union of its voxel boxes.  ``slabs=True`` says the region is a stack of
        planar-contour slabs whose ends fall on voxel faces (a structure rasterised on a
        grid aligned with its slabs): the normals are then taken in the slice plane.

        Examples
        --------
        >>> f = np.zeros((3, 3, 4), np.float32); f[:, :, :2] = 1; f[:, :, 2] = 0.3
        >>> m = SubvoxelMask.from_fraction(f, (1.0, 1.0, 1.0))
        >>> round(m.volume_mm3, 6)
        20.7
        >>> round(float(m.phi[1, 1, 2]), 6)  # plane 0.2 mm left of the voxel centre
        0.2
        """
        f = np.asarray(fraction)
        if f.ndim != 3:
            raise GeometryError(f"a mask must be 3-D, got shape {f.shape}")
        if f.dtype != np.float32:
            f = f.astype(np.float32)
        h = tuple(float(v) for v in spacing_mm)
        phi = np.full(f.shape, np.inf, dtype=np.float32)
        phi[f >= 1.0 - FRACTION_TOLERANCE] = -np.inf
        normal = np.zeros((3, *f.shape), dtype=np.float32)
        partial = f > FRACTION_TOLERANCE
        partial &= f < 1.0 - FRACTION_TOLERANCE
        if partial.any():
            n = youngs_normals(f, h, np.argwhere(partial), in_plane=slabs)
            flat = np.sum(n * n, axis=1) == 0  # no gradient: any plane keeps the volume
            n[flat] = (1.0, 0.0, 0.0)
            delta = box_plane_offset(n, f[partial], h)
            phi[partial] = -delta
            normal[:, partial] = n.T
        return cls(phi, normal, h)

    # ------------------------------------------------------------------ queries
    @property
    def shape(self) -> tuple[int, int, int]:
        return self.phi.shape

    @property
    def partial(self) -> np.ndarray:
        """Voxels the boundary passes through."""
        return np.isfinite(self.phi)

    @property
    def occupied(self) -> np.ndarray:
        """Voxels with some volume inside (full or partial)."""
        return self.phi < np.inf

    @property
    def centre_inside(self) -> np.ndarray:
        """Voxels whose centre is inside (``phi <= 0``): the binary mask of the region."""
        return self.phi <= 0

    @property
    def is_empty(self) -> bool:
        return not bool(np.any(self.phi < np.inf))

    def fraction(self) -> np.ndarray:
        """Fraction (float32) of each voxel inside: exact for the planar reconstruction."""
        out = (self.phi == -np.inf).astype(np.float32)
        p = self.partial
        if p.any():
            out[p] = box_plane_fraction(self.normal[:, p].T, -self.phi[p], self.spacing_mm)
        return out

    @cached_property
    def volume_mm3(self) -> float:
        """Volume (mm^3) of the reconstruction: full voxels plus the partial fractions."""
        p = self.partial
        total = float(np.count_nonzero(self.phi == -np.inf))
        if p.any():
            total += float(
                np.sum(box_plane_fraction(self.normal[:, p].T, -self.phi[p], self.spacing_mm))
            )
        return total * float(np.prod(self.spacing_mm))

    @property
    def volume_cc(self) -> float:
        return self.volume_mm3 / 1000.0

    def section_distance(self, k: int) -> np.ndarray:
        """Signed in-plane distance (mm, negative inside) of each pixel centre of slice ``k``
        from the region's cross-section through the voxel centres.

        Each partial voxel's plane meets the slice in a line.  A partial pixel takes its
        distance from its own line, a full or empty pixel next to partial ones the nearest
        of their lines on its side (its sign is its state), every other pixel
        ``-/+ 2 * max(spacing)``.  Linear interpolation between pixel centres then puts
        the zero crossing on the lines, which is what marching squares needs.
        """
        hj, hi_ = self.spacing_mm[1], self.spacing_mm[2]
        cap = 2.0 * max(hj, hi_)
        phi = self.phi[k].astype(float)
        out = np.where(phi < 0, -cap, cap)
        part = np.isfinite(phi)
        if not part.any():
            return out
        nj, ni = self.normal[1, k].astype(float), self.normal[2, k].astype(float)
        nxy = np.hypot(nj, ni)
        ok = part & (nxy > 1e-6)
        safe = np.where(ok, nxy, 1.0)
        uj, ui = np.where(ok, nj / safe, 0.0), np.where(ok, ni / safe, 0.0)
        own = np.where(ok, phi / safe, np.where(phi <= 0, -cap, cap))  # line offset at c
        out[part] = np.clip(own[part], -cap, cap)
        # neighbours of partial pixels: nearest line on their own side
        rows, cols = out.shape
        best_in = np.full(out.shape, -np.inf)
        best_out = np.full(out.shape, np.inf)
        pad = np.pad(ok, 1)
        pu_j, pu_i, p_own = np.pad(uj, 1), np.pad(ui, 1), np.pad(own, 1)
        for dj in (-1, 0, 1):
            for di in (-1, 0, 1):
                if dj == 0 and di == 0:
                    continue
                sl = (slice(1 + dj, 1 + dj + rows), slice(1 + di, 1 + di + cols))
                has = pad[sl]
                # distance of this pixel from the neighbour's line: u.(c_p - c_q) + own_q
                d = -(pu_j[sl] * dj * hj + pu_i[sl] * di * hi_) + p_own[sl]
                best_in = np.where(has & (d < 0), np.maximum(best_in, d), best_in)
                best_out = np.where(has & (d > 0), np.minimum(best_out, d), best_out)
        full = ~part & (phi == -np.inf)
        empty = ~part & (phi == np.inf)
        out[full] = np.clip(np.where(np.isfinite(best_in), best_in, -cap), -cap, 0)[full]
        out[empty] = np.clip(np.where(np.isfinite(best_out), best_out, cap), 0, cap)[empty]
        return out

    def bounding_box(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(lo, hi)`` index bounds (inclusive, exclusive) of occupied voxels, or None."""
        occ = self.occupied
        if not occ.any():
            return None
        lo, hi = [], []
        for ax in range(3):
            other = tuple(a for a in range(3) if a != ax)
            idx = np.flatnonzero(occ.any(axis=other))
            lo.append(idx[0])
            hi.append(idx[-1] + 1)
        return np.array(lo), np.array(hi)

    # ------------------------------------------------------------------ operations
    def complement(self) -> SubvoxelMask:
        """Everything outside (the planes flip side)."""
        return SubvoxelMask(-self.phi, -self.normal, self.spacing_mm)

    def normalised(self) -> SubvoxelMask:
        """Turn partial voxels whose plane misses the box into full or empty voxels."""
        phi = self.phi.copy()
        p = np.isfinite(phi)
        if p.any():
            support = 0.5 * np.tensordot(
                np.asarray(self.spacing_mm, dtype=np.float32), np.abs(self.normal[:, p]), 1
            )
            v = phi[p]
            v = np.where(v >= support, np.inf, np.where(v <= -support, -np.inf, v))
            phi[p] = v
        return SubvoxelMask(phi, self.normal, self.spacing_mm)

    def padded(self, before, after) -> SubvoxelMask:
        """The same region on an array grown by ``before`` / ``after`` voxels per axis."""
        pad = [(int(b), int(a)) for b, a in zip(before, after, strict=True)]
        phi = np.pad(self.phi, pad, constant_values=np.inf)
        normal = np.pad(self.normal, [(0, 0), *pad])
        return SubvoxelMask(phi, normal, self.spacing_mm)

    @classmethod
    def embedded(cls, block: SubvoxelMask, lo, shape) -> SubvoxelMask:
        """``block`` placed at index ``lo`` in an otherwise empty array of ``shape``."""
        if tuple(shape) == block.shape:
            return block
        phi = np.full(shape, np.inf, dtype=np.float32)
        normal = np.zeros((3, *shape), dtype=np.float32)
        sl = tuple(slice(int(a), int(a) + n) for a, n in zip(lo, block.shape, strict=True))
        phi[sl] = block.phi
        normal[(slice(None), *sl)] = block.normal
        return cls(phi, normal, block.spacing_mm)

    def cropped(self, lo, hi) -> SubvoxelMask:
        """The sub-block ``[lo, hi)`` (index bounds per axis)."""
        sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
        return SubvoxelMask(self.phi[sl], self.normal[(slice(None), *sl)], self.spacing_mm)
