"""Surface distances between masks: Hausdorff, HD95, mean distances, surface Dice.

Conventions (those of DeepMind's ``surface-distance``, Nikolov et al. 2021)
--------------------------------------------------------------------------
Surface
    The surfel model of :mod:`rtplan.agreement.surfels`: surface points on the
    voxel-corner lattice, each carrying the area (mm^2) of its marching-cubes patch.
    Every statistic below is **area-weighted**, not a count of boundary voxels.
Distance
    From a surface point of A to the nearest surface point of B: the exact Euclidean
    distance (mm) between the two lattice points, with the real spacing (what
    ``scipy.ndimage.distance_transform_edt(~surface_B, sampling=spacing_mm)`` gives).
Percentiles
    The ``p``-th percentile of a directed distance set is the smallest distance whose
    cumulative share of the (distance-sorted) surface area reaches ``p / 100`` -- a step
    rule, no interpolation.
Names
    ``hausdorff_mm`` is ``max(max d(A->B), max d(B->A))``.  ``hd95_mm`` is the larger of
    the two **directed** area-weighted 95th percentiles (DeepMind, MONAI, Metrics
    Reloaded).  ``hd95_pooled_mm`` is the 95th percentile of the **pooled** set of both
    directions (the MedPy / seg-metrics idea, here with the same surfels, area weights and
    step rule).  ``mean_a_to_b_mm`` / ``mean_b_to_a_mm`` are the directed area-weighted
    means; ``masd_mm`` is their average (mean average surface distance);
    ``assd_mm`` is the area-weighted mean of the pooled set (average symmetric surface
    distance).  There is deliberately no bare "mean surface distance".
    ``surface_dice`` at tolerance ``tau`` is
    ``(area of A within tau of B + area of B within tau of A) / (area A + area B)``
    (distances ``<= tau`` count); ``surface_overlap`` gives the two directed fractions.
Empty masks
    When exactly one mask is empty every distance (directed or not) is ``+inf`` and the
    surface Dice is 0; when both are empty every value is NaN.  The directed overlap
    fraction of an empty surface is NaN.  :class:`rtplan.agreement.pairwise.PairMetrics`
    adds an explicit ``status`` flag.

Speed
-----
All masks of a comparison share one block of the corner lattice (their joint bounding
box plus a margin).  Nearest surface points are looked up directly on that lattice,
visiting the neighbour offsets in order of increasing length (so the first hit is the
nearest); the few points with no neighbour within the searched ball fall back to a k-d
tree.  Both give the same exact lattice distances as a Euclidean distance transform,
without transforming the whole block.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from rtplan.agreement.surfels import bounding_box, neighbour_codes, surfel_area_table
from rtplan.errors import GeometryError, InputError

#: Number of lattice neighbour offsets visited before the k-d tree takes over.
SEARCH_OFFSETS = 500


def lattice_offsets(
    spacing_mm, *, max_count: int | None = None, max_distance_mm: float | None = None, ndim=3
) -> tuple[np.ndarray, np.ndarray]:
    """Integer lattice offsets sorted by length (mm), whole shells only.

    Parameters
    ----------
    spacing_mm : sequence of float
        Lattice spacing (mm) per axis.
    max_count : int, optional
        Keep about this many offsets (every offset as short as the last one kept).
    max_distance_mm : float, optional
        Keep the offsets no longer than this.
    ndim : int
        2 or 3.

    Returns
    -------
    offsets : numpy.ndarray, shape (m, ndim), int64
    lengths_mm : numpy.ndarray, shape (m,)
        Computed as ``sqrt(sum((offset * spacing) ** 2))`` summed in axis order, the
        arithmetic of :func:`scipy.ndimage.distance_transform_edt`.
    """
    s = np.asarray(spacing_mm, dtype=float)
    if max_distance_mm is None:
        # a ball holding ~max_count lattice points
        max_distance_mm = (max_count * np.prod(s) * 3 / (4 * np.pi)) ** (1 / 3)
        if ndim == 2:
            max_distance_mm = np.sqrt(max_count * np.prod(s) / np.pi)
    reach = np.floor(max_distance_mm / s + 1e-9).astype(int)
    grids = np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij")
    offsets = np.stack(grids, axis=-1).reshape(-1, ndim)
    lengths = _lengths(offsets, s)
    keep = lengths <= max_distance_mm
    order = np.argsort(lengths[keep], kind="stable")
    return offsets[keep][order], lengths[keep][order]


def _lengths(diff: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Euclidean lengths (mm) of integer lattice vectors, in EDT arithmetic order."""
    scaled = diff.astype(np.float64) * spacing
    np.multiply(scaled, scaled, out=scaled)
    return np.sqrt(np.add.reduce(scaled, axis=1))


