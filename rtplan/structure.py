"""Structures: planar contours in patient coordinates, their volume and their masks.

Conventions
-----------
Slab
    A closed planar contour on the axial plane ``z`` stands for the slab
    ``[z - t/2, z + t/2]``, where ``t`` is the slab thickness: the CT slice spacing
    when it is known (``Structure.slice_spacing_mm``), otherwise the smallest gap
    between the structure's contour planes.  A structure's volume is therefore
    ``sum over planes of (enclosed area x t)``.  This is what planning systems and
    dicompyler-core assume for the interior planes.
End caps
    ``end_cap="slab"`` (default) gives the first and last plane of every run of
    consecutive planes their full slab (the structure reaches half a slice beyond its
    outermost contours).  ``end_cap="none"`` cuts those outermost slabs at the contour
    plane (the structure ends exactly on its first and last contour).  A plane counts as
    the end of a run when the next plane is more than 1.5 slab thicknesses away.
Holes
    Contours on one plane combine by the even-odd rule: a contour inside an odd number
    of others is a hole.  A keyhole contour (one outline entering its hole along a
    zero-width channel) needs no special treatment.
Partial volume
    :meth:`Structure.fraction_mask` gives, for each voxel of any axial grid, the exact
    fraction of its volume inside the structure: the in-plane polygon coverage is exact
    (:func:`rtplan.polygon.pixel_coverage`), and along z each voxel takes the overlap of
    its own extent with every slab.

Only ``CLOSED_PLANAR`` contours make volumes; ``POINT`` and ``OPEN_PLANAR`` contours are
kept in :attr:`Structure.contours` and reported, but never rasterised.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType

import numpy as np

from rtplan.errors import ContourError, GeometryError, StructureNotFoundError
from rtplan.grid import Grid
from rtplan.polygon import even_odd_area, nesting_depths, pixel_coverage, self_intersections

#: Contours whose z values differ by less than this (mm) lie on one plane.
PLANE_TOLERANCE_MM = 0.01
END_CAPS = ("slab", "none")


@dataclass(frozen=True, eq=False)
class Contour:
    """One DICOM contour: ``points_mm`` is an ``(N, 3)`` array of LPS positions (mm)."""

    points_mm: np.ndarray
    geometric_type: str = "CLOSED_PLANAR"

    def __post_init__(self):
        pts = np.asarray(self.points_mm, dtype=float).reshape(-1, 3)
        object.__setattr__(self, "points_mm", pts)

    @property
    def z_mm(self) -> float:
        """Mean z (mm) of the contour's points."""
        return float(self.points_mm[:, 2].mean())


