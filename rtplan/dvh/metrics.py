"""Metric strings and their evaluation on a :class:`~rtplan.dvh.histogram.DVH`.

Grammar (case-insensitive; numbers like ``95``, ``0.03``, ``47.5``)::

    Dmean | Dmin | Dmax            dose statistic, Gy
    D<v>%                          dose (Gy) covering at least v % of the volume
    D<v>cc                         dose (Gy) covering at least v cc
    ...with a trailing %Rx / Rx    the same dose in % of the prescription
                                   (Dmax%Rx, D2cc%Rx, D95%Rx)
    V<d>Gy                         volume (cc) receiving at least d Gy
    V<d>Gy%                        the same in % of the structure volume
    V<d>%Rx                        % of the volume receiving at least d % of the prescription
    V<d>%Rxcc                      the same in cc
    HI                             homogeneity index (ICRU 83): (D2% - D98%) / D50%
    PaddickCI                      Paddick conformity index at the prescription isodose:
    PaddickCI<d>Gy | PaddickCI<d>%Rx   TV_PIV^2 / (TV * PIV) at another isodose level

Conventions
-----------
* ``D<v>`` is the largest dose ``D`` such that at least ``v`` of the volume receives ``D``
  or more (the exact inverse of the cumulative curve).  ``D0%`` = Dmax, ``D100%`` = Dmin.
* A structure that extends outside the dose grid (``outside_dose_cc > 0``) has unknown
  dose there: every dose-dependent metric is NaN with a note, unless the part outside is
  within the DVH's tolerance (``outside_tolerance_cc``, set by
  :func:`rtplan.dvh.compute.compute`: 0.1 % of the structure and at most 1 cc by
  default; the DVH carries a flag saying so) or ``allow_outside=True``; then it is
  evaluated over the dosed part alone (percentages refer to the dosed volume).  The
  missing part is never given 0 Gy.
* ``D<v>cc`` with ``v`` above the structure volume is NaN with a note.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from rtplan.dvh.histogram import DVH
from rtplan.errors import InputError

_NUM = r"(\d+(?:\.\d*)?|\.\d+)"
_PATTERNS = [
    ("dstat", re.compile(r"^D(mean|min|max)(%?Rx)?$", re.I)),
    ("dvol", re.compile(rf"^D{_NUM}(%|cc)(%?Rx)?$", re.I)),
    ("vgy", re.compile(rf"^V{_NUM}Gy(%|cc)?$", re.I)),
    ("vrx", re.compile(rf"^V{_NUM}%Rx(%|cc)?$", re.I)),
    ("hi", re.compile(r"^HI$", re.I)),
    ("ci", re.compile(rf"^PaddickCI(?:{_NUM}(Gy|%Rx))?$", re.I)),
]

_EXAMPLES = "Dmean, Dmax, D95%, D2cc, D0.03cc, D95%Rx, V20Gy, V20Gy%, V95%Rx, HI, PaddickCI"


@dataclass(frozen=True)
class Metric:
    """A parsed metric string.

    Attributes
    ----------
    text : str
        The string as given.
    kind : str
        ``dstat``, ``dvol``, ``vgy``, ``vrx``, ``hi`` or ``ci``.
    number : float or None
        The number in the string (volume for ``dvol``, dose for ``vgy``/``vrx``/``ci``).
    statistic : str
        ``mean``/``min``/``max`` for ``dstat``.
    volume_unit : str
        ``%`` or ``cc`` (``dvol``).
    level_unit : str
        ``Gy`` or ``%Rx`` (``ci`` with an explicit level).
    relative : bool
        Dose given in % of the prescription (``...%Rx``).
    unit : str
        Unit of the result: ``Gy``, ``%Rx``, ``cc``, ``%`` or ``1``.
    """

    text: str
    kind: str
    number: float | None = None
    statistic: str = ""
    volume_unit: str = ""
    level_unit: str = ""
    relative: bool = False
    unit: str = ""

    @property
    def needs_prescription(self) -> bool:
        """True when the metric refers to the prescription dose."""
        return (
            self.relative or self.kind == "vrx" or (self.kind == "ci" and self.level_unit != "Gy")
        )


@dataclass(frozen=True)
class MetricValue:
    """The value of a metric and, when it is NaN, why."""

    metric: Metric
    value: float
    note: str | None = None

    @property
    def unit(self) -> str:
        return self.metric.unit


def parse(text: str) -> Metric:
    """Parse a metric string (grammar in the module docstring).

    Parameters
    ----------
    text : str
        e.g. ``"D95%"``, ``"V20Gy%"``, ``"Dmean"``.

    Returns
    -------
    Metric

    Raises
    ------
    InputError
        If the string is not a metric.

    Examples
    --------
    >>> parse("V20Gy%").unit, parse("D2cc").number, parse("D95%Rx").unit
    ('%', 2.0, '%Rx')
    """
    s = str(text).strip()
    for kind, pattern in _PATTERNS:
        m = pattern.match(s)
        if not m:
            continue
        if kind == "dstat":
            rel = bool(m.group(2))
            return Metric(
                s, kind, statistic=m.group(1).lower(), relative=rel, unit="%Rx" if rel else "Gy"
            )
        if kind == "dvol":
            vol_unit = m.group(2).lower()
            number = float(m.group(1))
            if vol_unit == "%" and number > 100:
                raise InputError(f"malformed metric '{s}': a volume percentage above 100")
            rel = bool(m.group(3))
            return Metric(
                s,
                kind,
                number=number,
                volume_unit=vol_unit,
                relative=rel,
                unit="%Rx" if rel else "Gy",
            )
        if kind == "vgy":
            return Metric(
                s, kind, number=float(m.group(1)), unit="%" if m.group(2) == "%" else "cc"
            )
        if kind == "vrx":
            return Metric(
                s,
                kind,
                number=float(m.group(1)),
                unit="cc" if (m.group(2) or "").lower() == "cc" else "%",
            )
        if kind == "hi":
            return Metric(s, kind, unit="1")
        level_unit = "" if m.group(2) is None else ("Gy" if m.group(2).lower() == "gy" else "%Rx")
        number = None if m.group(1) is None else float(m.group(1))
        return Metric(s, kind, number=number, level_unit=level_unit, unit="1")
    raise InputError(f"malformed metric '{s}': expected a form such as {_EXAMPLES}")


def evaluate(
    dvh: DVH,
    text: str | Metric,
    *,
    prescription_gy: float | None = None,
    isodose_volume_cc: Callable[[float], float] | None = None,
    allow_outside: bool = False,
) -> MetricValue:
    """Evaluate a metric on a DVH.

    Parameters
    ----------
    dvh : DVH
        The structure's DVH.
    text : str or Metric
        The metric (grammar in the module docstring).
    prescription_gy : float, optional
        Prescription dose for ``%Rx`` forms; default ``dvh.prescription_gy``.
    isodose_volume_cc : callable, optional
        ``level_gy -> cc``: volume of the patient (e.g. the EXTERNAL structure) receiving
        at least ``level_gy``; needed by ``PaddickCI``.
    allow_outside : bool
        Evaluate over the dosed part when the structure extends outside the dose grid
        beyond ``dvh.outside_tolerance_cc`` (default: such metrics are NaN with a note).

    Returns
    -------
    MetricValue
        Value in :attr:`Metric.unit`; NaN with a ``note`` when undefined.

    Raises
    ------
    InputError
        If the string is malformed, or a prescription / isodose volume it needs is missing.

    Examples
    --------
    >>> dvh = DVH([15.0], [2.0], [5.0])
    >>> evaluate(dvh, "V12.5Gy%").value
    75.0
    >>> evaluate(dvh, "D3cc").note
    'D3cc: the structure (2 cc) is smaller than 3 cc'
    """
    m = text if isinstance(text, Metric) else parse(text)
    rx = dvh.prescription_gy if prescription_gy is None else prescription_gy
    if m.needs_prescription and (rx is None or not rx > 0):
        raise InputError(
            f"metric '{m.text}' needs a prescription dose and none is known",
            structure=dvh.name or None,
        )
    tol = 1e-6 * max(dvh.volume_cc, 1e-3)
    if dvh.outside_dose_cc > max(tol, dvh.outside_tolerance_cc) and not allow_outside:
        return MetricValue(
            m,
            float("nan"),
            f"{m.text}: {dvh.outside_dose_cc:.4g} cc of the structure lie outside the dose grid",
        )
    if dvh.dosed_volume_cc <= 0:
        return MetricValue(m, float("nan"), f"{m.text}: no part of the structure has dose")
    if m.kind == "ci":
        return _paddick(dvh, m, rx, isodose_volume_cc)
    return _EVALUATORS[m.kind](dvh, m, rx)


def _as_dose(m: Metric, value_gy: float, rx: float | None) -> float:
    """A dose in the metric's unit: Gy, or % of the prescription."""
    return 100.0 * value_gy / rx if m.relative else value_gy