def nearest_on_lattice(
    sources: np.ndarray, targets: np.ndarray, flat_offsets: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Distance from each source to the nearest target point among the given offsets.

    Parameters
    ----------
    sources : numpy.ndarray of int
        Flat indices of the source points in a (padded) lattice.
    targets : numpy.ndarray of bool
        The flattened lattice, True at target points.
    flat_offsets, lengths : numpy.ndarray
        Flat index offsets sorted by ``lengths`` (mm); the lattice must be padded so
        that every ``source + offset`` is a valid index.

    Returns
    -------
    distances : numpy.ndarray
        Nearest distance (mm), NaN where no target lies within the offsets.
    unresolved : numpy.ndarray of int
        Positions (into ``sources``) of the NaN entries.
    """
    distances = np.full(len(sources), np.nan)
    position = np.arange(len(sources))
    remaining = sources
    for offset, length in zip(flat_offsets, lengths, strict=True):
        hit = targets[remaining + offset]
        if hit.any():
            distances[position[hit]] = length
            miss = ~hit
            position, remaining = position[miss], remaining[miss]
            if len(position) == 0:
                break
    return distances, position


@dataclass(frozen=True)
class SurfaceDistances:
    """Distances from each surface element of A to B and of B to A, with their areas.

    Attributes
    ----------
    a_to_b_mm, areas_a_mm2 : numpy.ndarray
        For every surfel of A: distance (mm) to the surface of B, and its area (mm^2).
    b_to_a_mm, areas_b_mm2 : numpy.ndarray
        The same from B to A.

    All methods follow the conventions of the module docstring.
    """

    a_to_b_mm: np.ndarray
    areas_a_mm2: np.ndarray
    b_to_a_mm: np.ndarray
    areas_b_mm2: np.ndarray

    @property
    def status(self) -> str:
        """``"ok"``, ``"a_empty"``, ``"b_empty"`` or ``"both_empty"``."""
        a, b = len(self.areas_a_mm2) == 0, len(self.areas_b_mm2) == 0
        return {(0, 0): "ok", (1, 0): "a_empty", (0, 1): "b_empty", (1, 1): "both_empty"}[a, b]

    def _empty_value(self) -> float | None:
        """Value of every distance when a surface is empty (None when neither is)."""
        status = self.status
        if status == "ok":
            return None
        return np.nan if status == "both_empty" else np.inf

    @property
    def surface_area_a_mm2(self) -> float:
        return float(self.areas_a_mm2.sum())

    @property
    def surface_area_b_mm2(self) -> float:
        return float(self.areas_b_mm2.sum())

    def directed_hausdorff_mm(self) -> tuple[float, float]:
        """``(max d(A->B), max d(B->A))`` in mm."""
        empty = self._empty_value()
        if empty is not None:
            return empty, empty
        return float(self.a_to_b_mm.max()), float(self.b_to_a_mm.max())

    def hausdorff_mm(self) -> float:
        """Hausdorff distance (mm): the larger directed maximum."""
        return max(self.directed_hausdorff_mm())

    def directed_percentile_mm(self, percent: float = 95.0) -> tuple[float, float]:
        """Area-weighted ``percent``-th percentiles (mm) of d(A->B) and d(B->A)."""
        _check_percent(percent)
        empty = self._empty_value()
        if empty is not None:
            return empty, empty
        return (
            weighted_percentile(self.a_to_b_mm, self.areas_a_mm2, percent),
            weighted_percentile(self.b_to_a_mm, self.areas_b_mm2, percent),
        )

    def hd_percentile_mm(self, percent: float = 95.0) -> float:
        """Robust Hausdorff distance (mm): the larger directed percentile (HD95 at 95)."""
        return max(self.directed_percentile_mm(percent))

    def pooled_percentile_mm(self, percent: float = 95.0) -> float:
        """Area-weighted percentile (mm) of both directions' distances pooled together."""
        _check_percent(percent)
        empty = self._empty_value()
        if empty is not None:
            return empty
        return weighted_percentile(
            np.concatenate([self.a_to_b_mm, self.b_to_a_mm]),
            np.concatenate([self.areas_a_mm2, self.areas_b_mm2]),
            percent,
        )

    def directed_mean_mm(self) -> tuple[float, float]:
        """Area-weighted mean distances (mm) ``(A->B, B->A)``."""
        empty = self._empty_value()
        if empty is not None:
            return empty, empty
        return (
            float(np.sum(self.a_to_b_mm * self.areas_a_mm2) / np.sum(self.areas_a_mm2)),
            float(np.sum(self.b_to_a_mm * self.areas_b_mm2) / np.sum(self.areas_b_mm2)),
        )

    def masd_mm(self) -> float:
        """Mean average surface distance (mm): the average of the two directed means."""
        a, b = self.directed_mean_mm()
        return 0.5 * (a + b)

    def assd_mm(self) -> float:
        """Average symmetric surface distance (mm): area-weighted mean of the pooled set."""
        empty = self._empty_value()
        if empty is not None:
            return empty
        total = np.sum(self.a_to_b_mm * self.areas_a_mm2) + np.sum(
            self.b_to_a_mm * self.areas_b_mm2
        )
        return float(total / (np.sum(self.areas_a_mm2) + np.sum(self.areas_b_mm2)))

    def surface_overlap(self, tolerance_mm: float) -> tuple[float, float]:
        """Area fractions of A within ``tolerance_mm`` of B and of B within it of A."""
        _check_tolerance(tolerance_mm)

        def fraction(d, w):
            return float(np.sum(w[d <= tolerance_mm]) / np.sum(w)) if len(w) else np.nan

        return (
            fraction(self.a_to_b_mm, self.areas_a_mm2),
            fraction(self.b_to_a_mm, self.areas_b_mm2),
        )

    def surface_dice(self, tolerance_mm: float) -> float:
        """Surface Dice at ``tolerance_mm`` (Nikolov et al. 2021); NaN if both empty."""
        _check_tolerance(tolerance_mm)
        total = np.sum(self.areas_a_mm2) + np.sum(self.areas_b_mm2)
        if total == 0:
            return np.nan
        within = np.sum(self.areas_a_mm2[self.a_to_b_mm <= tolerance_mm]) + np.sum(
            self.areas_b_mm2[self.b_to_a_mm <= tolerance_mm]
        )
        return float(within / total)


def weighted_percentile(values: np.ndarray, weights: np.ndarray, percent: float) -> float:
    """Step-rule weighted percentile (DeepMind's ``compute_robust_hausdorff`` rule).

    Values are sorted (ties by weight); the result is the first value whose cumulative
    share of the total weight is at least ``percent / 100``.

    Examples
    --------
    >>> weighted_percentile(np.array([1.0, 2.0, 3.0]), np.array([1.0, 1.0, 2.0]), 50)
    2.0
    """
    order = np.lexsort((weights, values))
    v, w = values[order], weights[order]
    cumulative = np.cumsum(w) / np.sum(w)
    index = min(int(np.searchsorted(cumulative, percent / 100.0)), len(v) - 1)
    return float(v[index])


def _check_percent(percent: float) -> None:
    if not 0 <= percent <= 100:
        raise InputError(f"percentile must be between 0 and 100, got {percent}")


def _check_tolerance(tolerance_mm: float) -> None:
    if not tolerance_mm >= 0:
        raise InputError(f"tolerance must be a non-negative distance in mm, got {tolerance_mm}")


def check_masks(masks: Sequence[np.ndarray], spacing_mm) -> np.ndarray:
    """Validate 3-D boolean masks of one shape and a positive spacing; return the spacing."""
    spacing = np.asarray(spacing_mm, dtype=float).ravel()
    if spacing.shape != (3,) or not np.all(spacing > 0) or not np.all(np.isfinite(spacing)):
        raise GeometryError(f"spacing_mm must be three positive values, got {spacing_mm}")
    shapes = {np.shape(m) for m in masks}
    if len(shapes) != 1:
        raise GeometryError(f"masks must share one grid, got shapes {sorted(shapes)}")
    for m in masks:
        if not isinstance(m, np.ndarray) or m.dtype != bool or m.ndim != 3:
            raise InputError("masks must be 3-D numpy arrays of dtype bool ([k, j, i] order)")
    return spacing


class SurfaceLattice:
    """Several masks of one grid prepared for surface-distance queries.

    Each mask's surfels are found once on a lattice block shared by all masks, so
    comparing N observers pairwise costs N surface extractions, not N^2.

    Parameters
    ----------
    masks : sequence of numpy.ndarray of bool
        Masks of one shape, array order ``[k, j, i]``.
    spacing_mm : sequence of 3 float
        Voxel spacing (mm) in array order.
    """

    def __init__(self, masks: Sequence[np.ndarray], spacing_mm):
        self.spacing = check_masks(masks, spacing_mm)
        offsets, self._lengths = lattice_offsets(self.spacing, max_count=SEARCH_OFFSETS)
        reach = np.abs(offsets).max(axis=0) if len(offsets) else np.zeros(3, int)
        boxes = [b for b in (bounding_box(m) for m in masks) if b is not None]
        self._surfaces: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._trees: dict[int, cKDTree] = {}
        if not boxes:
            self._surfaces = [_EMPTY_SURFACE] * len(masks)
            return
        lo = np.min([b[0] for b in boxes], axis=0)
        hi = np.max([b[1] for b in boxes], axis=0)
        window = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        pad = [(r, r) for r in reach]
        table = surfel_area_table(self.spacing)
        codes_shape = tuple(int(h - s + 2 * r + 1) for s, h, r in zip(lo, hi, reach, strict=True))
        strides = np.array([codes_shape[1] * codes_shape[2], codes_shape[2], 1])
        self._flat_offsets = offsets @ strides
        self._shape = codes_shape
        for m in masks:
            codes = neighbour_codes(np.pad(m[window], pad)).ravel()
            border = (codes != 0) & (codes != 255)
            flat = np.flatnonzero(border)
            self._surfaces.append((border, flat, table[codes[flat]]))

    def distances(self, a: int, b: int) -> SurfaceDistances:
        """Surface distances between masks ``a`` and ``b``."""
        return SurfaceDistances(
            self._directed(a, b), self._surfaces[a][2], self._directed(b, a), self._surfaces[b][2]
        )

    def _directed(self, src: int, dst: int) -> np.ndarray:
        _, src_flat, _ = self._surfaces[src]
        dst_border, dst_flat, _ = self._surfaces[dst]
        if len(dst_flat) == 0:
            return np.full(len(src_flat), np.inf)
        d, unresolved = nearest_on_lattice(src_flat, dst_border, self._flat_offsets, self._lengths)
        if len(unresolved):
            if dst not in self._trees:
                self._trees[dst] = cKDTree(
                    self._corners(dst_flat) * self.spacing,
                    leafsize=32,
                    balanced_tree=False,
                    compact_nodes=False,
                )
            src_corners = self._corners(src_flat[unresolved])
            _, nearest = self._trees[dst].query(src_corners * self.spacing)
            d[unresolved] = _lengths(src_corners - self._corners(dst_flat[nearest]), self.spacing)
        return d

    def _corners(self, flat: np.ndarray) -> np.ndarray:
        return np.column_stack(np.unravel_index(flat, self._shape))


_EMPTY_SURFACE = (np.zeros(0, bool), np.zeros(0, np.int64), np.zeros(0))


def surface_distances(mask_a: np.ndarray, mask_b: np.ndarray, spacing_mm) -> SurfaceDistances:
    """Area-weighted surface distances between two masks (module docstring conventions).

    Parameters
    ----------
    mask_a, mask_b : numpy.ndarray of bool, shape (K, J, I)
        The two segmentations on one grid, array order ``[k, j, i]``.
    spacing_mm : sequence of 3 float
        Voxel spacing (mm) in array order ``(slice, row, column)`` -- for a CT grid,
        ``(slice spacing, row spacing, column spacing)``.

    Returns
    -------
    SurfaceDistances

    Examples
    --------
    Two 4-voxel cubes, one shifted by one 3 mm slice:

    >>> a = np.zeros((8, 8, 8), bool); a[2:6, 2:6, 2:6] = True
    >>> b = np.roll(a, 1, axis=0)
    >>> sd = surface_distances(a, b, (3.0, 1.0, 1.0))
    >>> sd.hausdorff_mm(), sd.surface_dice(tolerance_mm=3.0)
    (3.0, 1.0)
    """
    lattice = SurfaceLattice([mask_a, mask_b], spacing_mm)
    return lattice.distances(0, 1)


def hausdorff_distance(mask_a: np.ndarray, mask_b: np.ndarray, spacing_mm) -> float:
    """Hausdorff distance (mm) between two masks' surfaces (see :func:`surface_distances`)."""
    return surface_distances(mask_a, mask_b, spacing_mm).hausdorff_mm()


def hd95(mask_a: np.ndarray, mask_b: np.ndarray, spacing_mm, percent: float = 95.0) -> float:
    """Larger of the two directed area-weighted ``percent``-th percentile distances (mm)."""
    return surface_distances(mask_a, mask_b, spacing_mm).hd_percentile_mm(percent)


def hd95_pooled(mask_a: np.ndarray, mask_b: np.ndarray, spacing_mm, percent: float = 95.0) -> float:
    """Area-weighted ``percent``-th percentile (mm) of both directions' distances pooled."""
    return surface_distances(mask_a, mask_b, spacing_mm).pooled_percentile_mm(percent)


def mean_surface_distances(
    mask_a: np.ndarray, mask_b: np.ndarray, spacing_mm
) -> tuple[float, float]:
    """Directed area-weighted mean distances (mm): ``(A->B, B->A)``."""
    return surface_distances(mask_a, mask_b, spacing_mm).directed_mean_mm()


def masd(mask_a: np.ndarray, mask_b: np.ndarray, spacing_mm) -> float:
    """Mean average surface distance (mm): ``(mean A->B + mean B->A) / 2``."""
    return surface_distances(mask_a, mask_b, spacing_mm).masd_mm()


def assd(mask_a: np.ndarray, mask_b: np.ndarray, spacing_mm) -> float:
    """Average symmetric surface distance (mm): area-weighted mean over both directions."""
    return surface_distances(mask_a, mask_b, spacing_mm).assd_mm()


def surface_dice(mask_a: np.ndarray, mask_b: np.ndarray, spacing_mm, tolerance_mm: float) -> float:
    """Surface Dice at ``tolerance_mm`` (distances ``<=`` tolerance count as agreeing)."""
    return surface_distances(mask_a, mask_b, spacing_mm).surface_dice(tolerance_mm)