@dataclass(frozen=True, eq=False)
class Structure:
    """A region of interest drawn as planar contours (DICOM RTSTRUCT ROI).

    Parameters
    ----------
    name : str
        ROIName.
    contours : tuple of Contour
        Every contour of the ROI, of any geometric type.
    number : int, optional
        ROINumber.
    interpreted_type : str
        RTROIInterpretedType (EXTERNAL, GTV, CTV, PTV, ORGAN, ...).
    color : (int, int, int), optional
        ROIDisplayColor.
    frame_of_reference_uid : str
        Frame of reference the contours are in.
    source : str
        The file the structure was read from (used in messages).
    slice_spacing_mm : float, optional
        CT slice spacing, the slab thickness.  When ``None`` it is inferred from the
        contour planes (their smallest gap).

    Examples
    --------
    A 20 mm x 10 mm rectangle drawn on three planes 2 mm apart is a 20 x 10 x 6 mm box
    under the slab convention:

    >>> rect = np.array([[0, 0], [20, 0], [20, 10], [0, 10]], dtype=float)
    >>> cs = tuple(Contour(np.c_[rect, np.full(4, z)]) for z in (0.0, 2.0, 4.0))
    >>> Structure("box", cs).volume_cc
    1.2
    """

    name: str
    contours: tuple[Contour, ...]
    number: int | None = None
    interpreted_type: str = ""
    color: tuple[int, int, int] | None = None
    frame_of_reference_uid: str = ""
    source: str = ""
    slice_spacing_mm: float | None = None

    def __post_init__(self):
        object.__setattr__(self, "contours", tuple(self.contours))

    def _error(self, cls, message):
        return cls(message, path=self.source or None, structure=self.name)

    # ------------------------------------------------------------------ planes
    @property
    def is_volume(self) -> bool:
        """True when the structure has closed planar contours (it encloses a volume)."""
        return any(c.geometric_type == "CLOSED_PLANAR" for c in self.contours)

    @cached_property
    def planes(self) -> dict[float, list[np.ndarray]]:
        """Closed planar contours grouped by plane: ``{z_mm: [(N, 2) xy polygons]}``.

        Raises :class:`~rtplan.errors.ContourError` for a contour with fewer than three
        points or whose points do not share one axial plane.
        """
        groups: dict[float, list[np.ndarray]] = {}
        for c in self.contours:
            if c.geometric_type != "CLOSED_PLANAR":
                continue
            pts = c.points_mm
            if len(pts) < 3:
                raise self._error(
                    ContourError, f"closed contour with {len(pts)} point(s) at z={c.z_mm:.2f} mm"
                )
            if np.ptp(pts[:, 2]) > PLANE_TOLERANCE_MM:
                raise self._error(
                    GeometryError,
                    f"contour is not on an axial plane (z spans {np.ptp(pts[:, 2]):.2f} mm); "
                    "only axial contours are supported",
                )
            z = c.z_mm
            key = next((k for k in groups if abs(k - z) <= PLANE_TOLERANCE_MM), z)
            groups.setdefault(key, []).append(pts[:, :2])
        return dict(sorted(groups.items()))

    @property
    def plane_z_mm(self) -> np.ndarray:
        """Sorted z (mm) of the contour planes."""
        return np.array(list(self.planes), dtype=float)

    @property
    def slab_thickness_mm(self) -> float:
        """Slab thickness (mm): the CT slice spacing if known, else the smallest plane gap."""
        if self.slice_spacing_mm is not None:
            return float(self.slice_spacing_mm)
        z = self.plane_z_mm
        if len(z) < 2:
            raise self._error(
                ContourError,
                "cannot infer the slab thickness from a single contour plane; "
                "give the CT series (or slice_spacing_mm)",
            )
        return float(np.round(np.diff(z).min(), 4))

    def slabs_mm(self, end_cap: str = "slab") -> np.ndarray:
        """``(n_planes, 2)`` array of the z extent (mm) each plane stands for."""
        if end_cap not in END_CAPS:
            raise self._error(GeometryError, f"unknown end cap '{end_cap}' (use {END_CAPS})")
        z = self.plane_z_mm
        if len(z) == 0:
            return np.zeros((0, 2))
        t = self.slab_thickness_mm
        lo, hi = z - t / 2, z + t / 2
        if end_cap == "none":
            gaps = np.diff(z)
            starts = np.concatenate([[True], gaps > 1.5 * t])
            ends = np.concatenate([gaps > 1.5 * t, [True]])
            lo = np.where(starts, z, lo)
            hi = np.where(ends, z, hi)
        return np.stack([lo, hi], axis=1)

    # ------------------------------------------------------------------ volume
    @cached_property
    def plane_areas_mm2(self) -> np.ndarray:
        """Enclosed area (mm^2) of each plane, holes subtracted (even-odd rule)."""
        return np.array([even_odd_area(polys) for polys in self.planes.values()], dtype=float)

    def volume_cc_with(self, end_cap: str = "slab") -> float:
        """Volume (cc) as the sum over planes of enclosed area x slab extent."""
        slabs = self.slabs_mm(end_cap)
        return float(np.sum(self.plane_areas_mm2 * (slabs[:, 1] - slabs[:, 0]))) / 1000.0

    @property
    def volume_cc(self) -> float:
        """Volume (cc) under the default slab convention (see the module docstring)."""
        if not self.is_volume:
            return 0.0
        return self.volume_cc_with("slab")

    def bounds_mm(self, end_cap: str = "slab") -> tuple[np.ndarray, np.ndarray]:
        """LPS bounding box ``(lo, hi)`` (mm) of the slabs the contours stand for."""
        if not self.planes:
            raise self._error(ContourError, "has no closed contours")
        xy = np.concatenate([p for polys in self.planes.values() for p in polys])
        slabs = self.slabs_mm(end_cap)
        lo = np.array([*xy.min(axis=0), slabs[:, 0].min()])
        hi = np.array([*xy.max(axis=0), slabs[:, 1].max()])
        return lo, hi

    # ------------------------------------------------------------------ masks
    def fraction_mask_cropped(
        self, grid: Grid, end_cap: str = "slab"
    ) -> tuple[np.ndarray, tuple[int, int, int]]:
        """Partial-volume occupancy on the part of ``grid`` the structure touches.

        Returns ``(fractions, offset)``: ``fractions`` is a float32 array over the
        sub-block of ``grid`` starting at index ``offset`` (k, j, i); voxels outside the
        block have occupancy 0.  See :meth:`fraction_mask` for the conventions.
        """
        if not grid.is_axial:
            raise self._error(GeometryError, "masks need an axial grid (slice normal along z)")
        if not self.planes:
            raise self._error(ContourError, "has no closed contours to rasterise")
        slabs = self.slabs_mm(end_cap)
        # voxel extents along z
        k = np.arange(grid.shape[0], dtype=float)
        zk = grid.index_to_world(np.stack([k, 0 * k, 0 * k], axis=1))[:, 2]
        half = grid.slice_thickness_mm / 2
        vlo, vhi = zk - half, zk + half
        overlap = (
            np.clip(
                np.minimum(vhi[:, None], slabs[None, :, 1])
                - np.maximum(vlo[:, None], slabs[None, :, 0]),
                0.0,
                None,
            )
            / (vhi - vlo)[:, None]
        )  # (n_slices, n_planes) fraction of each voxel's z extent
        ks = np.flatnonzero(overlap.sum(axis=1) > 0)
        if len(ks) == 0:
            return np.zeros((0, 0, 0), dtype=np.float32), (0, 0, 0)
        # in-plane pixel window covering every polygon
        xy = np.concatenate([p for polys in self.planes.values() for p in polys])
        uv_all = self._to_pixel(grid, xy, zk[0])
        lo = np.maximum(np.floor(uv_all.min(axis=0)).astype(int) - 1, 0)
        hi = np.minimum(np.ceil(uv_all.max(axis=0)).astype(int) + 2, [grid.shape[2], grid.shape[1]])
        if np.any(hi <= lo):
            return np.zeros((0, 0, 0), dtype=np.float32), (0, 0, 0)
        window = (hi[1] - lo[1], hi[0] - lo[0])
        coverage = np.zeros((len(self.planes),) + window, dtype=np.float32)
        for p, polys in enumerate(self.planes.values()):
            if not overlap[ks, p].any():
                continue
            depths = nesting_depths(polys)
            for poly, depth in zip(polys, depths, strict=True):
                uv = self._to_pixel(grid, poly, zk[0]) - lo
                coverage[p] += (-1) ** depth * pixel_coverage(uv, window)
        np.clip(coverage, 0.0, 1.0, out=coverage)
        k0, k1 = ks.min(), ks.max() + 1
        w = overlap[k0:k1].astype(np.float32)
        fractions = np.tensordot(w, coverage, axes=(1, 0)).astype(np.float32)
        np.clip(fractions, 0.0, 1.0, out=fractions)
        return fractions, (int(k0), int(lo[1]), int(lo[0]))

    def fraction_mask(self, grid: Grid, end_cap: str = "slab") -> np.ndarray:
        """Fraction (0..1) of each voxel of ``grid`` that lies inside the structure.

        The in-plane part is exact polygon/pixel intersection area; along z each voxel
        takes its overlap with the contour slabs (module docstring: slab convention, end
        caps, even-odd holes).  ``grid`` may be any axial grid (CT, dose, or a finer
        one); it need not share the contour planes.

        Returns
        -------
        numpy.ndarray
            float32 array of ``grid.shape``.
        """
        out = np.zeros(grid.shape, dtype=np.float32)
        block, (k0, j0, i0) = self.fraction_mask_cropped(grid, end_cap)
        out[k0 : k0 + block.shape[0], j0 : j0 + block.shape[1], i0 : i0 + block.shape[2]] = block
        return out

    def binary_mask(self, grid: Grid, end_cap: str = "slab") -> np.ndarray:
        """Voxels at least half inside the structure (``fraction_mask >= 0.5``)."""
        return self.fraction_mask(grid, end_cap) >= 0.5

    @staticmethod
    def _to_pixel(grid: Grid, xy: np.ndarray, z: float) -> np.ndarray:
        """Continuous in-plane indices ``(i, j)`` = (column, row) of LPS points on plane z."""
        pts = np.c_[xy, np.full(len(xy), z)]
        idx = grid.world_to_index(pts)
        return idx[:, [2, 1]]


