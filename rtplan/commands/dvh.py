"""``rtplan dvh PATH``: DVH metrics of the structures of a plan (JSON, CSV, plot).

Reads the folder with :func:`rtplan.io.load_plan_folder`, computes each structure's DVH
with :func:`rtplan.dvh.compute` and evaluates metric strings (grammar in
:mod:`rtplan.dvh.metrics`).  ``--dose`` picks the RTDOSE file(s); several are summed on
the first one's grid (BEAM doses of one plan by :func:`rtplan.io.sum_beam_doses`, plans by
:func:`rtplan.dvh.plansum.sum_doses`).  JSON schema ``rtplan-dvh/1`` is in docs/dvh.md.
The objects are chosen by :mod:`rtplan.io.selection` (``--patient-id``, ``--plan``,
``--structure-set``, ``--dose``, ``--mixed-patients``).  Empty structures are listed
(volume 0, flag ``empty``).  Exit 0; 1 when a structure of the set cannot be used (broken
contours: it is listed with its problem, no numbers); bad input (unknown or broken structure named with
--structure, malformed metric, dose in another frame of reference, ...) exits 2 with one
line on stderr.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
import warnings

from rtplan.commands.selection import add_selection_arguments
from rtplan.dvh.compute import (
    DEFAULT_METRICS,
    DEFAULT_OUTSIDE_TOLERANCE,
    OutsideTolerance,
    compute,
    dose_grid_structure,
)
from rtplan.dvh.dosefield import axial_field
from rtplan.dvh.embedded import COMPARED, choose_end_cap, compare_embedded
from rtplan.dvh.metrics import evaluate, parse
from rtplan.errors import InputError
from rtplan.io.output import OutputSet, check_output_file
from rtplan.io.rtdose import FRACTION_DOSE_MODES
from rtplan.sanitize import csv_cell

SCHEMA = "rtplan-dvh/1"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "dvh",
        help="DVH metrics (Dmean, D95%%, V20Gy, ...) of a plan's structures",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("path", help="folder of DICOM files (searched recursively)")
    p.add_argument(
        "--structure", action="append", metavar="NAME", help="structure(s) (default: all volumes)"
    )
    p.add_argument(
        "--metrics",
        default=",".join(DEFAULT_METRICS),
        help="comma-separated metric list (default: %(default)s)",
    )
    add_selection_arguments(p)
    p.add_argument("--json", action="store_true", help=f"print JSON (schema {SCHEMA})")
    p.add_argument("--csv", metavar="FILE", help="write a CSV table (one row per structure)")
    p.add_argument("--plot", metavar="FILE.png", help="write a cumulative DVH plot (PNG)")
    p.add_argument(
        "--compare-embedded",
        action="store_true",
        help="compare with the planning system's DVHs stored in the RTDOSE",
    )
    p.add_argument(
        "--end-cap",
        choices=("auto", "slab", "none"),
        default="auto",
        help="end-cap convention: slab (half a slice beyond the end contours), none (end on "
        "them), auto (the one whose volumes match the planning system's DVHs in the RTDOSE; "
        "slab when it holds none). Default: %(default)s",
    )
    p.add_argument(
        "--outside-tolerance-pct",
        type=float,
        default=100 * DEFAULT_OUTSIDE_TOLERANCE.fraction,
        metavar="PCT",
        help="structure volume (%% of it) allowed outside the dose grid with dose metrics "
        "still computed, flagged (default: %(default)g)",
    )
    p.add_argument(
        "--outside-tolerance-cc",
        type=float,
        default=DEFAULT_OUTSIDE_TOLERANCE.cc,
        metavar="CC",
        help="... and at most this many cc (default: %(default)g)",
    )
    p.add_argument(
        "--fraction-dose",
        choices=FRACTION_DOSE_MODES,
        default="per_fraction",
        help="how to read DoseSummationType FRACTION (default: per_fraction)",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from rtplan.io import load_plan_folder

    inputs = [args.path, *(args.dose or [])]
    for option in ("csv", "plot"):  # before any work (docs/io.md)
        if getattr(args, option):
            check_output_file(getattr(args, option), inputs=inputs, what=f"--{option}")
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    if not metrics:
        raise InputError("--metrics is empty")
    parsed = [parse(m) for m in metrics]  # malformed strings fail before any reading
    tolerance = OutsideTolerance(args.outside_tolerance_pct / 100.0, args.outside_tolerance_cc)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        patient = load_plan_folder(
            args.path,
            patient_id=args.patient_id,
            plan=args.plan,
            structure_set=args.structure_set,
            dose=args.dose or (),
            mixed_patients=args.mixed_patients,
            fraction_dose=args.fraction_dose,
        )
        ss = patient.structure_set()
        dose = patient.dose()
    rx = _prescription(patient)
    if any(m.needs_prescription for m in parsed) and rx is None:
        raise InputError(
            "a %Rx metric needs a prescription and the plan states none", path=args.path
        )
    problems = ss.problems
    if args.structure:
        structures = [ss[n] for n in args.structure]  # empty or broken when named: exit 2
        broken, empty = [], []
    else:  # every volume; one that cannot be used is listed with its problem (exit 1)
        structures = [s for s in ss if s.is_volume and s.name not in problems]
        broken = [s for s in ss if s.name in problems]
        empty = [s for s in ss if s.name in ss.empty_names]
    cap = choose_end_cap(args.end_cap, structures, dose.embedded_dvhs)
    field = axial_field(dose)
    dvhs = {
        s.name: compute(
            s, dose, end_cap=cap.used, prescription_gy=rx, field=field, outside_tolerance=tolerance
        )  # fmt: skip
        for s in structures
    }
    piv = (
        _isodose_volume(ss, dose, field, cap.used, dvhs)
        if any(m.kind == "ci" for m in parsed)
        else None
    )
    rows = []
    for s in structures:
        dvh = dvhs[s.name]
        values = {
            m.text: evaluate(dvh, m, prescription_gy=rx, isodose_volume_cc=piv) for m in parsed
        }
        # a structure partly outside the dose grid gets one flag (the DVH's), not one a metric
        notes = [
            v.note for v in values.values() if v.note and "outside the dose grid" not in v.note
        ]
        rows.append(
            {
                "name": s.name,
                "number": s.number,
                "type": s.interpreted_type,
                "volume_cc": dvh.volume_cc,
                "outside_dose_cc": dvh.outside_dose_cc,
                "min_gy": _num(dvh.min_gy),
                "max_gy": _num(dvh.max_gy),
                "metrics": {k: _num(v.value) for k, v in values.items()},
                "units": {k: v.unit for k, v in values.items()},
                "flags": list(dict.fromkeys(list(dvh.flags) + notes)),
            }
        )
    for s, volume, flags in [(s, None, [f"not computed: {r}" for r in problems[s.name]])
                             for s in broken] + [(s, 0.0, ["empty"]) for s in empty]:  # fmt: skip
        rows.append(
            {
                "name": s.name,
                "number": s.number,
                "type": s.interpreted_type,
                "volume_cc": volume,
                "outside_dose_cc": None,
                "min_gy": None,
                "max_gy": None,
                "metrics": {m: None for m in metrics},
                "units": {},
                "flags": flags,
            }
        )
    comparison = (
        _compare(dose, structures, dvhs, rx, ss.empty_names if not args.structure else [])
        if args.compare_embedded
        else None
    )
    notes = list(patient.notes) + [cap.describe()] + _outside_summary(dvhs)
    report = {
        "schema": SCHEMA,
        "path": str(args.path),
        "patient_id": patient.patient_id,
        "frame_of_reference_uid": dose.frame_of_reference_uid,
        "inputs": _inputs(patient),
        "dose": {
            "source": dose.source,
            "summation_type": dose.summation_type,
            "max_gy": float(dose.max_gy),
        },
        "prescription_gy": rx,
        "conventions": (
            next(iter(dvhs.values())).conventions | {"resolution_mm": "per structure"}
            if dvhs
            else {"end_cap": cap.used}
        )
        | {"end_cap_choice": cap.as_dict(), "outside_dose_tolerance": tolerance.describe()},
        "notes": notes,
        "structures": rows,
    }
    if comparison is not None:
        report["embedded_comparison"] = comparison
    with OutputSet() as outputs:  # written completely or not at all
        if args.csv:
            outputs.add(args.csv, _csv_text(rows, metrics, comparison))
        if args.plot:
            from rtplan.report.plots import dvh_png

            outputs.add(args.plot, dvh_png(dvhs, title=f"DVH: {patient.patient_id}"))
    if args.json:
        print(json.dumps(report, indent=2, default=_json_default))
    else:
        print(_table(report, metrics))
    for note in notes:
        if note != cap.describe():  # the table and JSON state the end cap
            print(f"rtplan dvh: note: {note}", file=sys.stderr)
    for r in rows:
        for flag in r["flags"]:
            if "outside the dose grid" not in flag and flag != "empty":
                print(f"rtplan dvh: note: {r['name']}: {flag}", file=sys.stderr)
    for warning in ss.warnings:
        print(f"rtplan dvh: note: {ss.source}: {warning}", file=sys.stderr)
    return 1 if broken else 0


def _inputs(patient) -> dict:
    """The files used, by role."""
    c = patient.choice
    return {
        "RTPLAN": str(c.plan.path) if c.plan is not None else None,
        "RTSTRUCT": str(c.structure_set.path) if c.structure_set is not None else None,
        "RTDOSE": [str(f.path) for f in c.doses] or [str(p) for p in patient.selection.dose],
    }


def _outside_summary(dvhs) -> list[str]:
    """One note for every structure partly outside the dose grid (empty when none)."""
    parts = []
    for name, dvh in dvhs.items():
        if dvh.outside_dose_cc > 0 and any("outside the dose grid" in f for f in dvh.flags):
            within = dvh.outside_dose_cc <= dvh.outside_tolerance_cc
            parts.append(
                f"{name} {dvh.outside_dose_cc:.3g} cc of {dvh.volume_cc:.4g} cc "
                + (
                    "(within the tolerance: metrics over the dosed part)"
                    if within
                    else "(beyond the tolerance: dose metrics n/a)"
                )  # fmt: skip
            )
    if not parts:
        return []
    return [f"{len(parts)} structure(s) partly outside the dose grid: " + "; ".join(parts)]


def _prescription(patient) -> float | None:
    """Total prescription of the plan(s) behind the dose (a plan sum adds them)."""
    c = patient.choice
    plans = {p.sop_instance_uid: p for p in patient.plans}
    refs = list(dict.fromkeys(f.referenced_plan_uid for f in c.doses))
    if not c.doses and c.plan is not None:
        refs = [c.plan.sop_instance_uid]
    values = [plans[u].prescription_gy if u in plans else None for u in refs]
    if not values or any(v is None for v in values):
        return None
    return float(sum(values))


def _isodose_volume(ss, dose, field, end_cap, dvhs):
    """``level_gy -> cc`` in the EXTERNAL structure, else in the whole dose grid."""
    external = [s for s in ss if s.interpreted_type.upper() == "EXTERNAL" and s.is_volume]
    if external:
        s = external[0]
        dvh = dvhs.get(s.name) or compute(s, dose, end_cap=end_cap, field=field)
    else:
        dvh = compute(dose_grid_structure(dose), dose, field=field)
    return dvh.volume_at_dose_cc


def _compare(dose, structures, dvhs, rx, empty_names):
    """rtplan against the planning system's DVHs, per structure (:mod:`rtplan.dvh.embedded`);
    structures without an embedded DVH are listed with a note."""
    by_number = {e.roi_number: e for e in dose.embedded_dvhs}
    out = []
    for s in structures:
        c = compare_embedded(dvhs[s.name], by_number.get(s.number), prescription_gy=rx)
        out.append(
            {
                "name": s.name,
                "metrics": {
                    m.metric: {
                        "rtplan": _num(m.rtplan),
                        "planning_system": _num(m.planning_system),
                        "difference": _num(m.difference),
                        "difference_pct": _num(m.difference_pct),
                    }
                    for m in c.metrics
                },
                "notes": list(c.notes),
            }
        )
    for name in empty_names:
        out.append({"name": name, "metrics": {}, "notes": ["empty structure: not compared"]})
    return out


def _num(value):
    return (
        None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
    )


def _json_default(obj):
    return float(obj)


def _fmt(value, width=10) -> str:
    return f"{'n/a':>{width}}" if value is None else f"{value:>{width}.3f}"


def _table(report, metrics) -> str:
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
        f"dose: {report['dose']['source']} (max {report['dose']['max_gy']:.3f} Gy)"
        + ("" if rx is None else f"; prescription {rx:g} Gy")
    )
    lines.append(_end_cap_line(report["conventions"]))
    comparison = report.get("embedded_comparison")
    if comparison:
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
            lines.append(f"  {c['name'][:20]:<20}" + " ".join(f"{x:>26}" for x in cells))
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


def _csv_text(rows, metrics, comparison=None) -> str:
    """One row per structure: metrics, flags and (with a comparison) for each compared
    metric rtplan's value, the planning system's and the difference (absolute and %).
    Text from DICOM passes through :func:`rtplan.sanitize.csv_cell`."""
    units = rows[0]["units"] if rows else {}
    by_name = {c["name"]: c for c in comparison or []}
    cmp_head = [
        f"{m} {what}"
        for m in (COMPARED if comparison is not None else ())
        for what in ("rtplan", "planning system", "difference", "difference %")
    ]
    fh = io.StringIO(newline="")
    w = csv.writer(fh)
    w.writerow(
        ["name", "volume_cc", "outside_dose_cc"]
        + [f"{m} [{units.get(m, '')}]" for m in metrics]
        + ["flags"]
        + cmp_head
        + (["comparison notes"] if comparison is not None else [])
    )
    for r in rows:
        cmp_cells = []
        if comparison is not None:
            c = by_name.get(r["name"], {"metrics": {}, "notes": []})
            for m in COMPARED:
                v = c["metrics"].get(m, {})
                cmp_cells += [
                    "" if v.get(k) is None else v[k]
                    for k in ("rtplan", "planning_system", "difference", "difference_pct")
                ]
            cmp_cells.append("; ".join(c["notes"]))
        w.writerow(
            [csv_cell(r["name"]), "" if r["volume_cc"] is None else r["volume_cc"],
             "" if r["outside_dose_cc"] is None else r["outside_dose_cc"]]
            + ["" if r["metrics"][m] is None else r["metrics"][m] for m in metrics]
            + [csv_cell("; ".join(r["flags"]))]
            + [csv_cell(c) for c in cmp_cells]
        )  # fmt: skip
    return fh.getvalue()
