"""Per-structure summaries of a long agreement table.

Conventions: statistics (mean, sample standard deviation, median, quartiles and their
interquartile range, range) run over the finite values only, and the table says how many values were left out and why:
``n_inf`` (one segmentation empty: distances are +inf), ``n_nan`` (both empty or a
structure missing) and ``n_flagged`` (rows whose status is not ``ok``).  Nothing is
averaged away silently.  The generalised conformity index is summarised once per patient
and structure, not once per pair.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from rtplan.agreement.pairwise import PairMetrics
from rtplan.errors import InputError

#: Metrics summarised (and plotted) by default.
SUMMARY_METRICS = (
    "dice",
    "jaccard",
    "hausdorff_mm",
    "hd95_mm",
    "masd_mm",
    "assd_mm",
    "surface_dice",
    "added_path_length_mm",
    "volume_ratio",
    "centroid_distance_mm",
)


#: Columns of a summary row (:func:`summarise`), in order.
SUMMARY_COLUMNS = (
    "structure", "metric", "unit", "n", "n_finite", "n_inf", "n_nan", "n_flagged",
    "mean", "sd", "median", "q1", "q3", "iqr", "min", "max",
)  # fmt: skip


def metric_unit(metric: str) -> str:
    """Unit of a metric column, from its name: ``mm``, ``mm2``, ``cc``, ``%``, ``slices``,
    else ``1`` (a ratio).

    >>> metric_unit("hd95_mm"), metric_unit("dice"), metric_unit("surface_area_a_mm2")
    ('mm', '1', 'mm2')
    """
    for suffix, unit in (("_mm", "mm"), ("_mm2", "mm2"), ("_cc", "cc"), ("_percent", "%")):
        if metric.endswith(suffix):
            return unit
    return "slices" if metric.endswith("_slices") else "1"


def describe(values: Sequence[float]) -> dict:
    """Counts and statistics of one metric's values (module conventions).

    Examples
    --------
    >>> d = describe([0.8, 0.9, float("nan"), 0.7])
    >>> d["n"], d["n_nan"], round(d["median"], 3)
    (4, 1, 0.8)
    """
    v = np.asarray(values, dtype=float)
    finite = v[np.isfinite(v)]
    out = {
        "n": len(v),
        "n_finite": len(finite),
        "n_inf": int(np.isinf(v).sum()),
        "n_nan": int(np.isnan(v).sum()),
    }
    if len(finite):
        q1, median, q3 = np.percentile(finite, [25, 50, 75])
        out.update(
            mean=float(finite.mean()),
            sd=float(finite.std(ddof=1)) if len(finite) > 1 else math.nan,
            median=float(median), q1=float(q1), q3=float(q3), iqr=float(q3 - q1),
            min=float(finite.min()), max=float(finite.max()),
        )  # fmt: skip
    else:
        out.update(
            dict.fromkeys(("mean", "sd", "median", "q1", "q3", "iqr", "min", "max"), math.nan)
        )
    return out


def summarise(rows: Sequence[dict], metrics: Sequence[str] = SUMMARY_METRICS) -> list[dict]:
    """One summary row per structure and metric (plus ``gci``), in first-seen order.

    Parameters
    ----------
    rows : sequence of dict
        Rows of :func:`rtplan.workflows.agree.agree_patient` / a cohort run.
    metrics : sequence of str
        Metric columns to summarise.
    """
    known = set(PairMetrics.metric_names())
    unknown = [m for m in metrics if m not in known]
    if unknown:
        raise InputError(f"unknown metric(s): {', '.join(unknown)}")
    structures = list(dict.fromkeys(r["structure"] for r in rows))
    out = []
    for s in structures:
        group = [r for r in rows if r["structure"] == s]
        flagged = sum(r["status"] != "ok" for r in group)
        for m in metrics:
            out.append(
                {
                    "structure": s,
                    "metric": m,
                    "unit": metric_unit(m),
                    "n_flagged": flagged,
                    **describe([r[m] for r in group]),
                }
            )
        gci = {r["patient"]: r["gci"] for r in group}
        out.append(
            {
                "structure": s,
                "metric": "gci",
                "unit": "1",
                "n_flagged": 0,
                **describe(list(gci.values())),
            }  # fmt: skip
        )
    return [{c: row[c] for c in SUMMARY_COLUMNS} for row in out]
