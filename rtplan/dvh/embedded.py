"""Compare rtplan's DVH with the planning system's own (RTDOSE DVHSequence).

The embedded curve (:class:`rtplan.dose.EmbeddedDVH`) is read as cumulative: volume
``volume_cc[i]`` receives at least ``dose_gy[i]``, linear in between (differential DVHs
are accumulated first).  From it: volume = the largest volume on the curve, Dmax = the
stored DVHMaximumDose (else the first dose where the volume reaches 0), Dmean = the stored
DVHMeanDose (else the mean of the curve's differential), D<v>% = the dose where the curve
crosses ``v`` % of its volume.  Volumes in PERCENT give no absolute volume.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rtplan.dose import EmbeddedDVH
from rtplan.dvh.histogram import DVH

#: The metrics compared with the planning system's DVH.
COMPARED = ("volume_cc", "Dmean", "Dmax", "D95%", "D50%", "D5%")


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


def _cumulative(e: EmbeddedDVH) -> tuple[np.ndarray, np.ndarray]:
    dose = np.asarray(e.dose_gy, dtype=float)
    vol = np.asarray(e.volume_cc, dtype=float)
    if e.dvh_type.upper() == "DIFFERENTIAL":
        vol = np.cumsum(vol[::-1])[::-1]
    return dose, vol


def embedded_metrics(e: EmbeddedDVH) -> dict[str, float]:
    """Volume (cc, NaN for PERCENT units), Dmean, Dmax, D95%, D50%, D5% (Gy) of an
    embedded DVH (conventions in the module docstring)."""
    dose, vol = _cumulative(e)
    total = float(vol.max()) if len(vol) else float("nan")
    out: dict[str, float] = {
        "volume_cc": total if e.volume_units.upper() == "CM3" else float("nan")
    }
    if e.max_dose_gy is not None:
        out["Dmax"] = float(e.max_dose_gy)
    else:
        zero = np.flatnonzero(vol <= 0)
        out["Dmax"] = float(dose[zero[0]]) if len(zero) else float(dose[-1])
    if e.mean_dose_gy is not None:
        out["Dmean"] = float(e.mean_dose_gy)
    else:
        d = np.concatenate([[0.0], dose])
        v = np.concatenate([[total], vol])
        out["Dmean"] = float(np.sum(-np.diff(v) * 0.5 * (d[1:] + d[:-1])) / total)
    for pct in (95, 50, 5):
        target = pct / 100.0 * total
        # the curve decreases: largest dose with volume >= target, linear between points
        above = np.flatnonzero(vol >= target)
        i = above[-1] if len(above) else 0
        if i + 1 < len(vol) and vol[i] > vol[i + 1]:
            t = (vol[i] - target) / (vol[i] - vol[i + 1])
            out[f"D{pct}%"] = float(dose[i] + t * (dose[i + 1] - dose[i]))
        else:
            out[f"D{pct}%"] = float(dose[i])
    return out


def compare_embedded(dvh: DVH, e: EmbeddedDVH) -> list[Comparison]:
    """rtplan's DVH against the planning system's, for :data:`COMPARED`.

    Examples
    --------
    >>> e = EmbeddedDVH(1, np.array([0.0, 10.0, 20.0]), np.array([2.0, 1.0, 0.0]))
    >>> [round(c.difference, 6) for c in compare_embedded(DVH([10.0], [2.0], [10.0]), e)]
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    """
    tps = embedded_metrics(e)
    mine = {"volume_cc": dvh.volume_cc}
    for m in COMPARED[1:]:
        mine[m] = dvh.metric(m)
    return [Comparison(m, float(mine[m]), float(tps[m])) for m in COMPARED]
