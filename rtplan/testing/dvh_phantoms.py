"""Analytic DVH phantoms (in the manner of Nelms et al. 2015) and their exact DVHs.

Spheres, cylinders and cones (any axis direction) are cut into axial contours; a
linear dose ``D(p) = D0 + g . (p - c)`` is put on any grid.  :class:`SlabTruth` gives the
exact DVH of the *contour-defined* structure under the slab convention (the union of the
contour polygons extruded over their slabs), in closed form: for a polygon and a
half-plane ``{u >= s}`` (``u`` the in-plane dose direction) Green's theorem gives
``area = oint (u - s)+ dw``, and the integral of that area over the slab's dose range is
``oint (u - s)+^2 / 2 dw``; both are exact sums over the polygon edges.  This is
independent of the lattice sampling of :mod:`rtplan.dvh.compute`, and is used by the
tests and the benchmark as the truth.

References
----------
Nelms B, et al. Methods, software and datasets to verify DVH calculations against
analytical values: Twenty years late(r). Med Phys 2015;42(8):4435-48.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from rtplan.dose import Dose
from rtplan.grid import Grid
from rtplan.polygon import nesting_depths, signed_area
from rtplan.structure import Contour, Structure

SHAPES = ("sphere", "cylinder", "cone")


@dataclass(frozen=True)
class Shape:
    """A solid: ``sphere`` (radius), ``cylinder`` or ``cone`` (radius, length, axis).

    The cylinder is centred on ``center_mm``; the cone's base (radius ``radius_mm``) is
    centred on ``center_mm`` and its apex lies ``length_mm`` along ``axis``.
    """

    kind: str
    center_mm: tuple[float, float, float]
    radius_mm: float
    length_mm: float = 0.0
    axis: tuple[float, float, float] = (0.0, 0.0, 1.0)

    def inside(self, points_mm) -> np.ndarray:
        """Boolean: points (``(..., 3)`` LPS mm) inside the solid."""
        d = np.asarray(points_mm, dtype=float) - np.asarray(self.center_mm)
        if self.kind == "sphere":
            return np.einsum("...i,...i->...", d, d) <= self.radius_mm**2
        a = np.asarray(self.axis, dtype=float)
        a = a / np.linalg.norm(a)
        h = d @ a
        r2 = np.einsum("...i,...i->...", d, d) - h * h
        if self.kind == "cylinder":
            return (np.abs(h) <= self.length_mm / 2) & (r2 <= self.radius_mm**2)
        if self.kind == "cone":
            rad = self.radius_mm * (1 - h / self.length_mm)
            return (h >= 0) & (h <= self.length_mm) & (r2 <= np.maximum(rad, 0) ** 2)
        raise ValueError(f"unknown shape {self.kind}")

    @property
    def volume_cc(self) -> float:
        """Analytic volume (cc) of the solid itself (not of its contours)."""
        r, h = self.radius_mm, self.length_mm
        v = {
            "sphere": 4 / 3 * np.pi * r**3,
            "cylinder": np.pi * r * r * h,
            "cone": np.pi * r * r * h / 3,
        }[self.kind]
        return float(v) / 1000.0

    def bounding_radius_mm(self) -> float:
        """Radius of a ball around ``center_mm`` that holds the solid."""
        if self.kind == "sphere":
            return self.radius_mm
        if self.kind == "cylinder":
            return float(np.hypot(self.radius_mm, self.length_mm / 2))
        return float(max(self.radius_mm, self.length_mm))


def shape_structure(
    shape: Shape,
    spacing_mm: float,
    *,
    z_offset_mm: float = 0.0,
    n_vertices: int = 256,
    name: str | None = None,
    frame_of_reference_uid: str = "",
) -> Structure:
    """Axial contours of a solid on planes ``z = z_offset_mm + k * spacing_mm``.

    Each plane's cross-section (convex for these solids) is traced by ``n_vertices``
    rays from its centre, bisected to the surface to 1e-9 mm.

    Returns
    -------
    Structure
        With ``slice_spacing_mm = spacing_mm`` (the slab thickness).
    """
    c = np.asarray(shape.center_mm, dtype=float)
    rb = shape.bounding_radius_mm()
    k0 = int(np.floor((c[2] - rb - z_offset_mm) / spacing_mm))
    k1 = int(np.ceil((c[2] + rb - z_offset_mm) / spacing_mm))
    ang = np.linspace(0, 2 * np.pi, n_vertices, endpoint=False)
    dirs = np.stack([np.cos(ang), np.sin(ang)], axis=1)
    g = np.linspace(-rb, rb, 161)
    gx, gy = np.meshgrid(c[0] + g, c[1] + g)
    zs, centres = [], []
    for k in range(k0, k1 + 1):
        z = z_offset_mm + k * spacing_mm
        pts = np.stack([gx.ravel(), gy.ravel(), np.full(gx.size, z)], axis=1)
        inside = shape.inside(pts)
        if inside.sum() < 3:
            continue
        zs.append(z)
        centres.append(pts[inside, :2].mean(axis=0))
    if not zs:
        return Structure(name or shape.kind, (), frame_of_reference_uid=frame_of_reference_uid,
                         slice_spacing_mm=float(spacing_mm))  # fmt: skip
    # bisect every ray of every plane at once
    z = np.asarray(zs)[:, None]
    centre = np.asarray(centres)[:, None, :]
    lo = np.zeros((len(zs), n_vertices))
    hi = np.full((len(zs), n_vertices), 2.5 * rb)
    q = np.empty((len(zs), n_vertices, 3))
    q[..., 2] = z
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        q[..., :2] = centre + mid[..., None] * dirs
        ins = shape.inside(q)
        lo = np.where(ins, mid, lo)
        hi = np.where(ins, hi, mid)
    contours = []
    for zk, c_k, r_k in zip(zs, centre, lo, strict=True):
        poly = c_k + r_k[:, None] * dirs
        if abs(signed_area(poly)) < 1e-6:
            continue
        contours.append(Contour(np.c_[poly, np.full(n_vertices, zk)]))
    return Structure(
        name or shape.kind,
        tuple(contours),
        frame_of_reference_uid=frame_of_reference_uid,
        slice_spacing_mm=float(spacing_mm),
    )


@dataclass(frozen=True)
class LinearDose:
    """``D(p) = value_gy + gradient_gy_per_mm . (p - center_mm)``."""

    value_gy: float
    gradient_gy_per_mm: tuple[float, float, float]
    center_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def at(self, points_mm) -> np.ndarray:
        """Dose (Gy) at points ``(..., 3)``."""
        p = np.asarray(points_mm, dtype=float) - np.asarray(self.center_mm)
        return self.value_gy + p @ np.asarray(self.gradient_gy_per_mm, dtype=float)

    def on_grid(self, grid: Grid, frame_of_reference_uid: str = "") -> Dose:
        """The dose sampled at the voxel centres of ``grid``."""
        idx = np.indices(grid.shape).reshape(3, -1).T
        values = self.at(grid.index_to_world(idx)).reshape(grid.shape)
        return Dose(values, grid, frame_of_reference_uid=frame_of_reference_uid)


def covering_grid(
    structure: Structure, spacing_mm, *, margin_mm: float = 6.0, shift_mm=(0.0, 0.0, 0.0)
) -> Grid:
    """An axial grid of the given spacing (scalar or (z, y, x)) covering the structure."""
    lo, hi = structure.bounds_mm()
    s = np.broadcast_to(np.asarray(spacing_mm, dtype=float), (3,))[::-1]  # x, y, z
    origin = lo - margin_mm + np.asarray(shift_mm, dtype=float)
    n = np.ceil((hi - origin + margin_mm) / s).astype(int) + 1
    return Grid((n[2], n[1], n[0]), tuple(origin), (s[2], s[1], s[0]))


class SlabTruth:
    """Exact DVH of a contour-defined structure under a linear dose (slab convention).

    Parameters
    ----------
    structure : Structure
        Closed planar contours (even-odd holes allowed).
    dose : LinearDose
        The dose.
    end_cap : str
        End-cap convention (``Structure.slabs_mm``).
    """

    def __init__(self, structure: Structure, dose: LinearDose, end_cap: str = "slab"):
        self.dose = dose
        slabs = structure.slabs_mm(end_cap)
        g = np.asarray(dose.gradient_gy_per_mm, dtype=float)
        self.g_xy = float(np.hypot(g[0], g[1]))
        self.g_z = float(g[2])
        n = g[:2] / self.g_xy if self.g_xy > 0 else np.array([1.0, 0.0])
        c = np.asarray(dose.center_mm, dtype=float)
        u0, u1, w0, w1, weight, plane = [], [], [], [], [], []
        areas, cx, cy, vx, vy, vz = [], [], [], [], [], []
        for p, polys in enumerate(structure.planes.values()):
            depths = nesting_depths(polys)
            a_p, mx, my = 0.0, 0.0, 0.0
            for poly, depth in zip(polys, depths, strict=True):
                q = np.asarray(poly, dtype=float) - c[:2]
                sa = signed_area(q)
                s = (-1.0) ** depth * np.sign(sa)
                u = q @ n
                w = q @ np.array([-n[1], n[0]])
                u0.append(u)
                u1.append(np.roll(u, -1))
                w0.append(w)
                w1.append(np.roll(w, -1))
                weight.append(np.full(len(u), s))
                plane.append(np.full(len(u), p))
                x, y = q[:, 0], q[:, 1]
                xn, yn = np.roll(x, -1), np.roll(y, -1)
                cr = x * yn - xn * y
                a_p += s * sa
                mx += s * np.sum((x + xn) * cr) / 6
                my += s * np.sum((y + yn) * cr) / 6
                for zz in slabs[p]:
                    vx.append(q[:, 0])
                    vy.append(q[:, 1])
                    vz.append(np.full(len(q), zz - c[2]))
            areas.append(a_p)
            cx.append(mx)
            cy.append(my)
        cat = np.concatenate
        self._u0, self._u1, self._w0, self._w1 = cat(u0), cat(u1), cat(w0), cat(w1)
        self._sign = cat(weight)
        self._plane = cat(plane).astype(int)
        self._slab = slabs - c[2]  # z relative to the dose centre
        self._area = np.asarray(areas)
        thick = slabs[:, 1] - slabs[:, 0]
        self.volume_cc = float(np.sum(self._area * thick)) / 1000.0
        zmid = 0.5 * (self._slab[:, 0] + self._slab[:, 1])
        first = g[0] * np.asarray(cx) + g[1] * np.asarray(cy) + g[2] * zmid * self._area
        self.mean_gy = float(dose.value_gy + np.sum(first * thick) / np.sum(self._area * thick))
        vert = g[0] * cat(vx) + g[1] * cat(vy) + g[2] * cat(vz) + dose.value_gy
        self.min_gy = float(vert.min())
        self.max_gy = float(vert.max())

    @staticmethod
    def _pos_power_integral(u0, u1, s, k):
        """``int_0^1 ((u0 + t (u1 - u0) - s)+)^k dt`` for edge arrays."""
        a = np.maximum(u0 - s, 0.0)
        b = np.maximum(u1 - s, 0.0)
        du = u1 - u0
        small = np.abs(du) < 1e-12
        safe = np.where(small, 1.0, du)
        exact = (b ** (k + 1) - a ** (k + 1)) / ((k + 1) * safe)
        return np.where(small, np.maximum(0.5 * (u0 + u1) - s, 0.0) ** k, exact)

    def volume_at_dose_cc(self, dose_gy):
        """Exact volume (cc) receiving at least ``dose_gy`` (a float or an array)."""
        levels = np.asarray(dose_gy, dtype=float)
        flat = levels.ravel() - self.dose.value_gy
        step = max(1, 1_000_000 // max(len(self._u0), 1))
        out = np.concatenate(
            [self._volume_at(flat[k : k + step, None]) for k in range(0, len(flat), step)]
        ).reshape(levels.shape)
        return float(out) if out.ndim == 0 else out

    def _volume_at(self, level):
        """Volumes (cc) above dose levels ``level`` (Gy relative to the dose at the
        centre, shape ``(n, 1)``), as an ``(n,)`` array."""
        a, b = self._slab[:, 0], self._slab[:, 1]
        if self.g_xy == 0:
            if self.g_z == 0:
                length = (b - a) * (level <= 0)
            elif self.g_z > 0:
                length = np.clip(b - np.maximum(a, level / self.g_z), 0, None)
            else:
                length = np.clip(np.minimum(b, level / self.g_z) - a, 0, None)
            return np.sum(self._area * length, axis=1) / 1000.0
        dw = (self._w1 - self._w0) * self._sign
        p = self._plane
        if self.g_z == 0:
            s = level / self.g_xy
            per_edge = dw * self._pos_power_integral(self._u0, self._u1, s, 1)
            return per_edge @ (b - a)[p] / 1000.0
        s_a = (level - self.g_z * a) / self.g_xy
        s_b = (level - self.g_z * b) / self.g_xy
        lo, hi = np.minimum(s_a, s_b), np.maximum(s_a, s_b)
        # int_lo^hi A(s) ds = oint [(u-lo)+^2 - (u-hi)+^2] / 2 dw
        per_edge = (
            dw
            * 0.5
            * (
                self._pos_power_integral(self._u0, self._u1, lo[:, p], 2)
                - self._pos_power_integral(self._u0, self._u1, hi[:, p], 2)
            )
        )
        return np.sum(per_edge, axis=1) * self.g_xy / abs(self.g_z) / 1000.0

    def dose_at_volume_gy(self, volume_cc: float) -> float:
        """Exact dose (Gy) covering ``volume_cc`` (root of the cumulative curve)."""
        if volume_cc <= 0:
            return self.max_gy
        if volume_cc >= self.volume_cc:
            return self.min_gy
        return float(
            brentq(
                lambda d: self.volume_at_dose_cc(d) - volume_cc,
                self.min_gy,
                self.max_gy,
                xtol=1e-12,
                rtol=1e-13,
            )
        )

    def metric(self, text: str) -> float:
        """Exact value of ``Dmean``, ``Dmin``, ``Dmax``, ``D<v>%``, ``D<v>cc``, ``V<d>Gy``."""
        from rtplan.dvh.metrics import parse

        m = parse(text)
        if m.kind == "dstat":
            return {"mean": self.mean_gy, "min": self.min_gy, "max": self.max_gy}[m.statistic]
        if m.kind == "dvol":
            v = m.number * self.volume_cc / 100 if m.volume_unit == "%" else m.number
            return self.dose_at_volume_gy(v)
        if m.kind == "vgy":
            cc = self.volume_at_dose_cc(m.number)
            return 100 * cc / self.volume_cc if m.unit == "%" else cc
        raise ValueError(f"SlabTruth does not evaluate {text}")
