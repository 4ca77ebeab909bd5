"""DVH plots (matplotlib, no display needed)."""

from __future__ import annotations

import io
from collections.abc import Mapping

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rtplan.dvh import DVH


def dvh_figure(dvhs: Mapping[str, DVH], *, title: str = "") -> Figure:
    """Cumulative DVHs of several structures, volume in % of each structure.

    Parameters
    ----------
    dvhs : mapping of str to DVH
        Label -> DVH (physical dose).
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        Dose (Gy) on x, volume (%) on y; the curve of a structure partly outside the dose
        grid is drawn over its dosed part only (its label says so).
    """
    fig = Figure(figsize=(8.0, 5.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_prop_cycle(color=matplotlib.colormaps["tab20"].colors)  # 20 distinct colours
    for label, dvh in dvhs.items():
        if dvh.dosed_volume_cc <= 0:
            continue
        dose, volume = dvh.curve()
        volume_pct = 100.0 * np.asarray(volume) / dvh.dosed_volume_cc
        if dvh.outside_dose_cc > 0:
            label = f"{label} ({dvh.outside_dose_cc:.3g} cc outside dose)"
        ax.plot(np.r_[0.0, dose], np.r_[100.0, volume_pct], label=label, lw=1.5)
    ax.set_xlabel("Dose (Gy)")
    ax.set_ylabel("Volume (%)")
    ax.set_ylim(0, 102)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    if ax.lines:
        # outside the axes: "best" searches every curve point for a free spot (seconds)
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    return fig


def dvh_png(dvhs: Mapping[str, DVH], *, title: str = "") -> bytes:
    """:func:`dvh_figure` rendered as PNG bytes."""
    buf = io.BytesIO()
    dvh_figure(dvhs, title=title).savefig(buf, format="png")
    return buf.getvalue()
