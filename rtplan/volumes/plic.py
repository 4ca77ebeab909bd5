"""Sub-voxel surfaces: a plane per boundary voxel (piecewise-linear interface reconstruction).

A partial-volume mask (the fraction of each voxel inside a structure) knows more than a
binary mask: it pins the boundary inside each partly covered voxel.  Following the
volume-of-fluid literature (PLIC, Youngs 1982; Scardovelli & Zaleski 2000) each such voxel
is given the plane ``n . (x - c) = delta`` (``c`` the voxel centre, ``n`` the outward unit
normal) that cuts off exactly its fraction of the voxel box:

* the normal is Youngs' estimate, minus the gradient of the fractions (central differences
  smoothed with ``[1, 2, 1]`` across the other two axes, in mm);
* the offset ``delta`` (mm) is the exact inverse of the box/plane volume function.

The inside of a partly covered voxel is then ``box ∩ {n . (x - c) <= delta}``, so the
reconstruction has exactly the volume of the mask.

References
----------
Youngs DL (1982), Time-dependent multi-material flow with large fluid distortion.
Scardovelli R, Zaleski S (2000), Analytical relations connecting linear interfaces and
volume fractions in rectangular grids, J Comput Phys 164:228-237.
"""

from __future__ import annotations

import numpy as np

#: Fractions within this distance of 0 or 1 count as empty or full.
FRACTION_TOLERANCE = 1e-6
_MIN_COMPONENT = 1e-6  # smallest normalised normal component (keeps the formulas finite)


def _sorted_components(m: np.ndarray):
    """``m`` floored at a tiny value, normalised to sum 1 and sorted ascending."""
    if isinstance(m, tuple):
        return m
    m = np.sort(np.maximum(m, _MIN_COMPONENT), axis=-1)
    m = m / m.sum(axis=-1, keepdims=True)
    return m[..., 0], m[..., 1], m[..., 2]


def _unit_cube_volume(m, alpha: np.ndarray) -> np.ndarray:
    """Volume of ``{u in [0,1]^3 : m . u <= alpha}`` for ``m >= 0`` with ``sum(m) = 1``.

    Scardovelli & Zaleski (2000) closed form, by the cases of ``alpha`` against the
    sorted components ``m1 <= m2 <= m3``; symmetric about ``alpha = 1/2``.
    """
    m1, m2, m3 = _sorted_components(m)
    a = np.clip(alpha, 0.0, 1.0)
    flip = a > 0.5
    a = np.where(flip, 1.0 - a, a)
    m12 = m1 + m2
    p = 6.0 * m1 * m2 * m3
    v1 = a**3 / p
    v2 = a * (a - m1) / (2.0 * m2 * m3) + m1**2 / (6.0 * m2 * m3)
    v3 = (a * a * (3.0 * m12 - a) + m1 * m1 * (m1 - 3.0 * a) + m2 * m2 * (m2 - 3.0 * a)) / p
    v4 = (
        a * a * (3.0 - 2.0 * a)
        + m1 * m1 * (m1 - 3.0 * a)
        + m2 * m2 * (m2 - 3.0 * a)
        + m3 * m3 * (m3 - 3.0 * a)
    ) / p
    v5 = (2.0 * a - m12) / (2.0 * m3)
    v = np.where(
        a < m1,
        v1,
        np.where(
            a < m2,
            v2,
            np.where(a < np.minimum(m12, m3), v3, np.where(m3 < m12, v4, v5)),
        ),
    )
    v = np.clip(v, 0.0, 1.0)
    return np.where(flip, 1.0 - v, v)


def _box_terms(normal: np.ndarray, spacing_mm) -> tuple[np.ndarray, np.ndarray]:
    """``m = |n| * h`` (mm) per voxel and its sum (twice the box's support along n)."""
    m = np.abs(np.asarray(normal, dtype=float)) * np.asarray(spacing_mm, dtype=float)
    total = m.sum(axis=-1)
    return m, total


