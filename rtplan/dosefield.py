"""A dose grid arranged for DVH sampling: axes ``[z, y, x]`` increasing, edges padded.

Conventions (applied by :func:`axial_field` and used by the DVH computation)
--------------------------------------------------------------------------
* Dose values sit at voxel centres (the *knots*) and are interpolated trilinearly
  between them.
* A dose voxel stands for its whole cell: the dose grid covers the box of the voxel
  centres widened by half a voxel on every side (in z by half the gap to the next
  slice).  In that outer half-voxel rim the dose is the value of the nearest edge knot
  (constant extrapolation along the outward axis).  Anything beyond the box is *outside*
  the dose grid and gets no dose at all.
* NaN dose values (e.g. a plan sum where one dose does not reach) spread to every sample
  that interpolates from them; such samples count as outside the dose grid.
* Only grids whose axes are parallel to the patient axes, with slices stacked along z
  (every cardinal patient orientation: HFS, HFP, FFS, FFP, decubitus), are accepted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rtplan.dose import Dose
from rtplan.errors import GeometryError


@dataclass(frozen=True, eq=False)
class AxialField:
    """Dose on knots ``(z[k], y0 + j * dy, x0 + i * dx)``, padded by one knot per side.

    Attributes
    ----------
    values_gy : numpy.ndarray
        ``[z, y, x]`` dose in Gy, including the replicated edge knots.
    x0_mm, y0_mm : float
        Position of the first (padding) knot along x and y.
    dx_mm, dy_mm : float
        Knot spacing along x and y.
    z_mm : numpy.ndarray
        Knot positions along z (padding included; may be unevenly spaced).
    extent_mm : numpy.ndarray
        ``[[x_lo, x_hi], [y_lo, y_hi], [z_lo, z_hi]]``, the covered box.
    """

    values_gy: np.ndarray
    x0_mm: float
    y0_mm: float
    dx_mm: float
    dy_mm: float
    z_mm: np.ndarray
    extent_mm: np.ndarray

    def sample(self, x_mm, y_mm, z_mm) -> np.ndarray:
        """Trilinear dose (Gy) at points; NaN outside :attr:`extent_mm`.

        Parameters
        ----------
        x_mm, y_mm, z_mm : array_like
            LPS coordinates of the points (broadcast together).

        Returns
        -------
        numpy.ndarray
            Dose in Gy.
        """
        x, y, z = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (x_mm, y_mm, z_mm)))
        ext = self.extent_mm
        tol = 1e-9
        inside = (
            (x >= ext[0, 0] - tol)
            & (x <= ext[0, 1] + tol)
            & (y >= ext[1, 0] - tol)
            & (y <= ext[1, 1] + tol)
            & (z >= ext[2, 0] - tol)
            & (z <= ext[2, 1] + tol)
        )
        nz, ny, nx = self.values_gy.shape
        fx = (x - self.x0_mm) / self.dx_mm
        fy = (y - self.y0_mm) / self.dy_mm
        k = np.clip(np.searchsorted(self.z_mm, z, side="right") - 1, 0, nz - 2)
        i = np.clip(np.floor(fx).astype(np.int64), 0, nx - 2)
        j = np.clip(np.floor(fy).astype(np.int64), 0, ny - 2)
        tx = np.clip(fx - i, 0.0, 1.0)
        ty = np.clip(fy - j, 0.0, 1.0)
        tz = np.clip((z - self.z_mm[k]) / (self.z_mm[k + 1] - self.z_mm[k]), 0.0, 1.0)
        v = self.values_gy
        out = np.zeros(x.shape)
        for dk, wz in ((0, 1 - tz), (1, tz)):
            for dj, wy in ((0, 1 - ty), (1, ty)):
                for di, wx in ((0, 1 - tx), (1, tx)):
                    out += wz * wy * wx * v[k + dk, j + dj, i + di]
        return np.where(inside, out, np.nan)


def axial_field(dose: Dose) -> AxialField:
    """Arrange a :class:`~rtplan.dose.Dose` as an :class:`AxialField`.

    Parameters
    ----------
    dose : Dose
        A dose on a grid whose axes are parallel to the patient axes, slices along z.

    Returns
    -------
    AxialField
        Axes permuted and flipped to ``[z, y, x]`` with increasing coordinates, one
        replicated knot added on every side (see the module conventions).

    Raises
    ------
    GeometryError
        If the grid is oblique or its slices are not stacked along z.
    """
    grid = dose.grid
    d = grid.direction_matrix
    patient_axis = np.argmax(np.abs(d), axis=0)  # patient axis (0=x, 1=y, 2=z) of array axis
    if (
        not np.allclose(np.abs(d[patient_axis, [0, 1, 2]]), 1.0, atol=1e-6)
        or len(set(patient_axis.tolist())) != 3
    ):
        raise GeometryError(
            "dose grid axes are oblique to the patient axes; the DVH needs an axis-aligned grid",
            path=dose.source or None,
        )
    if patient_axis[0] != 2:
        raise GeometryError(
            "dose grid slices are not stacked along z (not an axial dose grid)",
            path=dose.source or None,
        )
    signs = np.sign(d[patient_axis, [0, 1, 2]])
    offsets = grid.axis_coordinates_mm()
    values = np.asarray(dose.values_gy, dtype=float)
    coords = {}
    for a in range(3):
        r = patient_axis[a]
        c = grid.origin_mm[r] + signs[a] * offsets[a]
        if signs[a] < 0:
            values = np.flip(values, axis=a)
            c = c[::-1]
        coords[r] = c
    # array axes currently map to patient axes patient_axis[0..2]; put them in (z, y, x)
    order = [int(np.flatnonzero(patient_axis == r)[0]) for r in (2, 1, 0)]
    values = np.transpose(values, order)
    x, y, z = coords[0], coords[1], coords[2]
    dx = grid.spacing_mm[int(np.flatnonzero(patient_axis == 0)[0])]
    dy = grid.spacing_mm[int(np.flatnonzero(patient_axis == 1)[0])]
    if len(z) > 1:
        gap_lo, gap_hi = z[1] - z[0], z[-1] - z[-2]
    else:
        gap_lo = gap_hi = grid.spacing_mm[0]
    padded = np.pad(values, 1, mode="edge")
    z_knots = np.concatenate([[z[0] - gap_lo], z, [z[-1] + gap_hi]])
    extent = np.array(
        [
            [x[0] - dx / 2, x[-1] + dx / 2],
            [y[0] - dy / 2, y[-1] + dy / 2],
            [z[0] - gap_lo / 2, z[-1] + gap_hi / 2],
        ]
    )
    return AxialField(
        values_gy=np.ascontiguousarray(padded),
        x0_mm=float(x[0] - dx),
        y0_mm=float(y[0] - dy),
        dx_mm=float(dx),
        dy_mm=float(dy),
        z_mm=z_knots,
        extent_mm=extent,
    )