def _dose_statistic(dvh: DVH, m: Metric, rx: float | None) -> MetricValue:
    """``Dmean``, ``Dmin``, ``Dmax`` (Gy or %Rx)."""
    value = {"mean": dvh.mean_gy, "min": dvh.min_gy, "max": dvh.max_gy}[m.statistic]
    return MetricValue(m, _as_dose(m, value, rx))


def _dose_at_volume(dvh: DVH, m: Metric, rx: float | None) -> MetricValue:
    """``D95%``, ``D2cc``: the minimum dose to the hottest volume (NaN if larger than the
    structure)."""
    total = dvh.dosed_volume_cc
    vol = m.number * total / 100.0 if m.volume_unit == "%" else m.number
    if vol > total * (1 + 1e-9):
        return MetricValue(
            m,
            float("nan"),
            f"{m.text}: the structure ({total:.4g} cc) is smaller than {m.number:g} cc",
        )
    return MetricValue(m, _as_dose(m, dvh.dose_at_volume_gy(min(vol, total)), rx))


def _volume_at_dose(dvh: DVH, m: Metric, rx: float | None) -> MetricValue:
    """``V20Gy``, ``V95%Rx`` (cc or % of the structure)."""
    level = m.number if m.kind == "vgy" else m.number * rx / 100.0
    cc = dvh.volume_at_dose_cc(level)
    return MetricValue(m, 100.0 * cc / dvh.dosed_volume_cc if m.unit == "%" else cc)


