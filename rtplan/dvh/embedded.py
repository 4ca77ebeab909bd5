"""Compare rtplan's DVH with the planning system's own (RTDOSE DVHSequence).

Reading the embedded curve (:class:`rtplan.dose.EmbeddedDVH`)
--------------------------------------------------------------
Bins
    DVHData pairs ``(width, volume)``; bin ``n`` spans ``[lo_n, up_n]`` with
    ``up_n = sum of widths up to n`` (DVHDoseScaling applied by the reader).  A
    CUMULATIVE volume ``V_n`` is the volume receiving at least the bin's *lower* edge
    ``lo_n`` (so ``V_0`` is the whole structure; checked on Varian Eclipse exports, whose
    DVHMinimumDose falls in the first bin whose volume drops); a DIFFERENTIAL volume is
    the volume with dose in the bin, accumulated from the top.
Dose units
    GY and CGY are absolute; PERCENT (DICOM RELATIVE) is in % of the prescription, which
    is then needed (the plan's TargetPrescriptionDose).
Volume units
    CM3 gives an absolute volume; PERCENT only relative metrics (volume and D2cc are
    then not compared).

Metrics from the curve
----------------------
Every metric comes from the curve: volume = ``V_0``; ``D<v>%`` and ``D<v>cc`` = the dose
where the cumulative curve, linear between the points ``(lo_n, V_n)`` and ending at
``(up_last, 0)``, crosses the volume; Dmean = ``sum(dV_n (lo_n + up_n) / 2) / V_0``
(each bin's volume at its centre), which lies in ``[sum(dV_n lo_n), sum(dV_n up_n)] /
V_0``; Dmax lies in the last bin holding volume, ``[lo, up]`` (its centre is used).
The header values DVHMeanDose, DVHMaximumDose (and DVHMinimumDose) are used only when
they agree with the curve, i.e. fall within these brackets (widened by half a percent):
first as stated in the item's dose units, else as % of the prescription (some planning
systems write them so while the curve is in Gy); the comparison notes which, and says
when a header value disagrees with the curve and was not used.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rtplan.dose import EmbeddedDVH
from rtplan.dvh.histogram import DVH

#: The metrics compared with the planning system's DVH.
COMPARED = ("volume_cc", "Dmean", "Dmax", "D95%", "D50%", "D5%", "D2cc")
#: Relative widening of the curve's brackets when testing header values against it.
HEADER_TOLERANCE = 0.005
#: A ``D<v>%`` differing by more than this (% of the planning system's value) gets a note
#: with the volume the planning system's curve holds at rtplan's dose.
EXPLAIN_ABOVE_PCT = 0.5


@dataclass(frozen=True)
class Comparison:
    """One metric: rtplan's value, the planning system's, and their difference."""

    metric: str
    rtplan: float
    planning_system: float

    @property
    def difference(self) -> float:
        """rtplan minus planning system (metric units)."""
        return self.rtplan - self.planning_system

    @property
    def difference_pct(self) -> float:
        """Difference in % of the planning system's value (NaN when that is 0)."""
        if not self.planning_system:
            return float("nan")
        return 100.0 * self.difference / self.planning_system


@dataclass(frozen=True)
class EmbeddedMetrics:
    """Metrics of an embedded DVH (Gy, cc; NaN when undefined) and notes on how they
    were read (header values used or not, units)."""

    values: dict
    notes: tuple[str, ...] = field(default_factory=tuple)
    #: The cumulative curve ``(dose Gy, volume)``, linear between its points (empty when the
    #: DVH holds no volume).
    curve: tuple = ((), ())

    def volume_pct_at(self, dose_gy: float) -> float:
        """% of the structure the curve holds at ``dose_gy`` (NaN without a curve)."""
        x, y = self.curve
        if not len(x):
            return float("nan")
        return float(100.0 * np.interp(dose_gy, x, y, right=0.0) / y[0])


