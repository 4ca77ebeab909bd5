"""``rtplan check PATH --protocol NAME|FILE``: judge plans against a protocol's constraints.

Prints a table (structure, metric, value, limit, result, margin to the limit) or, with
``--json``, the JSON report; ``--csv``, ``--junit`` and ``--html`` write those reports to
files; ``--png`` writes the contour and isodose overlay of one patient (also in the HTML).  ``PATH`` is one patient's folder or a folder of many (one row per patient and
constraint, with a progress bar on a terminal).

Exit codes: 0 every mandatory constraint evaluated and passed and every target's prescription
and fractionation match the protocol's; 1 a mandatory constraint failed or was not evaluated,
or a prescription / fractionation MISMATCH (``--relaxed`` makes the last two notes); 2 bad input
(unreadable files, a required structure missing, a patient of a cohort that could not be read);
3 internal error (see :mod:`rtplan.cli`).
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources

from rtplan.commands import numbers
from rtplan.commands.selection import (
    add_end_cap_argument,
    add_selection_arguments,
    selection_from_args,
)

_DESCRIPTION = """\
Judge plans against a protocol's dose-volume constraints. Prints a table (structure, metric,
value, limit, result, margin to the limit) or, with --json, the JSON report; --csv, --junit and
--html write those reports to files; --png writes the axial, coronal and sagittal views with the
protocol's structures and the 95/50/20% isodose lines (also in the HTML). PATH is one patient's
folder or a folder of many (one row per patient and constraint, with a progress bar on a
terminal).

exit codes: 0 every mandatory constraint evaluated and passed, and every target's
              prescription and fractionation match the protocol's;
            1 a mandatory constraint FAIL or NOT EVALUATED, or a prescription MISMATCH
              (--relaxed turns NOT EVALUATED and MISMATCH into notes);
            2 bad input (one line on stderr);
            3 internal error (one line on stderr; traceback in a file, --debug prints it).
Details: docs/protocols.md"""


def shipped_protocols() -> list[str]:
    """Names of the shipped protocols, as :func:`rtplan.protocols.available_protocols`
    gives them, read without importing the protocol parser (so ``--help`` stays light)."""
    folder = resources.files("rtplan") / "protocols"
    names = (f.name[: -len(".toml")] for f in folder.iterdir() if f.name.endswith(".toml"))
    return sorted(n for n in names if n != "sources")  # sources.toml: the bibliography


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "check",
        help="check plans against a protocol's dose-volume constraints",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="shipped protocols: " + ", ".join(shipped_protocols()),
    )
    p.add_argument("path", metavar="PATH", help="a patient's DICOM folder, or a folder of many")
    p.add_argument(
        "--protocol", required=True, metavar="NAME|FILE", help="shipped protocol name or TOML file"
    )
    p.add_argument(
        "--map",
        metavar="FILE",
        help="structure mapping file (TOML [structures]: TG-263 name or role -> plan name)",
    )
    add_selection_arguments(p)
    add_end_cap_argument(p)
    p.add_argument(
        "--relaxed",
        action="store_true",
        help="exploratory run: mandatory constraints NOT EVALUATED and prescription or "
        "fractionation MISMATCH become notes (exit 0 if nothing FAILs); default is strict",
    )
    p.add_argument("--json", action="store_true", help="print the JSON report instead of the table")
    p.add_argument("--csv", metavar="FILE", help="write one CSV row per patient and constraint")
    p.add_argument("--junit", metavar="FILE", help="write JUnit XML (one test case per constraint)")
    p.add_argument("--html", metavar="FILE", help="write a self-contained HTML report")
    p.add_argument(
        "--dose-wash",
        action="store_true",
        help="add a translucent dose colour wash (Gy colour bar) to the overlay (--png, --html)",
    )
    p.add_argument(
        "--png",
        metavar="FILE",
        help="write the contour and isodose overlay (PATH must be one patient)",
    )
    p.add_argument(
        "--jobs",
        type=numbers.JOBS,
        default=1,
        metavar="N",
        help=f"local worker processes for a cohort ({numbers.JOBS.range})",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="check a cohort on a Dask scheduler (tcp://host:8786)",
    )
    p.add_argument(
        "--scheduler-timeout",
        type=numbers.SCHEDULER_TIMEOUT_S,
        default=10.0,
        metavar="S",
        help="seconds the Dask scheduler has to answer "
        f"({numbers.SCHEDULER_TIMEOUT_S.range}; default: %(default)g)",
    )
    p.set_defaults(func=run)


def _progress(patients):
    """The progress bar every command uses (drawn only when stderr is a terminal)."""
    from rtplan.workflows.execution import progress_bar

    with progress_bar(len(patients), desc="rtplan check") as bar:
        for patient in patients:
            yield patient
            bar.update(1)


def run(args: argparse.Namespace) -> int:
    from rtplan.report import exit_code, to_json, to_text
    from rtplan.workflows.check import check_and_report

    run = check_and_report(
        args.path,
        args.protocol,
        mapping_file=args.map,
        selection=selection_from_args(args),
        strict=not args.relaxed,
        end_cap=args.end_cap,
        csv=args.csv,
        junit=args.junit,
        html=args.html,
        png=args.png,
        dose_wash=args.dose_wash,
        progress=_progress,
        jobs=args.jobs,
        scheduler=args.scheduler,
        timeout_s=args.scheduler_timeout,
    )
    text = to_json(run.outcomes, run.protocol) if args.json else to_text(run.outcomes, run.protocol)
    sys.stdout.write(text)
    code = exit_code(run.outcomes)
    if code == 2:  # no patient judged: the report says why, and stderr has its one line
        from rtplan.errors import InputError

        errors = [f"{o.patient}: {o.message}" for o in run.outcomes if o.status == "error"]
        more = f" (and {len(errors) - 1} more patient(s))" if len(errors) > 1 else ""
        raise InputError((errors[0] if errors else "no patient could be checked") + more)
    return code
