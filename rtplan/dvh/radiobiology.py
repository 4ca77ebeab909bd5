"""Linear-quadratic (LQ) radiobiology: BED and EQD2, for single doses and whole dose grids.

Model (textbook LQ, Fowler, Br J Radiol 1989;62:679), for a total dose ``D`` (Gy) given in
``n`` equal fractions of ``d = D / n`` Gy to a tissue of ratio ``alpha_beta_gy``:

* ``BED  = D * (1 + d / alpha_beta_gy)``
* ``EQD2 = BED / (1 + 2 / alpha_beta_gy) = D * (d + alpha_beta_gy) / (2 + alpha_beta_gy)``

No time factor (repopulation) and no incomplete repair between fractions; the LQ model's
validity above about 8 to 10 Gy per fraction is debated.  The alpha/beta ratio is always an
explicit, keyword-only argument: tumour alpha/beta for sarcoma is uncertain (0.4 Gy for
liposarcoma in Thames et al. 1990), so rtplan never supplies a default.

Voxel-wise conversion (:func:`eqd2_dose`) treats each voxel as receiving its own total dose
in the plan's ``n`` equal fractions, i.e. ``d = D_voxel / n``.  The DVH is then computed on
the converted grid; this is the usual way to judge a hypofractionated plan against limits
stated for 2 Gy fractions.  Note that the mean of an EQD2 grid is not the EQD2 of the mean
dose (the conversion is non-linear), whereas dose and volume at a given quantile commute
with it (the conversion is monotone).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from rtplan.dose import Dose
from rtplan.errors import InputError


def _check_parameters(fractions, alpha_beta_gy) -> None:
    """Raise :class:`InputError` unless ``fractions`` > 0 and 0 < ``alpha_beta_gy`` < inf."""
    if isinstance(alpha_beta_gy, bool) or not isinstance(alpha_beta_gy, (int, float, np.number)):
        raise InputError(f"alpha/beta must be a number in Gy, got {alpha_beta_gy!r}")
    if not (math.isfinite(alpha_beta_gy) and alpha_beta_gy > 0):
        raise InputError(f"alpha/beta must be a positive number of Gy, got {alpha_beta_gy}")
    if isinstance(fractions, bool) or not isinstance(fractions, (int, float, np.number)):
        raise InputError(f"number of fractions must be a number, got {fractions!r}")
    if not (math.isfinite(fractions) and fractions > 0):
        raise InputError(f"number of fractions must be positive, got {fractions}")


def _as_dose(dose_gy):
    """The dose as float (scalar) or float array; negative or non-finite doses are errors."""
    arr = np.asarray(dose_gy, dtype=float)
    if not np.all(np.isfinite(arr)):
        raise InputError("dose must be finite (no NaN or infinite values)")
    if np.any(arr < 0):
        raise InputError(f"dose must not be negative, got minimum {float(arr.min())} Gy")
    return arr


def _unwrap(arr: np.ndarray, like):
    """A Python float when the input was a scalar, otherwise the array."""
    return float(arr) if np.ndim(like) == 0 else arr


def bed(dose_gy, fractions: float, *, alpha_beta_gy: float):
    """Biologically effective dose (Gy) of a total dose given in equal fractions.

    Parameters
    ----------
    dose_gy : float or array_like
        Total physical dose (Gy), one value or one per voxel.
    fractions : float
        Number of equal fractions the total is given in (> 0).
    alpha_beta_gy : float
        Alpha/beta ratio of the tissue (Gy), required: there is no default.

    Returns
    -------
    float or numpy.ndarray
        ``D * (1 + (D / n) / alpha_beta_gy)`` in Gy (Gy_alpha/beta), same shape as ``dose_gy``.

    Examples
    --------
    >>> round(bed(50.0, 25, alpha_beta_gy=3.0), 6)  # 50 Gy in 2 Gy fractions, late tissue
    83.333333
    >>> bed(30.0, 5, alpha_beta_gy=4.0) == bed(50.0, 25, alpha_beta_gy=4.0) == 75.0
    True
    """
    _check_parameters(fractions, alpha_beta_gy)
    d = _as_dose(dose_gy)
    return _unwrap(d * (1.0 + (d / fractions) / alpha_beta_gy), dose_gy)


def eqd2(dose_gy, fractions: float, *, alpha_beta_gy: float):
    """Equivalent dose in 2 Gy fractions (Gy) of a total dose given in equal fractions.

    Parameters
    ----------
    dose_gy : float or array_like
        Total physical dose (Gy), one value or one per voxel.
    fractions : float
        Number of equal fractions the total is given in (> 0).
    alpha_beta_gy : float
        Alpha/beta ratio of the tissue (Gy), required: there is no default.

    Returns
    -------
    float or numpy.ndarray
        ``D * (D / n + alpha_beta_gy) / (2 + alpha_beta_gy)`` in Gy, same shape as ``dose_gy``.

    Examples
    --------
    >>> eqd2(25.0, 5, alpha_beta_gy=3.0)  # 5 x 5 Gy, late tissue
    40.0
    >>> round(eqd2(50.4, 28, alpha_beta_gy=10.0), 3)
    49.56
    """
    _check_parameters(fractions, alpha_beta_gy)
    d = _as_dose(dose_gy)
    return _unwrap(d * (d / fractions + alpha_beta_gy) / (2.0 + alpha_beta_gy), dose_gy)


def physical_dose_for_eqd2(eqd2_gy, fractions: float, *, alpha_beta_gy: float):
    """Total physical dose (Gy) in ``fractions`` equal fractions that has the given EQD2.

    The inverse of :func:`eqd2` for a fixed number of fractions: the positive root of
    ``D**2 / n + alpha_beta_gy * D - EQD2 * (2 + alpha_beta_gy) = 0``.

    Parameters
    ----------
    eqd2_gy : float or array_like
        Equivalent dose in 2 Gy fractions (Gy, >= 0).
    fractions : float
        Number of equal fractions of the sought schedule (> 0).
    alpha_beta_gy : float
        Alpha/beta ratio (Gy), required.

    Returns
    -------
    float or numpy.ndarray
        Total physical dose in Gy.

    Examples
    --------
    >>> physical_dose_for_eqd2(50.0, 5, alpha_beta_gy=4.0)  # 30 Gy / 5 fx == 50 Gy / 25 fx
    30.0
    """
    _check_parameters(fractions, alpha_beta_gy)
    e = _as_dose(eqd2_gy)
    n, ab = float(fractions), float(alpha_beta_gy)
    c = e * (2.0 + ab)
    # Numerically stable positive root of D^2/n + ab D - c = 0.
    root = 2.0 * c / (ab + np.sqrt(ab * ab + 4.0 * c / n))
    return _unwrap(root, eqd2_gy)


def eqd2_dose(dose: Dose, fractions: float, *, alpha_beta_gy: float) -> Dose:
    """Voxel-wise EQD2 of a whole dose distribution, ready for a DVH.

    Each voxel's total dose ``D`` is taken as delivered in ``fractions`` equal fractions of
    ``D / fractions`` Gy, and replaced by its :func:`eqd2`.

    Parameters
    ----------
    dose : Dose
        Total physical dose of the plan (Gy).
    fractions : float
        Number of fractions the plan delivers ``dose`` in.
    alpha_beta_gy : float
        Alpha/beta ratio (Gy) of the tissue the converted grid will be used for, required.

    Returns
    -------
    Dose
        Same grid and identifiers, values in Gy EQD2, ``dose_type`` set to
        ``"EQD2 (alpha/beta = <value> Gy)"``.
    """
    values = eqd2(np.asarray(dose.values_gy, dtype=float), fractions, alpha_beta_gy=alpha_beta_gy)
    return dataclasses.replace(
        dose,
        values_gy=values,
        dose_type=f"EQD2 (alpha/beta = {alpha_beta_gy:g} Gy)",
        embedded_dvhs=(),
    )
