"""Consensus of several observers: STAPLE, majority vote, generalised conformity index.

Conventions
-----------
STAPLE (Warfield, Zou & Wells 2004, via SimpleITK's ``STAPLEImageFilter``)
    Binary STAPLE by expectation-maximisation: each observer ``j`` has a sensitivity
    ``p_j`` and specificity ``q_j``; every voxel gets the posterior probability ``W`` of
    being inside the true structure.  ITK starts from ``W`` = the mean vote, alternates
    M-step (``p``, ``q``) and E-step (``W``), and stops when no ``p_j`` or ``q_j`` moves by
    more than 1e-7.  The prior ``g`` is the mean fraction of voxels the observers mark
    (times ``confidence_weight``), so the estimates depend on the field of view.  rtplan fixes it: STAPLE runs on the observers' joint bounding box enlarged by
    ``margin_voxels`` on every side (clipped to the grid).  Outside that box every
    observer says "outside", and the voxel gets the probability STAPLE gives to such
    voxels.  The consensus is ``W >= threshold`` (0.5).  Specificities are dominated by
    the background of the box: compare them within one study only.
Majority vote
    A voxel is in when strictly more than half of the observers include it.
Generalised conformity index (Kouwenhoven et al. 2009)
    ``sum over observer pairs |A_i & A_j|  /  sum over pairs |A_i | A_j|``; NaN when
    every mask is empty.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from rtplan.agreement.surface import check_masks
from rtplan.agreement.surfels import bounding_box
from rtplan.errors import InputError

#: Voxels added on every side of the observers' joint bounding box for STAPLE.
STAPLE_MARGIN_VOXELS = 5


@dataclass(frozen=True)
class StapleResult:
    """STAPLE consensus of several observers.

    Attributes
    ----------
    probability : numpy.ndarray of float, shape of the masks
        Posterior probability that each voxel is inside.
    consensus : numpy.ndarray of bool
        ``probability >= threshold``.
    sensitivity, specificity : dict of str to float
        Per-observer estimates (on the STAPLE box).
    prior : float
        The prior ``g`` used (mean marked fraction in the box x confidence weight).
    iterations : int
        EM iterations until convergence.
    box : tuple of (tuple, tuple)
        ``(lo, hi)`` index bounds (``hi`` exclusive) of the box STAPLE ran on.
    threshold : float
        The probability threshold of ``consensus``.
    """

    probability: np.ndarray
    consensus: np.ndarray
    sensitivity: dict[str, float]
    specificity: dict[str, float]
    prior: float
    iterations: int
    box: tuple[tuple[int, ...], tuple[int, ...]]
    threshold: float


def _as_named(masks) -> dict[str, np.ndarray]:
    if isinstance(masks, Mapping):
        return dict(masks)
    return {str(i): m for i, m in enumerate(masks)}


def staple(
    masks: Mapping[str, np.ndarray] | Sequence[np.ndarray],
    threshold: float = 0.5,
    margin_voxels: int = STAPLE_MARGIN_VOXELS,
    confidence_weight: float = 1.0,
    max_iterations: int = 1000,
) -> StapleResult:
    """STAPLE consensus (module docstring) of two or more observers' masks.

    Parameters
    ----------
    masks : mapping of str to numpy.ndarray of bool (or a sequence)
        One mask per observer, one shape.
    threshold : float
        Consensus threshold on the posterior probability.
    margin_voxels : int
        Margin (voxels) around the joint bounding box that fixes the field of view.
    confidence_weight : float
        Multiplies the prior (SimpleITK ``ConfidenceWeight``).
    max_iterations : int
        Upper bound on EM iterations.

    Returns
    -------
    StapleResult

    Examples
    --------
    Three observers, two of whom agree, give the majority shape as consensus:

    >>> a = np.zeros((5, 10, 10), bool); a[1:4, 2:8, 2:8] = True
    >>> b = a.copy(); c = np.zeros_like(a); c[1:4, 2:8, 4:9] = True
    >>> r = staple({"A": a, "B": b, "C": c})
    >>> bool((r.consensus == a).all()), r.sensitivity["A"] > r.sensitivity["C"]
    (True, True)
    """
    import SimpleITK as sitk

    named = _as_named(masks)
    if len(named) < 2:
        raise InputError(f"STAPLE needs at least two observers, got {len(named)}")
    if not 0 < threshold < 1:
        raise InputError(f"STAPLE threshold must be between 0 and 1, got {threshold}")
    arrays = list(named.values())
    check_masks(arrays, (1.0, 1.0, 1.0))
    shape = arrays[0].shape
    boxes = [b for b in (bounding_box(m) for m in arrays) if b is not None]
    if not boxes:
        raise InputError("STAPLE of observers who all left the structure empty")
    lo = np.maximum(np.min([b[0] for b in boxes], axis=0) - margin_voxels, 0)
    hi = np.minimum(np.max([b[1] for b in boxes], axis=0) + margin_voxels, shape)
    window = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    images = [sitk.GetImageFromArray(m[window].astype(np.uint8)) for m in arrays]
    f = sitk.STAPLEImageFilter()
    f.SetForegroundValue(1.0)
    f.SetConfidenceWeight(confidence_weight)
    f.SetMaximumIterations(max_iterations)
    w_box = sitk.GetArrayFromImage(f.Execute(images)).astype(np.float64)
    p = np.asarray(f.GetSensitivity(), dtype=float)
    q = np.asarray(f.GetSpecificity(), dtype=float)
    prior = confidence_weight * float(np.mean([m[window].mean() for m in arrays]))
    # every observer says "outside": W = g prod(1-p) / (g prod(1-p) + (1-g) prod q)
    inside, outside = prior * np.prod(1 - p), (1 - prior) * np.prod(q)
    background = inside / (inside + outside) if inside + outside > 0 else 0.0
    probability = np.full(shape, background)
    probability[window] = w_box
    names = list(named)
    return StapleResult(
        probability=probability,
        consensus=probability >= threshold,
        sensitivity=dict(zip(names, p.tolist(), strict=True)),
        specificity=dict(zip(names, q.tolist(), strict=True)),
        prior=prior,
        iterations=int(f.GetElapsedIterations()),
        box=(tuple(int(v) for v in lo), tuple(int(v) for v in hi)),
        threshold=float(threshold),
    )


def majority_vote(masks: Mapping[str, np.ndarray] | Sequence[np.ndarray]) -> np.ndarray:
    """Voxels included by strictly more than half of the observers.

    Examples
    --------
    >>> m = [np.array([[[1, 1, 0]]], bool), np.array([[[1, 0, 0]]], bool), np.array([[[0, 1, 1]]], bool)]
    >>> majority_vote(m).astype(int).tolist()
    [[[1, 1, 0]]]
    """
    arrays = list(_as_named(masks).values())
    if not arrays:
        raise InputError("majority vote of no observers")
    check_masks(arrays, (1.0, 1.0, 1.0))
    votes = np.sum([m.astype(np.uint16) for m in arrays], axis=0)
    return 2 * votes > len(arrays)


def generalised_conformity_index(masks: Mapping[str, np.ndarray] | Sequence[np.ndarray]) -> float:
    """Generalised conformity index of Kouwenhoven et al. (2009).

    ``sum over pairs |A_i & A_j| / sum over pairs |A_i | A_j|``: 1 for identical
    delineations, 0 when no two observers overlap; NaN when all masks are empty.

    Examples
    --------
    >>> a = np.zeros((1, 1, 4), bool); a[..., :2] = True
    >>> b = np.zeros_like(a); b[..., 1:3] = True
    >>> generalised_conformity_index([a, a, b])  # (2 + 1 + 1) / (2 + 3 + 3)
    0.5
    """
    arrays = list(_as_named(masks).values())
    if len(arrays) < 2:
        raise InputError(f"conformity index needs at least two observers, got {len(arrays)}")
    check_masks(arrays, (1.0, 1.0, 1.0))
    counts = [int(np.count_nonzero(m)) for m in arrays]
    both = union = 0
    for i, j in combinations(range(len(arrays)), 2):
        shared = int(np.count_nonzero(arrays[i] & arrays[j]))
        both += shared
        union += counts[i] + counts[j] - shared
    return np.nan if union == 0 else both / union
