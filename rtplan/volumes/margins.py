"""Exact anisotropic and asymmetric margins: Minkowski sums with an octant-wise ellipsoid.

Directions and shape
--------------------
A margin gives six distances (mm) in DICOM patient directions (LPS: +x = patient left,
+y = posterior, +z = superior): ``right`` (towards -x), ``left`` (+x), ``anterior`` (-y),
``posterior`` (+y), ``superior`` (+z), ``inferior`` (-z).  ``radial`` sets the four
in-plane ones, ``longitudinal`` superior and inferior.  The margin shape ``K`` is, in each
octant, the ellipsoid octant whose semi-axes are that octant's three distances (one
ellipsoid when the margins are symmetric).  ``K`` is convex, so

* expanding a region ``S`` gives the Minkowski sum ``S ⊕ K`` = every point whose
  *gauge distance* ``g(p - s) = |((p - s)_a / K_a)|`` to some ``s`` in ``S`` is at most 1
  (``K_a`` the semi-axis on the side the offset points to);
* shrinking gives the dual, ``complement(complement(S) ⊕ (-K))``: every point whose
  margin shape, centred on it, fits inside ``S``.

Margins are the same for every patient orientation: patient directions are mapped to array
axes through the grid's direction cosines (the grid must be aligned with the patient axes).

Algorithm
---------
1. The region is a :class:`~rtplan.volumes.subvoxel.SubvoxelMask`: full voxels plus one
   boundary plane per partly covered voxel, reconstructed from the partial-volume mask.
2. The gauge distance from every voxel centre to the nearest occupied voxel centre is
   computed exactly: with one exact Euclidean distance transform
   (``scipy.ndimage.distance_transform_edt``, ``sampling = spacing / semi-axis``, which
   turns the ellipsoid into a unit sphere) when the margins are symmetric; with exact
   separable lower envelopes of the per-axis (asymmetric parabola) costs when they are not.
   Both also return the nearest centre.  No repeated small dilations are used.
3. A centre is inside when its distance to a full voxel's centre is at most 1, or to any
   occupied centre at most ``1 - rho_p`` (``rho_p`` bounds how much the gauge changes
   across half a voxel box, in the direction of the offset); outside beyond ``1 + rho_p``.
4. Centres near the margin surface are refined: their gauge distance to the reconstructed
   region itself (the box of a full voxel, the plane of a partial one, chosen among the 19
   voxels around the nearest centre) places the new boundary inside the voxel.  The result
   is again a ``SubvoxelMask`` (plane per voxel: the old plane moved by its support).

The result is exact for a region made of voxel boxes and planar pieces, up to the choice
among the 19 neighbours (in concave corners the nearest piece may lie further: centres
within ``rho`` of the margin surface may then be misclassified); on analytic shapes the
volume error is a few tenths of a percent at 1 mm voxels (the tests and docs/volumes.md).
Steps 3-4 are the compiled kernel :func:`rtplan.volumes.refine.settle` (numba), run in
chunks on one thread per CPU.
"""

from __future__ import annotations

import math
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from rtplan.errors import GeometryError, InputError
from rtplan.grid import Grid
from rtplan.volumes.refine import settle
from rtplan.volumes.subvoxel import SubvoxelMask

DIRECTIONS = ("right", "left", "anterior", "posterior", "superior", "inferior")
SHORTHANDS = {
    "radial": ("right", "left", "anterior", "posterior"),
    "longitudinal": ("superior", "inferior"),
    "all": DIRECTIONS,
    "isotropic": DIRECTIONS,
}
#: (patient axis, sign) of each direction in LPS.
_PATIENT_AXIS = {
    "right": (0, -1),
    "left": (0, 1),
    "anterior": (1, -1),
    "posterior": (1, 1),
    "inferior": (2, -1),
    "superior": (2, 1),
}