def box_plane_fraction(normal, offset_mm, spacing_mm) -> np.ndarray:
    """Fraction of a voxel box on the inner side of a plane.

    Parameters
    ----------
    normal : array_like, shape (..., 3)
        Unit normals (array-axis order ``k, j, i``), pointing out of the region.
    offset_mm : array_like, shape (...)
        Signed distance (mm) of the plane from the voxel centre along ``normal``.
    spacing_mm : sequence of 3 float
        Voxel size (mm) along the array axes.

    Returns
    -------
    numpy.ndarray
        Fraction in [0, 1] of ``box ∩ {n . (x - c) <= offset}``.

    Examples
    --------
    >>> round(float(box_plane_fraction([0.0, 0.0, 1.0], 0.25, (1.0, 1.0, 1.0))), 5)
    0.75
    """
    m, total = _box_terms(normal, spacing_mm)
    total = np.maximum(total, 1e-12)
    alpha = (np.asarray(offset_mm, dtype=float) + 0.5 * total) / total
    return _unit_cube_volume(m / total[..., None], alpha)


def box_plane_offset(normal, fraction, spacing_mm, iterations: int = 32) -> np.ndarray:
    """Offset (mm) of the plane with the given normal that cuts off ``fraction`` of a box.

    The exact inverse of :func:`box_plane_fraction` (bisection on the closed form; the
    volume is monotone in the offset).  ``fraction`` 0 and 1 give the box's support
    ``-/+ sum(|n| h) / 2``.

    Examples
    --------
    >>> round(float(box_plane_offset([0.0, 0.6, 0.8], 0.5, (2.0, 1.0, 1.0))), 9)
    0.0
    """
    m, total = _box_terms(normal, spacing_mm)
    total = np.maximum(total, 1e-12)
    mn = _sorted_components(m / total[..., None])
    f = np.clip(np.asarray(fraction, dtype=float), 0.0, 1.0)
    lo = np.zeros(f.shape)
    hi = np.ones(f.shape)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        above = _unit_cube_volume(mn, mid) > f
        hi = np.where(above, mid, hi)
        lo = np.where(above, lo, mid)
    return (0.5 * (lo + hi) - 0.5) * total


def youngs_normals(
    fraction: np.ndarray, spacing_mm, at: np.ndarray, in_plane: bool = False
) -> np.ndarray:
    """Outward unit normals ``(M, 3)`` of a fraction field at voxels ``at`` (Youngs).

    ``-grad(fraction)`` by central differences in mm along each axis, smoothed with
    ``[1, 2, 1] / 4`` along the other axes (values beyond the array repeat the edge);
    zero where the gradient vanishes.  With ``in_plane=True`` the slice axis (0) is left
    out: normals lie in the slice plane, as they do on the walls of a stack of
    planar-contour slabs.

    Parameters
    ----------
    fraction : numpy.ndarray
        Fractions ``[k, j, i]``.
    spacing_mm : sequence of 3 float
        Voxel size along the array axes.
    at : numpy.ndarray, shape (M, 3)
        Voxel indices where the normal is wanted.
    """
    f = np.pad(np.asarray(fraction, dtype=np.float32), 1, mode="edge")
    h = np.asarray(spacing_mm, dtype=float)
    at = np.asarray(at) + 1
    axes = (1, 2) if in_plane else (0, 1, 2)
    offsets = [o for o in np.ndindex(3, 3, 3) if in_plane is False or o[0] == 1]
    values = np.stack(
        [f[at[:, 0] + o[0] - 1, at[:, 1] + o[1] - 1, at[:, 2] + o[2] - 1] for o in offsets],
        axis=1,
    ).astype(float)
    smooth = np.array([0.25, 0.5, 0.25])
    weights = np.zeros((len(offsets), 3))
    for row, o in enumerate(offsets):
        for ax in axes:
            w = (o[ax] - 1) / (2 * h[ax])  # central difference along ax
            for other in axes:
                if other != ax:
                    w *= smooth[o[other]]
            weights[row, ax] = -w  # outward: minus the gradient
    n = values @ weights
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    return np.divide(n, norm, out=np.zeros_like(n), where=norm > 0)