def embedded_bins(
    e: EmbeddedDVH, prescription_gy: float | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower and upper bin edges (Gy) and the volume in each bin (cc or %) of ``e``.

    Raises
    ------
    ValueError
        Dose in PERCENT without a prescription.
    """
    up = np.asarray(e.dose_gy, dtype=float)
    if e.dose_units.upper() in ("PERCENT", "RELATIVE"):
        if prescription_gy is None or not prescription_gy > 0:
            raise ValueError("its dose is in % of the prescription and no prescription is known")
        up = up * prescription_gy / 100.0
    lo = np.concatenate([[0.0], up[:-1]])
    vol = np.asarray(e.volume_cc, dtype=float)
    if e.dvh_type.upper() == "DIFFERENTIAL":
        in_bin = vol
    else:
        in_bin = vol - np.concatenate([vol[1:], [0.0]])
    return lo, up, np.maximum(in_bin, 0.0)


def _total_volume(e: EmbeddedDVH) -> float:
    """The structure volume an embedded DVH holds (its units)."""
    vol = np.asarray(e.volume_cc, dtype=float)
    if not len(vol):
        return float("nan")
    return float(vol.sum() if e.dvh_type.upper() == "DIFFERENTIAL" else vol[0])


def embedded_metrics(e: EmbeddedDVH, prescription_gy: float | None = None) -> EmbeddedMetrics:
    """:data:`COMPARED` metrics of an embedded DVH (conventions in the module docstring).

    Examples
    --------
    Cumulative, 1 Gy bins: 4 cc get at least 0 Gy, 2 cc at least 1 Gy, none 2 Gy:

    >>> e = EmbeddedDVH(1, np.array([1.0, 2.0]), np.array([4.0, 2.0]))
    >>> m = embedded_metrics(e).values
    >>> m["volume_cc"], m["Dmean"], m["D50%"], m["Dmax"]
    (4.0, 1.0, 1.0, 1.5)
    """
    lo, up, dv = embedded_bins(e, prescription_gy)
    total = float(dv.sum())
    absolute = e.volume_units.upper() == "CM3"
    nan = float("nan")
    values = {m: nan for m in COMPARED}
    if not total > 0:
        return EmbeddedMetrics(values, ("the embedded DVH holds no volume",))
    notes = []
    values["volume_cc"] = total if absolute else nan
    held = np.flatnonzero(dv > 0)
    top = held[-1]
    brackets = {
        "Dmean": (float(dv @ lo) / total, float(dv @ up) / total),
        "Dmax": (float(lo[top]), float(up[top])),
    }
    for metric, keyword, header in (
        ("Dmean", "DVHMeanDose", e.mean_dose_gy),
        ("Dmax", "DVHMaximumDose", e.max_dose_gy),
    ):
        low, high = brackets[metric]
        value, note = _header_or_curve(keyword, header, low, high, e, prescription_gy)
        values[metric] = value
        if note:
            notes.append(note)
    # the cumulative curve through (lo_n, V_n), ending at (up_top, 0)
    cum = np.cumsum(dv[::-1])[::-1]
    x = np.concatenate([lo[: top + 1], [up[top]]])
    y = np.concatenate([cum[: top + 1], [0.0]])
    for pct in (95, 50, 5):
        values[f"D{pct}%"] = _dose_at(x, y, pct / 100.0 * total)
    values["D2cc"] = _dose_at(x, y, 2.0) if absolute and total >= 2.0 else nan
    return EmbeddedMetrics(values, tuple(notes), (x, y))


def _dose_at(x: np.ndarray, y: np.ndarray, volume: float) -> float:
    """Largest dose where the decreasing curve ``y(x)`` (linear between points) still
    holds ``volume``."""
    above = np.flatnonzero(y >= volume)
    i = int(above[-1]) if len(above) else 0
    if i + 1 < len(y) and y[i] > y[i + 1]:
        t = (y[i] - volume) / (y[i] - y[i + 1])
        return float(x[i] + t * (x[i + 1] - x[i]))
    return float(x[i])


def _header_or_curve(keyword, header, low, high, e, prescription_gy) -> tuple[float, str]:
    """The header value when it lies in the curve's bracket ``[low, high]`` (as stated,
    else read as % of the prescription), else the bracket's centre; and a note."""
    centre = 0.5 * (low + high)
    if header is None:
        return centre, ""
    pad = HEADER_TOLERANCE * max(abs(high), 1e-9)
    fits = lambda v: low - pad <= v <= high + pad  # noqa: E731
    stated = float(header)
    if e.dose_units.upper() in ("PERCENT", "RELATIVE"):
        if prescription_gy and fits(stated * prescription_gy / 100.0):
            return stated * prescription_gy / 100.0, ""
    elif fits(stated):
        return stated, ""
    if prescription_gy and fits(stated * prescription_gy / 100.0):
        gy = stated * prescription_gy / 100.0
        return gy, (
            f"{keyword} {stated:g} is in % of the prescription ({prescription_gy:g} Gy): "
            f"{gy:.4g} Gy, which agrees with the curve"
        )
    return centre, (
        f"{keyword} {stated:g} does not agree with the curve ({low:.4g} to {high:.4g} Gy); "
        f"not used: {centre:.4g} Gy from the curve"
    )