@dataclass(frozen=True)
class Margins:
    """Six margins (mm) in patient directions; all >= 0 (expand) or all <= 0 (shrink).

    Examples
    --------
    >>> m = Margins.parse("radial=15, longitudinal=30")
    >>> m.right, m.superior, m.is_expansion
    (15.0, 30.0, True)
    >>> Margins.parse("-3").left
    -3.0
    >>> str(Margins.parse("radial=15,superior=40,inferior=30"))
    'right=15,left=15,anterior=15,posterior=15,superior=40,inferior=30'
    """

    right: float = 0.0
    left: float = 0.0
    anterior: float = 0.0
    posterior: float = 0.0
    superior: float = 0.0
    inferior: float = 0.0

    def __post_init__(self):
        values = []
        for name in DIRECTIONS:
            v = getattr(self, name)
            try:
                v = float(v)
            except (TypeError, ValueError):
                raise InputError(f"margin '{name}' must be a number (mm), got {v!r}") from None
            if not math.isfinite(v):
                raise InputError(f"margin '{name}' must be finite, got {v}")
            object.__setattr__(self, name, v)
            values.append(v)
        if min(values) < 0 < max(values):
            raise InputError(
                f"margins mix expansion and shrinking ({self}); apply them as two steps"
            )

    @classmethod
    def isotropic(cls, mm: float) -> Margins:
        return cls(*([mm] * 6))

    @classmethod
    def parse(cls, text) -> Margins:
        """Read ``"15"``, ``"radial=15,longitudinal=35"``, ``"right=5,left=10,..."``.

        Keys: the six directions, ``radial``, ``longitudinal``, ``all``; later keys
        override earlier ones (``"all=5,superior=10"``).  Values in mm; negative shrinks.
        A :class:`Margins` or a mapping of the same keys is accepted too.
        """
        if isinstance(text, Margins):
            return text
        if isinstance(text, (int, float)):
            return cls.isotropic(float(text))
        if isinstance(text, dict):
            items = list(text.items())
        else:
            s = str(text).strip()
            if not s:
                raise InputError("empty margin: give e.g. '5' or 'radial=15,longitudinal=30'")
            if "=" not in s:
                try:
                    return cls.isotropic(_number(s, "margin"))
                except InputError:
                    raise InputError(
                        f"margin '{s}' is neither a number of mm nor KEY=MM pairs "
                        "(e.g. 'radial=15,longitudinal=30')"
                    ) from None
            items = []
            for part in re.split(r"[,;]", s):
                if not part.strip():
                    continue
                key, sep, value = part.partition("=")
                if not sep:
                    raise InputError(f"margin part '{part.strip()}' is not KEY=MM (in '{s}')")
                items.append((key.strip(), value))
        values = dict.fromkeys(DIRECTIONS, 0.0)
        for key, value in items:
            k = str(key).strip().lower()
            v = _number(value, f"margin '{k}'")
            if k in SHORTHANDS:
                for d in SHORTHANDS[k]:
                    values[d] = v
            elif k in values:
                values[k] = v
            else:
                raise InputError(
                    f"unknown margin direction '{key}' (use {', '.join(DIRECTIONS)}, "
                    "radial, longitudinal, all)"
                )
        return cls(**values)

    def __str__(self) -> str:
        return ",".join(f"{d}={_fmt(getattr(self, d))}" for d in DIRECTIONS)

    @property
    def values(self) -> tuple[float, ...]:
        return tuple(getattr(self, d) for d in DIRECTIONS)

    @property
    def is_zero(self) -> bool:
        return all(v == 0 for v in self.values)

    @property
    def is_expansion(self) -> bool:
        """True when no margin is negative."""
        return min(self.values) >= 0

    @property
    def largest_mm(self) -> float:
        return max(abs(v) for v in self.values)

    def magnitude(self) -> Margins:
        """The same margins with the sign dropped."""
        return Margins(*(abs(v) for v in self.values))

    def reflected(self) -> Margins:
        """The margin shape mirrored through the origin (``-K``)."""
        return Margins(
            self.left, self.right, self.posterior, self.anterior, self.inferior, self.superior
        )

    def axis_semi_axes(self, direction=None) -> tuple[np.ndarray, np.ndarray]:
        """Semi-axes (mm) along array axes: ``(towards increasing index, decreasing)``.

        Parameters
        ----------
        direction : 3x3 array_like, optional
            ``direction[:, a]`` is the LPS unit vector of array axis ``a`` (``Grid``
            convention); default axial head-first supine, where axes ``k, j, i`` run along
            +z, +y, +x.

        Raises
        ------
        GeometryError
            If an array axis is not along a patient axis (oblique grid).
        """
        d = np.asarray(
            direction if direction is not None else ((0, 0, 1), (0, 1, 0), (1, 0, 0)),
            dtype=float,
        )
        mag = self.magnitude()
        by_axis_sign = {_PATIENT_AXIS[n]: getattr(mag, n) for n in DIRECTIONS}
        plus, minus = np.zeros(3), np.zeros(3)
        for a in range(3):
            col = d[:, a]
            p = int(np.argmax(np.abs(col)))
            if abs(abs(col[p]) - 1.0) > 1e-4:
                raise GeometryError(
                    "margins need a grid whose axes run along the patient axes "
                    f"(array axis {a} points along {np.round(col, 4).tolist()})"
                )
            s = 1 if col[p] > 0 else -1
            plus[a] = by_axis_sign[(p, s)]
            minus[a] = by_axis_sign[(p, -s)]
        return plus, minus


