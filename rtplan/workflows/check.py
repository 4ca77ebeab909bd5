"""``rtplan check`` as a Python function: plans read from DICOM folders and checked against a
protocol (:func:`rtplan.check.check_plan`).

:func:`check_patient` reads one patient's structure set, RTPLAN and dose through
:mod:`rtplan.io` and checks them; :func:`check_folder` does so for every patient and frame of
reference under a folder.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from rtplan.check import Outcome, PatientError, PlanCheck, check_plan
from rtplan.defaults import DEFAULT_END_CAP
from rtplan.dose import Dose
from rtplan.errors import InputError, RtplanError, RtplanWarning
from rtplan.io.dicom_file import read_dataset, text
from rtplan.io.discover import PatientData
from rtplan.io.output import OutputSet, check_output_file
from rtplan.io.selection import Selection
from rtplan.plan import Plan
from rtplan.protocols.schema import Protocol
from rtplan.structure import StructureSet
from rtplan.workflows._select import every_patient
from rtplan.workflows.execution import DEFAULT_TIMEOUT_S, run_each


def patient_label(patient: PatientData) -> str:
    """How reports name a patient: PatientID, else the folder of its files."""
    if patient.patient_id:
        return patient.patient_id
    return str(patient.files[0].path.parent) if patient.files else "(unnamed)"


def patient_inputs(patient: PatientData) -> tuple[StructureSet, Dose, Plan | None]:
    """The structure set, plan dose and RTPLAN (``None`` without one) a check of ``patient``
    uses, as chosen by :mod:`rtplan.io.selection` (an ``InputError`` when the folder is
    ambiguous).  Objects are read once and cached by ``patient``."""
    plan = patient.plan() if patient.choice.plan is not None else None
    return patient.structure_set(), patient.dose(), plan


def _dicom_date(path: str, date_key: str, time_key: str) -> str:
    """``YYYY-MM-DD[ HH:MM:SS]`` from a file's date and time elements, ``""`` when absent."""
    if not path:
        return ""
    try:
        ds = read_dataset(path, stop_before_pixels=True)
    except RtplanError:
        return ""
    d, t = text(ds, date_key), text(ds, time_key)
    if len(d) != 8 or not d.isdigit():
        return d
    out = f"{d[:4]}-{d[4:6]}-{d[6:]}"
    if len(t) >= 6 and t[:6].isdigit():
        out += f" {t[:2]}:{t[2:4]}:{t[4:6]}"
    return out


def patient_provenance(
    patient: PatientData, structure_set: StructureSet, plan: Plan | None
) -> dict[str, object]:
    """What reports name about one patient's inputs
    (:data:`rtplan.check.PROVENANCE_KEYS`): patient name and ID, plan label, date and file,
    structure-set label, date and file, dose files (absolute paths)."""
    doses = getattr(getattr(patient, "choice", None), "doses", ()) or ()
    return {
        "patient_name": patient.patient_name,
        "patient_id": patient.patient_id,
        "plan_label": plan.label if plan is not None else "",
        "plan_date": _dicom_date(plan.source, "RTPlanDate", "RTPlanTime") if plan else "",
        "plan_file": os.path.abspath(plan.source) if plan is not None and plan.source else "",
        "structure_set_label": structure_set.label,
        "structure_set_date": _dicom_date(
            structure_set.source, "StructureSetDate", "StructureSetTime"
        ),
        "structure_set_file": os.path.abspath(structure_set.source) if structure_set.source else "",
        "dose_files": [os.path.abspath(f.path) for f in doses],
    }


def check_patient(
    patient: PatientData,
    protocol: Protocol,
    *,
    mapping: Mapping[str, str | Sequence[str]] | None = None,
    strict: bool = True,
    end_cap: str = DEFAULT_END_CAP,
) -> PlanCheck:
    """Read one patient's structure set, RTPLAN (optional) and plan dose, and check them.

    The RTPLAN is optional (the protocol's prescription and fractions are then assumed, and
    noted); with several RTPLANs or doses the reader asks which one (an ``InputError``).
    ``end_cap`` as :func:`rtplan.check.check_plan`.
    """
    structure_set, dose, plan = patient_inputs(patient)
    inputs = {
        "patient_id": patient.patient_id,
        "FrameOfReferenceUID": patient.frame_of_reference_uid,
        "RTSTRUCT": structure_set.sop_instance_uid,
        "RTDOSE": dose.sop_instance_uid,
    }
    if plan is not None:
        inputs["RTPLAN"] = plan.sop_instance_uid
    check = check_plan(
        protocol,
        structure_set.structures,
        dose,
        plan,
        mapping=mapping,
        patient=patient_label(patient),
        inputs=inputs,
        problems=structure_set.problems,
        strict=strict,
        provenance=patient_provenance(patient, structure_set, plan),
        end_cap=end_cap,
    )
    # how the objects were chosen (PLAN dose over BEAM doses, identities combined, ...), and
    # contours that belong to no structure (an error only where a needed structure is empty)
    unassigned = tuple(f"not used: {u.problem}" for u in structure_set.unassigned)
    return dataclasses.replace(check, notes=tuple(patient.notes) + unassigned + tuple(check.notes))