@dataclass(frozen=True)
class StructureComparison:
    """rtplan against the planning system for one structure (``metrics`` empty and a
    note when the file holds no usable DVH for it)."""

    name: str
    number: int | None
    metrics: tuple[Comparison, ...] = ()
    notes: tuple[str, ...] = ()


def compare_embedded(
    dvh: DVH, e: EmbeddedDVH | None, *, prescription_gy: float | None = None
) -> StructureComparison:
    """rtplan's DVH against the planning system's, for :data:`COMPARED`.

    Examples
    --------
    2 cc spread evenly over 10 to 20 Gy, against a planning system's single 10 Gy bin
    holding it (whose Dmax can only be said to lie in 10 to 20 Gy, centre 15 Gy):

    >>> e = EmbeddedDVH(1, np.array([10.0, 20.0]), np.array([2.0, 2.0]))
    >>> c = compare_embedded(DVH([15.0], [2.0], [5.0], min_gy=10.0, max_gy=20.0), e)
    >>> [(m.metric, round(m.difference, 6)) for m in c.metrics][:5]
    [('volume_cc', 0.0), ('Dmean', 0.0), ('Dmax', 5.0), ('D95%', 0.0), ('D50%', 0.0)]
    """
    if e is None:
        return StructureComparison(
            dvh.name, None, (), ("the RTDOSE holds no DVH for this structure",)
        )
    try:
        tps = embedded_metrics(e, prescription_gy)
    except ValueError as exc:
        return StructureComparison(dvh.name, e.roi_number, (), (f"embedded DVH not read: {exc}",))
    mine = {"volume_cc": dvh.volume_cc}
    for m in COMPARED[1:]:
        mine[m] = dvh.metric(m) if m != "D2cc" or dvh.volume_cc >= 2.0 else float("nan")
    compared = tuple(Comparison(m, float(mine[m]), float(tps.values[m])) for m in COMPARED)
    return StructureComparison(
        dvh.name, e.roi_number, compared, tps.notes + _volume_at_dose_notes(compared, tps)
    )


def _volume_at_dose_notes(compared, tps: EmbeddedMetrics) -> tuple[str, ...]:
    """For each ``D<v>%`` differing by more than :data:`EXPLAIN_ABOVE_PCT`: the volume the
    planning system's curve holds at rtplan's dose, i.e. how far apart the two curves are
    in volume there (a flat stretch of the curve turns a small volume difference into a
    large dose difference)."""
    notes = []
    for c in compared:
        if not (c.metric.startswith("D") and c.metric.endswith("%")):
            continue
        if not abs(c.difference_pct) > EXPLAIN_ABOVE_PCT:
            continue
        held = tps.volume_pct_at(c.rtplan)
        if np.isfinite(held):
            wanted = float(c.metric[1:-1])
            notes.append(
                f"{c.metric}: the planning system's curve holds {held:.2f} % of the volume at "
                f"rtplan's {c.rtplan:.4g} Gy ({held - wanted:+.2f} %-points from {wanted:g} %)"
            )
    return tuple(notes)


