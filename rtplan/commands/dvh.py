"""``rtplan dvh PATH``: DVH metrics of the structures of a plan (JSON, CSV, plot).

Reads the folder with :func:`rtplan.io.load_plan_folder`, computes each structure's DVH
with :func:`rtplan.dvh.compute` and evaluates metric strings (grammar in
:mod:`rtplan.dvh.metrics`).  ``--dose`` picks the RTDOSE file(s); several are summed on
the first one's grid (BEAM doses of one plan by :func:`rtplan.io.sum_beam_doses`, plans by
:func:`rtplan.dvh.plansum.sum_doses`).  JSON schema ``rtplan-dvh/1`` is in docs/dvh.md.
Exit 0; 1 when a structure of the set cannot be used (broken or empty contours: it is
listed with its problem, no numbers); bad input (unknown or broken structure named with
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

from rtplan.dvh.compute import DEFAULT_METRICS, compute, dose_grid_structure
from rtplan.dvh.dosefield import axial_field
from rtplan.dvh.embedded import compare_embedded
from rtplan.dvh.metrics import evaluate, parse
from rtplan.dvh.plansum import sum_doses
from rtplan.errors import InputError
from rtplan.io.output import write_atomic
from rtplan.io.rtdose import FRACTION_DOSE_MODES

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
    p.add_argument("--dose", nargs="+", metavar="FILE", help="RTDOSE file(s); several are summed")
    p.add_argument("--json", action="store_true", help=f"print JSON (schema {SCHEMA})")
    p.add_argument("--csv", metavar="FILE", help="write a CSV table (one row per structure)")
    p.add_argument("--plot", metavar="FILE.png", help="write a cumulative DVH plot (PNG)")
    p.add_argument(
        "--compare-embedded",
        action="store_true",
        help="compare with the planning system's DVHs stored in the RTDOSE",
    )
    p.add_argument("--end-cap", choices=("slab", "none"), default="slab", help="end-cap convention")
    p.add_argument(
        "--fraction-dose",
        choices=FRACTION_DOSE_MODES,
        default="per_fraction",
        help="how to read DoseSummationType FRACTION (default: per_fraction)",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from rtplan.io import load_plan_folder

    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    if not metrics:
        raise InputError("--metrics is empty")
    parsed = [parse(m) for m in metrics]  # malformed strings fail before any reading
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        patient = load_plan_folder(args.path, fraction_dose=args.fraction_dose)
        ss = patient.structure_set()
        dose, plans = _dose(patient, args)
    rx = _prescription(plans)
    if any(m.needs_prescription for m in parsed) and rx is None:
        raise InputError(
            "a %Rx metric needs a prescription and the plan states none", path=args.path
        )
    problems = ss.problems
    if args.structure:
        structures = [ss[n] for n in args.structure]  # a named structure with a problem: exit 2
        broken = []
    else:  # every volume; one that cannot be used is listed with its problem (exit 1)
        structures = [s for s in ss if s.is_volume and s.name not in problems]
        broken = [s for s in ss if s.name in problems]
    field = axial_field(dose)
    dvhs = {
        s.name: compute(s, dose, end_cap=args.end_cap, prescription_gy=rx, field=field)
        for s in structures
    }
    piv = (
        _isodose_volume(ss, dose, field, args.end_cap, dvhs)
        if any(m.kind == "ci" for m in parsed)
        else None
    )
    rows = []
    for s in structures:
        dvh = dvhs[s.name]
        values = {
            m.text: evaluate(dvh, m, prescription_gy=rx, isodose_volume_cc=piv) for m in parsed
        }
        flags = list(dvh.flags) + [v.note for v in values.values() if v.note]
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
                "flags": list(dict.fromkeys(flags)),
            }
        )
    for s in broken:
        rows.append(
            {
                "name": s.name,
                "number": s.number,
                "type": s.interpreted_type,
                "volume_cc": None,
                "outside_dose_cc": None,
                "min_gy": None,
                "max_gy": None,
                "metrics": {m: None for m in metrics},
                "units": {},
                "flags": [f"not computed: {r}" for r in problems[s.name]],
            }
        )
    comparison = _compare(dose, structures, dvhs) if args.compare_embedded else None
    report = {
        "schema": SCHEMA,
        "path": str(args.path),
        "patient_id": patient.patient_id,
        "frame_of_reference_uid": dose.frame_of_reference_uid,
        "dose": {
            "source": dose.source,
            "summation_type": dose.summation_type,
            "max_gy": float(dose.max_gy),
        },
        "prescription_gy": rx,
        "conventions": next(iter(dvhs.values())).conventions | {"resolution_mm": "per structure"}
        if dvhs
        else {},
        "structures": rows,
    }
    if comparison is not None:
        report["embedded_comparison"] = comparison
    if args.csv:
        _write_csv(args.csv, rows, metrics)
    if args.plot:
        from rtplan.report.plots import dvh_png

        write_atomic(args.plot, dvh_png(dvhs, title=f"DVH: {patient.patient_id}"))
    if args.json:
        print(json.dumps(report, indent=2, default=_json_default))
    else:
        print(_table(report, metrics))
    for r in rows:
        for flag in r["flags"]:
            print(f"rtplan dvh: note: {r['name']}: {flag}", file=sys.stderr)
    for warning in ss.warnings:
        print(f"rtplan dvh: note: {ss.source}: {warning}", file=sys.stderr)
    return 1 if broken else 0


def _dose(patient, args):
    """The dose to use (folder default, one file, or a sum) and the plans it belongs to."""
    from pydicom import dcmread

    from rtplan.io import read_rtdose, sum_beam_doses

    plans = {p.sop_instance_uid: p for p in patient.plans}
    if not args.dose:
        dose = patient.dose()
        return dose, [plans[dose.referenced_plan_uid]] if dose.referenced_plan_uid in plans else (
            list(plans.values()) if len(plans) == 1 else []
        )
    singles, beams, used = [], {}, []
    for path in args.dose:
        head = dcmread(path, stop_before_pixels=True, force=True)
        refs = head.get("ReferencedRTPlanSequence", [])
        uid = str(refs[0].ReferencedSOPInstanceUID) if refs else ""
        plan = plans.get(uid)
        d = read_rtdose(path, plan=plan, fraction_dose=args.fraction_dose)
        if d.summation_type in ("BEAM", "BEAM_SESSION"):
            beams.setdefault(uid, []).append(d)
        else:
            singles.append(d)
            used.append(plan)
    parts = singles + [sum_beam_doses(b, plan=plans.get(uid)) for uid, b in beams.items()]
    used += [plans.get(uid) for uid in beams]
    return (parts[0] if len(parts) == 1 else sum_doses(parts)), used


def _prescription(plans) -> float | None:
    """Total prescription of the plan(s) behind the dose parts (a plan sum adds them)."""
    values = [None if p is None else p.prescription_gy for p in plans]
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


def _compare(dose, structures, dvhs):
    by_number = {e.roi_number: e for e in dose.embedded_dvhs}
    out = []
    for s in structures:
        e = by_number.get(s.number)
        if e is None:
            continue
        out.append(
            {
                "name": s.name,
                "metrics": {
                    c.metric: {
                        "rtplan": _num(c.rtplan),
                        "planning_system": _num(c.planning_system),
                        "difference": _num(c.difference),
                        "difference_pct": _num(c.difference_pct),
                    }
                    for c in compare_embedded(dvhs[s.name], e)
                },
            }
        )
    if not out:
        raise InputError(
            "the RTDOSE holds no DVHs for the chosen structures (DVHSequence)",
            path=dose.source or None,
        )
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
    for c in report.get("embedded_comparison", []):
        lines.append(f"{c['name']}: rtplan vs planning system")
        for m, v in c["metrics"].items():
            pct = v["difference_pct"]
            lines.append(
                f"  {m:<10} {_fmt(v['rtplan'])} {_fmt(v['planning_system'])} "
                f"{_fmt(v['difference'])}" + ("" if pct is None else f" ({pct:+.2f} %)")
            )
    return "\n".join(lines)


def _write_csv(path, rows, metrics) -> None:
    units = rows[0]["units"] if rows else {}
    fh = io.StringIO(newline="")
    w = csv.writer(fh)
    w.writerow(
        ["name", "volume_cc", "outside_dose_cc"]
        + [f"{m} [{units.get(m, '')}]" for m in metrics]
        + ["flags"]
    )
    for r in rows:
        w.writerow(
            [r["name"], r["volume_cc"], r["outside_dose_cc"]]
            + ["" if r["metrics"][m] is None else r["metrics"][m] for m in metrics]
            + ["; ".join(r["flags"])]
        )
    write_atomic(path, fh.getvalue())
