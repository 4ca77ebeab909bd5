"""Booleans and cropping of regions on one grid: union, intersection, subtraction,
``avoid`` and ``within``.

A :class:`~rtplan.volumes.subvoxel.SubvoxelMask` stores, per boundary voxel, the signed
distance ``phi`` of the voxel centre from its plane.  Booleans act on ``phi`` as on signed
distance fields: union is the minimum, intersection the maximum, ``a - b`` is
``max(phi_a, -phi_b)``; each voxel keeps the plane (normal) of the operand that decides it.
Full and empty voxels (``phi = -inf / +inf``) combine exactly; a voxel cut by both operands
keeps one plane (the deciding one), so a crease through a voxel is resolved to within that
voxel.

Cropping with a margin first grows or shrinks the other structure
(:func:`rtplan.volumes.margins.apply_margin`).  A cropping structure that reaches the edge
of the grid (the body outline, a long bone) is taken to continue beyond it unchanged, so
shrinking it does not eat in from the edge of the grid (:func:`with_margin`).
"""

from __future__ import annotations

import math

import numpy as np

from rtplan.errors import GeometryError
from rtplan.volumes.margins import Margins, apply_margin
from rtplan.volumes.subvoxel import SubvoxelMask


def _check(regions: tuple[SubvoxelMask, ...]) -> None:
    if not regions:
        raise GeometryError("a boolean needs at least one region")
    first = regions[0]
    for r in regions[1:]:
        if r.shape != first.shape or not np.allclose(r.spacing_mm, first.spacing_mm):
            raise GeometryError(f"regions on different grids: {first.shape} and {r.shape}")


def _combine(regions, pick_max: bool) -> SubvoxelMask:
    _check(regions)
    phi = regions[0].phi.copy()
    normal = regions[0].normal.copy()
    for r in regions[1:]:
        wins = r.phi > phi if pick_max else r.phi < phi
        phi = np.where(wins, r.phi, phi)
        normal = np.where(wins[None], r.normal, normal)
    return SubvoxelMask(phi, normal, regions[0].spacing_mm).normalised()


def union(*regions: SubvoxelMask) -> SubvoxelMask:
    """Everything inside any of the regions."""
    return _combine(regions, pick_max=False)


def intersection(*regions: SubvoxelMask) -> SubvoxelMask:
    """What is inside every region."""
    return _combine(regions, pick_max=True)


def subtract(region: SubvoxelMask, *others: SubvoxelMask) -> SubvoxelMask:
    """``region`` without what is inside any of ``others``."""
    if not others:
        return region
    return intersection(region, *(o.complement() for o in others))


def with_margin(region: SubvoxelMask, margins, direction=None) -> SubvoxelMask:
    """``region`` grown or shrunk, the region taken to continue beyond the grid's edge.

    The grid is first extended by the margin with copies of its edge voxels, so a
    structure cut by the edge of the grid (a long bone, the body) neither shrinks in from
    the edge nor misses what would grow in from beyond it.
    """
    m = Margins.parse(margins)
    if m.is_zero:
        return region
    pad = [int(math.ceil(m.largest_mm / h)) + 2 for h in region.spacing_mm]
    widths = [(p, p) for p in pad]
    grown = SubvoxelMask(
        np.pad(region.phi, widths, mode="edge"),
        np.pad(region.normal, [(0, 0), *widths], mode="edge"),
        region.spacing_mm,
    )
    out = apply_margin(grown, m, direction)
    return out.cropped(pad, np.array(pad) + np.array(region.shape))


def avoid(region: SubvoxelMask, obstacle: SubvoxelMask, margin_mm: float = 0.0) -> SubvoxelMask:
    """``region`` minus ``obstacle`` grown by ``margin_mm`` (negative: allowed overlap).

    Examples
    --------
    >>> a = SubvoxelMask.from_fraction(np.ones((3, 3, 8), np.float32), (1, 1, 1))
    >>> f = np.zeros((3, 3, 8), np.float32); f[:, :, 6:] = 1
    >>> b = SubvoxelMask.from_fraction(f, (1, 1, 1))
    >>> avoid(a, b, 2.0).volume_mm3  # columns 0..3 remain
    36.0
    """
    return subtract(region, with_margin(obstacle, Margins.isotropic(margin_mm)))


def within(region: SubvoxelMask, boundary: SubvoxelMask, margin_mm: float = 0.0) -> SubvoxelMask:
    """The part of ``region`` inside ``boundary`` grown by ``margin_mm`` (negative: a
    distance inside it, e.g. ``-3`` keeps 3 mm away from the skin surface)."""
    return intersection(region, with_margin(boundary, Margins.isotropic(margin_mm)))
