"""Every agreement metric of two segmentations, from masks or from structures.

:func:`compare_masks` works on boolean masks with an explicit spacing;
:func:`compare_structures` rasterises two RTSTRUCT structures on a common grid
(:func:`common_grid`) first.  :class:`MaskSet` prepares several observers' masks once and
compares any pair of them.  The conventions of each metric are in the module that
computes it: :mod:`~rtplan.agreement.overlap` (Dice, Jaccard, volumes, centroids),
:mod:`~rtplan.agreement.surface` (surface distances, HD95, surface Dice) and
:mod:`~rtplan.agreement.pathlength` (added path length).

Status flags
------------
Every :class:`PairMetrics` carries ``status``:

``ok``
    both segmentations have voxels.
``a_empty`` / ``b_empty``
    one is empty: Dice, Jaccard and surface Dice are 0, every distance is ``+inf``,
    the centroid distance is NaN.
``both_empty``
    every metric is NaN.
``a_missing`` / ``b_missing``
    the structure is absent from that observer's structure set (cohort runs): every
    metric is NaN, as there is nothing to measure and absence may be a naming problem.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np

from rtplan.agreement.overlap import volume_ratio
from rtplan.agreement.pathlength import SliceContourLattice
from rtplan.agreement.surface import SurfaceLattice, check_masks
from rtplan.agreement.surfels import bounding_box
from rtplan.defaults import DEFAULT_TOLERANCE_MM
from rtplan.errors import GeometryError, InputError
from rtplan.grid import AXIAL_DIRECTION, Grid

#: Default tolerance (mm) for the surface Dice and the added path length.
#: Name and version of the metric conventions, written into every result file.
CONVENTION = "rtplan-agreement/1: DeepMind surfels (area-weighted), HD95 = max of directed"

STATUSES = ("ok", "a_empty", "b_empty", "both_empty", "a_missing", "b_missing")


@dataclass(frozen=True)
class PairMetrics:
    """Agreement of segmentation B with segmentation A (A is the reference).

    Attributes
    ----------
    status : str
        See the module docstring.
    tolerance_mm : float
        Tolerance of ``surface_dice``, ``surface_overlap_*`` and the added path length.
    volume_a_cc, volume_b_cc : float
        Voxel-count volumes.
    volume_difference_cc : float
        ``volume_b_cc - volume_a_cc``.
    volume_ratio : float
        ``volume_b_cc / volume_a_cc``.
    dice, jaccard : float
        Volumetric overlap.
    centroid_distance_mm : float
        Distance between the centroids.
    hausdorff_mm, hd95_mm, hd95_pooled_mm : float
        Hausdorff distance, larger directed 95th percentile, pooled 95th percentile.
    hausdorff_a_to_b_mm, hausdorff_b_to_a_mm, hd95_a_to_b_mm, hd95_b_to_a_mm : float
        Directed maxima and 95th percentiles.
    mean_a_to_b_mm, mean_b_to_a_mm : float
        Directed area-weighted mean surface distances.
    masd_mm, assd_mm : float
        Mean average surface distance (mean of the directed means) and average
        symmetric surface distance (pooled mean).
    surface_dice : float
        Surface Dice at ``tolerance_mm``.
    surface_overlap_a, surface_overlap_b : float
        Area fraction of A's surface within tolerance of B's, and of B's within it of A's.
    added_path_length_mm, added_path_length_percent : float
        Path of A's contour with no point of B's within tolerance on the same slice
        (what turning B into A would add), in mm and as % of A's path length.
    added_path_slices : float
        Number of slices with added path.
    surface_area_a_mm2, surface_area_b_mm2 : float
        Surfel areas.
    """

    status: str
    tolerance_mm: float
    volume_a_cc: float
    volume_b_cc: float
    volume_difference_cc: float
    volume_ratio: float
    dice: float
    jaccard: float
    centroid_distance_mm: float
    hausdorff_mm: float
    hd95_mm: float
    hd95_pooled_mm: float
    hausdorff_a_to_b_mm: float
    hausdorff_b_to_a_mm: float
    hd95_a_to_b_mm: float
    hd95_b_to_a_mm: float
    mean_a_to_b_mm: float
    mean_b_to_a_mm: float
    masd_mm: float
    assd_mm: float
    surface_dice: float
    surface_overlap_a: float
    surface_overlap_b: float
    added_path_length_mm: float
    added_path_length_percent: float
    added_path_slices: float
    surface_area_a_mm2: float
    surface_area_b_mm2: float

    @classmethod
    def metric_names(cls) -> list[str]:
        """Names of the numeric fields, in column order."""
        return [f.name for f in fields(cls) if f.name not in ("status", "tolerance_mm")]

    @classmethod
    def missing(cls, status: str, tolerance_mm: float = DEFAULT_TOLERANCE_MM) -> PairMetrics:
        """A result for a structure absent from one structure set: all metrics NaN."""
        if status not in ("a_missing", "b_missing"):
            raise InputError(f"'missing' status must be a_missing or b_missing, got {status}")
        return cls(status, tolerance_mm, **{name: math.nan for name in cls.metric_names()})

    def as_dict(self) -> dict:
        """Plain ``{field: value}`` dictionary (floats and the status string)."""
        return asdict(self)


class MaskSet:
    """Named masks on one grid, prepared once for any number of pairwise comparisons.

    Parameters
    ----------
    masks : mapping of str to numpy.ndarray of bool
        E.g. ``{observer: mask}``; one shape, array order ``[k, j, i]``.
    spacing_mm : sequence of 3 float
        Voxel spacing (mm) in array order.

    Examples
    --------
    >>> a = np.zeros((6, 10, 10), bool); a[1:5, 2:8, 2:8] = True
    >>> b = np.zeros_like(a); b[1:5, 2:8, 3:9] = True
    >>> m = MaskSet({"obs1": a, "obs2": b}, (2.5, 1.0, 1.0)).compare("obs1", "obs2")
    >>> m.status, round(m.dice, 4), m.hausdorff_mm
    ('ok', 0.8333, 1.0)
    """

    def __init__(self, masks: Mapping[str, np.ndarray], spacing_mm):
        if not masks:
            raise InputError("no masks to compare")
        self.names = list(masks)
        self.spacing = check_masks(list(masks.values()), spacing_mm)
        boxes = [b for b in (bounding_box(m) for m in masks.values()) if b is not None]
        if boxes:  # keep only the joint bounding box: every metric is crop-invariant
            lo = np.min([b[0] for b in boxes], axis=0)
            hi = np.max([b[1] for b in boxes], axis=0)
            window = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        else:
            window = (slice(0, 0),) * 3
        self.origin_index = tuple(int(s.start) for s in window)
        self.masks = {n: np.ascontiguousarray(m[window]) for n, m in masks.items()}
        self._voxel_cc = float(np.prod(self.spacing)) / 1000.0
        self._counts = {n: int(np.count_nonzero(m)) for n, m in self.masks.items()}
        self._surfaces = SurfaceLattice(list(self.masks.values()), self.spacing)
        self._contours: dict[float, SliceContourLattice] = {}

    def volume_cc(self, name: str) -> float:
        """Voxel-count volume (cc) of one mask."""
        return self._counts[name] * self._voxel_cc

    def _index(self, name: str) -> int:
        if name not in self.masks:
            raise InputError(f"no mask named '{name}' (have {', '.join(self.names)})")
        return self.names.index(name)

    def _centroid_mm(self, name: str) -> np.ndarray:
        m, n = self.masks[name], self._counts[name]
        if n == 0:
            return np.full(3, np.nan)
        c = [
            np.dot(
                np.count_nonzero(m, axis=tuple(x for x in range(3) if x != a)),
                np.arange(m.shape[a]),
            )
            for a in range(3)
        ]
        return np.asarray(c) / n * self.spacing

    def compare(
        self, a: str, b: str, tolerance_mm: float = DEFAULT_TOLERANCE_MM, percent: float = 95.0
    ) -> PairMetrics:
        """All metrics of mask ``b`` against mask ``a`` (module conventions).

        Parameters
        ----------
        a, b : str
            Names of the reference and the compared mask.
        tolerance_mm : float
            Tolerance of the surface Dice, surface overlaps and added path length.
        percent : float
            Percentile of the robust Hausdorff distances (95 gives HD95).
        """
        ia, ib = self._index(a), self._index(b)
        na, nb = self._counts[a], self._counts[b]
        both = int(np.count_nonzero(self.masks[a] & self.masks[b]))
        sd = self._surfaces.distances(ia, ib)
        if tolerance_mm not in self._contours:
            self._contours[tolerance_mm] = SliceContourLattice(
                list(self.masks.values()), self.spacing, tolerance_mm
            )
        apl = self._contours[tolerance_mm].added(ia, ib)
        hd_ab, hd_ba = sd.directed_hausdorff_mm()
        p_ab, p_ba = sd.directed_percentile_mm(percent)
        mean_ab, mean_ba = sd.directed_mean_mm()
        overlap_a, overlap_b = sd.surface_overlap(tolerance_mm)
        va, vb = na * self._voxel_cc, nb * self._voxel_cc
        empty = na + nb == 0
        return PairMetrics(
            status=sd.status,
            tolerance_mm=float(tolerance_mm),
            volume_a_cc=va,
            volume_b_cc=vb,
            volume_difference_cc=vb - va,
            volume_ratio=volume_ratio(va, vb),
            dice=math.nan if empty else 2.0 * both / (na + nb),
            jaccard=math.nan if empty else both / (na + nb - both),
            centroid_distance_mm=float(np.linalg.norm(self._centroid_mm(a) - self._centroid_mm(b))),
            hausdorff_mm=max(hd_ab, hd_ba),
            hd95_mm=max(p_ab, p_ba),
            hd95_pooled_mm=sd.pooled_percentile_mm(percent),
            hausdorff_a_to_b_mm=hd_ab,
            hausdorff_b_to_a_mm=hd_ba,
            hd95_a_to_b_mm=p_ab,
            hd95_b_to_a_mm=p_ba,
            mean_a_to_b_mm=mean_ab,
            mean_b_to_a_mm=mean_ba,
            masd_mm=sd.masd_mm(),
            assd_mm=sd.assd_mm(),
            surface_dice=sd.surface_dice(tolerance_mm),
            surface_overlap_a=overlap_a,
            surface_overlap_b=overlap_b,
            added_path_length_mm=math.nan if empty else apl.total_mm,
            added_path_length_percent=apl.percent,
            added_path_slices=math.nan if empty else float(apl.slices_added),
            surface_area_a_mm2=sd.surface_area_a_mm2,
            surface_area_b_mm2=sd.surface_area_b_mm2,
        )

    def pairs(
        self, tolerance_mm: float = DEFAULT_TOLERANCE_MM, percent: float = 95.0
    ) -> dict[tuple[str, str], PairMetrics]:
        """Every unordered pair ``(a, b)`` with ``a`` listed before ``b``."""
        return {
            (a, b): self.compare(a, b, tolerance_mm, percent)
            for i, a in enumerate(self.names)
            for b in self.names[i + 1 :]
        }


def compare_masks(
    mask_a: np.ndarray,
    mask_b: np.ndarray,
    spacing_mm,
    tolerance_mm: float = DEFAULT_TOLERANCE_MM,
    percent: float = 95.0,
) -> PairMetrics:
    """All agreement metrics of ``mask_b`` against ``mask_a``.

    Parameters
    ----------
    mask_a, mask_b : numpy.ndarray of bool, shape (K, J, I)
        Reference and compared segmentation on one grid (array order ``[k, j, i]``).
    spacing_mm : sequence of 3 float
        Voxel spacing (mm) in array order ``(slice, row, column)``.
    tolerance_mm : float
        Tolerance of the surface Dice and the added path length.
    percent : float
        Percentile of the robust Hausdorff distance.

    Returns
    -------
    PairMetrics
    """
    return MaskSet({"a": mask_a, "b": mask_b}, spacing_mm).compare("a", "b", tolerance_mm, percent)


def check_same_frame(structures: Sequence) -> None:
    """Raise :class:`GeometryError` unless all structures share one frame of reference.

    Structures without a frame of reference UID are accepted (nothing to check).
    """
    uids = {s.frame_of_reference_uid for s in structures if s.frame_of_reference_uid}
    if len(uids) > 1:
        names = ", ".join(f"'{s.name}' ({s.source or 'no file'})" for s in structures)
        raise GeometryError(
            f"structures {names} are in different frames of reference ({', '.join(sorted(uids))})"
        )


def common_grid(
    structures: Sequence,
    ct_grid: Grid | None = None,
    in_plane_spacing_mm: float = 1.0,
    margin_mm: float = 5.0,
) -> Grid:
    """The grid on which several structures are compared.

    Parameters
    ----------
    structures : sequence of rtplan.structure.Structure
        Structures on one frame of reference.
    ct_grid : Grid, optional
        The planning CT grid.  When given (and evenly spaced), the result is the part of
        it covering every structure plus ``margin_mm``: voxel centres stay the CT's.
    in_plane_spacing_mm : float
        Without a CT grid: row and column spacing (mm).  Voxel centres then sit on
        multiples of this spacing in LPS x and y, so a structure is rasterised the same
        way whatever it is compared with.
    margin_mm : float
        Space left around the structures' joint bounding box.

    Returns
    -------
    Grid
        Without a CT grid: an axial grid whose slices are the contour planes (spacing =
        the smallest slab thickness of the structures, first slice on the lowest contour
        plane), covering every structure's slabs.

    Raises
    ------
    GeometryError
        Structures in different frames of reference, or no closed contours at all.
    """
    check_same_frame(structures)
    volumes = [s for s in structures if s.is_volume]
    if not volumes:
        raise GeometryError("no structure with closed contours to build a grid for")
    bounds = [s.bounds_mm() for s in volumes]
    lo = np.min([b[0] for b in bounds], axis=0) - margin_mm
    hi = np.max([b[1] for b in bounds], axis=0) + margin_mm
    if ct_grid is not None and ct_grid.is_uniform:
        corners = np.array(
            [[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
        )
        idx = ct_grid.world_to_index(corners)
        first = np.clip(np.floor(idx.min(axis=0)).astype(int), 0, np.asarray(ct_grid.shape) - 1)
        last = np.clip(np.ceil(idx.max(axis=0)).astype(int), 0, np.asarray(ct_grid.shape) - 1)
        return ct_grid.with_shape_origin(tuple(last - first + 1), ct_grid.index_to_world(first))
    if ct_grid is not None:
        return ct_grid
    if not in_plane_spacing_mm > 0:
        raise InputError(f"in-plane spacing must be positive, got {in_plane_spacing_mm}")
    t = min(s.slab_thickness_mm for s in volumes)
    z0 = min(s.plane_z_mm.min() for s in volumes)
    k_lo = math.floor((lo[2] - z0) / t)
    k_hi = math.ceil((hi[2] - z0) / t)
    s = float(in_plane_spacing_mm)
    x0, y0 = math.floor(lo[0] / s) * s, math.floor(lo[1] / s) * s
    nx = math.ceil((hi[0] - x0) / s) + 1
    ny = math.ceil((hi[1] - y0) / s) + 1
    return Grid(
        shape=(k_hi - k_lo + 1, ny, nx),
        origin_mm=(x0, y0, z0 + k_lo * t),
        spacing_mm=(t, s, s),
        direction=AXIAL_DIRECTION,
    )


def structure_masks(structures: Mapping[str, object], grid: Grid) -> dict[str, np.ndarray]:
    """Binary masks (``fraction >= 0.5``) of named structures on one grid.

    A structure without closed contours gives an empty mask.
    """
    check_same_frame(list(structures.values()))
    out = {}
    for name, s in structures.items():
        out[name] = s.binary_mask(grid) if s.is_volume else np.zeros(grid.shape, bool)
    return out


def compare_structures(
    structure_a,
    structure_b,
    ct_grid: Grid | None = None,
    in_plane_spacing_mm: float = 1.0,
    tolerance_mm: float = DEFAULT_TOLERANCE_MM,
    percent: float = 95.0,
) -> PairMetrics:
    """All agreement metrics of ``structure_b`` against ``structure_a``.

    Both are rasterised (:meth:`~rtplan.structure.Structure.binary_mask`, slab
    convention) on :func:`common_grid` -- the CT grid when given, else an axial grid on
    the contour planes with ``in_plane_spacing_mm`` pixels -- and compared with
    :func:`compare_masks`.

    Raises
    ------
    GeometryError
        The structures are in different frames of reference.
    """
    grid = common_grid([structure_a, structure_b], ct_grid, in_plane_spacing_mm)
    masks = structure_masks({"a": structure_a, "b": structure_b}, grid)
    return compare_masks(masks["a"], masks["b"], grid.spacing_mm, tolerance_mm, percent)
