"""Sub-voxel surfaces: a plane per boundary voxel (piecewise-linear interface reconstruction).

A partial-volume mask (the fraction of each voxel inside a structure) knows more than a
binary mask: it pins the boundary inside each partly covered voxel.  Following the
volume-of-fluid literature (PLIC, Youngs 1982; Scardovelli & Zaleski 2000) each such voxel
is given the plane ``n . (x - c) = delta`` (``c`` the voxel centre, ``n`` the outward unit
normal) that cuts off exactly its fraction of the voxel box:

* the normal is Youngs' estimate, minus the gradient of the fractions (central differences
  smoothed with ``[1, 2, 1]`` across the other two axes, in mm);
* the offset ``delta`` (mm) is the exact inverse of the box/plane volume function, in
  closed form.

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


def _lower_half(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``x`` clipped to [0, 1] and folded onto [0, 1/2], and where it was folded."""
    x = np.clip(x, 0.0, 1.0)
    flip = x > 0.5
    return np.where(flip, 1.0 - x, x), flip


def _unit_cube_volume(m, alpha: np.ndarray) -> np.ndarray:
    """Volume of ``{u in [0,1]^3 : m . u <= alpha}`` for ``m >= 0`` with ``sum(m) = 1``.

    Scardovelli & Zaleski (2000) closed form, by the cases of ``alpha`` against the
    sorted components ``m1 <= m2 <= m3``; symmetric about ``alpha = 1/2``.
    """
    m1, m2, m3 = _sorted_components(m)
    a, flip = _lower_half(alpha)
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


def box_plane_offset(normal, fraction, spacing_mm) -> np.ndarray:
    """Offset (mm) of the plane with the given normal that cuts off ``fraction`` of a box.

    The exact inverse of :func:`box_plane_fraction` (closed form, see
    :func:`_unit_cube_alpha`).  ``fraction`` 0 and 1 give the box's support
    ``-/+ sum(|n| h) / 2``.

    Examples
    --------
    >>> round(float(box_plane_offset([0.0, 0.6, 0.8], 0.5, (2.0, 1.0, 1.0))), 9)
    0.0
    >>> round(float(box_plane_offset([0.0, 0.0, 1.0], 0.75, (1.0, 1.0, 1.0))), 6)
    0.25
    """
    m, total = _box_terms(normal, spacing_mm)
    total = np.maximum(total, 1e-12)
    mn = _sorted_components(m / total[..., None])
    alpha = _unit_cube_alpha(mn, np.asarray(fraction, dtype=float))
    return (alpha - 0.5) * total


def _unit_cube_alpha(m, volume: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_unit_cube_volume`: ``alpha`` with ``V(alpha) = volume``.

    Scardovelli & Zaleski (2000): by symmetry only ``volume <= 1/2`` is solved; the
    volume at ``alpha = m1, m2, min(m1 + m2, m3)`` separates the cases.  Below ``m1`` the
    cut is a corner (cube root); up to ``m2`` a quadratic; beyond, a cubic whose wanted
    root is the middle one of its three real roots (trigonometric form), or, when
    ``m3 >= m1 + m2``, linear.
    """
    m1, m2, m3 = _sorted_components(m)
    v, flip = _lower_half(volume)
    m12 = m1 + m2
    p6 = 6.0 * m1 * m2 * m3
    v1 = m1 * m1 / (6.0 * m2 * m3)
    v2 = v1 + (m2 - m1) / (2.0 * m3)
    wide = m3 < m12
    v3 = np.where(
        wide,
        (m3 * m3 * (3.0 * m12 - m3) + m1 * m1 * (m1 - 3.0 * m3) + m2 * m2 * (m2 - 3.0 * m3)) / p6,
        m12 / (2.0 * m3),
    )
    a1 = np.cbrt(p6 * v)
    a2 = 0.5 * (m1 + np.sqrt(np.maximum(m1 * m1 + 8.0 * m2 * m3 * (v - v1), 0.0)))
    # alpha = m12 + t:  t^3 - 6 m1 m2 t + (6 m1 m2 m3 V - 3 m1 m2 m12) = 0
    a3 = m12 + _middle_root(-6.0 * m1 * m2, p6 * v - 3.0 * m1 * m2 * m12)
    # alpha = 1/2 + t:  2 t^3 + (3 S2 - 3/2) t + (3/2 S2 - 1/2 + 6 m1 m2 m3 V - S3) = 0
    s2 = m1 * m1 + m2 * m2 + m3 * m3
    s3 = m1**3 + m2**3 + m3**3
    a4 = 0.5 + _middle_root(1.5 * s2 - 0.75, 0.5 * (1.5 * s2 - 0.5 + p6 * v - s3))
    a5 = m3 * v + 0.5 * m12
    a = np.where(v < v1, a1, np.where(v < v2, a2, np.where(v < v3, a3, np.where(wide, a4, a5))))
    return np.where(flip, 1.0 - a, a)


def _middle_root(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Middle real root of ``t^3 + p t + q = 0`` (``p < 0``; trigonometric form)."""
    r = np.sqrt(np.maximum(-p / 3.0, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.clip(np.nan_to_num(-q / (2.0 * r**3)), -1.0, 1.0)
    return 2.0 * r * np.cos(np.arccos(c) / 3.0 - 2.0 * np.pi / 3.0)


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
