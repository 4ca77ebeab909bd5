"""Plan sums: several doses (e.g. phase 1 + boost) added on one grid.

Convention: every dose is resampled onto the common grid by trilinear interpolation
between its voxel centres, with the coverage rule of :mod:`rtplan.dosefield` (a dose
covers the box of its voxel centres widened by half a voxel).  Where one of the doses
does not reach, the sum is unknown: NaN by default, so that a DVH counts that part of a
structure as outside the dose grid; ``missing_gy`` substitutes a value instead (e.g. 0 Gy
for a boost dose computed on a small grid, when the user knows its dose there is zero).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rtplan.dose import Dose
from rtplan.dosefield import axial_field
from rtplan.errors import GeometryError, InputError
from rtplan.grid import Grid


def sum_doses(
    doses: Sequence[Dose], *, grid: Grid | None = None, missing_gy: float | None = None
) -> Dose:
    """Sum doses in Gy on a common grid.

    Parameters
    ----------
    doses : sequence of Dose
        Course doses (already multiplied by their fractions) in one frame of reference.
    grid : Grid, optional
        The common grid; default the first dose's grid.
    missing_gy : float, optional
        Dose assumed where a dose does not cover the common grid; default NaN (unknown).

    Returns
    -------
    Dose
        The sum; ``summation_type`` ``"PLAN_SUM"``, ``source`` the sources joined by ``+``.

    Raises
    ------
    InputError
        No doses.
    GeometryError
        Doses in different frames of reference.

    Examples
    --------
    >>> g = Grid((2, 2, 2), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    >>> total = sum_doses([Dose(np.full(g.shape, 50.0), g), Dose(np.full(g.shape, 10.0), g)])
    >>> float(total.values_gy.max())
    60.0
    """
    if not doses:
        raise InputError("a plan sum needs at least one dose")
    frames = {d.frame_of_reference_uid for d in doses if d.frame_of_reference_uid}
    if len(frames) > 1:
        raise GeometryError(
            "cannot sum doses in different frames of reference: "
            + ", ".join(f"{d.source or '?'} ({d.frame_of_reference_uid})" for d in doses)
        )
    target = doses[0].grid if grid is None else grid
    idx = np.indices(target.shape).reshape(3, -1).T
    points = target.index_to_world(idx)
    total = np.zeros(target.shape, dtype=float)
    for d in doses:
        if d.grid.same_as(target):
            values = np.asarray(d.values_gy, dtype=float)
        else:
            field = axial_field(d)
            values = field.sample(points[:, 0], points[:, 1], points[:, 2]).reshape(target.shape)
            if missing_gy is not None:
                values = np.where(np.isnan(values), float(missing_gy), values)
        total += values
    return Dose(
        total,
        target,
        frame_of_reference_uid=next(iter(frames), ""),
        summation_type="PLAN_SUM",
        dose_type=doses[0].dose_type,
        source=" + ".join(d.source or "?" for d in doses),
    )