@dataclass(frozen=True)
class UnassignedContours:
    """Contours of an RTSTRUCT that belong to no structure: an ROIContourSequence item whose
    ReferencedROINumber names no ROI of StructureSetROISequence, or a second item for an ROI
    that already has one (the first is used).  They cannot be used, and the ROI that
    probably owns them reads as empty or incomplete: a problem of the structure set
    (:attr:`StructureSet.unassigned`), never dropped silently.

    Parameters
    ----------
    item : int
        Position of the item in ROIContourSequence (from 1).
    roi_number : int
        Its ReferencedROINumber.
    contours : int
        Number of contours in the item.
    repeated : bool
        True for a second item of a defined ROI, False for an undefined ROI.

    Examples
    --------
    >>> u = UnassignedContours(item=2, roi_number=99, contours=3)
    >>> u.name, u.problem.endswith("ROI 99, which StructureSetROISequence does not define")
    ('ROI 99', True)
    """

    item: int
    roi_number: int
    contours: int
    repeated: bool = False

    @property
    def name(self) -> str:
        """How reports list it among the structures: ``ROI 99``."""
        return f"ROI {self.roi_number}"

    @property
    def problem(self) -> str:
        """What is wrong, in one line."""
        held = f"ROIContourSequence item {self.item} holds {self.contours} contour(s) of ROI "
        if self.repeated:
            return f"{held}{self.roi_number}, which an earlier item already holds (not used)"
        return f"{held}{self.roi_number}, which StructureSetROISequence does not define"


