"""Which patient, plan, structure set and dose a workflow uses: the one call site every
workflow goes through (rules in :mod:`rtplan.io.selection`)."""

from __future__ import annotations

import os

from rtplan.io.discover import PatientData, load_folder
from rtplan.io.selection import Selection, select_patient


def one_patient(
    path: str | os.PathLike,
    selection: Selection | None = None,
    *,
    fraction_dose: str = "per_fraction",
    choose_now: bool = True,
) -> PatientData:
    """The one patient a job on ``path`` uses, its objects chosen by ``selection``
    (:func:`rtplan.io.selection.select_patient`; ``choose_now=False`` defers the choice of
    plan, structure set and dose to their first use)."""
    return select_patient(
        path, selection or Selection(), fraction_dose=fraction_dose, choose_now=choose_now
    )


def every_patient(path: str | os.PathLike, selection: Selection | None = None) -> list[PatientData]:
    """Every patient (and frame of reference) under ``path``, each with ``selection``
    (``--mixed-patients``); only the one ``selection`` names when it names an object."""
    if selection is not None and selection.names_objects:
        return [one_patient(path, selection)]
    groups = load_folder(path)
    for g in groups:
        g.selection = selection or Selection()
    return groups