def best_end_cap(volumes_cc: dict[str, dict[str, float]], embedded_cc: dict[str, float]):
    """The end-cap convention whose structure volumes best match the planning system's.

    Parameters
    ----------
    volumes_cc : dict
        ``{end_cap: {structure: volume_cc}}`` computed by rtplan for each convention.
    embedded_cc : dict
        ``{structure: volume_cc}`` of the embedded DVHs (absolute volumes only).

    Returns
    -------
    (str or None, dict)
        The convention with the smallest median absolute relative volume difference
        (``None`` when no structure has both), and ``{end_cap: median |dV| %}``.
    """
    scores = {}
    for cap, mine in volumes_cc.items():
        diffs = [
            abs(mine[n] - v) / v * 100.0
            for n, v in embedded_cc.items()
            if n in mine and v > 0 and np.isfinite(v)
        ]
        if diffs:
            scores[cap] = float(np.median(diffs))
    if not scores:
        return None, scores
    return min(scores, key=lambda c: (scores[c], c != "slab")), scores


#: The end-cap conventions ``auto`` chooses from (:mod:`rtplan.structure`).
END_CAP_CHOICES = ("slab", "none")


@dataclass(frozen=True)
class EndCapChoice:
    """The end cap a job uses: ``requested`` (``slab``, ``none`` or ``auto``), ``used``,
    and for ``auto`` the median absolute volume difference (%) of each convention against
    the planning system's DVHs (``scores``) and the structures compared."""

    requested: str
    used: str
    scores: dict = field(default_factory=dict)
    structures: tuple[str, ...] = ()

    def describe(self) -> str:
        """``end cap: `` and :meth:`summary`."""
        return f"end cap: {self.summary()}"

    def summary(self) -> str:
        """The convention used and, for ``auto``, why: ``none (auto: median |volume
        difference| against the planning system's DVHs of 9 structure(s): slab 2.73 %, ...)``."""
        if self.requested != "auto":
            return self.used
        if not self.scores:
            return f"{self.used} (auto: no planning-system DVH in cc to match)"
        listed = ", ".join(f"{c} {v:.2f} %" for c, v in self.scores.items())
        return (
            f"{self.used} (auto: median |volume difference| against the planning "
            f"system's DVHs of {len(self.structures)} structure(s): {listed})"
        )

    def as_dict(self) -> dict:
        return {
            "requested": self.requested,
            "used": self.used,
            "median_abs_volume_difference_pct": dict(self.scores),
            "structures_matched": list(self.structures),
        }


def choose_end_cap(requested: str, structures, embedded, *, default: str = "slab") -> EndCapChoice:
    """Resolve ``requested`` (``slab``, ``none`` or ``auto``) for these structures.

    ``auto``: the convention of :data:`END_CAP_CHOICES` whose structure volumes
    (:meth:`~rtplan.structure.Structure.volume_cc_with`) best match the volumes of the
    planning system's DVHs in cc (``embedded``: :class:`~rtplan.dose.EmbeddedDVH` matched
    by ROI number), see :func:`best_end_cap`; ``default`` when there are none.
    """
    if requested != "auto":
        return EndCapChoice(requested, requested)
    by_number = {e.roi_number: e for e in embedded if e.volume_units.upper() == "CM3"}
    matched = [s for s in structures if s.number in by_number and s.is_volume]
    tps = {s.name: _total_volume(by_number[s.number]) for s in matched}
    mine = {cap: {s.name: s.volume_cc_with(cap) for s in matched} for cap in END_CAP_CHOICES}
    best, scores = best_end_cap(mine, tps)
    return EndCapChoice("auto", best or default, scores, tuple(s.name for s in matched))
