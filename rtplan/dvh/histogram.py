"""The DVH: a binless set of weighted dose samples and its cumulative curve.

A :class:`DVH` holds samples ``(sample_dose_gy, sample_volume_cc, sample_spread_gy)``:
each stands for ``sample_volume_cc`` of the structure whose dose is spread *uniformly*
over ``[sample_dose_gy - sample_spread_gy, sample_dose_gy + sample_spread_gy]``
(spread 0: all at one dose).  :attr:`DVH.volume_cc` is the structure's volume (a number),
as ``Structure.volume_cc`` and the ``volume_cc`` of ``rtplan dvh --json``.
The cumulative curve ``V(D)`` (volume receiving at least ``D``) is therefore piecewise
linear with its knots at the interval ends, and every metric is an exact evaluation or
inverse of that curve: there are no bins and no rounding to a bin.

Evaluation cost: a volume ``V(D)`` is one pass over the samples.  A dose ``D(v)`` is
bracketed between two edges of coarse dose buckets (bucket sums bound the curve from
below and above at every edge), and the exact curve is built only from the samples
that reach between those edges, so a metric of a structure with millions of samples
needs no full sort.  Queries of many values at once (plots, curves) sort the knots once.
The samples are kept in the order given.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from rtplan.errors import InputError

#: Spreads below this (Gy) are treated as point masses.
_MIN_SPREAD_GY = 1e-9
#: Queries of up to this many values are answered without sorting all samples.
_FEW_QUERIES = 16


@dataclass(frozen=True, eq=False)
class DVH:
    """Dose-volume histogram of one structure, kept as weighted dose samples.

    Parameters
    ----------
    sample_dose_gy : array_like
        Mean dose (Gy) of each sample.
    sample_volume_cc : array_like
        Volume (cc) each sample stands for (samples of zero volume are dropped).
    sample_spread_gy : array_like, optional
        Half-width (Gy) of the uniform dose interval of each sample (default 0).
    name : str
        Structure name.
    min_gy, max_gy : float, optional
        Exact dose extremes over the structure when the computation knows them (from
        boundary points); the curve is confined to ``[min_gy, max_gy]``.  By default the
        extremes of the sample intervals.
    outside_dose_cc : float
        Volume (cc) of the structure outside the dose grid (no dose known there).
    outside_tolerance_cc : float
        Outside volume (cc) up to which dose metrics are still evaluated, over the dosed
        part (:class:`rtplan.dvh.compute.OutsideTolerance`); default 0 (none).
    prescription_gy : float, optional
        Prescription dose, for ``...%Rx`` metrics.
    conventions : mapping
        How the samples were made (end caps, slab thickness, resolution, ...), reported
        with the numbers.
    flags : tuple of str
        Warnings that affect the numbers (e.g. part of the structure outside the dose).

    Examples
    --------
    Two cc uniformly between 10 and 20 Gy:

    >>> dvh = DVH([15.0], [2.0], [5.0], name="box")
    >>> round(dvh.mean_gy, 6), round(dvh.volume_at_dose_cc(12.5), 6), dvh.volume_cc
    (15.0, 1.5, 2.0)
    >>> round(dvh.dose_at_volume_gy(0.5), 6), round(dvh.metric("D50%"), 6)
    (17.5, 15.0)
    """

    sample_dose_gy: np.ndarray
    sample_volume_cc: np.ndarray
    sample_spread_gy: np.ndarray | None = None
    name: str = ""
    min_gy: float | None = None
    max_gy: float | None = None
    outside_dose_cc: float = 0.0
    outside_tolerance_cc: float = 0.0
    prescription_gy: float | None = None
    conventions: Mapping[str, object] = field(default_factory=dict)
    flags: tuple[str, ...] = ()

    def __post_init__(self):
        d = np.atleast_1d(np.asarray(self.sample_dose_gy, dtype=float))
        v = np.atleast_1d(np.asarray(self.sample_volume_cc, dtype=float))
        s = (
            np.zeros_like(d)
            if self.sample_spread_gy is None
            else np.atleast_1d(np.asarray(self.sample_spread_gy, dtype=float))
        )
        if not (d.shape == v.shape == s.shape) or d.ndim != 1:
            raise InputError("DVH samples need equal-length 1-D dose, volume and spread arrays")
        if not (np.isfinite(d.sum()) and np.isfinite(v.sum()) and np.isfinite(s.sum())):
            raise InputError("DVH samples must be finite", structure=self.name or None)
        if v.min(initial=0.0) < 0 or s.min(initial=0.0) < 0:
            raise InputError("DVH volumes and spreads must be >= 0", structure=self.name or None)
        if not np.all(v > 0):
            keep = v > 0
            d, v, s = d[keep], v[keep], s[keep]
        object.__setattr__(self, "sample_dose_gy", d)
        object.__setattr__(self, "sample_volume_cc", v)
        object.__setattr__(self, "sample_spread_gy", s)
        if self.min_gy is None:
            object.__setattr__(self, "min_gy", float(np.min(d - s)) if len(d) else np.nan)
        if self.max_gy is None:
            object.__setattr__(self, "max_gy", float(np.max(d + s)) if len(d) else np.nan)
        object.__setattr__(self, "min_gy", float(self.min_gy))
        object.__setattr__(self, "max_gy", float(self.max_gy))
        object.__setattr__(self, "outside_dose_cc", float(self.outside_dose_cc))
        object.__setattr__(self, "flags", tuple(self.flags))

    # ------------------------------------------------------------------ volumes
    @cached_property
    def dosed_volume_cc(self) -> float:
        """Volume (cc) inside the dose grid: the sum of the samples."""
        return float(np.sum(self.sample_volume_cc))

    @property
    def volume_cc(self) -> float:
        """Volume (cc) of the structure the DVH stands for: :attr:`dosed_volume_cc` (inside
        the dose grid) plus :attr:`outside_dose_cc` (outside it, or where the dose is NaN).

        The number ``rtplan dvh --json`` reports as ``volume_cc``; for a DVH from
        :func:`rtplan.dvh.compute.compute` it equals ``Structure.volume_cc_with(end_cap)``
        (``Structure.volume_cc`` with the default ``end_cap="slab"``).  The per-sample
        volumes are :attr:`sample_volume_cc`.
        """
        return self.dosed_volume_cc + self.outside_dose_cc

    @cached_property
    def mean_gy(self) -> float:
        """Volume-weighted mean dose (Gy) over the dosed part."""
        if self.dosed_volume_cc <= 0:
            return float("nan")
        return float(np.sum(self.sample_dose_gy * self.sample_volume_cc) / self.dosed_volume_cc)

    # ------------------------------------------------------------------ curve
    @cached_property
    def _intervals(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each sample's dose interval ``(lo, hi)`` clipped to ``[min_gy, max_gy]``, and
        whether it is a point mass (``hi - lo`` at most ``_MIN_SPREAD_GY``; then
        ``lo = hi`` = its clipped dose)."""
        d, s = self.sample_dose_gy, self.sample_spread_gy
        lo, hi = _clip(d - s, self.min_gy, self.max_gy), _clip(d + s, self.min_gy, self.max_gy)
        point = (hi - lo) <= _MIN_SPREAD_GY
        if point.any():
            c = np.clip(d[point], self.min_gy, self.max_gy)
            lo[point] = c
            hi[point] = c
        return lo, hi, point

    @cached_property
    def _knots(self) -> tuple[np.ndarray, np.ndarray]:
        """Points ``(x, F)`` of the piecewise-linear 'volume below dose' curve.

        ``F`` is the volume (cc) with dose below ``x``.  Jumps (point masses) appear as
        two points at the same ``x``.  Sample intervals are clipped to
        ``[min_gy, max_gy]``, keeping their volume.
        """
        if len(self.sample_dose_gy) == 0:
            return np.zeros(0), np.zeros(0)
        xs, fs = _curve_knots(*self._intervals, self.sample_volume_cc)
        # rescale the tiny rounding drift so the curve ends exactly at the total
        if fs[-1] > 0:
            fs *= self.dosed_volume_cc / fs[-1]
        return xs, fs

    @cached_property
    def _buckets(self) -> tuple[float, float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Coarse dose buckets that bracket a quantile without sorting every sample.

        ``B`` equal buckets over ``[min_gy, max_gy]``; for each sample the buckets of its
        interval ends (``lb``, ``hb``), and per bucket edge ``e_b`` the volume of the
        samples lying wholly below it (``L[b]``, hi in a lower bucket) and of those
        starting below it (``U[b]``, lo in a lower bucket): ``L[b] <= F(e_b) <= U[b]``.
        """
        lo, hi, _ = self._intervals
        n_b = int(np.clip(len(lo) // 8, 1, 4096))
        span = self.max_gy - self.min_gy
        width = span / n_b if span > 0 else 1.0

        def bucket(x):
            return _clip((x - self.min_gy) * (1.0 / width), 0, n_b - 1).astype(np.int16)

        lb, hb = bucket(lo), bucket(hi)
        v = self.sample_volume_cc
        low = np.concatenate([[0.0], np.cumsum(np.bincount(hb, weights=v, minlength=n_b))])
        upp = np.concatenate([[0.0], np.cumsum(np.bincount(lb, weights=v, minlength=n_b))])
        return self.min_gy, width, lb, hb, low, upp

    def _volume_below_cc(self, x: float) -> float:
        """Exact volume (cc) with dose below ``x``, in one pass over the samples."""
        lo, hi, point = self._intervals
        v = self.sample_volume_cc
        below = float(np.sum(v, where=hi < x))
        part = (lo < x) & (hi >= x) & ~point
        if part.any():
            below += float(np.sum(v[part] * (x - lo[part]) / (hi[part] - lo[part])))
        return below

    def _dose_above_gy(self, q: float) -> float:
        """``sup {x : F(x) <= q}`` (``F`` the volume below ``x``), exactly, by bracketing
        the answer between two bucket edges and building the curve of the samples that
        reach between them only."""
        e0, width, lb, hb, low, upp = self._buckets
        lo, hi, point = self._intervals
        n_b = len(low) - 1
        # e_a: the last edge with F(e_a) <= U[a] <= q; e_c: the first with F >= L[c] > q
        a = int(np.clip(np.searchsorted(upp, q, side="right") - 1, 0, n_b))
        if a == n_b or q >= self.dosed_volume_cc:
            return float(hi.max())  # the whole volume lies below: the curve's last knot
        c = min(max(int(np.searchsorted(low, q, side="right")), a + 1), n_b)
        sub = np.flatnonzero((hb >= a) & (lb < c))
        xs, fs = _curve_knots(lo[sub], hi[sub], point[sub], self.sample_volume_cc[sub])
        x = _invert(xs, fs + low[a], q)
        top = e0 + c * width if c < n_b else self.max_gy
        return float(np.clip(x, e0 + a * width, top))

    def volume_at_dose_cc(self, dose_gy) -> np.ndarray | float:
        """Volume (cc) receiving at least ``dose_gy`` (the cumulative DVH).

        Up to ``_FEW_QUERIES`` levels are evaluated directly (one pass over the samples
        each, no sorting); more levels use the curve's sorted knots, built once.

        Parameters
        ----------
        dose_gy : float or array_like
            Dose level(s) in Gy.

        Returns
        -------
        float or numpy.ndarray
            Volume in cc of the dosed part with dose ``>= dose_gy``.
        """
        q = np.asarray(dose_gy, dtype=float)
        total = self.dosed_volume_cc
        if len(self.sample_dose_gy) == 0:
            out = np.zeros(q.shape)
        elif q.size <= _FEW_QUERIES and "_knots" not in self.__dict__:
            below = np.array([self._volume_below_cc(x) for x in q.ravel()]).reshape(q.shape)
            out = total - below
        else:
            xs, fs = self._knots
            # volume below q: last knot strictly left of q, then linear to q
            j = np.searchsorted(xs, q, side="left") - 1
            jj = np.clip(j, 0, len(xs) - 1)
            nxt = np.clip(jj + 1, 0, len(xs) - 1)
            span = xs[nxt] - xs[jj]
            frac = np.where(span > 0, (q - xs[jj]) / np.where(span > 0, span, 1.0), 0.0)
            below = fs[jj] + np.clip(frac, 0.0, 1.0) * (fs[nxt] - fs[jj])
            below = np.where(j < 0, 0.0, below)
            out = total - below
        out = np.maximum(out, 0.0)
        return float(out) if out.ndim == 0 else out

    def dose_at_volume_gy(self, volume_cc) -> np.ndarray | float:
        """Dose (Gy) received by at least ``volume_cc`` of the hottest part.

        The largest dose ``D`` with ``V(D) >= volume_cc`` (the inverse of
        :meth:`volume_at_dose_cc`; on a flat stretch of the curve, its upper end).
        Volumes above the dosed volume give NaN.  Up to ``_FEW_QUERIES`` volumes are
        found without sorting every sample (see :meth:`_dose_above_gy`); more use the
        curve's sorted knots.

        Parameters
        ----------
        volume_cc : float or array_like
            Volume(s) in cc.

        Returns
        -------
        float or numpy.ndarray
            Dose in Gy.
        """
        v = np.asarray(volume_cc, dtype=float)
        total = self.dosed_volume_cc
        if len(self.sample_dose_gy) == 0:
            out = np.full(v.shape, np.nan)
        else:
            q = total - v  # volume below the answer
            if v.size <= _FEW_QUERIES and "_knots" not in self.__dict__:
                out = np.array([self._dose_above_gy(x) for x in q.ravel()]).reshape(v.shape)
            else:
                out = _invert(*self._knots, q)
            out = np.where(v > total * (1 + 1e-12), np.nan, out)
            out = np.where(v < 0, np.nan, out)
        return float(out) if out.ndim == 0 else out

    def curve(self, step_gy: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The cumulative DVH as arrays ``(dose_gy, volume_cc)``.

        Parameters
        ----------
        step_gy : float, optional
            Sample the curve every ``step_gy`` from 0 to :attr:`max_gy`; by default return
            its exact knots (piecewise linear between them).

        Returns
        -------
        dose_gy, volume_cc : numpy.ndarray
            Dose levels and the volume receiving at least each.
        """
        if step_gy is None:
            xs, fs = self._knots
            return xs.copy(), self.dosed_volume_cc - fs
        if step_gy <= 0:
            raise InputError(f"curve step must be positive, got {step_gy} Gy")
        top = self.max_gy if np.isfinite(self.max_gy) else 0.0
        dose = np.arange(0.0, top + step_gy, step_gy)
        return dose, np.asarray(self.volume_at_dose_cc(dose))

    # ------------------------------------------------------------------ metrics
    def metric(self, text: str, **context) -> float:
        """Evaluate a metric string such as ``"D95%"``, ``"V20Gy"`` or ``"Dmean"``.

        See :func:`rtplan.dvh.metrics.evaluate` for the grammar, the units and the keyword
        arguments (``prescription_gy``, ``isodose_volume_cc``, ``allow_outside``).  Returns
        NaN when the metric is undefined (the reason is given by
        :func:`~rtplan.dvh.metrics.evaluate`).
        """
        from rtplan.dvh.metrics import evaluate

        return evaluate(self, text, **context).value


def _clip(x: np.ndarray, low: float, high: float) -> np.ndarray:
    """``np.clip(x, low, high)`` in place, for a new array ``x`` (np.clip takes ~4 times as
    long on large arrays)."""
    np.maximum(x, low, out=x)
    return np.minimum(x, high, out=x)


def _curve_knots(lo, hi, point, v) -> tuple[np.ndarray, np.ndarray]:
    """Knots ``(x, F)`` of the volume below ``x`` of uniform intervals ``[lo, hi]`` of
    volume ``v`` (point masses where ``point``), sorted; a jump is two knots at one ``x``."""
    spread = ~point
    rho = v[spread] / (hi[spread] - lo[spread])
    pos = np.concatenate([lo[spread], hi[spread], lo[point]])
    dslope = np.concatenate([rho, -rho, np.zeros(len(pos) - 2 * len(rho))])
    jump = np.concatenate([np.zeros(2 * len(rho)), v[point]])
    order = np.argsort(pos)
    x, dslope, jump = pos[order], dslope[order], jump[order]
    slope = np.cumsum(dslope)
    slope[-1] = 0.0
    rise = np.empty_like(x)
    rise[0] = 0.0
    np.multiply(np.maximum(slope[:-1], 0.0), np.diff(x), out=rise[1:])
    f_right = np.cumsum(jump + rise)
    fs = np.empty(2 * len(x))
    fs[0::2] = f_right - jump
    fs[1::2] = f_right
    return np.repeat(x, 2), np.maximum.accumulate(fs, out=fs)


def _invert(xs, fs, q) -> np.ndarray:
    """Largest ``x`` with ``F(x) <= q`` on the piecewise-linear curve through ``(xs, fs)``."""
    j = np.clip(np.searchsorted(fs, q, side="right") - 1, 0, len(xs) - 1)
    nxt = np.clip(j + 1, 0, len(xs) - 1)
    rise = fs[nxt] - fs[j]
    frac = np.where(rise > 0, (q - fs[j]) / np.where(rise > 0, rise, 1.0), 0.0)
    return xs[j] + np.clip(frac, 0.0, 1.0) * (xs[nxt] - xs[j])