@dataclass(frozen=True, eq=False)
class StructureSet:
    """The structures of one RTSTRUCT, with lookup by name.

    Parameters
    ----------
    label : str
        StructureSetLabel.
    structures : tuple of Structure
        In file order (StructureSetROISequence).
    sop_instance_uid, series_instance_uid, study_instance_uid : str
        Identity of the RTSTRUCT.
    referenced_series_uid : str
        The image series the contours were drawn on (RTReferencedSeriesSequence).
    frame_of_reference_uid : str
        The frame of reference of the contours.
    source : str
        The file, for messages.
    warnings : tuple of str
        Problems that do not stop reading (off-slice contours, odd ROI numbering); the
        reader also emitted each as an :class:`~rtplan.errors.RtplanWarning`.
    unassigned : tuple of UnassignedContours
        Contours that belong to no structure (a problem of the set: :meth:`check` of the
        whole set raises it, an empty structure's problem names it, and looking up its
        :attr:`UnassignedContours.name` raises it).

    The structure checks (:func:`structure_problems`) run when first needed: on lookup of
    a structure, :meth:`check` or :attr:`problems`, and are cached.
    """

    label: str
    structures: tuple[Structure, ...]
    sop_instance_uid: str = ""
    series_instance_uid: str = ""
    study_instance_uid: str = ""
    referenced_series_uid: str = ""
    frame_of_reference_uid: str = ""
    patient_id: str = ""
    patient_name: str = ""
    name: str = ""
    source: str = ""
    warnings: tuple[str, ...] = field(default_factory=tuple)
    unassigned: tuple[UnassignedContours, ...] = ()
    _checked: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "structures", tuple(self.structures))

    def problems_for(self, structure: Structure) -> tuple[str, ...]:
        """Reasons ``structure`` (one of this set's) cannot stand for a volume; cached."""
        key = id(structure)
        if key not in self._checked:
            reasons = structure_problems(structure)
            if not structure.contours and self.unassigned:  # its contours may be these
                reasons = [f"{reasons[0]} ({'; '.join(u.problem for u in self.unassigned)})"]
            self._checked[key] = tuple(reasons)
        return self._checked[key]

    def problems_of(self, name: str) -> tuple[str, ...]:
        """Problems of the (first) structure called ``name`` (empty when fine)."""
        return self.problems_for(next(s for s in self.structures if s.name == name))

    @property
    def problems(self) -> MappingProxyType:
        """``{name: reasons}`` of every structure that has a problem (checks them all).

        An empty structure (no contours: a placeholder or a marker not yet drawn) is not a
        problem of the set; it is listed in :attr:`empty_names` and is an error only when
        it is asked for (``self[name]``).  When the set has :attr:`unassigned` contours an
        empty structure is a problem (its contours may be those), named in its reason.
        """
        empty = set() if self.unassigned else set(self.empty_names)
        found = {n: self.problems_of(n) for n in dict.fromkeys(self.names) if n not in empty}
        return MappingProxyType({n: r for n, r in found.items() if r})

    @property
    def empty_names(self) -> list[str]:
        """Names of the structures with no contours at all, in file order."""
        return [s.name for s in self.structures if not s.contours]

    @property
    def names(self) -> list[str]:
        """ROI names in file order."""
        return [s.name for s in self.structures]

    def __len__(self) -> int:
        return len(self.structures)

    def __iter__(self):
        return iter(self.structures)

    def __contains__(self, name: str) -> bool:
        return self._find(name) is not None

    def _find(self, name: str) -> Structure | None:
        for s in self.structures:
            if s.name == name:
                return s
        folded = [s for s in self.structures if s.name.casefold() == name.casefold()]
        return folded[0] if len(folded) == 1 else None

    def __getitem__(self, name: str) -> Structure:
        """The structure called ``name`` (exact, else unique case-insensitive match).

        Raises
        ------
        StructureNotFoundError
            No such structure; the message lists the closest names.
        ContourError
            The structure has a problem (empty, self-intersecting, ...).
        """
        found = self._find(name)
        unassigned = [u for u in self.unassigned if u.name.casefold() == name.casefold()]
        if found is None and unassigned:
            raise ContourError(unassigned[0].problem, path=self.source or None, structure=name)
        if found is None:
            raise StructureNotFoundError(
                f"no structure '{name}' in structure set '{self.label}'; "
                + names_hint([name], self.names),
                path=self.source or None,
            )
        self.check([found.name])
        return found

    def get(self, name: str, default=None):
        """Like ``self[name]`` but ``default`` when the name is absent."""
        return self[name] if name in self else default

    def check(self, names=None) -> None:
        """Raise :class:`~rtplan.errors.ContourError` for the first problem of the named
        structures (when ``names`` is None: of all but the empty ones, and contours that
        belong to no structure)."""
        if names is None and self.unassigned:
            u = self.unassigned[0]
            raise ContourError(u.problem, path=self.source or None, structure=u.name)
        for n in [n for n in self.names if n not in self.empty_names] if names is None else names:
            reasons = self.problems_of(n)
            if reasons:
                raise ContourError(reasons[0], path=self.source or None, structure=n)

    @property
    def volumes(self) -> tuple[Structure, ...]:
        """Structures with closed planar contours (that enclose a volume)."""
        return tuple(s for s in self.structures if s.is_volume)


