"""``rtplan dvh PATH``: DVH metrics of the structures of a plan (JSON, CSV, plot).

Parses the options and calls :func:`rtplan.workflows.dvh.dvh_folder` (what is computed and
how objects are chosen is documented there and in docs/dvh.md; JSON schema ``rtplan-dvh/1``).
Exit 0; 1 when a structure of the set cannot be used (broken contours: it is listed with its
problem, no numbers); bad input (unknown or broken structure named with --structure,
malformed metric, dose in another frame of reference, ...) exits 2 with one line on stderr.
"""

from __future__ import annotations

import os
import sys

from rtplan.commands import numbers
from rtplan.commands.selection import (
    add_end_cap_argument,
    add_selection_arguments,
    selection_from_args,
)
from rtplan.defaults import (
    BIN_POINT_MODES,
    DEFAULT_BIN_POINT,
    DEFAULT_METRICS,
    FRACTION_DOSE_MODES,
    OUTSIDE_TOLERANCE_CC,
    OUTSIDE_TOLERANCE_FRACTION,
)


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
    p.add_argument("--json", action="store_true", help="print JSON (schema rtplan-dvh/1)")
    p.add_argument(
        "--csv",
        metavar="FILE",
        help="write a CSV table (one patient: one row per structure; a folder of patients: "
        "one row per patient, plan, structure and metric)",
    )
    p.add_argument(
        "--curves",
        metavar="FILE",
        help="write the cumulative DVH curves as a long CSV (patient, structure, dose_gy, "
        "volume_cc, volume_percent)",
    )
    p.add_argument(
        "--curve-step",
        type=numbers.CURVE_STEP_GY,
        default=0.1,
        metavar="GY",
        help=f"dose step of --curves ({numbers.CURVE_STEP_GY.range}; default: %(default)g Gy)",
    )
    p.add_argument(
        "--jobs",
        type=numbers.JOBS,
        metavar="N",
        help=f"local worker processes for a cohort ({numbers.JOBS.range})",
    )
    p.add_argument(
        "--scheduler", metavar="ADDRESS", help="run a cohort on a Dask scheduler (tcp://host:8786)"
    )
    p.add_argument(
        "--scheduler-timeout",
        type=numbers.SCHEDULER_TIMEOUT_S,
        default=10.0,
        metavar="S",
        help="seconds the Dask scheduler has to answer "
        f"({numbers.SCHEDULER_TIMEOUT_S.range}; default: %(default)g)",
    )
    p.add_argument(
        "--no-progress", action="store_true", help="no progress bar (drawn only on a terminal)"
    )
    p.add_argument("--plot", metavar="FILE.png", help="write a cumulative DVH plot (PNG)")
    p.add_argument(
        "--compare-embedded",
        action="store_true",
        help="compare with the planning system's DVHs stored in the RTDOSE",
    )
    add_end_cap_argument(p)
    p.add_argument(
        "--embedded-bin-point",
        choices=BIN_POINT_MODES,
        default=DEFAULT_BIN_POINT,
        help="where a cumulative volume of the planning system's DVHs sits in its dose bin: "
        "lower (edge), centre, upper (edge), auto (the one the DVHs' mean doses match; "
        "else lower). "
        "Default: %(default)s",
    )
    p.add_argument(
        "--outside-tolerance-pct",
        type=numbers.OUTSIDE_TOLERANCE_PCT,
        default=100 * OUTSIDE_TOLERANCE_FRACTION,
        metavar="PCT",
        help="structure volume (%% of it) allowed outside the dose grid with dose metrics "
        f"still computed, flagged ({numbers.OUTSIDE_TOLERANCE_PCT.range}%; default: %(default)g)",
    )
    p.add_argument(
        "--outside-tolerance-cc",
        type=numbers.OUTSIDE_TOLERANCE_CC,
        default=OUTSIDE_TOLERANCE_CC,
        metavar="CC",
        help=f"... and at most this many cc ({numbers.OUTSIDE_TOLERANCE_CC.range}; "
        "default: %(default)g)",
    )
    p.add_argument(
        "--fraction-dose",
        choices=FRACTION_DOSE_MODES,
        default="per_fraction",
        help="how to read DoseSummationType FRACTION (default: per_fraction)",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    # rtplan dvh does no matrix products: the BLAS thread pool numpy starts on import
    # would only take CPU (~0.15 s of a 30-structure plan); a user's own setting is kept
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from rtplan.dvh.compute import OutsideTolerance
    from rtplan.report.dvh import to_json, to_text
    from rtplan.workflows.dvh import dvh_folder
    from rtplan.workflows.dvh_cohort import patient_folders

    options = dict(
        structures=args.structure,
        metrics=[m.strip() for m in args.metrics.split(",") if m.strip()],
        selection=selection_from_args(args),
        compare_embedded=args.compare_embedded,
        end_cap=args.end_cap,
        bin_point=args.embedded_bin_point,
        outside_tolerance=OutsideTolerance(
            args.outside_tolerance_pct / 100.0, args.outside_tolerance_cc
        ),
        fraction_dose=args.fraction_dose,
    )
    cohort = len(patient_folders(args.path)) > 1 or args.jobs or args.scheduler
    if cohort and not options["selection"].names_objects:  # a named object: its one patient
        return _cohort(args, options)
    result = dvh_folder(
        args.path,
        csv=args.csv,
        plot=args.plot,
        curves=args.curves,
        curve_step_gy=args.curve_step,
        **options,
    )
    print(to_json(result.report) if args.json else to_text(result.report, result.metrics))
    for message in result.messages:
        print(f"rtplan dvh: note: {message}", file=sys.stderr)
    return result.exit_code


def _cohort(args, options) -> int:
    """A folder of patients: long CSV and curves, on a pool or Dask; a summary on stdout."""
    from rtplan.errors import InputError
    from rtplan.workflows.dvh_cohort import dvh_cohort

    for option in ("json", "plot", "compare_embedded"):
        if getattr(args, option):
            raise InputError(f"--{option.replace('_', '-')} needs one patient's folder")
    result = dvh_cohort(
        [args.path],
        csv_path=args.csv,
        curves_path=args.curves,
        curve_step_gy=args.curve_step,
        jobs=args.jobs,
        scheduler=args.scheduler,
        timeout_s=args.scheduler_timeout,
        progress=not args.no_progress,
        **options,
    )
    for folder, error in result.failures:
        print(f"rtplan dvh: skipped {folder}: {error}", file=sys.stderr)
    for message in result.messages:
        print(f"rtplan dvh: note: {message}", file=sys.stderr)
    print(
        f"{result.patients - len(result.failures)} of {result.patients} patients: "
        f"{result.rows} metric rows" + (f", {result.curve_rows} curve rows" if args.curves else "")
    )
    return result.exit_code
