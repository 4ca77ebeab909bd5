"""Reports of ``rtplan dvh``: the terminal table, the CSV table and the JSON text of a DVH
report (the ``rtplan-dvh/1`` dictionary made by :func:`rtplan.workflows.dvh.dvh_folder`;
schema in docs/dvh.md)."""

from __future__ import annotations

import csv
import io
import json

from rtplan.dvh.embedded import COMPARED
from rtplan.sanitize import csv_cell


def to_json(report: dict) -> str:
    """The report as indented JSON (numpy numbers as floats)."""
    return json.dumps(report, indent=2, default=_json_default)


def _json_default(obj):
    return float(obj)


def _fmt(value, width=10) -> str:
    return f"{'n/a':>{width}}" if value is None else f"{value:>{width}.3f}"


def to_text(report: dict, metrics) -> str:
    """The table printed by ``rtplan dvh``: one line per structure, the dose, the end cap and
    (with a comparison) rtplan against the planning system."""
    head = ["Structure".ljust(20), f"{'Volume cc':>10}", f"{'Outside cc':>10}"]
    units = report["structures"][0]["units"] if report["structures"] else {}
    head += [f"{m + ' ' + units.get(m, ''):>12}" for m in metrics]
    lines = [" ".join(head)]
    for r in report["structures"]:
        cells = [r["name"][:20].ljust(20), _fmt(r["volume_cc"]), _fmt(r["outside_dose_cc"])]
        cells += [_fmt(r["metrics"][m], 12) for m in metrics]
        lines.append(" ".join(cells))
    rx = report["prescription_gy"]
    lines.append(
        f"dose: {report['dose']['source']} (max {report['dose']['max_gy']:.3f} Gy"
        + _kind(report["dose"])
        + ")"
        + ("" if rx is None else f"; prescription {rx:g} Gy")
    )
    lines.append(_end_cap_line(report["conventions"]))
    comparison = report.get("embedded_comparison")
    if comparison:
        lines.append(report["conventions"]["embedded_bin_point"]["description"])
        lines.append("rtplan vs planning system (difference = rtplan - planning system):")
        lines.append("  " + "Structure".ljust(20) + " ".join(f"{m:>26}" for m in COMPARED))
        for c in comparison:
            if not c["metrics"]:
                lines.append(f"  {c['name'][:20]:<20} " + "; ".join(c["notes"]))
                continue
            cells = []
            for m in COMPARED:
                v = c["metrics"][m]
                pct = v["difference_pct"]
                cells.append(
                    f"{_short(v['rtplan'])}/{_short(v['planning_system'])} "
                    + (f"{pct:+.2f}%" if pct is not None else "n/a").rjust(8)
                )
            mark = "" if c["like_for_like"] is not False else "  (not like-for-like)"
            lines.append(f"  {c['name'][:20]:<20}" + " ".join(f"{x:>26}" for x in cells) + mark)
            lines += [f"    note: {n}" for n in c["notes"]]
    return "\n".join(lines)


def _short(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _end_cap_line(conventions) -> str:
    choice = conventions["end_cap_choice"]
    if choice["requested"] != "auto":
        return f"end cap: {choice['used']}"
    scores = choice["median_abs_volume_difference_pct"]
    if not scores:
        return f"end cap: {choice['used']} (auto: no planning-system DVH in cc to match)"
    listed = ", ".join(f"{c} {v:.2f} %" for c, v in scores.items())
    return (
        f"end cap: {choice['used']} (auto, median |volume difference| vs planning system: {listed})"
    )


def to_csv(rows, metrics, comparison=None) -> str:
    """One row per structure: metrics, flags and (with a comparison) for each compared
    metric rtplan's value, the planning system's and the difference (absolute and %).
    Text from DICOM passes through :func:`rtplan.sanitize.csv_cell`."""
    units = rows[0]["units"] if rows else {}
    by_name = {c["name"]: c for c in comparison or []}
    cmp_head = [
        f"{m} {what}"
        for m in (COMPARED if comparison is not None else ())
        for what in ("rtplan", "planning system", "difference", "difference %")
        + (("difference volume %-points",) if _by_volume(m) else ())
    ]
    fh = io.StringIO(newline="")
    w = csv.writer(fh)
    w.writerow(
        ["name", "volume_cc", "outside_dose_cc"]
        + [f"{m} [{units.get(m, '')}]" for m in metrics]
        + ["flags"]
        + cmp_head
        + (["like for like", "comparison notes"] if comparison is not None else [])
    )
    for r in rows:
        cmp_cells = [] if comparison is None else _comparison_cells(by_name.get(r["name"]))
        w.writerow(
            [csv_cell(r["name"]), "" if r["volume_cc"] is None else r["volume_cc"],
             "" if r["outside_dose_cc"] is None else r["outside_dose_cc"]]
            + ["" if r["metrics"][m] is None else r["metrics"][m] for m in metrics]
            + [csv_cell("; ".join(r["flags"]))]
            + [csv_cell(c) for c in cmp_cells]
        )  # fmt: skip
    return fh.getvalue()


def _comparison_cells(c: dict | None) -> list:
    """A structure's comparison columns: for each compared metric rtplan's value, the
    planning system's and the difference (absolute and %), then the notes."""
    c = c or {"metrics": {}, "notes": [], "like_for_like": None}
    cells = []
    for m in COMPARED:
        v = c["metrics"].get(m, {})
        keys = ("rtplan", "planning_system", "difference", "difference_pct")
        cells += ["" if v.get(k) is None else v[k]
                  for k in keys + (("difference_volume_points",) if _by_volume(m) else ())]  # fmt: skip
    like = c.get("like_for_like")
    return [*cells, "" if like is None else ("yes" if like else "no"), "; ".join(c["notes"])]


def _by_volume(metric: str) -> bool:
    """``D<v>%`` metrics also get their difference in volume %-points."""
    return metric.startswith("D") and metric.endswith("%")


def _kind(dose: dict) -> str:
    """``", RBE-weighted (DoseType EFFECTIVE)"``; nothing for a physical dose."""
    kind = dose.get("kind", "physical")
    return "" if kind == "physical" else f", {kind} (DoseType {dose['dose_type']})"