def structure_problems(structure: Structure) -> list[str]:
    """Reasons a structure cannot stand for what it claims (empty list when fine).

    Empty structure; closed contour of fewer than 3 points; closed contour not on one
    axial plane; self-intersecting closed contour (:func:`rtplan.polygon.self_intersection`).
    """
    if not structure.contours:
        return ["empty structure: no contours"]
    reasons, planar = {}, []
    for n, c in enumerate(structure.contours):
        if c.geometric_type != "CLOSED_PLANAR":
            continue
        pts = c.points_mm
        if len(pts) < 3:
            reasons[n] = f"closed contour with {len(pts)} point(s) at z={c.z_mm:.2f} mm"
        elif np.ptp(pts[:, 2]) > PLANE_TOLERANCE_MM:
            reasons[n] = (
                f"closed contour near z={c.z_mm:.2f} mm is not on an axial plane "
                f"(z spans {np.ptp(pts[:, 2]):.2f} mm)"
            )
        else:
            planar.append(n)
    crossings = self_intersections([structure.contours[n].points_mm[:, :2] for n in planar])
    for n, hit in zip(planar, crossings, strict=True):
        if hit is not None:
            reasons[n] = (
                f"self-intersecting contour at z={structure.contours[n].z_mm:.2f} mm "
                f"(edges {hit[0]} and {hit[1]} cross)"
            )
    return [reasons[n] for n in sorted(reasons)]


