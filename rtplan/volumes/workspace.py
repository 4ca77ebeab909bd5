"""The fine grid on which structures are combined, and the way back to contours.

A :class:`Workspace` is an axial grid aligned with the patient axes (columns along +x,
rows along +y, slices along +z), ``fine_mm`` (default 1 mm) in-plane, around the structures
of interest plus the reach of every margin to be applied.  Along z it is tied to the CT
slices: each CT slice of thickness ``t`` is cut into ``m`` fine slices (``m`` odd, the
smallest with ``t / m <= fine_mm``), so that

* the slab each contour stands for (``z +- t/2``, the slab convention of
  :mod:`rtplan.structure`) ends on fine-voxel faces: a structure drawn on the CT slices is
  rasterised exactly along z, and its boundary planes are vertical (in-plane normals);
* the middle fine slice of each CT slice lies on the CT slice: a new contour is the
  region's cross-section there.  Each boundary voxel's plane meets the slice in a line; the
  signed in-plane distance from those lines (:meth:`SubvoxelMask.section_distance`) is
  contoured at zero by marching squares (``contourpy``), so the polygon follows the lines
  to within the chord of the pixel, then simplified (Douglas-Peucker, 0.02 pixel).  Under
  the slab convention the written structure's volume is the midpoint rule along z of the
  region's volume: exact for prisms, and off by a part of the end slabs where a region ends
  inside a slab (a margin that is not a multiple of the slice spacing), whose outermost
  contour lies within half a slice of the region's end.

A structure drawn on other planes (not on the CT slices, or with another slab thickness) is
rasterised with its partial volumes along z and general (3-D) boundary planes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import contourpy
import numpy as np

from rtplan.contouring import remove_collinear, simplify
from rtplan.defaults import FINE_MM
from rtplan.errors import ContourError, GeometryError, InputError
from rtplan.grid import Grid
from rtplan.polygon import signed_area
from rtplan.structure import PLANE_TOLERANCE_MM, Contour, Structure
from rtplan.volumes.subvoxel import SubvoxelMask

#: Default in-plane voxel size (mm) of the fine grid.
#: Douglas-Peucker tolerance (pixels) of new contours.
SIMPLIFY_PX = 0.02
#: Smallest loop (pixels of area) kept in a new contour.
MIN_LOOP_PX = 1.0

#: Largest working grid (voxels) a margin or recipe may allocate; checked before allocating.
MAX_WORKSPACE_VOXELS = 2**27


@dataclass(frozen=True, eq=False)
class Workspace:
    """A fine grid around some structures, tied to the CT slices.

    Build one with :meth:`around`.

    Attributes
    ----------
    grid : Grid
        The fine grid (axial, head-first-supine axes: ``k, j, i`` along +z, +y, +x).
    slab_mm : float
        CT slice spacing (the slab thickness of every contour written).
    slice_z_mm : numpy.ndarray
        z (mm) of the CT slices inside the workspace: where contours are written.
    slice_k : numpy.ndarray
        Fine-grid slice index of each of them.
    off_ct_k : numpy.ndarray
        Fine-grid slice index of the slab centres with no CT slice (beyond the scan): nothing
        is written there.
    """

    grid: Grid
    slab_mm: float
    slice_z_mm: np.ndarray
    slice_k: np.ndarray
    off_ct_k: np.ndarray = field(default_factory=lambda: np.empty(0, int))

    @classmethod
    def around(
        cls,
        structures: Sequence[Structure],
        *,
        reach_lo_mm=(0.0, 0.0, 0.0),
        reach_hi_mm=(0.0, 0.0, 0.0),
        slice_z_mm: Sequence[float] | None = None,
        fine_mm: float = FINE_MM,
    ) -> Workspace:
        """A workspace covering ``structures`` plus a reach (mm) on each side.

        Parameters
        ----------
        structures : sequence of Structure
            The structures the new volumes grow from (their slab bounding boxes).
        reach_lo_mm, reach_hi_mm : sequence of 3 float
            How far (mm) beyond the bounding box along -x, -y, -z and +x, +y, +z the
            workspace must reach (the margins to come); two fine voxels are added.
        slice_z_mm : sequence of float, optional
            The CT slice positions (evenly spaced where the workspace lies).  Default: the
            planes of the first structure, with its slab thickness.
        fine_mm : float
            In-plane voxel size, and largest fine slice thickness (mm).
        """
        if not structures:
            raise GeometryError("a workspace needs at least one structure")
        if not fine_mm > 0:
            raise GeometryError(f"fine grid spacing must be positive, got {fine_mm}")
        los, his = zip(*(s.bounds_mm() for s in structures), strict=True)
        lo = np.min(los, axis=0) - np.asarray(reach_lo_mm, float) - 2 * fine_mm
        hi = np.max(his, axis=0) + np.asarray(reach_hi_mm, float) + 2 * fine_mm
        first = structures[0]
        if slice_z_mm is None:
            slab = first.slab_thickness_mm
            z_ref = float(first.plane_z_mm[0])
            ct = None
        else:
            ct = np.sort(np.asarray(slice_z_mm, dtype=float))
            if len(ct) < 2:
                raise GeometryError("need at least two CT slices")
            inside = ct[(ct >= lo[2] - 1e-6) & (ct <= hi[2] + 1e-6)]
            local = inside if len(inside) >= 2 else ct
            gaps = np.diff(local)
            slab = float(np.median(gaps))
            if np.ptp(gaps) > 1e-3 * slab + 1e-6:
                raise GeometryError(
                    f"CT slices are not evenly spaced near the structures "
                    f"(gaps {gaps.min():.3f} to {gaps.max():.3f} mm)"
                )
            z_ref = float(local[0])
        extent = hi - lo
        cells = float(np.prod(extent[:2] / fine_mm)) * float(extent[2] / min(slab, fine_mm))
        if not np.all(np.isfinite(extent)) or cells > MAX_WORKSPACE_VOXELS:
            raise InputError(
                f"the working grid would hold about {cells:.3g} voxels (limit "
                f"{MAX_WORKSPACE_VOXELS:.3g}): margins too large or fine spacing too small"
            )
        m = max(1, math.ceil(slab / fine_mm - 1e-9))
        if m % 2 == 0:
            m += 1
        dz = slab / m
        k_lo = math.floor((lo[2] - z_ref) / slab)
        k_hi = math.ceil((hi[2] - z_ref) / slab)
        slices = z_ref + slab * np.arange(k_lo, k_hi + 1)
        z0 = slices[0] - (m // 2) * dz
        nz = len(slices) * m
        nx = int(math.ceil((hi[0] - lo[0]) / fine_mm)) + 1
        ny = int(math.ceil((hi[1] - lo[1]) / fine_mm)) + 1
        grid = Grid((nz, ny, nx), (float(lo[0]), float(lo[1]), float(z0)), (dz, fine_mm, fine_mm))
        on_ct = (
            np.ones(len(slices), bool)
            if ct is None
            else np.min(np.abs(slices[:, None] - ct[None, :]), axis=1) <= PLANE_TOLERANCE_MM
        )
        centre_k = np.arange(len(slices)) * m + m // 2
        return cls(grid, float(slab), slices[on_ct], centre_k[on_ct], centre_k[~on_ct])

    # ------------------------------------------------------------------ structures in
    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        return self.grid.spacing_mm

    @property
    def slices_per_slab(self) -> int:
        """Fine slices per CT slice (odd)."""
        return int(round(self.slab_mm / self.grid.spacing_mm[0]))

    def is_on_slabs(self, structure: Structure) -> bool:
        """True when the structure's contours lie on this workspace's CT slice lattice
        with its slab thickness (then it is rasterised exactly along z)."""
        z = structure.plane_z_mm
        if len(z) == 0:
            return False
        if abs(structure.slab_thickness_mm - self.slab_mm) > 1e-3:
            return False
        ref = self.slice_z_mm[0] if len(self.slice_z_mm) else self.grid.origin_mm[2]
        steps = (z - ref) / self.slab_mm
        return bool(np.all(np.abs(steps - np.round(steps)) * self.slab_mm <= PLANE_TOLERANCE_MM))

    def region(self, structure: Structure) -> SubvoxelMask:
        """The structure on the fine grid (partial volumes, boundary planes).

        Raises
        ------
        ContourError
            When the structure has no closed contour.
        """
        if not structure.is_volume:
            raise ContourError(
                "has no closed contours (not a volume)",
                path=structure.source or None,
                structure=structure.name,
            )
        fraction = structure.fraction_mask(self.grid)
        return SubvoxelMask.from_fraction(
            fraction, self.spacing_mm, slabs=self.is_on_slabs(structure)
        )

    # ------------------------------------------------------------------ structures out
    def slabs_off_ct(self, region: SubvoxelMask) -> int:
        """How many slab centres without a CT slice ``region`` crosses (not written)."""
        return sum(bool(np.any(region.section_distance(int(k)) < 0)) for k in self.off_ct_k)

    def contours(self, region: SubvoxelMask) -> list[np.ndarray]:
        """Closed planar contours (LPS mm) of ``region`` on the CT slices."""
        if region.shape != self.grid.shape:
            raise GeometryError(f"region {region.shape} is not on this workspace {self.grid.shape}")
        out = []
        x0, y0, _ = self.grid.origin_mm
        h = self.spacing_mm[1]
        for z, k in zip(self.slice_z_mm, self.slice_k, strict=True):
            distance = region.section_distance(int(k))
            if not np.any(distance < 0):
                continue
            for ij in zero_contours(distance / h):
                pts = np.column_stack([x0 + ij[:, 0] * h, y0 + ij[:, 1] * h, np.full(len(ij), z)])
                out.append(pts)
        return out

    def structure(
        self,
        region: SubvoxelMask,
        name: str,
        *,
        interpreted_type: str = "ORGAN",
        color: tuple[int, int, int] | None = None,
        frame_of_reference_uid: str = "",
    ) -> Structure:
        """A :class:`Structure` outlining ``region`` on the CT slices.

        Raises
        ------
        ContourError
            When nothing of the region crosses a CT slice.
        """
        contours = self.contours(region)
        if not contours:
            raise ContourError("is empty: no contour on any CT slice", structure=name)
        return Structure(
            name=name,
            contours=tuple(Contour(c) for c in contours),
            interpreted_type=interpreted_type,
            color=color,
            frame_of_reference_uid=frame_of_reference_uid,
            slice_spacing_mm=self.slab_mm,
        )


def zero_contours(distance: np.ndarray, simplify_px: float = SIMPLIFY_PX) -> list[np.ndarray]:
    """Closed polygons (pixel indices ``(i, j)``) where a signed distance field is zero.

    Marching squares (``contourpy``) on ``-distance`` at level 0, with a border outside so
    every loop closes; repeated vertices dropped, Douglas-Peucker simplification
    (``simplify_px`` pixels), collinear vertices removed; loops of fewer than 3 vertices
    or smaller than :data:`MIN_LOOP_PX` pixels dropped (slivers where a face of the region
    runs along the slice).
    """
    z = np.pad(-np.asarray(distance, dtype=float), 1, constant_values=-1.0)
    gen = contourpy.contour_generator(z=z, name="serial", line_type="SeparateCode")
    lines, _codes = gen.lines(0.0)
    loops = []
    for line in lines:
        xy = np.asarray(line, dtype=float)[:-1] - 1.0
        xy = xy[np.any(xy != np.roll(xy, 1, axis=0), axis=1)]
        if len(xy) < 3:
            continue
        if simplify_px > 0:
            xy = simplify(xy, simplify_px)
        xy = remove_collinear(xy)
        if len(xy) >= 3 and abs(signed_area(xy)) >= MIN_LOOP_PX:
            loops.append(xy)
    return loops
