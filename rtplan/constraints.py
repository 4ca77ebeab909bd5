"""Dose-volume constraints and their evaluation against a DVH.

A :class:`Constraint` reads like a line of a planning protocol::

    Bag_Bowel   V45Gy < 195 cc        mandatory   (Kavanagh 2010, QUANTEC)
    PTV         D95%Rx >= 95 %Rx      mandatory
    Femur       Dmean < 37 Gy         mandatory   (Casey 2021)

Metrics
-------
The DVH metric grammar of :mod:`rtplan.dvh.metrics` (``Dmean``, ``Dmax``, ``D95%``, ``D2cc``,
``D0.03cc``, ``V20Gy``, ``V20Gy%``, ``V95%Rx``, ``D95%Rx``, ``HI``).  A constraint's ``unit``
is the unit of its metric's value: ``Gy`` for absolute doses, ``%Rx`` for doses relative to
the prescription (``D95%Rx``), ``cc`` for ``V<x>Gy``, ``%`` for ``V<x>Gy%`` and ``V<x>%Rx``,
``1`` for ``HI``.  The Paddick conformity index needs the whole patient and is not a
constraint metric.

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
    the constraint could not be evaluated; ``reason`` says why (an optional structure is
    absent, or the metric is undefined, e.g. part of the structure lies outside the dose grid).

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
from collections.abc import Callable
from dataclasses import dataclass

from rtplan.dvh.histogram import DVH
from rtplan.dvh.metrics import Metric, evaluate, parse
from rtplan.errors import InputError

COMPARISONS = ("<", "<=", ">", ">=")
PRIORITIES = ("mandatory", "optimal")
DOSE_BASES = ("physical", "eqd2")
VERDICTS = ("pass", "acceptable", "fail", "not evaluated")
#: Metric kinds (of :func:`rtplan.dvh.metrics.parse`) a constraint may use.
CONSTRAINT_KINDS = ("dstat", "dvol", "vgy", "vrx", "hi")


def format_number(x: float) -> str:
    """A number as short text without exponent (``195``, ``0.03``, ``41.46``)."""
    text = f"{x:.6f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


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
        Unit of the metric's value (``Gy``, ``%Rx``, ``cc``, ``%`` or ``1``).
    priority : str
        ``mandatory`` (a miss fails the check) or ``optimal`` (reported only).
    source : str
        Key of the protocol source the numbers come from.
    acceptable : float, optional
        Second, looser limit ("acceptable variation"), same unit and comparison.
    dose_basis : str
        ``physical`` (doses delivered in ``reference_fractions``) or ``eqd2``.
    reference_fractions : int, optional
        For a ``physical`` constraint: the number of fractions its doses were observed in
        (e.g. 25 for limits from conventionally fractionated courses); default the
        protocol's.  A plan with other fractions is judged in EQD2 against these doses given
        in ``reference_fractions`` (:mod:`rtplan.check`).
    note : str
        Free text shown in reports (endpoint, caveats).
    verification : str
        Verification status of the numbers (``verified``, ``partial``, ``not verified``).
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
    reference_fractions: int | None = None

    def __post_init__(self):
        where = f"constraint '{self.id}'"
        try:
            m = parse(self.metric)
        except InputError as exc:
            raise InputError(f"{where}: {exc.problem}") from None
        if m.kind not in CONSTRAINT_KINDS:
            raise InputError(f"{where}: metric '{self.metric}' cannot be a constraint")
        if self.comparison not in COMPARISONS:
            raise InputError(f"{where}: comparison must be one of {COMPARISONS}")
        if self.priority not in PRIORITIES:
            raise InputError(f"{where}: priority must be one of {PRIORITIES}")
        if self.dose_basis not in DOSE_BASES:
            raise InputError(f"{where}: dose_basis must be one of {DOSE_BASES}")
        if self.unit != m.unit:
            raise InputError(
                f"{where}: unit '{self.unit}' does not fit metric '{self.metric}' (use '{m.unit}')"
            )
        if not self.is_absolute and self.dose_basis != "physical":
            raise InputError(f"{where}: only absolute-dose constraints can have an EQD2 basis")
        if self.reference_fractions is not None:
            n = self.reference_fractions
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise InputError(f"{where}: reference_fractions must be a positive integer")
            if not self.is_absolute or self.dose_basis != "physical":
                raise InputError(
                    f"{where}: reference_fractions is for absolute-dose physical constraints"
                )
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
        """The metric, parsed by :func:`rtplan.dvh.metrics.parse`."""
        return parse(self.metric)

    @property
    def is_absolute(self) -> bool:
        """True when every dose in the constraint is in Gy (these can be EQD2-converted).

        False for prescription-relative metrics (``D95%Rx``, ``V95%Rx``) and for ``HI``.
        """
        m = self.parsed_metric
        return m.kind != "hi" and not m.needs_prescription

    @property
    def dose_numbers(self) -> tuple[float, ...]:
        """The numbers of the metric string itself (``45`` of ``V45Gy``, ``95`` of ``D95%``)."""
        number = self.parsed_metric.number
        return () if number is None else (number,)

    def text(self) -> str:
        """The constraint as one line, e.g. ``V45Gy < 195 cc``."""
        unit = {"%": "%", "1": ""}.get(self.unit, f" {self.unit}")
        return f"{self.metric} {self.comparison} {format_number(self.limit)}{unit}"


@dataclass(frozen=True)
class ConstraintResult:
    """The outcome of one constraint on one structure.

    ``value``, ``limit`` and ``acceptable`` are on the evaluation basis (``basis``) and in
    ``unit``; :attr:`Constraint.limit` is the limit as the protocol states it.
    ``queried_metric`` is the metric string actually evaluated (its dose threshold on the
    evaluation basis).  ``prescription_gy`` is the prescription (Gy) a ``%Rx`` value or limit
    is relative to (``None`` for other metrics).  ``protocol_rx`` marks a second evaluation of
    a ``%Rx`` constraint against the protocol's prescription, made because the plan's differs
    (:mod:`rtplan.check`); in a relaxed check its failure is a note, like the mismatch itself.
    ``seconds`` is the time its evaluation took (DVH included), for JUnit reports.
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
    prescription_gy: float | None = None
    protocol_rx: bool = False
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        """True when a mandatory constraint failed (what makes ``rtplan check`` exit 1)."""
        return self.verdict == "fail" and self.constraint.priority == "mandatory"


