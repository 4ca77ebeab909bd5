"""``rtplan volumes PATH --protocol NAME [--gtv NAME] --out DIR [--png DIR]``: a protocol's
target-volume recipe (GTV -> CTV -> PTV, the RPS high-risk volume) built on one patient and
written into a new RTSTRUCT with the input's structures.

The recipe is the ``[volumes]`` table of the protocol file (shipped names or a path; format
in docs/volumes.md), each number with its source.  ``--gtv`` names the structure the recipe
grows from, ``--map ROLE=NAME`` any other structure, ``--set PARAM=MM`` changes a parameter
within its documented range (e.g. ``--set longitudinal_mm=40``).  A new volume whose name
the structure set already uses gets the suffix ``_rtplan``.  The Python API is
:func:`rtplan.workflows.volumes.volumes_folder`.  Prints every step (structure, margin, volume
before and after) and the new volumes in cc.  Exit 0; bad input exits 2 with one line.
"""

from __future__ import annotations

import warnings

from rtplan.commands.expand import add_folder_arguments, format_result
from rtplan.errors import InputError


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "volumes",
        help="build a protocol's target volumes (CTV, PTV, RPS high-risk volume)",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("path", help="folder of one patient's DICOM files (CT series and RTSTRUCT)")
    p.add_argument("--protocol", required=True, help="protocol name or TOML file with [volumes]")
    p.add_argument("--gtv", metavar="NAME", help="the structure the recipe grows from")
    p.add_argument(
        "--map", action="append", default=[], metavar="ROLE=NAME",
        help="structure for a recipe role, e.g. compartment=Musc_Quad_R (repeatable)",
    )  # fmt: skip
    p.add_argument(
        "--set", action="append", default=[], metavar="PARAM=MM",
        help="recipe parameter, e.g. longitudinal_mm=40 (repeatable)",
    )  # fmt: skip
    add_folder_arguments(p)
    p.set_defaults(func=run)


def _pairs(items, what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise InputError(f"{what} '{item}' is not KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def run(args) -> int:
    from rtplan.volumes import kernel_build

    with kernel_build.building():  # the margin kernels compile (or load) meanwhile
        return _run(args)


def _run(args) -> int:
    from rtplan.workflows.volumes import volumes_folder

    mapping = _pairs(args.map, "--map")
    raw = _pairs(args.set, "--set")
    parameters = {}
    for key, value in raw.items():
        try:
            parameters[key] = float(value.removesuffix("mm"))
        except ValueError:
            raise InputError(f"--set {key}: '{value}' is not a number of mm") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = volumes_folder(
            args.path,
            protocol=args.protocol,
            gtv=args.gtv,
            mapping=mapping,
            parameters=parameters,
            out=args.out,
            png=args.png,
            structure_set=args.structure_set,
            patient_id=args.patient_id,
            fine_mm=args.fine_mm,
        )
    print(format_result(result))
    return 0
