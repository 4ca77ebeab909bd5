"""``rtplan info PATH [--json]``: what is in a folder of DICOM-RT files.

Lists patients, studies, frames of reference, CT series, structure sets (each structure's
name, type, contours, slice range and volume in cc), plans (fractions, prescription) and
doses (grid, maximum, summation type).  ``--json`` prints the inventory of
:func:`rtplan.workflows.inventory.folder_inventory` (schema in docs/io.md); otherwise a table.
``--patient-id``, ``--plan``, ``--structure-set``, ``--dose`` list only the objects they
choose (:mod:`rtplan.io.selection`).  Reads only; writes nothing.  Exit 0, or 2 with one line on stderr for bad input.
"""

from __future__ import annotations

import json
import warnings

from rtplan.commands.selection import add_selection_arguments, selection_from_args
from rtplan.defaults import FRACTION_DOSE_MODES
from rtplan.errors import RtplanWarning


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "info",
        help="list patients, series, structures (volume_cc), plans and doses in a folder",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("path", help="folder of DICOM files (searched recursively) or one file")
    p.add_argument("--json", action="store_true", help="print JSON (schema rtplan-info/1)")
    p.add_argument(
        "--lenient",
        action="store_true",
        help="list structure problems (self-intersecting, ...) instead of failing "
        "(empty structures are always listed, flagged 'empty')",
    )
    p.add_argument(
        "--fraction-dose",
        choices=FRACTION_DOSE_MODES,
        default="per_fraction",
        help="how to read DoseSummationType FRACTION (default: per_fraction, x planned fractions)",
    )
    add_selection_arguments(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from rtplan.report.inventory import inventory_text
    from rtplan.workflows.inventory import folder_inventory

    with warnings.catch_warnings():
        # pydicom warns about odd but readable values (e.g. over-long UIDs); the inventory
        # reports what matters, and stderr stays for the one-line error.  rtplan's own
        # warnings are listed by the inventory with the object they are about.
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", RtplanWarning)
        inventory = folder_inventory(
            args.path,
            lenient=args.lenient,
            fraction_dose=args.fraction_dose,
            selection=selection_from_args(args),
        )
    if args.json:
        print(json.dumps(inventory, indent=2))
    else:
        print(inventory_text(inventory))
    return 0