def _verdict(value: float, comparison: str, limit: float, acceptable: float | None) -> str:
    """``pass`` within the limit, ``acceptable`` within the acceptable limit, else ``fail``."""
    if _meets(value, comparison, limit):
        return "pass"
    if acceptable is not None and _meets(value, comparison, acceptable):
        return "acceptable"
    return "fail"


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
    dvh: DVH,
    *,
    structure_name: str | None = None,
    prescription_gy: float | None = None,
    dose_to_basis: Callable[[float], float] | None = None,
    basis: str = "physical",
) -> ConstraintResult:
    """Evaluate one constraint on a DVH.

    Parameters
    ----------
    constraint : Constraint
        What to check.
    dvh : DVH
        The structure's DVH on the evaluation basis: physical dose, or a voxel-wise EQD2
        dose grid.  Prescription-relative constraints must be given the physical DVH.
    structure_name : str, optional
        Name of the structure in the plan (for the report; default ``dvh.name``).
    prescription_gy : float, optional
        Prescription dose (Gy) of the target the constraint refers to; needed by ``%Rx``
        metrics (default: the DVH's own).
    dose_to_basis : callable, optional
        Maps a dose of the constraint (Gy) onto the DVH's basis, e.g. to EQD2: applied to the
        ``x`` of ``V<x>Gy`` and to dose limits of absolute-dose constraints.  Identity when
        omitted; never applied to prescription-relative constraints.
    basis : str
        Label of the evaluation basis, for the report (``"physical"``, ``"RBE-weighted"``
        for an EFFECTIVE dose, ``"EQD2, α/β 3 Gy, limits of 25 fx"``).

    Returns
    -------
    ConstraintResult
        ``not evaluated`` with the DVH's reason when the metric is undefined (e.g. part of
        the structure lies outside the dose grid): never a number made up for it.

    Examples
    --------
    600 cc of bowel bag: 300 cc uniformly between 0 and 20 Gy, 200 cc between 20 and 40 Gy,
    100 cc between 40 and 50 Gy.  Half of the last part, 50 cc, receives 45 Gy or more:

    >>> dvh = DVH([10.0, 30.0, 45.0], [300.0, 200.0, 100.0], [10.0, 10.0, 5.0], name="BB")
    >>> c = Constraint("bb", "bowel_bag", "V45Gy", "<", 195.0, "cc", "mandatory", "quantec")
    >>> r = evaluate_constraint(c, dvh)
    >>> r.verdict, round(r.value, 9), round(r.margin, 9)
    ('pass', 50.0, 145.0)
    """
    name = dvh.name if structure_name is None else structure_name
    m = constraint.parsed_metric
    to_basis = dose_to_basis if dose_to_basis is not None else (lambda x: x)
    if not constraint.is_absolute:  # judged on the dose as read; the label may name the Rx
        to_basis = lambda x: x  # noqa: E731
        basis = "physical" if basis.startswith("EQD2") else basis
    query = constraint.metric
    if m.kind == "vgy":
        query = f"V{format_number(to_basis(m.number))}Gy" + ("%" if m.unit == "%" else "")
    mv = evaluate(dvh, query, prescription_gy=prescription_gy)
    if not math.isfinite(mv.value):
        return not_evaluated(constraint, mv.note or f"{query} is undefined", name)
    value = float(mv.value)

    limit, acceptable = constraint.limit, constraint.acceptable
    if m.kind in ("dstat", "dvol") and constraint.is_absolute:
        limit = to_basis(limit)
        acceptable = None if acceptable is None else to_basis(acceptable)

    verdict = _verdict(value, constraint.comparison, limit, acceptable)
    margin = limit - value if constraint.comparison in ("<", "<=") else value - limit
    return ConstraintResult(
        constraint,
        name,
        verdict,
        value=value,
        unit=constraint.unit,
        limit=limit,
        acceptable=acceptable,
        margin=margin,
        margin_pct=margin / abs(limit) * 100.0 if limit != 0 else None,
        basis=basis,
        queried_metric=query,
        prescription_gy=prescription_gy if m.needs_prescription else None,
    )