def check_folder(
    path: str | os.PathLike,
    protocol: Protocol,
    *,
    mapping: Mapping[str, str | Sequence[str]] | None = None,
    progress: Callable[[Iterable], Iterable] | None = None,
    on_checked: Callable[[PatientData, PlanCheck], None] | None = None,
    strict: bool = True,
    selection: Selection | None = None,
    jobs: int | None = 1,
    scheduler: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    end_cap: str = DEFAULT_END_CAP,
) -> list[Outcome]:
    """Check every patient (and frame of reference) found under ``path``.

    Parameters
    ----------
    path : path
        A patient's folder or a folder of many patients (any nesting).
    protocol : Protocol
        The protocol.
    mapping : mapping, optional
        User structure mapping, applied to every patient.
    progress : callable, optional
        Wraps the iterable of patients, e.g. ``tqdm.tqdm`` for a progress bar.
    on_checked : callable, optional
        Called as ``on_checked(patient, check)`` after each patient is checked, while the
        patient's objects are still cached (e.g. to draw a picture with
        :func:`patient_inputs` and ``patient.image()``).  Its errors are not caught.
    strict : bool
        See :func:`check_plan`.
    selection : Selection, optional
        The user's choice of patient and objects (:mod:`rtplan.io.selection`); when any
        is made, ``path`` must then resolve to one patient.
    jobs, scheduler, timeout_s
        Run a cohort on a local process pool or a Dask cluster
        (:mod:`rtplan.workflows.execution`); the outcomes are identical to the in-process
        run.  ``on_checked`` needs the patients in this process: with it, patients are
        checked here.
    end_cap : {"auto", "slab", "none"}
        End-cap convention of the DVHs, resolved per patient (:func:`rtplan.check.check_plan`).

    Returns
    -------
    list of PlanCheck or PatientError
        One per patient, in the reader's order.  With a single patient an input problem is
        raised (:class:`~rtplan.errors.RtplanError`); with several, a patient that cannot be
        read or checked becomes a :class:`PatientError` and the others are still checked.
    """
    patients = every_patient(path, selection)
    if not patients:
        raise InputError("no DICOM-RT patient found", path=path)
    outcomes: list[Outcome] = []
    options = {"mapping": mapping, "strict": strict, "end_cap": end_cap}
    if len(patients) == 1:
        outcomes.append(check_patient(patients[0], protocol, **options))
        if on_checked is not None:
            on_checked(patients[0], outcomes[0])
        return outcomes
    if on_checked is None and (scheduler or (jobs or 0) != 1):
        return list(
            run_each(
                check_one, patients, jobs=jobs, scheduler=scheduler, timeout_s=timeout_s,
                progress=progress is not None, protocol=protocol, **options,
            )
        )  # fmt: skip
    for patient in progress(patients) if progress else patients:
        try:
            check = check_patient(patient, protocol, **options)
        except RtplanError as exc:
            outcomes.append(PatientError(patient_label(patient), str(exc)))
            continue
        outcomes.append(check)
        if on_checked is not None:
            on_checked(patient, check)
    return outcomes


def check_one(
    patient: PatientData,
    protocol: Protocol,
    mapping=None,
    strict: bool = True,
    end_cap: str = DEFAULT_END_CAP,
) -> Outcome:
    """:func:`check_patient`, or a :class:`PatientError` when the patient cannot be read or
    checked (for pools and clusters: it never raises an input error)."""
    try:
        return check_patient(patient, protocol, mapping=mapping, strict=strict, end_cap=end_cap)
    except RtplanError as exc:
        return PatientError(patient_label(patient), str(exc))


@dataclass(frozen=True)
class CheckRun:
    """What :func:`check_and_report` made: the outcomes (one per patient) and the protocol."""

    outcomes: list
    protocol: Protocol