def _homogeneity(dvh: DVH, m: Metric, rx: float | None) -> MetricValue:
    """``HI`` = (D2% - D98%) / D50%."""
    total = dvh.dosed_volume_cc
    d2, d50, d98 = (dvh.dose_at_volume_gy(f * total) for f in (0.02, 0.5, 0.98))
    if not d50 > 0:
        return MetricValue(m, float("nan"), "HI: D50% is 0 Gy")
    return MetricValue(m, (d2 - d98) / d50)


_EVALUATORS = {
    "dstat": _dose_statistic,
    "dvol": _dose_at_volume,
    "vgy": _volume_at_dose,
    "vrx": _volume_at_dose,
    "hi": _homogeneity,
}


def _paddick(dvh: DVH, m: Metric, rx: float | None, isodose_volume_cc) -> MetricValue:
    """Paddick conformity index TV_PIV^2 / (TV x PIV) at the prescription (or given) level."""
    if isodose_volume_cc is None:
        raise InputError(
            f"metric '{m.text}' needs the volume of the isodose in the patient",
            structure=dvh.name or None,
        )
    if m.number is None:
        level = rx
        if level is None:
            raise InputError(
                f"metric '{m.text}' needs a prescription dose and none is known",
                structure=dvh.name or None,
            )
    else:
        level = m.number if m.level_unit == "Gy" else m.number * rx / 100.0
    piv = float(isodose_volume_cc(level))
    tv_piv = dvh.volume_at_dose_cc(level)
    if not piv > 0:
        return MetricValue(
            m,
            0.0 if tv_piv == 0 else float("nan"),
            None if tv_piv == 0 else f"{m.text}: isodose volume is 0 cc",
        )
    return MetricValue(m, float(tv_piv**2 / (dvh.dosed_volume_cc * piv)))
