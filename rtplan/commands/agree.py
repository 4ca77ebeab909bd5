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
import math
import sys

from rtplan.defaults import DEFAULT_TIMEOUT_S, DEFAULT_TOLERANCE_MM
from rtplan.errors import InputError


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
        type=float,
        default=DEFAULT_TOLERANCE_MM,
        metavar="T",
        help=f"surface Dice and added path length tolerance (default {DEFAULT_TOLERANCE_MM} mm)",
    )
    p.add_argument(
        "--in-plane-mm",
        type=float,
        default=1.0,
        metavar="S",
        help="pixel size of the comparison grid when a patient has no CT (default 1 mm)",
    )
    p.add_argument("--csv", metavar="FILE", help="write the long table as CSV")
    p.add_argument("--json", action="store_true", help="print JSON (rows, summary, metadata)")
    p.add_argument("--plots", metavar="DIR", help="write one box plot per metric (PNG)")
    p.add_argument("--jobs", type=int, metavar="N", help="local worker processes (default: CPUs)")
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on a Dask distributed scheduler (e.g. tcp://host:8786; needs rtplan[dask])",
    )
    p.add_argument(
        "--scheduler-timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="S",
        help=f"seconds the Dask scheduler has to answer (default {DEFAULT_TIMEOUT_S:g})",
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


def _format_summary(summary: list[dict]) -> str:
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


def run(args: argparse.Namespace) -> int:
    from rtplan.agreement.summary import SUMMARY_COLUMNS, summarise
    from rtplan.io.output import check_output_file, check_output_folder
    from rtplan.report.agreement import json_ready
    from rtplan.workflows.agree import (
        AgreementOptions,
        columns,
        result_metadata,
        run_cohort,
        save_box_plots,
        write_csv,
    )

    if args.jobs is not None and args.jobs < 1:
        raise InputError(f"--jobs must be at least 1, got {args.jobs}")
    for option, value in (
        ("--tolerance-mm", args.tolerance_mm),
        ("--in-plane-mm", args.in_plane_mm),
    ):
        if not (math.isfinite(value) and 0 < value <= 100):
            raise InputError(f"{option} must be a number of mm in (0, 100], got {value}")
    for option in ("csv", "summary_csv"):  # output paths checked before any work (docs/io.md)
        if getattr(args, option):
            check_output_file(
                getattr(args, option), inputs=args.paths, what=f"--{option.replace('_', '-')}"
            )
    if args.plots:
        check_output_folder(args.plots, inputs=args.paths, what="--plots")
    options = AgreementOptions(
        structures=tuple(args.structure) if args.structure else None,
        reference=args.reference,
        tolerance_mm=args.tolerance_mm,
        in_plane_spacing_mm=args.in_plane_mm,
    )
    result = run_cohort(
        args.paths,
        options,
        jobs=args.jobs,
        scheduler=args.scheduler,
        progress=not args.no_progress,
        timeout_s=args.scheduler_timeout,
    )
    if not result.rows and result.failures:  # nothing could be compared: bad input, one line
        more = (
            f" (and {len(result.failures) - 1} more folder(s))" if len(result.failures) > 1 else ""
        )
        raise InputError(f"nothing compared: {result.failures[0][1]}{more}")
    for patient, error in result.failures:
        print(f"rtplan agree: skipped {patient}: {error}", file=sys.stderr)
    for note in result.notes:
        print(f"rtplan agree: note: {note}", file=sys.stderr)
    summary = summarise(result.rows)
    if args.csv:
        try:
            write_csv(result.rows, args.csv, columns())
        except OSError as exc:
            raise InputError(f"cannot write CSV: {exc.strerror}", path=args.csv) from None
    if args.summary_csv:
        write_csv(summary, args.summary_csv, SUMMARY_COLUMNS)
    if args.plots:
        try:
            save_box_plots(result.rows, args.plots)
        except OSError as exc:
            raise InputError(f"cannot write plots: {exc.strerror}", path=args.plots) from None
    if args.json:
        document = {"metadata": result_metadata(result), "rows": result.rows, "summary": summary}
        print(json.dumps(json_ready(document), indent=1))
    else:
        sys.stdout.write(_format_summary(summary))
    return 0 if result.ok else 1