def _number(value, what: str) -> float:
    try:
        v = float(str(value).strip().removesuffix("mm").strip())
    except ValueError:
        raise InputError(f"{what} must be a number of mm, got '{str(value).strip()}'") from None
    if not math.isfinite(v):
        raise InputError(f"{what} must be finite, got '{value}'")
    return v


def _fmt(v: float) -> str:
    return f"{v:g}"


# ---------------------------------------------------------------------------- public API
def apply_margin(region: SubvoxelMask, margins, direction=None) -> SubvoxelMask:
    """Expand (margins >= 0) or shrink (margins <= 0) a region; same array shape.

    Parameters
    ----------
    region : SubvoxelMask
        The region, on a grid aligned with the patient axes.
    margins : Margins or str
        See :class:`Margins`.
    direction : 3x3 array_like, optional
        Grid direction cosines (``Grid.direction``); default axial HFS.

    Returns
    -------
    SubvoxelMask
        The Minkowski sum (expansion) or its dual (shrinking), clipped to the array: make
        the array large enough (``margins`` plus two voxels around the region) first.
    """
    m = Margins.parse(margins)
    if m.is_zero:
        return region
    plus, minus = m.axis_semi_axes(direction)
    box = region.bounding_box()
    if box is None:
        return region
    h = np.asarray(region.spacing_mm)
    # work on the part of the array the result can reach (the region's box, grown by the
    # margin when expanding), two voxels more
    reach_lo = np.ceil(minus / h).astype(int) + 2 if m.is_expansion else np.full(3, 2)
    reach_hi = np.ceil(plus / h).astype(int) + 2 if m.is_expansion else np.full(3, 2)
    lo = np.maximum(box[0] - reach_lo, 0)
    hi = np.minimum(box[1] + reach_hi, region.shape)
    part = region.cropped(lo, hi)
    if m.is_expansion:
        out = _dilate(part, plus, minus)
    else:  # shrink: complement, expand by the mirrored shape, complement
        out = _dilate(part.complement(), minus, plus).complement()
    return SubvoxelMask.embedded(out, lo, region.shape)


def expand_mask(
    mask: np.ndarray,
    margins,
    *,
    spacing_mm=None,
    grid: Grid | None = None,
) -> np.ndarray:
    """Expand or shrink a binary or partial-volume mask by per-direction margins.

    Parameters
    ----------
    mask : numpy.ndarray
        ``[k, j, i]`` boolean mask, or fractions in [0, 1] (partial volume; more
        accurate: the boundary is placed inside the voxels).  A boolean mask stands for
        the union of its voxel boxes.
    margins : Margins or str
        e.g. ``"radial=15,longitudinal=30"``; negative values shrink.
    spacing_mm : sequence of 3 float, optional
        Voxel size along the array axes (axial HFS orientation assumed).
    grid : Grid, optional
        Instead of ``spacing_mm``: spacing and orientation from a grid.

    Returns
    -------
    numpy.ndarray
        Boolean mask of the same shape: voxels whose centre lies in the result.  Content
        that would fall outside the array is lost, and the outside of the array counts as
        outside the mask.

    Examples
    --------
    >>> m = np.zeros((1, 1, 9), bool); m[0, 0, 4] = True
    >>> expand_mask(m, "left=2.5,right=1", spacing_mm=(1, 1, 1)).astype(int).tolist()
    [[[0, 0, 0, 1, 1, 1, 1, 1, 0]]]
    """
    spacing, direction = _spacing_direction(spacing_mm, grid)
    arr = np.asarray(mask)
    if arr.ndim != 3:
        raise GeometryError(f"a mask must be 3-D, got shape {arr.shape}")
    region = SubvoxelMask.from_fraction(arr.astype(np.float32), spacing)
    m = Margins.parse(margins)
    pad = [int(math.ceil(m.largest_mm / h)) + 2 for h in spacing]
    big = region.padded(pad, pad)
    out = apply_margin(big, m, direction)
    sl = tuple(slice(p, p + n) for p, n in zip(pad, arr.shape, strict=True))
    return out.centre_inside[sl]


