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
2. The gauge distance from every voxel centre to the nearest occupied voxel centre, and
   that centre, are computed exactly by separable lower envelopes of the per-axis costs
   (:func:`rtplan.volumes.nearest_seed.nearest_seed`, a distance transform in the gauge:
   for symmetric margins the Euclidean transform with ``sampling = spacing / semi-axis``,
   which turns the ellipsoid into a unit sphere).  No repeated small dilations are used.
3. A centre is inside when its distance to a full voxel's centre is at most 1, or to any
   occupied centre at most ``1 - rho_p`` (``rho_p`` bounds how much the gauge changes
   across half a voxel box, in the direction of the offset); outside beyond ``1 + rho_p``.
4. Centres near the margin surface are refined: their gauge distance to the reconstructed
   region itself (the box of a full voxel, the plane of a partial one, chosen among the 19
   voxels around the nearest centre, and, where the centre may lie outside, around the
   nearest centres of its six face neighbours) places the new boundary inside the voxel.
   The result is again a ``SubvoxelMask`` (plane per voxel: the old plane moved by its
   support).

The result is exact for a region made of voxel boxes and planar pieces, up to the choice
of the pieces searched (a nearer piece elsewhere could misclassify a centre within ``rho``
of the margin surface; the brute-force tests find none); on analytic shapes the volume
error is a few tenths of a percent at 1 mm voxels (the tests and docs/volumes.md).
Steps 3-4 are the compiled kernel :func:`rtplan.volumes.refine.settle` (numba), run in
chunks on one thread per CPU.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

import numpy as np

from rtplan.defaults import MAX_MARGIN_MM
from rtplan.errors import GeometryError, InputError
from rtplan.grid import DIRECTIONS, SHORTHANDS, Grid
from rtplan.volumes import kernel_build
from rtplan.volumes.chunks import run_in_chunks
from rtplan.volumes.nearest_seed import nearest_seed
from rtplan.volumes.refine import settle
from rtplan.volumes.subvoxel import SubvoxelMask

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
    """Six margins (mm) in patient directions; all >= 0 (expand) or all <= 0 (shrink),
    each finite and at most :data:`~rtplan.defaults.MAX_MARGIN_MM` (500 mm) either way.

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
            if not (math.isfinite(v) and abs(v) <= MAX_MARGIN_MM):
                raise InputError(f"margin '{name}' must be within ±{MAX_MARGIN_MM:g} mm, got {v:g}")
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
                    mm = _number(s, "margin")
                except InputError:
                    raise InputError(
                        f"margin '{s}' is neither a number of mm nor KEY=MM pairs "
                        "(e.g. 'radial=15,longitudinal=30')"
                    ) from None
                return cls.isotropic(mm)
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


def tiny_margin() -> None:
    """A margin of a few voxels with the argument types of every margin: compiles the
    kernels (or loads them from the disk cache, :mod:`rtplan.volumes.compiled`) into the same
    machine code the real margins use."""
    m = np.zeros((5, 5, 5), np.float32)
    m[2, 2, 2] = 0.5
    apply_margin(SubvoxelMask.from_fraction(m, (1.0, 1.0, 1.0)), "all=1")


def tiny_settle() -> None:
    """:func:`~rtplan.volumes.refine.settle` on no candidate voxel, with the argument types
    :func:`_dilate` passes: compiles (or loads) that kernel alone, into the machine code the
    margins use (the build process of :mod:`rtplan.volumes.kernel_build`)."""
    phi = np.full((3, 3, 3), np.inf, np.float32)
    normal = np.zeros((3, 3, 3, 3), np.float32)
    none = np.zeros(0, np.int64)
    h = np.ones(3)
    nearest = np.full(phi.shape, -1, np.int64)
    settle(none, none, np.zeros(0), nearest, phi, normal, phi.copy(), normal.copy(), h, h, h,
           0.5, 1.0, False)  # fmt: skip


def compile_in_background(settle_too: bool = True) -> None:
    """Compile the kernels (or load them from the disk cache) on a background thread, so
    that it overlaps the caller's reading of its input (``rtplan expand`` and ``rtplan
    volumes``, in :func:`rtplan.volumes.kernel_build.building`): :func:`tiny_margin`, or,
    with ``settle_too`` False (a separate process builds the settle kernel), a tiny
    :func:`~rtplan.volumes.nearest_seed.nearest_seed`.  A margin called meanwhile waits for
    the compilation instead of repeating it (numba's compiler lock); the results do not
    depend on it."""
    import threading

    def run():
        try:
            if settle_too:
                tiny_margin()
            else:
                seeds = np.zeros((3, 3, 3), bool)
                seeds[1, 1, 1] = True
                nearest_seed(seeds, (1.0, 1.0, 1.0), np.ones(3), np.ones(3), 1.5)
        except Exception:  # the command's own margin meets the same problem and reports it
            pass

    threading.Thread(target=run, name="rtplan-kernels", daemon=True).start()


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
_THREADS = max(1, min(8, os.cpu_count() or 1))  # threads for the compiled kernels
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

    dist, nearest = nearest_seed(seeds, h, plus, minus, gmax, threads=_THREADS)

    # A centre within gauge distance 1 of a full voxel's centre is inside the result.  Near
    # a partial voxel's centre it is inside when 1 - d > rho (the region lies within the
    # voxel box), which needs every semi-axis to be positive.
    degenerate = not (np.all(plus > 0) and np.all(minus > 0))
    surely_in = dist <= 1.0 - width
    if degenerate:
        surely_in[surely_in] = phi.reshape(-1)[nearest[surely_in]] == -np.inf
    out_phi = np.full(phi.shape, np.inf, dtype=np.float32)
    out_phi[phi == -np.inf] = -np.inf  # a full voxel stays full
    out_phi[surely_in] = -np.inf
    out_normal = np.zeros(normal.shape, dtype=np.float32)
    cand = (dist <= gmax) & (out_phi > -np.inf)
    if not cand.any():
        return SubvoxelMask(out_phi, out_normal, region.spacing_mm)
    flat = np.flatnonzero(cand)
    near = nearest.reshape(-1)[flat]
    d0 = dist.reshape(-1)[flat]

    def run(start, stop):  # chunks write disjoint voxels
        sl = slice(start, stop)
        settle(
            flat[sl], near[sl], d0[sl], nearest, phi, normal, out_phi, out_normal, h, plus,
            minus, rho, float(pos[used].min()), degenerate,
        )  # fmt: skip

    kernel_build.wait()  # a separate process building the settle kernel: load it when done
    run_in_chunks(run, len(flat), threads=_THREADS, min_chunk=_CHUNK_VOXELS)
    return SubvoxelMask(out_phi, out_normal, region.spacing_mm).normalised()
