"""``rtplan agree PATH ...``: contour agreement between observers, patient by patient.

Each PATH is one patient's folder holding one RTSTRUCT per observer, or a folder of such
patient folders.  Every observer pair (or each observer against --reference, an
observer or the STAPLE consensus) is compared for every structure: Dice, Jaccard, volumes,
centroid distance, Hausdorff, HD95 (larger directed 95th percentile), pooled HD95,
directed mean distances, MASD, ASSD, surface Dice and added path length at
--tolerance-mm, under the conventions of docs/agreement.md.  Prints a
per-structure summary (or JSON with --json); --csv writes the long table (one row
per patient, structure and observer pair); --plots writes box plots.

Exit codes: 0 every patient compared; 1 some patient could not be read or compared (it is
listed on stderr, the others are still compared); 2 bad input (options, no patient, no
patient could be compared, an unusable --scheduler).
"""

from __future__ import annotations

import argparse
import json
import sys

from rtplan.commands import numbers
from rtplan.commands.selection import add_patient_arguments
from rtplan.defaults import DEFAULT_TIMEOUT_S, DEFAULT_TOLERANCE_MM


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "agree",
        help="contour agreement between observers (Dice, HD95, surface Dice, APL, STAPLE)",
        description=__doc__.split("\n\n")[1],
        epilog=__doc__.split("\n\n")[2],
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="patient folder or folder of them")
    p.add_argument(
        "--structure",
        action="append",
        metavar="NAME",
        help="structure to compare (repeatable; default: every structure two or more observers drew)",
    )
    p.add_argument(
        "--reference",
        metavar="OBSERVER|staple",
        help="compare each observer with this observer or with the STAPLE consensus "
        "(default: every pair of observers)",
    )
    p.add_argument(
        "--tolerance-mm",
        type=numbers.DISTANCE_MM,
        default=DEFAULT_TOLERANCE_MM,
        metavar="T",
        help="surface Dice and added path length tolerance "
        f"({numbers.DISTANCE_MM.range}; default {DEFAULT_TOLERANCE_MM} mm)",
    )
    p.add_argument(
        "--in-plane-mm",
        type=numbers.DISTANCE_MM,
        default=1.0,
        metavar="S",
        help="pixel size of the comparison grid when a patient has no CT "
        f"({numbers.DISTANCE_MM.range}; default 1 mm)",
    )
    add_patient_arguments(
        p,
        structure_set_help="an RTSTRUCT observer (repeat for each; default: every RTSTRUCT)",
        several_structure_sets=True,
    )
    p.add_argument("--csv", metavar="FILE", help="write the long table as CSV")
    p.add_argument("--json", action="store_true", help="print JSON (rows, summary, metadata)")
    p.add_argument("--plots", metavar="DIR", help="write one box plot per metric (PNG)")
    p.add_argument(
        "--jobs",
        type=numbers.JOBS,
        metavar="N",
        help=f"local worker processes ({numbers.JOBS.range}; default: CPUs)",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on a Dask distributed scheduler (e.g. tcp://host:8786; needs rtplan[dask])",
    )
    p.add_argument(
        "--scheduler-timeout",
        type=numbers.SCHEDULER_TIMEOUT_S,
        default=DEFAULT_TIMEOUT_S,
        metavar="S",
        help="seconds the Dask scheduler has to answer "
        f"({numbers.SCHEDULER_TIMEOUT_S.range}; default {DEFAULT_TIMEOUT_S:g})",
    )
    p.add_argument(
        "--summary-csv",
        metavar="FILE",
        help="write the per-structure summary (n, mean, SD, median, IQR, min, max) as CSV",
    )
    p.add_argument(
        "--no-progress", action="store_true", help="no progress bar (drawn only on a terminal)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rtplan.report.agreement import summary_table
    from rtplan.workflows.agree import agree_and_report

    report = agree_and_report(
        args.paths,
        structures=args.structure,
        reference=args.reference,
        tolerance_mm=args.tolerance_mm,
        in_plane_mm=args.in_plane_mm,
        jobs=args.jobs,
        scheduler=args.scheduler,
        timeout_s=args.scheduler_timeout,
        progress=not args.no_progress,
        csv=args.csv,
        summary_csv=args.summary_csv,
        plots=args.plots,
        patient_id=args.patient_id,
        structure_sets=args.structure_set,
    )
    for patient, error in report.result.failures:
        print(f"rtplan agree: skipped {patient}: {error}", file=sys.stderr)
    for note in report.result.notes:
        print(f"rtplan agree: note: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps(report.document, indent=1))
    else:
        sys.stdout.write(summary_table(report.summary))
    return 0 if report.result.ok else 1
