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
from pathlib import Path
from typing import TYPE_CHECKING

from rtplan.commands.selection import add_selection_arguments, selection_from_args
from rtplan.errors import InputError, RtplanError

if TYPE_CHECKING:
    from rtplan.check import PlanCheck
    from rtplan.io import PatientData

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
    return sorted(f.name[: -len(".toml")] for f in folder.iterdir() if f.name.endswith(".toml"))


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
        "--jobs", type=int, default=1, metavar="N", help="local worker processes for a cohort"
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="check a cohort on a Dask scheduler (tcp://host:8786)",
    )
    p.add_argument(
        "--scheduler-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds the Dask scheduler has to answer (default: %(default)g)",
    )
    p.set_defaults(func=run)


def _progress(patients):
    """The progress bar every command uses (drawn only when stderr is a terminal)."""
    from rtplan.workflows.execution import progress_bar

    with progress_bar(len(patients), desc="rtplan check") as bar:
        for patient in patients:
            yield patient
            bar.update(1)


def _overlay(patient: PatientData, check: PlanCheck, dose_wash: bool = False) -> bytes | str:
    """The check's overlay as PNG bytes, or the one-line reason it could not be drawn.
    Without a readable CT the overlay is drawn on a blank background (and a warning
    printed)."""
    from rtplan.report.overlay import check_overlay, figure_png
    from rtplan.workflows.check import patient_inputs

    structure_set, dose, _ = patient_inputs(patient)
    try:
        image = patient.image()
    except RtplanError as exc:
        print(f"rtplan check: warning: {check.patient}: CT not shown: {exc}", file=sys.stderr)
        image = None
    try:
        return figure_png(
            check_overlay(check, structure_set.structures, dose, image, dose_wash=dose_wash)
        )
    except RtplanError as exc:
        return f"{check.patient}: overlay not drawn: {exc}"


def run(args: argparse.Namespace) -> int:
    from rtplan.io.output import OutputSet, check_output_file
    from rtplan.protocols import load_protocol, load_structure_mapping
    from rtplan.report import exit_code, to_csv, to_html, to_json, to_junit_xml, to_text
    from rtplan.workflows.check import check_folder

    inputs = [args.path, args.protocol, *([args.map] if args.map else [])]
    for option in ("csv", "junit", "html", "png"):  # before any work (docs/io.md)
        if getattr(args, option):
            check_output_file(getattr(args, option), inputs=inputs, what=f"--{option}")
    protocol = load_protocol(args.protocol)
    mapping = load_structure_mapping(args.map) if args.map else None
    if not Path(args.path).exists():
        raise InputError("no such file or folder", path=args.path)
    overlays: dict[int, bytes | str] = {}

    def draw(patient: PatientData, check: PlanCheck) -> None:
        overlays[id(check)] = _overlay(patient, check, dose_wash=args.dose_wash)

    outcomes = check_folder(
        args.path,
        protocol,
        mapping=mapping,
        progress=_progress,
        on_checked=draw if (args.html or args.png) else None,
        strict=not args.relaxed,
        selection=selection_from_args(args),
        jobs=args.jobs,
        scheduler=args.scheduler,
        timeout_s=args.scheduler_timeout,
    )
    if args.png and len(outcomes) != 1:
        raise InputError(
            f"--png needs one patient, the folder holds {len(outcomes)} (use --html)",
            path=args.path,
        )
    png = overlays.get(id(outcomes[0])) if args.png else None
    if isinstance(png, str):
        raise InputError(png)
    with OutputSet() as outputs:  # the reports are written completely or not at all
        if args.csv:
            outputs.add(args.csv, to_csv(outcomes, protocol))
        if args.junit:
            outputs.add(args.junit, to_junit_xml(outcomes, protocol))
        if args.html:
            outputs.add(
                args.html, to_html(outcomes, protocol, [overlays.get(id(o)) for o in outcomes])
            )
        if args.png:
            outputs.add(args.png, png)
    sys.stdout.write(to_json(outcomes, protocol) if args.json else to_text(outcomes, protocol))
    return exit_code(outcomes)
