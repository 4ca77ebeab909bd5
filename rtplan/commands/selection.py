"""The options that choose a patient's objects, with the same names and meaning on every
command that reads a patient (rules in :mod:`rtplan.io.selection`), and the end-cap
convention shared by the commands that compute DVHs (``dvh``, ``check``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rtplan.defaults import DEFAULT_END_CAP, END_CAP_MODES

if TYPE_CHECKING:
    from rtplan.io.selection import Selection


def add_patient_arguments(p, *, structure_set_help: str, several_structure_sets: bool = False):
    """``--patient-id`` and ``--structure-set`` (given once per set when
    ``several_structure_sets``, as for the observers of ``rtplan agree``) on the parser ``p``."""
    p.add_argument("--patient-id", metavar="ID", help="the patient, when the folder holds several")
    p.add_argument(
        "--structure-set",
        metavar="LABEL|UID|FILE",
        action="append" if several_structure_sets else "store",
        help=structure_set_help,
    )


def add_selection_arguments(p, *, dose: bool = True) -> None:
    """``--patient-id``, ``--plan``, ``--structure-set``, ``--dose`` (when ``dose``) and
    ``--mixed-patients`` on the parser ``p``."""
    add_patient_arguments(
        p, structure_set_help="the RTSTRUCT (default: the one the plan references, or the only one)"
    )
    p.add_argument(
        "--plan",
        metavar="LABEL|UID|FILE",
        help="the RTPLAN (default: the only one, or the only one with a dose)",
    )
    if dose:
        p.add_argument(
            "--dose",
            nargs="+",
            metavar="FILE",
            help="RTDOSE file(s): BEAM doses of one plan are summed, plans added (default: the "
            "plan's PLAN dose, else its BEAM doses summed)",
        )
    p.add_argument(
        "--mixed-patients",
        action="store_true",
        help="combine objects tied by UID references although their PatientID or PatientName "
        "differ (phantoms, anonymised data); every report states it",
    )


def add_end_cap_argument(p) -> None:
    """``--end-cap auto|slab|none`` on the parser ``p`` (resolved by
    :func:`rtplan.dvh.embedded.choose_end_cap`; docs/dvh.md)."""
    p.add_argument(
        "--end-cap",
        choices=END_CAP_MODES,
        default=DEFAULT_END_CAP,
        help="end-cap convention: slab (half a slice beyond the end contours), none (end on "
        "them), auto (the one whose volumes match the planning system's DVHs in the RTDOSE; "
        "slab when it holds none). Default: %(default)s",
    )


def selection_from_args(args) -> Selection:
    """The :class:`~rtplan.io.selection.Selection` of parsed options."""
    from rtplan.io.selection import Selection

    return Selection(
        patient_id=getattr(args, "patient_id", None),
        plan=getattr(args, "plan", None),
        structure_set=getattr(args, "structure_set", None),
        dose=tuple(getattr(args, "dose", None) or ()),
        mixed_patients=bool(getattr(args, "mixed_patients", False)),
    )