def check_and_report(
    path: str | os.PathLike,
    protocol: str | os.PathLike | Protocol,
    *,
    mapping_file: str | os.PathLike | None = None,
    selection: Selection | None = None,
    strict: bool = True,
    csv: str | os.PathLike | None = None,
    junit: str | os.PathLike | None = None,
    html: str | os.PathLike | None = None,
    png: str | os.PathLike | None = None,
    dose_wash: bool = False,
    progress: Callable[[Iterable], Iterable] | None = None,
    jobs: int | None = 1,
    scheduler: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    end_cap: str = DEFAULT_END_CAP,
) -> CheckRun:
    """``rtplan check``: check every patient under ``path`` and write the reports asked for.

    Parameters
    ----------
    path : path
        A patient's folder or a folder of many.
    protocol : name, path or Protocol
        A shipped protocol name or a TOML file (:func:`rtplan.protocols.load_protocol`).
    mapping_file : path, optional
        Structure mapping file (:func:`rtplan.protocols.load_structure_mapping`).
    selection, strict, progress, jobs, scheduler, timeout_s, end_cap
        As :func:`check_folder`.
    csv, junit, html, png : path, optional
        Reports to write (:mod:`rtplan.report`), completely or not at all; ``png`` (the
        contour and isodose overlay) needs exactly one patient.
    dose_wash : bool
        Add a dose colour wash to the overlays.

    Returns
    -------
    CheckRun
        Print it with :func:`rtplan.report.to_text` / :func:`rtplan.report.to_json`; its
        exit code is :func:`rtplan.report.exit_code` of the outcomes.
    """
    from rtplan.protocols import load_protocol, load_structure_mapping

    outputs_asked = {"csv": csv, "junit": junit, "html": html, "png": png}
    named = [] if isinstance(protocol, Protocol) else [protocol]
    inputs = [path, *named, *([mapping_file] if mapping_file else [])]
    for option, target in outputs_asked.items():  # before any work (docs/io.md)
        if target:
            check_output_file(target, inputs=inputs, what=f"--{option}")
    if not isinstance(protocol, Protocol):
        protocol = load_protocol(protocol)
    mapping = load_structure_mapping(mapping_file) if mapping_file else None
    if not Path(path).exists():
        raise InputError("no such file or folder", path=path)
    overlays: dict[int, bytes | str] = {}

    def draw(patient: PatientData, check: PlanCheck) -> None:
        overlays[id(check)] = _overlay(patient, check, dose_wash=dose_wash)

    outcomes = check_folder(
        path,
        protocol,
        mapping=mapping,
        progress=progress,
        on_checked=draw if (html or png) else None,
        strict=strict,
        selection=selection,
        jobs=jobs,
        scheduler=scheduler,
        timeout_s=timeout_s,
        end_cap=end_cap,
    )
    _write_reports(outcomes, protocol, overlays, path, csv=csv, junit=junit, html=html, png=png)
    return CheckRun(outcomes, protocol)


def _write_reports(outcomes, protocol, overlays: dict, path, *, csv, junit, html, png) -> None:
    """The reports asked for, completely or not at all; ``png`` needs one patient (and its
    overlay: the reason it could not be drawn is the error)."""
    from rtplan.report import to_csv, to_html, to_junit_xml

    if png and len(outcomes) != 1:
        raise InputError(
            f"--png needs one patient, the folder holds {len(outcomes)} (use --html)", path=path
        )
    picture = overlays.get(id(outcomes[0])) if png else None
    if isinstance(picture, str):
        raise InputError(picture)
    with OutputSet() as outputs:
        if csv:
            outputs.add(csv, to_csv(outcomes, protocol))
        if junit:
            outputs.add(junit, to_junit_xml(outcomes, protocol))
        if html:
            outputs.add(html, to_html(outcomes, protocol, [overlays.get(id(o)) for o in outcomes]))
        if png:
            outputs.add(png, picture)


def _overlay(patient: PatientData, check: PlanCheck, dose_wash: bool = False) -> bytes | str:
    """The check's overlay as PNG bytes, or the one-line reason it could not be drawn.
    Without a readable CT the overlay is drawn on a blank background (and a
    :class:`~rtplan.errors.RtplanWarning` says so)."""
    from rtplan.report.overlay import check_overlay, figure_png

    structure_set, dose, _ = patient_inputs(patient)
    try:
        image = patient.image()
    except RtplanError as exc:
        warnings.warn(f"{check.patient}: CT not shown: {exc}", RtplanWarning, stacklevel=2)
        image = None
    try:
        return figure_png(
            check_overlay(check, structure_set.structures, dose, image, dose_wash=dose_wash)
        )
    except RtplanError as exc:
        return f"{check.patient}: overlay not drawn: {exc}"
