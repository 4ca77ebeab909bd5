"""Volumetric agreement of two masks: Dice, Jaccard, volumes, centroid distance.

Conventions
-----------
* Voxel counts on one grid: a voxel is in or out (rasterise structures with
  :meth:`rtplan.structure.Structure.binary_mask`, i.e. at least half inside).
* Volumes in cc are ``count x voxel volume``; ``spacing_mm`` is in array order
  ``(slice, row, column)``.
* Both masks empty: Dice and Jaccard are NaN (nothing to agree on).  One empty: 0.
  No true-negative based metric is offered: it depends on the field of view.
* Centroids are the mean voxel-centre positions (mm, relative to voxel ``[0, 0, 0]``);
  the centroid distance of an empty mask is NaN.
"""

from __future__ import annotations

import numpy as np

from rtplan.agreement.surface import check_masks
from rtplan.agreement.surfels import bounding_box


def _counts(mask_a: np.ndarray, mask_b: np.ndarray) -> tuple[int, int, int]:
    """``(|A|, |B|, |A & B|)``, counted inside the joint bounding box."""
    check_masks([mask_a, mask_b], (1.0, 1.0, 1.0))
    boxes = [b for b in (bounding_box(mask_a), bounding_box(mask_b)) if b is not None]
    if not boxes:
        return 0, 0, 0
    lo = np.min([b[0] for b in boxes], axis=0)
    hi = np.max([b[1] for b in boxes], axis=0)
    window = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    a, b = mask_a[window], mask_b[window]
    return int(np.count_nonzero(a)), int(np.count_nonzero(b)), int(np.count_nonzero(a & b))


def dice(mask_a: np.ndarray, mask_b: np.ndarray) -> float:
    """Dice similarity coefficient ``2 |A & B| / (|A| + |B|)``; NaN when both are empty.

    Examples
    --------
    >>> a = np.zeros((1, 4, 4), bool); a[0, :2] = True
    >>> b = np.zeros((1, 4, 4), bool); b[0, 1:3] = True
    >>> dice(a, b)
    0.5
    """
    na, nb, both = _counts(mask_a, mask_b)
    return np.nan if na + nb == 0 else 2.0 * both / (na + nb)


def jaccard(mask_a: np.ndarray, mask_b: np.ndarray) -> float:
    """Jaccard index ``|A & B| / |A | B|``; NaN when both are empty."""
    na, nb, both = _counts(mask_a, mask_b)
    union = na + nb - both
    return np.nan if union == 0 else both / union


def volume_cc(mask: np.ndarray, spacing_mm) -> float:
    """Volume (cc) of a mask: voxel count x voxel volume.

    Examples
    --------
    >>> volume_cc(np.ones((4, 10, 10), bool), (2.5, 1.0, 1.0))
    1.0
    """
    check_masks([mask], spacing_mm)
    return float(np.count_nonzero(mask) * np.prod(spacing_mm) / 1000.0)


def centroid_mm(mask: np.ndarray, spacing_mm) -> np.ndarray:
    """Centroid (mm, array-axis order, relative to voxel ``[0, 0, 0]``); NaN if empty."""
    spacing = check_masks([mask], spacing_mm)
    n = np.count_nonzero(mask)
    if n == 0:
        return np.full(3, np.nan)
    centre = []
    for axis in range(3):
        profile = np.count_nonzero(mask, axis=tuple(a for a in range(3) if a != axis))
        centre.append(np.dot(profile, np.arange(mask.shape[axis])) / n)
    return np.asarray(centre) * spacing


def centroid_distance_mm(mask_a: np.ndarray, mask_b: np.ndarray, spacing_mm) -> float:
    """Distance (mm) between the two centroids; NaN if either mask is empty."""
    check_masks([mask_a, mask_b], spacing_mm)
    return float(np.linalg.norm(centroid_mm(mask_a, spacing_mm) - centroid_mm(mask_b, spacing_mm)))


def volume_ratio(volume_a_cc: float, volume_b_cc: float) -> float:
    """``V_B / V_A``: NaN when both are zero, ``inf`` when only ``V_A`` is."""
    if volume_a_cc == 0:
        return np.nan if volume_b_cc == 0 else np.inf
    return volume_b_cc / volume_a_cc
