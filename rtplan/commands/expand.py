"""``rtplan expand PATH --structure GTV --name CTV --margin MARGINS [--avoid S[:MM]]
[--within S[:-MM]] --out DIR``: one structure expanded (or shrunk) by exact margins, cropped,
and written into a new RTSTRUCT with the input's structures.

Margins in mm in patient directions: ``"15"`` (isotropic), ``"radial=15,longitudinal=35"``,
``"right=5,left=10,anterior=8,posterior=3,superior=20,inferior=10"``; negative values
shrink.  ``--avoid`` subtracts a structure grown by MM (default 0), ``--within`` keeps the
part inside a structure grown (or with a negative MM, shrunk) by MM; both repeatable.  The
Python API is :func:`rtplan.workflows.volumes.expand_folder`.  Prints each step's volume and the
new structure's volume in cc.  Exit 0; bad input (unknown structure, margin syntax, a
shrinking margin larger than the structure) exits 2 with one line on stderr.
"""

from __future__ import annotations

import warnings

from rtplan.commands import numbers
from rtplan.commands.selection import add_patient_arguments
from rtplan.defaults import FINE_MM, MAX_MARGIN_MM
from rtplan.sanitize import terminal


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "expand",
        help="expand or shrink a structure by exact per-direction margins, with crops",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("path", help="folder of one patient's DICOM files (CT series and RTSTRUCT)")
    p.add_argument("--structure", required=True, help="the structure to expand (e.g. GTV)")
    p.add_argument("--name", required=True, help="name of the new structure (e.g. CTV)")
    p.add_argument(
        "--margin",
        required=True,
        type=numbers.margin,
        help="margins in mm: '15', 'radial=15,longitudinal=35', 'left=10,right=5,...'; "
        f"negative shrinks (each at most {MAX_MARGIN_MM:g} mm either way)",
    )
    p.add_argument(
        "--avoid", action="append", default=[], metavar="STRUCTURE[:MM]", type=numbers.crop,
        help="subtract this structure grown by MM (repeatable)",
    )  # fmt: skip
    p.add_argument(
        "--within", action="append", default=[], metavar="STRUCTURE[:MM]", type=numbers.crop,
        help="keep only what lies inside this structure grown by MM, e.g. BODY:-3 (repeatable)",
    )  # fmt: skip
    p.add_argument(
        "--keep-source", action="store_true", help="add the source structure back after the crops"
    )
    add_folder_arguments(p)
    p.set_defaults(func=run)


def add_folder_arguments(p) -> None:
    """The output and folder options ``rtplan expand`` and ``rtplan volumes`` share."""
    p.add_argument("--out", required=True, help="folder for the new RTSTRUCT (created if missing)")
    p.add_argument("--png", metavar="DIR", help="also write axial/coronal/sagittal views (PNG)")
    add_patient_arguments(
        p, structure_set_help="the RTSTRUCT (default: the only one holding the structure)"
    )
    p.add_argument(
        "--fine-mm",
        type=numbers.FINE_GRID_MM,
        default=FINE_MM,
        help=f"fine grid spacing ({numbers.FINE_GRID_MM.range}; default {FINE_MM:g} mm)",
    )


def run(args) -> int:
    from rtplan.volumes import kernel_build

    with kernel_build.building():  # the margin kernels compile (or load) meanwhile
        return _run(args)


def _run(args) -> int:
    from rtplan.workflows.volumes import expand_folder

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = expand_folder(
            args.path,
            structure=args.structure,
            name=args.name,
            margin=args.margin,
            avoid=args.avoid,
            within=args.within,
            keep_source=args.keep_source,
            out=args.out,
            png=args.png,
            structure_set=args.structure_set,
            patient_id=args.patient_id,
            fine_mm=args.fine_mm,
        )
    print(format_result(result))
    return 0


def format_result(result) -> str:
    """The log, the new volumes and the files written, as text."""
    lines = [f"structure set: {result.source}"]
    lines += [f"  {step}" for step in result.steps]
    lines += [f"note: {n}" for n in result.notes]
    width = max(len(s.name) for s in result.structures)
    lines.append("new structures (volume of the written contours, slab convention):")
    lines += [f"  {s.name:<{width}}  {s.volume_cc:10.2f} cc" for s in result.structures]
    if result.rtstruct:
        lines.append(f"wrote {result.rtstruct}")
    if result.png:
        lines.append(f"wrote {result.png}")
    return "\n".join(terminal(line) for line in lines)