_IGNORED = re.compile(r"[\s_\-]+")


def normalise_name(name: str) -> str:
    """A structure name with case, whitespace, underscores and hyphens removed.

    Examples
    --------
    >>> {normalise_name(n) for n in ["Bowel bag", "BowelBag", "Bowel_Bag", "BOWEL-BAG"]}
    {'bowelbag'}
    """
    return _IGNORED.sub("", str(name)).casefold()


def closest_names(wanted: Iterable[str], present: Sequence[str], n: int = 5) -> list[str]:
    """Plan names most similar to any of ``wanted`` (normalised comparison), best first."""
    by_norm: dict[str, list[str]] = {}
    for name in present:
        by_norm.setdefault(normalise_name(name), []).append(name)
    scored: dict[str, float] = {}
    for w in wanted:
        nw = normalise_name(w)
        for cand in difflib.get_close_matches(nw, list(by_norm), n=n, cutoff=0.5):
            ratio = difflib.SequenceMatcher(None, nw, cand).ratio()
            scored[cand] = max(scored.get(cand, 0.0), ratio)
    ranked = sorted(scored, key=lambda c: -scored[c])
    return [name for c in ranked for name in by_norm[c]][:n]


def names_hint(wanted: Iterable[str], present: Sequence[str]) -> str:
    """The hint of every "structure not found" message: the names most similar to ``wanted``
    (:func:`closest_names`), else the first 8 names present, else that there are none.

    Examples
    --------
    >>> names_hint(["PTV_Hgh"], ["PTV_High", "PTV_Low", "SpinalCord"])
    "closest names present: 'PTV_High', 'PTV_Low'"
    >>> names_hint(["Bowel"], ["PTV", "Lung_L"])
    "names present: 'PTV', 'Lung_L'"
    """
    present = list(present)
    close = closest_names(wanted, present)
    if close:
        return "closest names present: " + ", ".join(map(repr, close))
    if present:
        return (
            "names present: "
            + ", ".join(map(repr, present[:8]))
            + (", ..." if len(present) > 8 else "")
        )
    return "no structures present"
