"""Added path length (Vaassen et al. 2020): contour a reviewer would have to draw.

Conventions
-----------
* Per axial slice (array axis 0): the slice is a 2-D image and its contour is the
  marching-squares contour on the pixel-corner lattice of :mod:`rtplan.agreement.surfels`
  (each contour point carries the length, in mm, of its segments -- not a pixel count,
  so diagonal runs are not under-counted).
* A contour point of the **reference** (the final, edited contour) counts as *added*
  when no contour point of the **test** contour (the initial one) on the same slice lies
  within ``tolerance_mm`` in-plane (exact lattice distance, ``<=`` tolerance counts as
  present).  With tolerance 0 only coincident corners count as present.
* A slice contoured only in the reference adds its whole perimeter; a slice contoured
  only in the test adds nothing.  Through-plane (cranio-caudal) errors show up only as
  such whole slices: APL is a 2-D metric, report it next to the 3-D ones.
* ``percent`` is the APL as a share of the reference contour's total path length.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rtplan.agreement.surface import (
    _check_tolerance,
    check_masks,
    lattice_offsets,
    nearest_on_lattice,
)
from rtplan.agreement.surfels import bounding_box, contour_length_table, neighbour_codes


@dataclass(frozen=True)
class AddedPathLength:
    """Added path length of a test contour relative to a reference.

    Attributes
    ----------
    per_slice_mm : numpy.ndarray, shape (K,)
        Added length (mm) on every slice of the grid.
    reference_path_mm : float
        Total contour length (mm) of the reference over all slices.
    tolerance_mm : float
        The in-plane tolerance used.
    """

    per_slice_mm: np.ndarray
    reference_path_mm: float
    tolerance_mm: float

    @property
    def total_mm(self) -> float:
        """Added path length (mm) summed over slices."""
        return float(self.per_slice_mm.sum())

    @property
    def percent(self) -> float:
        """Added path length as % of the reference path length (NaN if none)."""
        if self.reference_path_mm == 0:
            return np.nan
        return 100.0 * self.total_mm / self.reference_path_mm

    @property
    def slices_added(self) -> int:
        """Number of slices with some added path."""
        return int(np.count_nonzero(self.per_slice_mm > 0))


class SliceContourLattice:
    """Masks of one grid prepared for added-path-length queries at one tolerance.

    Parameters
    ----------
    masks : sequence of numpy.ndarray of bool
        Masks of one shape, array order ``[k, j, i]``.
    spacing_mm : sequence of 3 float
        Voxel spacing (mm) in array order; only the in-plane part is used.
    tolerance_mm : float
        In-plane tolerance (mm).
    """

    def __init__(self, masks, spacing_mm, tolerance_mm: float = 0.0):
        spacing = check_masks(masks, spacing_mm)
        _check_tolerance(tolerance_mm)
        self.tolerance_mm = float(tolerance_mm)
        self._n_slices = masks[0].shape[0]
        offsets, self._lengths = lattice_offsets(spacing[1:], max_distance_mm=tolerance_mm, ndim=2)
        reach = np.abs(offsets).max(axis=0)
        boxes = [b for b in (bounding_box(m) for m in masks) if b is not None]
        self._contours = []
        if not boxes:
            self._contours = [(np.zeros(0, bool), np.zeros(0, np.int64), np.zeros(0))] * len(masks)
            return
        lo = np.min([b[0] for b in boxes], axis=0)
        hi = np.max([b[1] for b in boxes], axis=0)
        window = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        pad = [(0, 0), (reach[0], reach[0]), (reach[1], reach[1])]
        shape = (int(hi[0] - lo[0]),) + tuple(
            int(h - s + 2 * r + 1) for s, h, r in zip(lo[1:], hi[1:], reach, strict=True)
        )
        self._k0, self._slice_size = int(lo[0]), shape[1] * shape[2]
        self._flat_offsets = offsets @ np.array([shape[2], 1])
        table = contour_length_table(spacing[1:])
        for m in masks:
            codes = neighbour_codes(np.pad(m[window], pad), axes=(1, 2)).ravel()
            border = (codes != 0) & (codes != 15)
            flat = np.flatnonzero(border)
            self._contours.append((border, flat, table[codes[flat]]))

    def added(self, reference: int, test: int) -> AddedPathLength:
        """Added path length of mask ``test`` relative to mask ``reference``."""
        _, ref_flat, ref_length = self._contours[reference]
        test_border, test_flat, _ = self._contours[test]
        per_slice = np.zeros(self._n_slices)
        if len(ref_flat):
            if len(test_flat):
                d, _ = nearest_on_lattice(ref_flat, test_border, self._flat_offsets, self._lengths)
                added = np.isnan(d)
            else:
                added = np.ones(len(ref_flat), bool)
            k = ref_flat[added] // self._slice_size + self._k0
            per_slice += np.bincount(k, weights=ref_length[added], minlength=self._n_slices)
        return AddedPathLength(per_slice, float(ref_length.sum()), self.tolerance_mm)


def added_path_length(
    reference: np.ndarray, test: np.ndarray, spacing_mm, tolerance_mm: float = 0.0
) -> AddedPathLength:
    """Added path length (mm, per slice) of ``test`` relative to ``reference``.

    Parameters
    ----------
    reference : numpy.ndarray of bool, shape (K, J, I)
        The final (edited / reference) segmentation.
    test : numpy.ndarray of bool, shape (K, J, I)
        The initial (automatic / observer) segmentation.
    spacing_mm : sequence of 3 float
        Voxel spacing (mm) in array order; slices are along axis 0.
    tolerance_mm : float
        In-plane distance (mm) within which a reference contour point counts as present.

    Returns
    -------
    AddedPathLength

    Examples
    --------
    A 10 x 10 pixel square (1 mm pixels) on one slice against nothing adds its whole
    contour: four straight 9 mm runs plus four corner cuts of sqrt(0.5) mm; against
    itself it adds nothing:

    >>> ref = np.zeros((1, 12, 12), bool); ref[0, 1:11, 1:11] = True
    >>> round(added_path_length(ref, np.zeros_like(ref), (3.0, 1.0, 1.0)).total_mm, 4)
    38.8284
    >>> added_path_length(ref, ref, (3.0, 1.0, 1.0)).total_mm
    0.0
    """
    return SliceContourLattice([reference, test], spacing_mm, tolerance_mm).added(0, 1)
