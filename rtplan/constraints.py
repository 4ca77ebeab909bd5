"""Dose-volume constraints and their evaluation against a DVH.

A :class:`Constraint` reads like a line of a planning protocol::

    Bag_Bowel   V45Gy < 195 cc        mandatory   (Kavanagh 2010, QUANTEC)
    PTV         D95% >= 95 %Rx        mandatory
    Femur       Dmean < 37 Gy         mandatory   (Casey 2021)

Metric grammar (a subset of the DVH metric grammar, units in the name)
----------------------------------------------------------------------
``Dmean``, ``Dmin``, ``Dmax``
    mean, minimum, maximum dose (Gy).
``D<x>%``, ``D<x>cc``
    dose (Gy) received by the hottest ``x`` % of the volume / ``x`` cc (e.g. ``D95%``, ``D2cc``,
    ``D0.03cc``).
``V<x>Gy``, ``V<x>Gy%``
    volume receiving at least ``x`` Gy, in cc / in % of the structure volume.
``V<x>%Rx``
    volume (% of the structure) receiving at least ``x`` % of the prescription.

Units of a constraint's limit: ``Gy`` or ``%Rx`` (percent of the prescription) for dose
metrics, ``cc`` for ``V<x>Gy``, ``%`` for ``V<x>Gy%`` and ``V<x>%Rx``.

Verdicts
--------
``pass``
    the value meets the limit (``<`` and ``>`` are strict, ``<=`` and ``>=`` are not;
    no tolerance is added).
``acceptable``
    the value misses the limit but meets the constraint's second, looser limit
    (``acceptable``, the "acceptable variation" of trial protocols).
``fail``
    the value misses every limit.
``not evaluated``
    the constraint could not be evaluated (structure absent); the reason is given.

``margin`` says how far the value is from the limit, in the limit's unit: positive is
headroom, negative is by how much the limit is exceeded (``limit - value`` for ``<``/``<=``,
``value - limit`` for ``>``/``>=``).  ``margin_pct`` is that margin as a percent of the limit.

Dose basis
----------
A constraint's doses (its limit when it is a dose, the ``x`` of ``V<x>Gy``) are either
``physical`` doses for the protocol's fractionation (the default), or ``eqd2`` doses
(equivalent dose in 2 Gy fractions).  :func:`evaluate_constraint` is given the DVH on the
basis it should use and a ``dose_to_basis`` function that maps the constraint's own dose
numbers onto that basis (identity when nothing is converted); see :mod:`rtplan.check`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol as TypingProtocol

from rtplan.errors import InputError

COMPARISONS = ("<", "<=", ">", ">=")
PRIORITIES = ("mandatory", "optimal")
DOSE_BASES = ("physical", "eqd2")
VERDICTS = ("pass", "acceptable", "fail", "not evaluated")

_NUMBER = r"(\d+(?:\.\d+)?)"
_METRIC_RE = re.compile(
    rf"^(?:D(?P<stat>mean|min|max)"
    rf"|D{_NUMBER}(?P<vunit>%|cc)"
    rf"|V{_NUMBER}(?P<dunit>Gy%|Gy|%Rx))$"
)


def _fmt(x: float) -> str:
    """A number as the shortest exact-enough text for a metric string (no exponent)."""
    text = f"{x:.6f}".rstrip("0").rstrip(".")
    return text or "0"


@dataclass(frozen=True)
class Metric:
    """A parsed DVH metric string.

    Attributes
    ----------
    text : str
        The metric as written (``"V45Gy"``).
    kind : str
        ``"dose"`` (a D-metric, in Gy) or ``"volume"`` (a V-metric).
    stat : str or None
        ``"mean"``, ``"min"`` or ``"max"`` for ``Dmean``/``Dmin``/``Dmax``.
    volume : float or None
        The ``x`` of ``D<x>%`` / ``D<x>cc``; ``volume_unit`` is ``"%"`` or ``"cc"``.
    dose : float or None
        The ``x`` of ``V<x>Gy``, ``V<x>Gy%`` (Gy) or ``V<x>%Rx`` (% of prescription);
        ``dose_unit`` is ``"Gy"`` or ``"%Rx"``.
    result_unit : str
        Unit of the metric's value: ``"Gy"``, ``"cc"`` or ``"%"``.
    """

    text: str
    kind: str
    stat: str | None = None
    volume: float | None = None
    volume_unit: str | None = None
    dose: float | None = None
    dose_unit: str | None = None
    result_unit: str = "Gy"

    @classmethod
    def parse(cls, text: str) -> Metric:
        """Parse ``text``; a malformed metric raises :class:`InputError`.

        Examples
        --------
        >>> Metric.parse("V45Gy").result_unit
        'cc'
        >>> Metric.parse("V95%Rx").dose, Metric.parse("D0.03cc").volume
        (95.0, 0.03)
        """
        m = _METRIC_RE.match(str(text).strip())
        if m is None:
            raise InputError(
                f"malformed DVH metric '{text}' (expected Dmean, Dmin, Dmax, D<x>%, D<x>cc, "
                "V<x>Gy, V<x>Gy% or V<x>%Rx)"
            )
        g = m.groups()
        if m.group("stat"):
            return cls(text, "dose", stat=m.group("stat"))
        if m.group("vunit"):
            volume = float(g[1])
            if m.group("vunit") == "%" and volume > 100:
                raise InputError(f"DVH metric '{text}': volume above 100%")
            return cls(text, "dose", volume=volume, volume_unit=m.group("vunit"))
        dunit = m.group("dunit")
        return cls(
            text,
            "volume",
            dose=float(g[3]),
            dose_unit="%Rx" if dunit == "%Rx" else "Gy",
            result_unit="cc" if dunit == "Gy" else "%",
        )

    @property
    def uses_prescription(self) -> bool:
        """True for ``V<x>%Rx`` (needs the prescription dose)."""
        return self.dose_unit == "%Rx"

    def absolute(self, *, rx_gy: float | None, dose_to_basis: Callable[[float], float]) -> str:
        """The metric with its dose threshold in Gy on the evaluation basis.

        ``V<x>%Rx`` becomes ``V<x/100*rx>Gy%``; ``V<x>Gy`` / ``V<x>Gy%`` have their ``x``
        mapped by ``dose_to_basis``; dose metrics are returned unchanged.
        """
        if self.kind == "dose":
            return self.text
        threshold = self.dose
        if self.uses_prescription:
            if rx_gy is None:
                raise InputError(f"metric '{self.text}' needs a prescription dose")
            threshold = self.dose / 100.0 * rx_gy
        suffix = "Gy" if self.result_unit == "cc" else "Gy%"
        return f"V{_fmt(dose_to_basis(threshold))}{suffix}"


def allowed_units(metric: Metric) -> tuple[str, ...]:
    """Units a constraint on ``metric`` may state its limit in."""
    if metric.kind == "dose":
        return ("Gy", "%Rx")
    return (metric.result_unit,)


@dataclass(frozen=True)
class Constraint:
    """One dose-volume constraint of a protocol.

    Parameters
    ----------
    id : str
        Unique name within the protocol (``"bowel_bag_v45gy"``).
    structure : str
        Key of the structure role it applies to (``"bowel_bag"``).
    metric : str
        DVH metric (see the module docstring).
    comparison : str
        One of ``<``, ``<=``, ``>``, ``>=``: the value must be *comparison* ``limit``.
    limit : float
        The limit, in ``unit``.
    unit : str
        ``Gy`` or ``%Rx`` for dose metrics, ``cc`` for ``V<x>Gy``, ``%`` for ``V<x>Gy%`` and
        ``V<x>%Rx``.
    priority : str
        ``mandatory`` (a miss fails the check) or ``optimal`` (reported only).
    source : str
        Key of the protocol source the numbers come from.
    acceptable : float, optional
        Second, looser limit ("acceptable variation"), same unit and comparison.
    dose_basis : str
        ``physical`` (doses at the protocol's fractionation) or ``eqd2``.
    note : str
        Free text shown in reports (endpoint, caveats).
    verification : str
        Verification status of the numbers, from the source (``verified``, ``partial``,
        ``not verified``).
    """

    id: str
    structure: str
    metric: str
    comparison: str
    limit: float
    unit: str
    priority: str
    source: str
    acceptable: float | None = None
    dose_basis: str = "physical"
    note: str = ""
    verification: str = "verified"

    def __post_init__(self):
        where = f"constraint '{self.id}'"
        m = Metric.parse(self.metric)
        if self.comparison not in COMPARISONS:
            raise InputError(f"{where}: comparison must be one of {COMPARISONS}")
        if self.priority not in PRIORITIES:
            raise InputError(f"{where}: priority must be one of {PRIORITIES}")
        if self.dose_basis not in DOSE_BASES:
            raise InputError(f"{where}: dose_basis must be one of {DOSE_BASES}")
        if self.unit not in allowed_units(m):
            raise InputError(
                f"{where}: unit '{self.unit}' does not fit metric '{self.metric}' "
                f"(use {' or '.join(allowed_units(m))})"
            )
        if self.is_relative and self.dose_basis != "physical":
            raise InputError(f"{where}: prescription-relative constraints are physical dose")
        for name in ("limit", "acceptable"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not math.isfinite(float(v))):
                raise InputError(f"{where}: {name} must be a finite number")
        if self.acceptable is not None and not self._looser(self.acceptable, self.limit):
            raise InputError(f"{where}: acceptable limit must be looser than the limit")

    def _looser(self, a: float, b: float) -> bool:
        return a > b if self.comparison in ("<", "<=") else a < b

    @property
    def parsed_metric(self) -> Metric:
        """The metric, parsed."""
        return Metric.parse(self.metric)

    @property
    def is_relative(self) -> bool:
        """True when the constraint depends on the prescription (``%Rx``)."""
        return self.unit == "%Rx" or self.parsed_metric.uses_prescription

    def text(self) -> str:
        """The constraint as one line, e.g. ``V45Gy < 195 cc``."""
        unit = "%" if self.unit == "%" else f" {self.unit}"
        return f"{self.metric} {self.comparison} {_fmt(self.limit)}{unit}"


class DVHLike(TypingProtocol):
    """What :func:`evaluate_constraint` needs from a DVH."""

    def metric(self, name: str) -> float: ...


@dataclass(frozen=True)
class ConstraintResult:
    """The outcome of one constraint on one structure.

    ``value``, ``limit`` and ``acceptable`` are on the evaluation basis (``basis``) and in
    ``unit``; ``protocol_limit`` is the limit as the protocol states it.  ``queried_metric``
    is the metric string actually asked of the DVH (thresholds in Gy on that basis).
    """

    constraint: Constraint
    structure_name: str | None
    verdict: str
    value: float | None = None
    unit: str = ""
    limit: float | None = None
    acceptable: float | None = None
    margin: float | None = None
    margin_pct: float | None = None
    basis: str = "physical"
    queried_metric: str = ""
    reason: str = ""

    @property
    def failed(self) -> bool:
        """True when a mandatory constraint failed (what makes ``rtplan check`` exit 1)."""
        return self.verdict == "fail" and self.constraint.priority == "mandatory"

    @property
    def protocol_limit(self) -> float:
        return self.constraint.limit


def _meets(value: float, comparison: str, limit: float) -> bool:
    return {
        "<": value < limit,
        "<=": value <= limit,
        ">": value > limit,
        ">=": value >= limit,
    }[comparison]


def not_evaluated(
    constraint: Constraint, reason: str, structure_name: str | None = None
) -> ConstraintResult:
    """A :class:`ConstraintResult` for a constraint that could not be evaluated."""
    return ConstraintResult(
        constraint, structure_name, "not evaluated", unit=constraint.unit, reason=reason
    )


def evaluate_constraint(
    constraint: Constraint,
    dvh: DVHLike,
    *,
    structure_name: str | None = None,
    rx_gy: float | None = None,
    dose_to_basis: Callable[[float], float] | None = None,
    basis: str = "physical",
) -> ConstraintResult:
    """Evaluate one constraint on a DVH.

    Parameters
    ----------
    constraint : Constraint
        What to check.
    dvh : DVH
        The structure's DVH, computed on the evaluation basis (physical dose, or a voxel-wise
        EQD2 grid); anything with ``metric(str) -> float`` in the DVH grammar's units.
    structure_name : str, optional
        Name of the structure in the plan (for the report).
    rx_gy : float, optional
        Prescription dose (Gy) of the target the constraint refers to; required for
        ``%Rx`` constraints.  ``%Rx`` constraints are always judged on physical dose.
    dose_to_basis : callable, optional
        Maps a dose number of the constraint (Gy) onto the DVH's basis, e.g. to EQD2.
        Identity when omitted.
    basis : str
        Label of the evaluation basis, for the report (``"physical"``, ``"EQD2 (a/b 3 Gy)"``).

    Returns
    -------
    ConstraintResult

    Examples
    --------
    >>> class Flat:  # 100 cc, every voxel at 50 Gy
    ...     def metric(self, name):
    ...         return {"V45Gy": 100.0, "Dmean": 50.0}[name]
    >>> c = Constraint("bb", "bowel_bag", "V45Gy", "<", 195.0, "cc", "mandatory", "quantec")
    >>> r = evaluate_constraint(c, Flat())
    >>> r.verdict, r.value, r.margin
    ('pass', 100.0, 95.0)
    """
    m = constraint.parsed_metric
    to_basis = dose_to_basis if dose_to_basis is not None else (lambda x: x)
    if constraint.is_relative:
        if rx_gy is None or not rx_gy > 0:
            raise InputError(
                f"constraint '{constraint.id}' is relative to the prescription, "
                "but no prescription dose is known"
            )
        to_basis = lambda x: x  # noqa: E731  (relative constraints stay physical)
        basis = "physical"
    query = m.absolute(rx_gy=rx_gy, dose_to_basis=to_basis)
    raw = float(dvh.metric(query))
    if not math.isfinite(raw):
        raise InputError(f"metric '{query}' of structure '{structure_name}' is not a number")

    limit, acceptable = constraint.limit, constraint.acceptable
    if m.kind == "dose":
        if constraint.unit == "%Rx":
            value = raw / rx_gy * 100.0
        else:
            value = raw
            limit = to_basis(limit)
            acceptable = None if acceptable is None else to_basis(acceptable)
    else:
        value = raw

    if _meets(value, constraint.comparison, limit):
        verdict = "pass"
    elif acceptable is not None and _meets(value, constraint.comparison, acceptable):
        verdict = "acceptable"
    else:
        verdict = "fail"
    margin = limit - value if constraint.comparison in ("<", "<=") else value - limit
    margin_pct = margin / abs(limit) * 100.0 if limit != 0 else None
    return ConstraintResult(
        constraint,
        structure_name,
        verdict,
        value=value,
        unit=constraint.unit,
        limit=limit,
        acceptable=acceptable,
        margin=margin,
        margin_pct=margin_pct,
        basis=basis,
        queried_metric=query,
    )
