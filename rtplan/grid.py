"""Voxel grids in DICOM patient coordinates (LPS, mm).

Conventions (used everywhere in rtplan)
--------------------------------------
* Arrays are indexed ``[k, j, i]`` = ``[slice, row, column]``, the order in which a
  DICOM series stacks ``pixel_array`` frames.  ``Grid.shape``, ``Grid.spacing_mm`` and
  the columns of ``Grid.direction`` all follow this array-axis order.
* ``origin_mm`` is the LPS position of the **centre** of voxel ``[0, 0, 0]`` (DICOM's
  ImagePositionPatient of the first slice).
* ``direction[:, a]`` is the LPS unit vector along array axis ``a``.  For a DICOM image,
  ``direction[:, 2]`` is the row direction cosine (first three values of
  ImageOrientationPatient; the direction in which the column index ``i`` grows),
  ``direction[:, 1]`` the column direction cosine, and ``direction[:, 0]`` the slice
  normal, oriented so that ``k`` grows with slice position.
* A grid may have non-uniform slices: then ``slice_offsets_mm`` holds the position of
  each slice along ``direction[:, 0]``, relative to the origin (first value 0), and
  ``spacing_mm[0]`` is the smallest gap.

World position of index ``(k, j, i)`` (uniform slices)::

    x = origin + direction @ (spacing * [k, j, i])

Examples
--------
>>> g = Grid(shape=(3, 4, 5), origin_mm=(-10.0, -20.0, 30.0), spacing_mm=(2.5, 1.0, 1.0))
>>> g.index_to_world([[0, 0, 0], [2, 3, 4]]).tolist()
[[-10.0, -20.0, 30.0], [-6.0, -17.0, 35.0]]
>>> g.world_to_index([[-6.0, -17.0, 35.0]]).tolist()
[[2.0, 3.0, 4.0]]
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rtplan.errors import GeometryError

#: The six patient directions a margin is given in (``rtplan.volumes.margins.Margins``) ...
DIRECTIONS = ("right", "left", "anterior", "posterior", "superior", "inferior")
#: ... and the shorthands for several of them (protocol recipes use both).
SHORTHANDS = {
    "radial": ("right", "left", "anterior", "posterior"),
    "longitudinal": ("superior", "inferior"),
    "all": DIRECTIONS,
    "isotropic": DIRECTIONS,
}

#: Direction for an axial head-first-supine image: i -> +x (L), j -> +y (P), k -> +z (S).
AXIAL_DIRECTION = ((0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0))


@dataclass(frozen=True)
class Grid:
    """A 3-D voxel grid in patient coordinates.

    Parameters
    ----------
    shape : tuple of int
        ``(n_slices, n_rows, n_columns)``.
    origin_mm : tuple of float
        LPS position (mm) of the centre of voxel ``[0, 0, 0]``.
    spacing_mm : tuple of float
        Voxel spacing (mm) along the array axes ``(slice, row, column)``.
    direction : 3x3 tuple, optional
        ``direction[r][a]`` is LPS component ``r`` of the unit vector of array axis ``a``.
        Default: axial HFS, where axis 0 -> +z, axis 1 -> +y, axis 2 -> +x.
    slice_offsets_mm : tuple of float, optional
        Positions (mm) of each slice along the slice axis relative to the origin, for
        grids whose slices are not evenly spaced.  ``None`` means uniform spacing.
    """

    shape: tuple[int, int, int]
    origin_mm: tuple[float, float, float]
    spacing_mm: tuple[float, float, float]
    direction: tuple[tuple[float, float, float], ...] = AXIAL_DIRECTION
    slice_offsets_mm: tuple[float, ...] | None = field(default=None)

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(n) for n in self.shape))
        object.__setattr__(self, "origin_mm", tuple(float(v) for v in self.origin_mm))
        object.__setattr__(self, "spacing_mm", tuple(float(v) for v in self.spacing_mm))
        d = np.asarray(self.direction, dtype=float)
        if d.shape != (3, 3):
            raise GeometryError(f"grid direction must be 3x3, got shape {d.shape}")
        if not np.allclose(d.T @ d, np.eye(3), atol=1e-4):
            raise GeometryError("grid direction vectors are not orthonormal")
        object.__setattr__(self, "direction", tuple(tuple(float(v) for v in r) for r in d))
        if len(self.shape) != 3 or min(self.shape) < 1:
            raise GeometryError(f"grid shape must be three positive sizes, got {self.shape}")
        if min(self.spacing_mm) <= 0:
            raise GeometryError(f"grid spacing must be positive, got {self.spacing_mm}")
        if self.slice_offsets_mm is not None:
            off = np.asarray(self.slice_offsets_mm, dtype=float)
            if len(off) != self.shape[0] or off[0] != 0 or np.any(np.diff(off) <= 0):
                raise GeometryError(
                    "slice_offsets_mm must start at 0, increase, and have one value per slice"
                )
            if np.allclose(np.diff(off), self.spacing_mm[0], rtol=0, atol=1e-3):
                object.__setattr__(self, "slice_offsets_mm", None)
            else:
                object.__setattr__(self, "slice_offsets_mm", tuple(float(v) for v in off))

    # ------------------------------------------------------------------ properties
    @property
    def direction_matrix(self) -> np.ndarray:
        """``(3, 3)`` array; column ``a`` is the LPS unit vector of array axis ``a``."""
        return np.asarray(self.direction, dtype=float)

    @property
    def is_uniform(self) -> bool:
        """True when the slices are evenly spaced."""
        return self.slice_offsets_mm is None

    @property
    def voxel_volume_cc(self) -> float:
        """Volume of one voxel in cc (uniform grids; the smallest voxel otherwise)."""
        return float(np.prod(self.spacing_mm)) / 1000.0

    @property
    def slice_positions_mm(self) -> np.ndarray:
        """Offset (mm) of every slice along the slice normal, relative to the origin."""
        if self.slice_offsets_mm is not None:
            return np.asarray(self.slice_offsets_mm, dtype=float)
        return np.arange(self.shape[0]) * self.spacing_mm[0]

    @property
    def slice_thickness_mm(self) -> np.ndarray:
        """Thickness (mm) of each slice: half the gap to each neighbour (ends: own gap)."""
        pos = self.slice_positions_mm
        if len(pos) == 1:
            return np.array([self.spacing_mm[0]])
        gaps = np.diff(pos)
        left = np.concatenate([[gaps[0]], gaps])
        right = np.concatenate([gaps, [gaps[-1]]])
        return 0.5 * (left + right)

    @property
    def is_axial(self) -> bool:
        """True when the slice normal is parallel to the patient z axis."""
        return abs(abs(self.direction_matrix[2, 0]) - 1.0) < 1e-4

    @property
    def affine(self) -> np.ndarray:
        """4x4 matrix mapping homogeneous ``(k, j, i, 1)`` to LPS mm (uniform grids)."""
        a = np.eye(4)
        a[:3, :3] = self.direction_matrix * np.asarray(self.spacing_mm)[None, :]
        a[:3, 3] = self.origin_mm
        return a

    # ------------------------------------------------------------------ transforms
    def index_to_world(self, index) -> np.ndarray:
        """LPS positions (mm) of continuous indices ``(k, j, i)``.

        Parameters
        ----------
        index : array_like, shape (..., 3)
            Continuous voxel indices in array order.

        Returns
        -------
        numpy.ndarray, shape (..., 3)
            LPS positions in mm.
        """
        idx = np.asarray(index, dtype=float)
        steps = idx * np.asarray(self.spacing_mm)
        if self.slice_offsets_mm is not None:
            k = np.arange(self.shape[0], dtype=float)
            steps[..., 0] = _interp_extrapolate(idx[..., 0], k, self.slice_positions_mm)
        return np.asarray(self.origin_mm) + steps @ self.direction_matrix.T

    def world_to_index(self, points_mm) -> np.ndarray:
        """Continuous indices ``(k, j, i)`` of LPS positions (mm); inverse of
        :meth:`index_to_world`."""
        p = np.asarray(points_mm, dtype=float) - np.asarray(self.origin_mm)
        steps = p @ self.direction_matrix
        idx = steps / np.asarray(self.spacing_mm)
        if self.slice_offsets_mm is not None:
            k = np.arange(self.shape[0], dtype=float)
            idx[..., 0] = _interp_extrapolate(steps[..., 0], self.slice_positions_mm, k)
        return idx

    def axis_coordinates_mm(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Offsets (mm) of voxel centres along each array axis, relative to the origin."""
        return (
            self.slice_positions_mm,
            np.arange(self.shape[1]) * self.spacing_mm[1],
            np.arange(self.shape[2]) * self.spacing_mm[2],
        )

    def world_bounds_mm(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned LPS bounding box ``(lo, hi)`` of the voxel centres."""
        corners = np.array(
            [
                [k, j, i]
                for k in (0, self.shape[0] - 1)
                for j in (0, self.shape[1] - 1)
                for i in (0, self.shape[2] - 1)
            ],
            dtype=float,
        )
        w = self.index_to_world(corners)
        return w.min(axis=0), w.max(axis=0)

    def contains_world(self, points_mm, tolerance_mm: float = 1e-3) -> np.ndarray:
        """Boolean per point: inside the region spanned by voxel centres (+ tolerance)."""
        idx = self.world_to_index(points_mm)
        tol = tolerance_mm / np.asarray(self.spacing_mm)
        upper = np.asarray(self.shape) - 1
        return np.all((idx >= -tol) & (idx <= upper + tol), axis=-1)

    def with_shape_origin(self, shape, origin_mm) -> Grid:
        """A grid with the same spacing and direction but a new shape and origin."""
        return Grid(tuple(shape), tuple(origin_mm), self.spacing_mm, self.direction)

    def same_as(self, other: Grid, tolerance_mm: float = 1e-3) -> bool:
        """True when both grids have the same voxel centres (within ``tolerance_mm``)."""
        if self.shape != other.shape:
            return False
        if not np.allclose(self.direction_matrix, other.direction_matrix, atol=1e-5):
            return False
        if not np.allclose(self.origin_mm, other.origin_mm, atol=tolerance_mm):
            return False
        if not np.allclose(self.spacing_mm, other.spacing_mm, atol=tolerance_mm):
            return False
        return np.allclose(self.slice_positions_mm, other.slice_positions_mm, atol=tolerance_mm)

    def to_sitk(self, array):
        """A SimpleITK image of ``array`` (``[k, j, i]``) on this (uniform) grid."""
        import SimpleITK as sitk

        if not self.is_uniform:
            raise GeometryError("SimpleITK images need evenly spaced slices")
        img = sitk.GetImageFromArray(np.asarray(array))
        img.SetOrigin(self.origin_mm)
        img.SetSpacing(self.spacing_mm[::-1])  # SimpleITK orders axes (i, j, k)
        d = self.direction_matrix[:, ::-1]
        img.SetDirection(tuple(d.ravel()))
        return img


def _interp_extrapolate(x, xp, fp):
    """``np.interp`` that continues linearly beyond the ends (non-uniform slices)."""
    x = np.asarray(x, dtype=float)
    y = np.interp(x, xp, fp)
    lo = x < xp[0]
    hi = x > xp[-1]
    y[lo] = fp[0] + (x[lo] - xp[0]) * (fp[1] - fp[0]) / (xp[1] - xp[0])
    y[hi] = fp[-1] + (x[hi] - xp[-1]) * (fp[-1] - fp[-2]) / (xp[-1] - xp[-2])
    return y


def grid_from_sitk(image) -> Grid:
    """The :class:`Grid` of a SimpleITK image (axes reversed into ``[k, j, i]`` order)."""
    d = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)[:, ::-1]
    return Grid(
        shape=image.GetSize()[::-1],
        origin_mm=image.GetOrigin(),
        spacing_mm=image.GetSpacing()[::-1],
        direction=tuple(map(tuple, d)),
    )
