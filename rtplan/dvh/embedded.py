"""Compare rtplan's DVH with the planning system's own (RTDOSE DVHSequence).

Reading the embedded curve (:class:`rtplan.dose.EmbeddedDVH`)
--------------------------------------------------------------
Bins
    DVHData pairs ``(width, volume)``; bin ``n`` spans ``[lo_n, up_n]`` with
    ``up_n = sum of widths up to n`` (DVHDoseScaling applied by the reader).  A
    DIFFERENTIAL volume is the volume with dose in the bin, accumulated from the top.  A
    CUMULATIVE volume ``V_n`` is the volume receiving at least the dose ``x_n`` of a point
    of the bin, which DICOM does not fix (the *bin point*, ``--embedded-bin-point``):

    ``lower``
        ``x_n = lo_n``: ``V_0`` is the whole structure (dicompyler-core's reading).
    ``centre``
        ``x_n = (lo_n + up_n) / 2``, the cumulative curve sampled at the bin centres.
        Varian Eclipse writes its curves so: on the breast export of the tests, the header
        DVHMeanDose of all 8 structures whose curve starts flat lies 0.48 bin above the
        mean of the curve read at the lower edges and 0.02 bin from the one read at the
        centres, and the BODY's first volume (13944 cc) is rtplan's BODY volume at
        0.005 Gy (13935 cc), not its volume (14736 cc).  ``V_0`` is then the whole
        structure only when the curve starts flat (``V_0 = V_1``: no volume in the first
        bin); otherwise the volume below ``x_0`` is unknown and the structure's volume
        ``V`` is solved from DVHMeanDose with the curve linear from ``(0, V)`` to
        ``(x_0, V_0)`` (``V = (I + x_0 V_0 / 2) / (Dmean - x_0 / 2)``, ``I`` the area under
        the curve above ``x_0``; kept when it lies in ``[V_0, 2 V_0 - V_1]``, the range the
        first two points allow), else ``V_0`` with a note.
    ``upper``
        ``x_n = up_n`` (rtplan's own sample data, ``scripts/make_sample_dicom.py``); the
        volume below ``x_0`` as for ``centre``.
    ``auto`` (:func:`choose_bin_point`)
        the point whose curve means the header DVHMeanDose of the curves that start flat
        agree with (median within :data:`BIN_POINT_MATCH` of a bin) when ``lower``'s do
        not; else ``lower``.
Dose units
    GY and CGY are absolute; PERCENT (DICOM RELATIVE) is in % of the prescription, which
    is then needed (the plan's TargetPrescriptionDose).
Volume units
    CM3 gives an absolute volume; PERCENT only relative metrics (volume and D2cc are
    then not compared).

Metrics from the curve
----------------------
Every metric comes from the curve: volume = ``V_0`` (or as above); ``D<v>%`` and
``D<v>cc`` = the dose where the cumulative curve, linear between the points ``(x_n, V_n)``
and ending at ``(x_last+1, 0)``, crosses the volume; Dmean = the area under the curve
over the volume (each interval's volume ``dV_n = V_n - V_n+1`` at its centre), which lies
in ``[sum(dV_n x_n), sum(dV_n x_n+1)] / V``; Dmax lies in the last interval holding
volume, ``[x_last, x_last+1]`` (its centre is used).
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
#: Volumes differing by more than this (% of the planning system's) make the dose metrics
#: of a structure not like-for-like (they are of different volumes): flagged and noted.
LIKE_FOR_LIKE_VOLUME_PCT = 1.0
#: Where a cumulative volume sits in its bin (fraction of the bin width from its lower edge).
BIN_POINTS = {"lower": 0.0, "centre": 0.5, "upper": 1.0}
#: ``auto`` takes a bin point when the header means lie within this many bin widths of the
#: curve's means read with it (median over the structures) and not with the other.
BIN_POINT_MATCH = 0.25


@dataclass(frozen=True)
class Comparison:
    """One metric: rtplan's value, the planning system's, and their difference."""

    metric: str
    rtplan: float
    planning_system: float
    #: ``D<v>%`` only: ``v`` minus the % of the volume the planning system's curve holds at
    #: rtplan's dose (the curves' distance in volume there; well conditioned where a flat
    #: curve makes the dose difference large); NaN otherwise.
    volume_points: float = float("nan")

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
    e: EmbeddedDVH, prescription_gy: float | None = None, point: str = "lower"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The dose intervals (lower and upper ends, Gy) and the volume in each (cc or %) of
    ``e``: the bins of a differential DVH; for a cumulative one, ``[x_n, x_n+1]`` between
    the doses of its points (``point``: a key of :data:`BIN_POINTS`; the last interval as
    wide as the last bin).

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
        return lo, up, np.maximum(vol, 0.0)
    in_bin = vol - np.concatenate([vol[1:], [0.0]])
    shift = BIN_POINTS[point] * (up - lo)
    x = lo + shift
    return x, np.concatenate([x[1:], up[-1:] + shift[-1:]]), np.maximum(in_bin, 0.0)


def _starts_flat(e: EmbeddedDVH) -> bool:
    """Whether the first two points of a cumulative curve hold the same volume (then no
    volume lies in its first bin, and ``V_0`` is the structure's under every bin point)."""
    vol = np.asarray(e.volume_cc, dtype=float)
    return len(vol) < 2 or bool(vol[1] >= vol[0] * (1.0 - 1e-9))


def _header_means_gy(e: EmbeddedDVH, prescription_gy) -> list[float]:
    """DVHMeanDose in Gy as it may be meant: as stated (GY) and as % of the prescription."""
    if e.mean_dose_gy is None:
        return []
    stated = float(e.mean_dose_gy)
    pct = [stated * prescription_gy / 100.0] if prescription_gy and prescription_gy > 0 else []
    return pct if e.dose_units.upper() in ("PERCENT", "RELATIVE") else [stated, *pct]


def _volume_below_first_point(e, lo, up, dv, prescription_gy) -> tuple[float, str]:
    """The structure's volume when a cumulative curve read at bin points above the lower
    edge does not start flat (module docstring), and a note."""
    v0, x0 = float(dv.sum()), float(lo[0])
    vol = np.asarray(e.volume_cc, dtype=float)
    area = float(dv @ (lo + up)) / 2.0  # under the curve, taken flat at V_0 below x0
    for mean in _header_means_gy(e, prescription_gy):
        if mean > x0 / 2:
            total = (area - x0 * v0 / 2.0) / (mean - x0 / 2.0)
            if v0 <= total <= 2 * v0 - vol[1]:
                return total, (
                    f"the curve starts at {x0:.4g} Gy with {v0:.6g} cc; the structure's "
                    f"{total:.6g} cc are from DVHMeanDose ({mean:.4g} Gy), the curve linear "
                    f"below {x0:.4g} Gy"
                )
    return v0, (
        f"the curve starts at {x0:.4g} Gy with {v0:.6g} cc, and no DVHMeanDose gives the "
        "volume below: its volume is taken as the structure's"
    )


def embedded_metrics(
    e: EmbeddedDVH, prescription_gy: float | None = None, point: str = "lower"
) -> EmbeddedMetrics:
    """:data:`COMPARED` metrics of an embedded DVH (conventions in the module docstring;
    ``point``: where a cumulative volume sits in its bin, a key of :data:`BIN_POINTS`).

    Examples
    --------
    Cumulative, 1 Gy bins: 4 cc get at least 0 Gy, 2 cc at least 1 Gy, none 2 Gy:

    >>> e = EmbeddedDVH(1, np.array([1.0, 2.0]), np.array([4.0, 2.0]))
    >>> m = embedded_metrics(e).values
    >>> m["volume_cc"], m["Dmean"], m["D50%"], m["Dmax"]
    (4.0, 1.0, 1.0, 1.5)
    """
    lo, up, dv = embedded_bins(e, prescription_gy, point)
    total = float(dv.sum())
    absolute = e.volume_units.upper() == "CM3"
    nan = float("nan")
    values = {m: nan for m in COMPARED}
    if not total > 0:
        return EmbeddedMetrics(values, ("the embedded DVH holds no volume",))
    notes = []
    below = 0.0  # volume below the first point (in [0, lo[0]])
    if lo[0] > 0 and not _starts_flat(e):
        whole, note = _volume_below_first_point(e, lo, up, dv, prescription_gy)
        below, total = whole - total, whole
        notes.append(note)
    values["volume_cc"] = total if absolute else nan
    held = np.flatnonzero(dv > 0)
    top = held[-1]
    brackets = {
        "Dmean": (float(dv @ lo) / total, float(dv @ up + below * lo[0]) / total),
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
    # the cumulative curve through (x_n, V_n), ending at (x_top+1, 0); from (0, V) when
    # the first point lies above 0 Gy
    cum = np.cumsum(dv[::-1])[::-1]
    x = np.concatenate([lo[: top + 1], [up[top]]])
    y = np.concatenate([cum[: top + 1], [0.0]])
    if lo[0] > 0:
        x, y = np.concatenate([[0.0], x]), np.concatenate([[total], y])
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
    note when the file holds no usable DVH for it).  ``like_for_like`` is False when the
    volumes differ by more than :data:`LIKE_FOR_LIKE_VOLUME_PCT` (the dose metrics are then
    of different volumes), None when there is no volume to compare."""

    name: str
    number: int | None
    metrics: tuple[Comparison, ...] = ()
    notes: tuple[str, ...] = ()
    like_for_like: bool | None = None


def compare_embedded(
    dvh: DVH,
    e: EmbeddedDVH | None,
    *,
    prescription_gy: float | None = None,
    point: str = "lower",
) -> StructureComparison:
    """rtplan's DVH against the planning system's, for :data:`COMPARED` (``point``: where
    a cumulative volume sits in its bin, :data:`BIN_POINTS`).

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
        tps = embedded_metrics(e, prescription_gy, point)
    except ValueError as exc:
        return StructureComparison(dvh.name, e.roi_number, (), (f"embedded DVH not read: {exc}",))
    mine = {"volume_cc": dvh.volume_cc}
    for m in COMPARED[1:]:
        mine[m] = dvh.metric(m) if m != "D2cc" or dvh.volume_cc >= 2.0 else float("nan")
    compared = tuple(
        Comparison(m, float(mine[m]), float(tps.values[m]), _volume_points(m, mine[m], tps))
        for m in COMPARED
    )
    volume = compared[0]
    like = (
        None
        if not np.isfinite(volume.difference_pct)
        else bool(abs(volume.difference_pct) <= LIKE_FOR_LIKE_VOLUME_PCT)
    )
    notes = tps.notes + _volume_at_dose_notes(compared)
    if like is False:
        notes += (
            f"not like-for-like: the volumes differ by {volume.difference_pct:+.2f} % "
            f"(> {LIKE_FOR_LIKE_VOLUME_PCT:g} %), so the dose metrics are of different volumes",
        )
    return StructureComparison(dvh.name, e.roi_number, compared, notes, like)


def _volume_points(metric: str, dose_gy: float, tps: EmbeddedMetrics) -> float:
    """For ``D<v>%``: ``v`` minus the % of the volume the planning system's curve holds at
    ``dose_gy`` (rtplan's ``D<v>%``); NaN for other metrics."""
    if not (metric.startswith("D") and metric.endswith("%")) or not np.isfinite(dose_gy):
        return float("nan")
    return float(metric[1:-1]) - tps.volume_pct_at(dose_gy)


def _volume_at_dose_notes(compared) -> tuple[str, ...]:
    """For each ``D<v>%`` differing by more than :data:`EXPLAIN_ABOVE_PCT`: the volume the
    planning system's curve holds at rtplan's dose, i.e. how far apart the two curves are
    in volume there (a flat stretch of the curve turns a small volume difference into a
    large dose difference)."""
    notes = []
    for c in compared:
        if not np.isfinite(c.volume_points) or not abs(c.difference_pct) > EXPLAIN_ABOVE_PCT:
            continue
        wanted = float(c.metric[1:-1])
        held = wanted - c.volume_points
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


def choose_end_cap(
    requested: str,
    structures,
    embedded,
    *,
    default: str = "slab",
    prescription_gy: float | None = None,
    point: str = "lower",
) -> EndCapChoice:
    """Resolve ``requested`` (``slab``, ``none`` or ``auto``) for these structures.

    ``auto``: the convention of :data:`END_CAP_CHOICES` whose structure volumes
    (:meth:`~rtplan.structure.Structure.volume_cc_with`) best match the volumes of the
    planning system's DVHs in cc (``embedded``: :class:`~rtplan.dose.EmbeddedDVH` matched
    by ROI number, read with the bin point ``point``), see :func:`best_end_cap`;
    ``default`` when there are none.
    """
    if requested != "auto":
        return EndCapChoice(requested, requested)
    by_number = {e.roi_number: e for e in embedded if e.volume_units.upper() == "CM3"}
    matched = [s for s in structures if s.number in by_number and s.is_volume]
    tps = {s.name: _volume(by_number[s.number], prescription_gy, point) for s in matched}
    mine = {cap: {s.name: s.volume_cc_with(cap) for s in matched} for cap in END_CAP_CHOICES}
    best, scores = best_end_cap(mine, tps)
    return EndCapChoice("auto", best or default, scores, tuple(s.name for s in matched))


def _volume(e: EmbeddedDVH, prescription_gy, point: str) -> float:
    """The structure volume (cc) of an embedded DVH read with ``point``; NaN if unreadable."""
    try:
        return embedded_metrics(e, prescription_gy, point).values["volume_cc"]
    except ValueError:
        return float("nan")


@dataclass(frozen=True)
class BinPointChoice:
    """Where the cumulative volumes of the planning system's DVHs sit in their bins:
    ``requested`` (``auto`` or a key of :data:`BIN_POINTS`), ``used``, and for ``auto``
    the median distance (bin widths) of the header DVHMeanDose from the curve's mean read
    with each point (``scores``) over ``structures`` curves."""

    requested: str
    used: str
    scores: dict = field(default_factory=dict)
    structures: int = 0

    def describe(self) -> str:
        """``planning-system curve points: centre of each bin (auto: ...)``."""
        text = f"planning-system curve points: {self.used} of each bin"
        if self.requested != "auto":
            return text
        if not self.scores:
            return f"{text} (auto: no DVHMeanDose to match)"
        listed = ", ".join(f"{p} {v:.2f}" for p, v in self.scores.items())
        return (
            f"{text} (auto: median distance of DVHMeanDose from the curve's mean over "
            f"{self.structures} curve(s), in bins: {listed})"
        )

    def as_dict(self) -> dict:
        return {
            "requested": self.requested,
            "used": self.used,
            "median_header_mean_distance_bins": dict(self.scores),
            "curves_matched": self.structures,
            "description": self.describe(),
        }


def choose_bin_point(requested: str, embedded, prescription_gy: float | None = None):
    """Resolve ``requested`` (``auto`` or a key of :data:`BIN_POINTS`) for the planning
    system's DVHs ``embedded``.

    ``auto`` uses the cumulative curves that start flat (their volume is the structure's
    under every point) and state DVHMeanDose: for each point, the median over them of
    ``|DVHMeanDose - curve mean| / first bin width`` (the header read as stated or as % of
    the prescription, whichever is nearer); the point with the smallest median when it is
    within :data:`BIN_POINT_MATCH` and ``lower``'s is not, else ``lower``.

    Examples
    --------
    Volumes 4, 4 and 2 cc in 1 Gy bins: read at the bin centres (4 cc receive at least 0.5
    and 1.5 Gy, 2 cc at least 2.5 Gy) the curve's mean is 2.5 Gy, read at the lower edges
    2.0 Gy; the header states 2.5 Gy:

    >>> e = EmbeddedDVH(1, np.array([1.0, 2.0, 3.0]), np.array([4.0, 4.0, 2.0]),
    ...                 mean_dose_gy=2.5)
    >>> choose_bin_point("auto", [e]).used
    'centre'
    """
    if requested != "auto":
        return BinPointChoice(requested, requested)
    distances: dict[str, list[float]] = {p: [] for p in BIN_POINTS}
    n = 0
    for e in embedded:
        if e.dvh_type.upper() != "CUMULATIVE" or not _starts_flat(e):
            continue
        try:
            curves = {p: embedded_bins(e, prescription_gy, p) for p in BIN_POINTS}
        except ValueError:
            continue
        means = {p: float(dv @ (lo + up)) / 2 / dv.sum() for p, (lo, up, dv) in curves.items()
                 if dv.sum() > 0}  # fmt: skip
        headers = _header_means_gy(e, prescription_gy)
        if len(means) < len(BIN_POINTS) or not headers:
            continue
        width = float(curves["lower"][1][0] - curves["lower"][0][0])
        header = min(headers, key=lambda h: min(abs(h - m) for m in means.values()))
        for p, m in means.items():
            distances[p].append(abs(header - m) / width)
        n += 1
    if not n:
        return BinPointChoice("auto", "lower")
    scores = {p: float(np.median(d)) for p, d in distances.items()}
    best = min(scores, key=scores.get)
    used = best if scores[best] <= BIN_POINT_MATCH < scores["lower"] else "lower"
    return BinPointChoice("auto", used, scores, n)
