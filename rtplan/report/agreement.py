"""Agreement results as reports: long CSV, JSON, box plots (written to files by
:mod:`rtplan.workflows.agree`).

Conventions
-----------
CSV
    One row per patient, structure and observer pair, columns as
    :func:`rtplan.workflows.agree.columns`; numbers in full precision (``repr``),
    non-finite values written ``inf`` / ``nan`` (read as such by pandas and R).
JSON
    ``{"metadata": ..., "rows": [...], "summary": [...]}``; non-finite numbers become
    ``null`` (JSON has no NaN or infinity) -- each row's ``status`` says why.
Plots
    One PNG per metric: a box per structure over all patients and pairs (finite values;
    the number of values left out is printed under each box), each pair's value a point
    over it (a colour per observer pair), the tolerance in the title of the surface Dice
    and added path length.  Rendered with
    matplotlib's Agg backend, no display needed.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence

from rtplan.agreement.summary import SUMMARY_METRICS
from rtplan.sanitize import csv_cell, without_mathtext

#: Axis labels of the plotted metrics.
METRIC_LABELS = {
    "dice": "Dice",
    "jaccard": "Jaccard",
    "hausdorff_mm": "Hausdorff distance (mm)",
    "hd95_mm": "HD95 (mm, max of directed)",
    "masd_mm": "MASD (mm)",
    "assd_mm": "ASSD (mm)",
    "surface_dice": "Surface Dice",
    "added_path_length_mm": "Added path length (mm)",
    "volume_ratio": "Volume ratio B/A",
    "centroid_distance_mm": "Centroid distance (mm)",
}


#: Metrics that depend on the tolerance (their plot titles state it).
TOLERANCE_METRICS = ("surface_dice", "surface_overlap_a", "surface_overlap_b",
                     "added_path_length_mm", "added_path_length_percent")  # fmt: skip


def to_csv(rows: Sequence[dict], columns: Sequence[str]) -> str:
    """The long table as CSV text (module conventions)."""
    f = io.StringIO(newline="")
    writer = csv.writer(f)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_csv_value(row[c]) for c in columns])
    return f.getvalue()


def _csv_value(value):
    if isinstance(value, float):
        return repr(value)
    return csv_cell(value)  # names from DICOM: never a formula, no control characters


def summary_table(summary: list[dict]) -> str:
    """The per-structure summary as the text table ``rtplan agree`` prints."""
    lines = [
        f"{'structure':<18} {'metric':<22} {'n':>4} {'median':>9} {'q1':>9} {'q3':>9} "
        f"{'not finite':>10} {'flagged':>7}"
    ]
    for s in summary:
        lines.append(
            f"{s['structure'][:18]:<18} {s['metric']:<22} {s['n']:>4} {s['median']:>9.3f} "
            f"{s['q1']:>9.3f} {s['q3']:>9.3f} {s['n'] - s['n_finite']:>10} {s['n_flagged']:>7}"
        )
    return "\n".join(lines) + "\n"


def json_ready(value):
    """``value`` with non-finite floats replaced by ``None``, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    return value


@without_mathtext
def box_plots(rows: Sequence[dict], metrics: Sequence[str] = SUMMARY_METRICS) -> dict:
    """One matplotlib Figure per metric: a box per structure, every observer pair's value
    drawn over it as a point (one colour per pair, jittered sideways), and the surface-Dice
    / added-path-length tolerance stated in the title of the metrics that depend on it.

    Returns
    -------
    dict of str to matplotlib.figure.Figure
    """
    structures = list(dict.fromkeys(r["structure"] for r in rows))
    pairs = list(dict.fromkeys((r["observer_a"], r["observer_b"]) for r in rows))
    tolerances = sorted({r["tolerance_mm"] for r in rows})
    return {metric: _box_plot(rows, metric, structures, pairs, tolerances) for metric in metrics}


def _box_plot(rows, metric: str, structures: list, pairs: list, tolerances: list):
    """The figure of one metric (see :func:`box_plots`)."""
    import numpy as np
    from matplotlib.figure import Figure

    data, left_out = [], []
    fig = Figure(figsize=(max(5.0, 1.2 * len(structures) + 3), 4.2))
    ax = fig.add_subplot()
    for s in structures:
        values = [r[metric] for r in rows if r["structure"] == s]
        finite = [v for v in values if math.isfinite(v)]
        data.append(finite)
        left_out.append(len(values) - len(finite))
    ax.boxplot(data, showfliers=False)
    for p, pair in enumerate(pairs):
        xs, ys = _pair_points(rows, metric, structures, pair, p)
        if xs:
            ax.scatter(xs, ys, s=12, alpha=0.7, label=f"{pair[1]} vs {pair[0]}", zorder=3)
    ax.set_xticks(np.arange(1, len(structures) + 1))
    ax.set_xticklabels(
        [
            f"{s}\n(n={len(d)}{f', {k} not finite' if k else ''})"
            for s, d, k in zip(structures, data, left_out, strict=True)
        ],
        fontsize=8,
    )
    label = METRIC_LABELS.get(metric, metric)
    if metric in TOLERANCE_METRICS and tolerances:
        label += f", tolerance {', '.join(f'{t:g}' for t in tolerances)} mm"
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.set_title(label)
    ax.grid(axis="y", alpha=0.3)
    if 1 < len(pairs) <= 12:
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def _pair_points(rows, metric: str, structures: list, pair: tuple, p: int):
    """One observer pair's finite values as points over the boxes (x: the structure's box,
    jittered sideways deterministically by the row's rank and the pair's index ``p``)."""
    xs, ys = [], []
    for x, s in enumerate(structures, start=1):
        for n, r in enumerate(r for r in rows if r["structure"] == s):
            if (r["observer_a"], r["observer_b"]) == pair and math.isfinite(r[metric]):
                xs.append(x + 0.25 * math.sin(1.7 * n + p))  # deterministic jitter
                ys.append(r[metric])
    return xs, ys


def box_plot_pngs(rows: Sequence[dict], metrics: Sequence[str] = SUMMARY_METRICS) -> dict:
    """:func:`box_plots` rendered as PNG bytes (100 dpi), by metric."""
    pngs = {}
    for metric, fig in box_plots(rows, metrics).items():
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        pngs[metric] = buf.getvalue()
    return pngs