def _spacing_direction(spacing_mm, grid):
    if grid is not None:
        if not grid.is_uniform:
            raise GeometryError("margins need evenly spaced slices")
        return grid.spacing_mm, grid.direction_matrix
    if spacing_mm is None:
        raise InputError("give spacing_mm or grid")
    h = tuple(float(v) for v in spacing_mm)
    if len(h) != 3 or min(h) <= 0:
        raise GeometryError(f"spacing_mm must be three positive values, got {spacing_mm}")
    return h, None


# ---------------------------------------------------------------------------- engine
_BIG_SAMPLING = 1.0e6  # sampling along an axis with no margin: other columns unreachable
_THREADS = max(1, min(8, os.cpu_count() or 1))  # threads for the compiled kernel and the EDT halves
_SPLIT_VOXELS = 2**20  # grids this large get their distance transform in two halves
_CHUNK_VOXELS = 20000  # smallest number of candidate voxels worth a thread


def _dilate(region: SubvoxelMask, plus: np.ndarray, minus: np.ndarray) -> SubvoxelMask:
    """Minkowski sum of ``region`` with the octant-wise ellipsoid (semi-axes in mm)."""
    h = np.asarray(region.spacing_mm, dtype=float)
    seeds = region.phi < np.inf
    if not seeds.any():
        return region
    edge = any(seeds[(slice(None),) * a + (e,)].any() for a in range(3) for e in (0, -1))
    if edge:  # keep every seed one voxel away from the border
        grown = _dilate(region.padded((1, 1, 1), (1, 1, 1)), plus, minus)
        return grown.cropped((1, 1, 1), np.array(region.shape) + 1)
    # contiguous, so that the flat views below are views, not copies
    phi, normal = np.ascontiguousarray(region.phi), np.ascontiguousarray(region.normal)
    plus = np.asarray(plus, dtype=float)
    minus = np.asarray(minus, dtype=float)
    if np.array_equal(plus, minus):
        minus = plus  # symmetric: the side of an offset needs no look-up
    # smallest positive semi-axis per axis: bounds gauge distances across one voxel
    pos = np.where(
        (plus > 0) & (minus > 0),
        np.minimum(plus, minus),
        np.maximum(plus, minus),
    )
    used = pos > 0
    rho = float(np.sqrt(np.sum((h[used] / (2 * pos[used])) ** 2)))
    step = float(np.max(h[used] / pos[used]))
    width = rho + 1.5 * step + 1e-6
    gmax = 1.0 + width

    if np.allclose(plus, minus, rtol=0, atol=1e-9):
        dist, nearest_at = _edt_nearest(seeds, h, plus, gmax)
    else:
        dist, nearest_at = _separable_nearest(seeds, h, plus, minus, gmax)

    # A centre within gauge distance 1 of a full voxel's centre is inside the result.  Near
    # a partial voxel's centre it is inside when 1 - d > rho (the region lies within the
    # voxel box), which needs every semi-axis to be positive.
    degenerate = not (np.all(plus > 0) and np.all(minus > 0))
    surely_in = dist <= 1.0 - width
    if degenerate:
        surely_in[surely_in] = phi.reshape(-1)[nearest_at(surely_in)] == -np.inf
    out_phi = np.full(phi.shape, np.inf, dtype=np.float32)
    out_phi[phi == -np.inf] = -np.inf  # a full voxel stays full
    out_phi[surely_in] = -np.inf
    out_normal = np.zeros(normal.shape, dtype=np.float32)
    cand = (dist <= gmax) & (out_phi > -np.inf)
    if not cand.any():
        return SubvoxelMask(out_phi, out_normal, region.spacing_mm)
    flat = np.flatnonzero(cand)
    near = nearest_at(cand).astype(np.int64, copy=False)
    d0 = dist.reshape(-1)[flat].astype(np.float64)
    n_chunks = min(_THREADS, max(1, len(flat) // _CHUNK_VOXELS))
    edges = np.linspace(0, len(flat), n_chunks + 1).astype(int)

    def run(ab):
        sl = slice(ab[0], ab[1])
        settle(
            flat[sl], near[sl], d0[sl], phi, normal, out_phi, out_normal, h, plus, minus,
            rho, float(pos[used].min()), degenerate,
        )  # fmt: skip

    chunks = list(zip(edges[:-1], edges[1:], strict=True))
    if n_chunks == 1:
        run(chunks[0])
    else:  # the kernel releases the GIL; chunks write disjoint voxels
        with ThreadPoolExecutor(n_chunks) as pool:
            list(pool.map(run, chunks))
    return SubvoxelMask(out_phi, out_normal, region.spacing_mm).normalised()


def _edt_nearest(seeds: np.ndarray, h: np.ndarray, semi: np.ndarray, gmax: float):
    """Gauge distance to the nearest seed centre, and a function giving its flat index at
    the points of a mask (symmetric margins).

    Exact where the distance is at most ``gmax`` (farther points get a distance above
    ``gmax``).  On large grids the array is cut across its longest axis into two halves,
    each transformed with the seeds within reach (``gmax`` times the semi-axis) beyond the
    cut, on two threads (scipy releases the GIL): a seed nearer than ``gmax`` is never
    farther than that from the point along the axis.
    """
    sampling = np.where(semi > 0, h / np.where(semi > 0, semi, 1.0), _BIG_SAMPLING)
    shape = seeds.shape
    ax = int(np.argmax(shape))
    n = shape[ax]
    reach = int(math.floor(gmax / sampling[ax])) + 1
    mid = n // 2
    if _THREADS > 1 and seeds.size >= _SPLIT_VOXELS and 4 * reach <= n:
        parts = ((0, mid + reach, 0, mid), (mid - reach, n, reach, n - mid + reach))
    else:
        parts = ((0, n, 0, n),)

    def transform(part):
        a, b, keep_lo, keep_hi = part
        sl = (slice(None),) * ax + (slice(a, b),)
        sub = seeds[sl]
        if not sub.any():
            return None
        idx = ndi.distance_transform_edt(
            ~sub, sampling=sampling, return_distances=False, return_indices=True
        )
        idx[ax] += a
        return idx[(slice(None),) * (ax + 1) + (slice(keep_lo, keep_hi),)]

    if len(parts) == 1:
        results = [transform(parts[0])]
    else:
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(transform, parts))
    d2 = np.full(shape, np.inf, dtype=np.float32)
    idx = results[0] if len(parts) == 1 else np.zeros((3, *shape), dtype=np.int32)
    for (a, _, keep_lo, keep_hi), sub_idx in zip(parts, results, strict=True):
        if sub_idx is None:
            continue
        out = (slice(None),) * ax + (slice(a + keep_lo, a + keep_hi),) + (slice(None),) * (2 - ax)
        if len(parts) > 1:
            idx[(slice(None),) + out] = sub_idx
        part_d2 = np.zeros(sub_idx.shape[1:], dtype=np.float32)
        for k in range(3):
            pos = np.arange(shape[k], dtype=np.int32)[out[k]].reshape(
                [-1 if j == k else 1 for j in range(3)]
            )
            step = (sub_idx[k] - pos).astype(np.float32)
            step *= np.float32(sampling[k])
            part_d2 += step * step
        d2[out] = part_d2

    def nearest_at(mask):
        return np.ravel_multi_index(tuple(i[mask] for i in idx), shape)

    return np.sqrt(d2), nearest_at


_SHIFT = 33  # bits for the flat index in a packed (cost, index) int64
_QUANT = float(2**24)  # cost units per gauge^2
_SENTINEL = 2**29  # cost meaning "out of reach"


def _separable_nearest(seeds, h, plus, minus, gmax):
    """Exact nearest seed centre under the asymmetric gauge, by separable lower envelopes.

    The squared gauge is a sum of per-axis costs ``c_a(t) = (t / K_a(sign t))^2``, so the
    minimum over seeds separates into three 1-D passes (as in the Euclidean distance
    transform).  The first pass finds the nearest seed on each side along one axis; the two
    others take, for every offset ``t`` within reach (cost <= ``gmax^2``), the minimum of
    the shifted previous pass plus ``c_a(t)`` (loops over offsets, not voxels).  Costs and
    the flat index of the seed are packed into one int64 (cost in the high bits) so that
    ``np.minimum`` carries the nearest seed along.
    """
    shape = seeds.shape
    if seeds.size >= 2**_SHIFT:
        raise GeometryError(f"grid of {seeds.size} voxels is too large for margins")
    reach = np.where(plus > 0, plus, 0) + np.where(minus > 0, minus, 0)
    order = [int(a) for a in np.argsort(-(reach / h))]
    sentinel = np.int64(_SENTINEL) << _SHIFT
    packed = _first_pass(seeds, order[0], h, plus, minus, sentinel)
    limit = gmax * gmax
    for ax in order[1:]:
        src = packed
        packed = src.copy()
        for sign, semi in ((1, plus[ax]), (-1, minus[ax])):
            if semi <= 0:
                continue
            n_off = min(int(math.floor(semi * gmax / h[ax])), shape[ax] - 1)
            for t in range(1, n_off + 1):
                cost = (t * h[ax] / semi) ** 2
                if cost > limit:
                    break
                add = np.int64(int(round(cost * _QUANT))) << _SHIFT
                dst_sl = [slice(None)] * 3
                src_sl = [slice(None)] * 3
                if sign > 0:  # point above the seed along the axis
                    dst_sl[ax], src_sl[ax] = slice(t, None), slice(None, -t)
                else:
                    dst_sl[ax], src_sl[ax] = slice(None, -t), slice(t, None)
                dst = packed[tuple(dst_sl)]
                np.minimum(dst, src[tuple(src_sl)] + add, out=dst)
        np.minimum(packed, sentinel, out=packed)
    cost = (packed >> _SHIFT).astype(np.float64)
    nearest = packed & ((np.int64(1) << _SHIFT) - 1)
    dist = np.sqrt(cost / _QUANT)
    dist[cost >= _SENTINEL] = np.inf

    def nearest_at(mask):
        return nearest[mask]

    return dist, nearest_at


def _first_pass(seeds, ax, h, plus, minus, sentinel):
    """Nearest seed along one axis (each side), packed as (cost, flat index)."""
    shape = seeds.shape
    n = shape[ax]
    pos_shape = [1, 1, 1]
    pos_shape[ax] = n
    pos = np.arange(n).reshape(pos_shape)
    flat = np.arange(seeds.size, dtype=np.int64).reshape(shape)
    stride = int(np.prod(shape[ax + 1 :]))
    best = np.full(shape, sentinel, dtype=np.int64)
    # seed at or below (point above it: offset > 0, semi-axis plus), and at or above
    below = np.maximum.accumulate(np.where(seeds, pos, -1), axis=ax)
    above = np.flip(
        np.minimum.accumulate(np.flip(np.where(seeds, pos, n), axis=ax), axis=ax), axis=ax
    )
    for other, semi, valid in (
        (below, plus[ax], below >= 0),
        (above, minus[ax], above < n),
    ):
        gap = np.abs(pos - other) * h[ax]
        if semi > 0:
            cost = (gap / semi) ** 2
        else:
            cost = np.where(gap == 0, 0.0, np.inf)
        ok = valid & (cost < _SENTINEL / _QUANT)
        q = np.where(ok, np.round(cost * _QUANT), _SENTINEL).astype(np.int64)
        idx = flat + (other - pos) * stride
        cand = (q << _SHIFT) | np.where(ok, idx, 0)
        np.minimum(best, cand, out=best)
    return best
