"""DVH plots (matplotlib, no display needed), in the RTSTRUCT's ROI display colours.

:func:`check_dvh_figure` draws a protocol check: every matched structure's cumulative DVH in
its ROI display colour (the colours of the contour overlay, :func:`check_colours`), each
target's prescription as a vertical line, and each evaluated constraint as a marker on its
structure's curve (filled circle: pass; diamond: acceptable; cross: fail; an empty square: an
optional miss).  Constraints judged in EQD2 are not on a physical-dose curve and get no
marker (the legend says how many).  Names from DICOM are text, never mathtext
(:func:`rtplan.sanitize.plot_text`).  Figures are rendered at :data:`DPI`.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from rtplan.constraints import ConstraintResult, format_number
from rtplan.dvh import DVH
from rtplan.sanitize import plot_text

#: Resolution (dots per inch) of every PNG rtplan draws.
DPI = 150
#: Structure colours when an ROI has no display colour (by position in the legend).
FALLBACK_COLOURS = ("#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0")
#: Marker shape and edge colour per verdict.
MARKERS = {
    "pass": ("o", "black"),
    "acceptable": ("D", "#b36b00"),
    "fail": ("X", "#d00000"),
}


def structure_colour(rgb: Sequence[int] | None, index: int) -> str:
    """An ROI display colour (0-255 RGB) as ``#rrggbb``; without one, the ``index``-th
    fallback colour."""
    if rgb is not None:
        return to_hex(np.clip(np.asarray(rgb, dtype=float) / 255.0, 0, 1))
    return FALLBACK_COLOURS[index % len(FALLBACK_COLOURS)]


def check_colours(check) -> dict[str, str]:
    """Colour of every structure a check matched, by plan name, in the protocol's order (the
    same colours in the DVH plot and the contour overlay)."""
    names = list(dict.fromkeys(n for m in check.matches.values() for n in m.structures))
    rgb = dict(getattr(check, "colours", {}) or {})
    return {n: structure_colour(rgb.get(n), i) for i, n in enumerate(names)}


@dataclass(frozen=True)
class Marker:
    """A constraint drawn on a DVH: ``dose_gy``, ``volume_pct`` on the curve of
    ``structure``; ``verdict`` chooses the shape; ``label`` names it."""

    structure: str
    dose_gy: float
    volume_pct: float
    verdict: str
    label: str


def constraint_marker(result: ConstraintResult, dvh: DVH) -> Marker | None:
    """Where a physical-dose constraint result lies on its structure's cumulative DVH (dose
    Gy, volume % of the dosed volume), or ``None`` (not evaluated, EQD2 basis, ``HI``)."""
    if result.value is None or not result.basis.startswith("physical"):
        return None
    total = dvh.dosed_volume_cc
    if total <= 0:
        return None
    m = result.constraint.parsed_metric
    rx = result.prescription_gy
    value = result.value

    def on_curve(dose: float) -> float:
        return float(dvh.volume_at_dose_cc(dose)) / total * 100.0

    if m.kind == "vgy":
        dose = m.number
        volume = value if m.unit == "%" else value / total * 100.0
    elif m.kind == "vrx" and rx:
        dose, volume = m.number * rx / 100.0, value
    elif m.kind == "dvol":
        dose = value * rx / 100.0 if m.relative and rx else value
        volume = m.number if m.volume_unit == "%" else m.number / total * 100.0
    elif m.kind == "dstat":
        dose = value * rx / 100.0 if m.relative and rx else value
        volume = on_curve(dose)
    else:
        return None
    verdict = result.verdict
    if verdict == "fail" and result.constraint.priority == "optimal":
        verdict = "optimal miss"
    return Marker(
        result.structure_name or dvh.name,
        float(dose),
        float(np.clip(volume, 0.0, 100.0)),
        verdict,
        result.constraint.metric,
    )


def dvh_figure(
    dvhs: Mapping[str, DVH],
    *,
    title: str = "",
    colours: Mapping[str, str] | None = None,
    prescriptions_gy: Mapping[str, float] | None = None,
    markers: Sequence[Marker] = (),
    note: str = "",
) -> Figure:
    """Cumulative DVHs of several structures, volume in % of each structure.

    Parameters
    ----------
    dvhs : mapping of str to DVH
        Label (plan structure name) -> DVH (physical dose).
    title : str
        Figure title.
    colours : mapping of str to colour, optional
        Colour per label (default: :data:`FALLBACK_COLOURS` in order).
    prescriptions_gy : mapping of str to float, optional
        Vertical lines: label -> prescription (Gy).
    markers : sequence of Marker
        Constraints drawn on the curves (:func:`constraint_marker`).
    note : str
        A line under the legend (e.g. what is not drawn).

    Returns
    -------
    matplotlib.figure.Figure
        Dose (Gy) on x, volume (%) on y; the curve of a structure partly outside the dose
        grid is drawn over its dosed part only (its label says so).  Curves carry the gid
        ``dvh:<name>``, markers ``constraint:<name>:<metric>``, prescription lines
        ``rx:<label>``.
    """
    fig = Figure(figsize=(9.0, 5.4), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    colours = dict(colours or {})
    handles = _draw_curves(ax, dvhs, colours)
    _draw_prescriptions(ax, prescriptions_gy or {})
    span_gy = max([float(d.max_gy) for d in dvhs.values()] + [m.dose_gy for m in markers] + [1.0])
    _draw_markers(ax, markers, colours, span_gy)
    ax.set_xlabel("Dose (Gy)")
    ax.set_ylabel("Volume (%)")
    ax.set_ylim(0, 102)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(plot_text(title))
    if markers:
        for verdict, (shape, edge) in MARKERS.items():
            handles.append(
                Line2D([], [], ls="", marker=shape, markerfacecolor="#bbbbbb",
                       markeredgecolor=edge, label=f"constraint {verdict}")
            )  # fmt: skip
        handles.append(
            Line2D([], [], ls="", marker="s", markerfacecolor="none", markeredgecolor="#555555",
                   label="optional constraint missed")
        )  # fmt: skip
    if handles:
        # outside the axes: "best" searches every curve point for a free spot (seconds)
        legend = ax.legend(
            handles=handles, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0),
            borderaxespad=0, title=plot_text(note) if note else None, title_fontsize="x-small",
        )  # fmt: skip
        legend.set_gid("legend")
    return fig


def _draw_curves(ax, dvhs: Mapping[str, DVH], colours: dict) -> list:
    """The curves (volume in % of the dosed part); fills ``colours`` in; legend handles."""
    handles = []
    for i, (name, dvh) in enumerate(dvhs.items()):
        if dvh.dosed_volume_cc <= 0:
            continue
        colour = colours.get(name) or FALLBACK_COLOURS[i % len(FALLBACK_COLOURS)]
        colours[name] = colour
        dose, volume = dvh.curve()
        volume_pct = 100.0 * np.asarray(volume) / dvh.dosed_volume_cc
        label = name
        if dvh.outside_dose_cc > 0:
            label = f"{name} ({dvh.outside_dose_cc:.3g} cc outside dose)"
        (line,) = ax.plot(
            np.r_[0.0, dose], np.r_[100.0, volume_pct], color=colour, lw=1.6, zorder=2
        )
        line.set_gid(f"dvh:{name}")
        handles.append(Line2D([], [], color=colour, lw=2, label=plot_text(label)))
    return handles


def _draw_prescriptions(ax, prescriptions_gy: Mapping[str, float]) -> None:
    """A dashed vertical line, labelled, at each prescription."""
    for label, rx in prescriptions_gy.items():
        line = ax.axvline(rx, color="#333333", lw=1.0, ls=(0, (6, 3)), zorder=1)
        line.set_gid(f"rx:{label}")
        ax.annotate(
            plot_text(f"Rx {label} {format_number(rx)} Gy"),
            (rx, 2.0),
            xytext=(-3, 0),
            textcoords="offset points",
            rotation=90,
            va="bottom",
            ha="right",
            fontsize=8,
            color="#333333",
        )


def _draw_markers(ax, markers: Sequence[Marker], colours: Mapping[str, str], span_gy: float):
    """Each constraint as a verdict marker on its structure's curve, labelled; labels of
    nearby markers (a tenth of ``span_gy``, 4 % volume) are stacked upwards."""
    placed: list[tuple[float, float]] = []
    for mk in markers:
        shape, edge = MARKERS.get(mk.verdict, ("s", "#555555"))
        face = colours.get(mk.structure, "#777777")
        if mk.verdict == "optimal miss":
            face = "none"
        point = ax.scatter(
            [mk.dose_gy], [mk.volume_pct], marker=shape, s=60, facecolors=face,
            edgecolors=edge, linewidths=1.4, zorder=5,
        )  # fmt: skip
        point.set_gid(f"constraint:{mk.structure}:{mk.label}")
        near = sum(
            abs(mk.dose_gy - d) < 0.1 * span_gy and abs(mk.volume_pct - v) < 4.0 for d, v in placed
        )
        placed.append((mk.dose_gy, mk.volume_pct))
        ax.annotate(
            plot_text(mk.label),
            (mk.dose_gy, mk.volume_pct),
            xytext=(5, 4 + 9 * near),
            textcoords="offset points",
            fontsize=7,
            color=edge if mk.verdict == "fail" else "#222222",
        )


def check_dvh_figure(check) -> Figure:
    """The DVH figure of a protocol check (module docstring)."""
    colours = check_colours(check)
    dvhs = {n: check.dvhs[n] for n in colours if n in check.dvhs}
    markers, eqd2 = [], 0
    for r in check.results:
        dvh = check.dvhs.get(r.structure_name or "")
        if dvh is None or r.value is None:
            continue
        if r.basis.startswith("EQD2"):
            eqd2 += 1
            continue
        mk = constraint_marker(r, dvh)
        if mk is not None:
            markers.append(mk)
    rx = {
        check.protocol.structures[role].label: p.used_gy for role, p in check.prescriptions.items()
    }
    note = f"{eqd2} EQD2 constraint(s) not drawn (physical DVH)" if eqd2 else ""
    return dvh_figure(
        dvhs,
        title=f"{check.patient}: cumulative DVH (physical dose)",
        colours=colours,
        prescriptions_gy=rx,
        markers=markers,
        note=note,
    )


def figure_to_png(fig: Figure, dpi: float = DPI) -> bytes:
    """A figure as PNG bytes at ``dpi`` (default :data:`DPI`)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def dvh_png(dvhs: Mapping[str, DVH], *, title: str = "") -> bytes:
    """:func:`dvh_figure` rendered as PNG bytes."""
    return figure_to_png(dvh_figure(dvhs, title=title))
