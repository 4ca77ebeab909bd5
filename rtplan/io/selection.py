"""Which plan, structure set and dose(s) of a folder a job uses.

Every command that reads a patient takes the same four choices (:class:`Selection`):
``--patient-id ID``, ``--plan LABEL|UID|FILE``, ``--structure-set LABEL|UID|FILE`` and
``--dose FILE...``.  :func:`select_patient` applies them to a folder and returns the one
:class:`~rtplan.io.discover.PatientData` whose ``plan()``, ``structure_set()`` and
``dose()`` give the chosen objects; :func:`choose` is the rule on one group of files.

Without choices, the references decide:

* plan: the only RTPLAN; with several, the only one a dose references;
* structure set: the one the plan references; else the only one;
* dose: the doses referencing the plan (every dose when there is no plan).  A PLAN-like
  dose (PLAN, FRACTION, BRACHY, ...) is preferred over BEAM doses; when both are present
  the BEAM doses are summed and compared with it, and a difference above
  :data:`BEAM_SUM_TOLERANCE` (of the PLAN dose maximum) is noted.  BEAM doses alone are
  summed.
* the same file (or the same SOPInstanceUID) named twice is an error.

Only a truly ambiguous folder is refused: the one-line message lists the candidates
(label, UID, file) and the option that chooses.

Patient identity: the objects combined (plan, structure set, doses, the CT series the
structure set references) must carry one PatientID and PatientName.  Objects tied by UID
references but with different identities are refused (a wrong-patient risk), naming both
identities and files, unless ``mixed_patients=True`` (``--mixed-patients``: phantoms,
anonymised data); the combination is then stated in :attr:`PatientData.notes` and every
report.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from rtplan.errors import AmbiguousInputError, InputError, PatientIdentityError
from rtplan.io.dicom_file import read_dataset, shorten_text

#: BEAM doses whose sum differs from the PLAN dose by more than this fraction of the PLAN
#: dose maximum are noted.
BEAM_SUM_TOLERANCE = 0.01
#: Summation types of BEAM doses (summed to give the plan dose).
BEAM_TYPES = ("BEAM", "BEAM_SESSION")


@dataclass(frozen=True)
class Selection:
    """What the user chose (``None`` / empty: let the references decide).

    ``plan`` and ``structure_set`` match a label (RTPlanLabel, StructureSetLabel), a
    SOPInstanceUID, or a file (path or file name); ``dose`` are RTDOSE files (several BEAM
    doses of one plan are summed, plans are added).
    """

    patient_id: str | None = None
    plan: str | None = None
    structure_set: str | None = None
    dose: tuple[str, ...] = ()
    mixed_patients: bool = False

    def __post_init__(self):
        object.__setattr__(self, "dose", tuple(str(d) for d in (self.dose or ())))

    @property
    def names_objects(self) -> bool:
        """A patient, plan, structure set or dose is named: the job is on that one patient
        (``mixed_patients`` alone applies to every patient of a cohort)."""
        return any((self.patient_id is not None, self.plan is not None,
                    self.structure_set is not None, self.dose))  # fmt: skip


@dataclass(frozen=True)
class Choice:
    """The files chosen in one group (see the module docstring)."""

    plan: object | None  # DicomFile
    structure_set: object | None
    doses: tuple = ()
    #: BEAM doses of the plan, checked against the chosen PLAN dose.
    beam_check: tuple = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def files(self) -> list:
        """Every chosen file (no CT)."""
        return [f for f in (self.plan, self.structure_set, *self.doses) if f is not None]


def _describe(f) -> str:
    label = f" '{f.label}'" if f.label else ""
    return f"{f.modality}{label} ({f.sop_instance_uid}, {f.path})"


def _matches(spec: str, f) -> bool:
    """``spec`` names ``f`` by label, SOPInstanceUID, path or file name."""
    if spec in (f.label, f.sop_instance_uid, f.path.name, str(f.path)):
        return True
    p = Path(spec)
    try:
        return p.exists() and p.resolve() == f.path.resolve()
    except OSError:
        return False


def _pick(spec: str, files: list, what: str, option: str):
    found = [f for f in files if _matches(spec, f)]
    if not found:
        have = "; ".join(_describe(f) for f in files) or "none"
        raise InputError(f"no {what} '{spec}' (have: {have})")
    labelled = {f.sop_instance_uid for f in found}
    if len(labelled) > 1:
        raise AmbiguousInputError(
            f"{len(found)} {what} objects match '{spec}': "
            + "; ".join(_describe(f) for f in found)
            + f"; choose one with {option} UID or FILE"
        )
    return found[0]


def pick_structure_sets(specs, files) -> list:
    """The RTSTRUCT files among ``files`` that ``specs`` name (label, SOPInstanceUID, file
    name or path; ``--structure-set`` given once per set), in the order named.

    Raises
    ------
    InputError
        A spec names no structure set, or the same one is named twice.
    AmbiguousInputError
        A spec names several.
    """
    sets = [f for f in files if f.modality == "RTSTRUCT"]
    chosen = [_pick(spec, sets, "RTSTRUCT", "--structure-set") for spec in specs]
    uids = [f.sop_instance_uid for f in chosen]
    for i, uid in enumerate(uids):
        if uid in uids[:i]:
            raise InputError(f"the same RTSTRUCT ({_describe(chosen[i])}) is named twice "
                             f"('{specs[uids.index(uid)]}' and '{specs[i]}')")  # fmt: skip
    return chosen


def _ambiguous(files: list, what: str, option: str, why: str = "") -> AmbiguousInputError:
    return AmbiguousInputError(
        f"{len(files)} {what} objects{why}: "
        + "; ".join(_describe(f) for f in files)
        + f"; choose one with {option}"
    )


def dose_headers(paths, known: list) -> list:
    """:class:`~rtplan.io.discover.DicomFile` of each RTDOSE file named by the user.

    Files already catalogued are reused; others are read (header only).  The same file,
    or the same SOPInstanceUID, twice is an :class:`~rtplan.errors.InputError`.
    """
    from rtplan.io.discover import describe_file

    by_real = {f.path.resolve(): f for f in known}
    out, seen_path, seen_uid = [], {}, {}
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise InputError("no such RTDOSE file", path=path)
        real = path.resolve()
        if real in seen_path:
            raise InputError(f"the same RTDOSE file is given twice (also as {seen_path[real]})",
                             path=path)  # fmt: skip
        seen_path[real] = path
        f = by_real.get(real) or describe_file(path, read_dataset(path, stop_before_pixels=True))
        if f.modality != "RTDOSE":
            raise InputError(f"not an RTDOSE file (modality {f.modality or 'unknown'})", path=path)
        if f.sop_instance_uid in seen_uid:
            raise InputError(
                f"the same RTDOSE (SOPInstanceUID {f.sop_instance_uid}) is given twice "
                f"(also as {seen_uid[f.sop_instance_uid]})",
                path=path,
            )
        seen_uid[f.sop_instance_uid] = path
        out.append(f)
    return out


def choose(files, selection: Selection = Selection()) -> Choice:
    """The plan, structure set and dose files of one group (rules in the module docstring).

    Raises
    ------
    AmbiguousInputError
        Several candidates and nothing decides (the message lists them and the option).
    InputError
        A choice names nothing, or the same dose twice.
    """
    files = list(files)
    plans = [f for f in files if f.modality == "RTPLAN"]
    sets = [f for f in files if f.modality == "RTSTRUCT"]
    doses = [f for f in files if f.modality == "RTDOSE" and f.dose_units != "RELATIVE"]
    notes: list[str] = []
    user_doses = dose_headers(selection.dose, doses) if selection.dose else []
    plan = _choose_plan(plans, sets, doses, user_doses, selection, notes)
    ss = _choose_structure_set(sets, plan, selection)
    if user_doses:
        chosen, beam_check = user_doses, []
    else:
        chosen, beam_check = _choose_doses(doses, plan, notes)
    return Choice(plan, ss, tuple(chosen), tuple(beam_check), tuple(notes))


def _choose_plan(plans, sets, doses, user_doses, selection: Selection, notes: list):
    """The RTPLAN: named; else the one the named doses reference; else the one that
    references the named structure set; else the only one; else the only one with a dose."""
    if selection.plan is not None:
        return _pick(selection.plan, plans, "RTPLAN", "--plan")
    if user_doses:
        refs = {d.referenced_plan_uid for d in user_doses}
        fits = [p for p in plans if p.sop_instance_uid in refs]
        return fits[0] if len(fits) == 1 else None
    if selection.structure_set is not None and len(plans) > 1:
        ss = _pick(selection.structure_set, sets, "RTSTRUCT", "--structure-set")
        fits = [p for p in plans if p.referenced_structure_set_uid == ss.sop_instance_uid]
        if len(fits) > 1:
            raise _ambiguous(fits, "RTPLAN", "--plan LABEL|UID|FILE",
                             f" reference structure set '{ss.label}'")  # fmt: skip
        return fits[0] if fits else None
    if len(plans) <= 1:
        return plans[0] if plans else None
    dosed = [p for p in plans if any(d.referenced_plan_uid == p.sop_instance_uid for d in doses)]
    if len(dosed) != 1:
        raise _ambiguous(plans, "RTPLAN", "--plan LABEL|UID|FILE")
    notes.append(f"plan '{dosed[0].label}' chosen: the only RTPLAN with a dose")
    return dosed[0]


def _choose_structure_set(sets, plan, selection: Selection):
    """The RTSTRUCT: named; else the one the plan references; else the only one."""
    if selection.structure_set is not None:
        return _pick(selection.structure_set, sets, "RTSTRUCT", "--structure-set")
    if plan is not None:
        referenced = [s for s in sets if s.sop_instance_uid == plan.referenced_structure_set_uid]
        if referenced:
            return referenced[0]
    if len(sets) > 1:
        raise _ambiguous(sets, "RTSTRUCT", "--structure-set LABEL|UID|FILE")
    return sets[0] if sets else None


def _choose_doses(doses, plan, notes: list) -> tuple[list, list]:
    """The doses of ``plan`` (every dose without a plan) and the BEAM doses to check
    against the chosen PLAN-like dose: ``(chosen, beam_check)``."""
    mine = (
        doses
        if plan is None
        else [d for d in doses if d.referenced_plan_uid == plan.sop_instance_uid]
    )
    if len({d.referenced_plan_uid for d in mine}) > 1:
        raise _ambiguous(mine, "RTDOSE", "--plan LABEL|UID|FILE or --dose FILE...",
                         " of different plans")  # fmt: skip
    whole = [d for d in mine if d.summation_type not in BEAM_TYPES]
    beams = [d for d in mine if d.summation_type in BEAM_TYPES]
    if len(whole) > 1:
        raise _ambiguous(whole, "RTDOSE", "--dose FILE...", " for one plan")
    if not whole:
        return beams, []
    if beams:
        notes.append(
            f"the {whole[0].summation_type} dose ({whole[0].path.name}) is used; "
            f"{len(beams)} BEAM dose(s) of the same plan are checked against it"
        )
    return whole, beams


def identity_conflict(files) -> str | None:
    """The identities of ``files`` listed (``PatientID 'A' name 'X' (MODALITY file) vs ...``)
    when they carry more than one PatientID or PatientName, else ``None``."""
    files = list(files)
    ids = {f.patient_id for f in files if f.patient_id}
    names = {_name_key(f.patient_name) for f in files if _name_key(f.patient_name)}
    if len(ids) < 2 and len(names) < 2:
        return None
    identities: dict[tuple[str, str], object] = {}
    for f in files:
        identities.setdefault((f.patient_id, f.patient_name), f)
    return " vs ".join(
        f"PatientID '{shorten_text(pid)}' name '{shorten_text(name)}' ({f.modality} {f.path})"
        for (pid, name), f in identities.items()
    )


def check_identity(choice: Choice, ct_files, mixed_patients: bool) -> list[str]:
    """Notes when the chosen objects (and CT) carry one identity, or the combination note.

    The plan counts even when a job reads only its prescription and fractions: they set
    %Rx metrics, EQD2 conversions and FRACTION doses, and a plan tied by UID to the dose or
    structure set used but carrying another identity casts doubt on what it is tied to.

    Raises
    ------
    PatientIdentityError
        Different PatientID or PatientName and not ``mixed_patients``.
    """
    files = choice.files + list(ct_files[:1]) + list(choice.beam_check)
    listed = identity_conflict(files)
    if listed is None:
        return []
    if not mixed_patients:
        ids = sorted({f.patient_id for f in files if f.patient_id})
        hint = (
            f"choose one patient with --patient-id "
            f"({' or '.join(repr(shorten_text(i)) for i in ids)}) or "
            if len(ids) > 1
            else ""
        )
        raise PatientIdentityError(
            f"objects tied by UID references belong to different patients: {listed}; "
            f"{hint}combine them anyway with --mixed-patients"
        )
    return [f"objects of different patients combined (--mixed-patients): {listed}"]


def _name_key(name: str) -> str:
    """PatientName compared without case, surrounding spaces or trailing empty components."""
    return name.strip().rstrip("^ ").casefold()


def select_patient(
    path: str | os.PathLike,
    selection: Selection = Selection(),
    *,
    fraction_dose: str = "per_fraction",
    choose_now: bool = True,
):
    """The one patient (group of objects) a job on ``path`` uses, with its choice made.

    The group is the one holding the objects chosen (``selection``); else the only group
    of ``selection.patient_id``; else the only group.  Its ``plan()``,
    ``structure_set()`` and ``dose()`` then give the chosen objects (see
    :func:`choose`), and ``notes`` say what was decided.  ``choose_now=False`` defers the
    choice to the first of those calls (for jobs that pick a structure set by content).

    Raises
    ------
    AmbiguousInputError
        Several patients or frames of reference and nothing decides (they are listed).
    PatientIdentityError, InputError
        See :func:`choose` and :func:`check_identity`.
    """
    from rtplan.io.discover import PatientData, scan

    catalog = scan(path)
    groups = catalog.groups()
    if selection.patient_id is not None:
        narrowed = []
        for g in groups:
            files = tuple(f for f in g.files if f.patient_id == selection.patient_id)
            if files:
                narrowed.append(
                    PatientData(
                        selection.patient_id, g.frame_of_reference_uid, files, notes=list(g.notes)
                    )  # fmt: skip
                )
        if not narrowed:
            have = ", ".join(sorted({repr(f.patient_id) for f in catalog.files}))
            raise InputError(f"no patient '{selection.patient_id}' (have: {have})", path=path)
        groups = narrowed
    if len(groups) > 1:
        groups = [g for g in groups if _holds_choice(g, selection)] or groups
    if len(groups) > 1:
        listed = "; ".join(g.describe() for g in groups[:6])
        ids = {g.patient_id for g in groups}
        option = "--patient-id ID" if len(ids) > 1 else "--plan, --structure-set or --dose"
        raise AmbiguousInputError(
            f"{len(groups)} patients / frames of reference found ({listed}); "
            f"choose with {option} or point to one patient's folder",
        )
    group = groups[0]
    group.fraction_dose = fraction_dose
    group.selection = selection
    group.notes = list(catalog.notes) + [n for n in group.notes if n not in catalog.notes]
    if choose_now:
        group.choice  # noqa: B018 - choose now, so ambiguity and identity fail early
    return group


def _holds_choice(group, selection: Selection) -> bool:
    """``group`` holds the plan, structure set or dose the user named."""
    for spec, modality in ((selection.plan, "RTPLAN"), (selection.structure_set, "RTSTRUCT")):
        if spec is not None and not any(
            f.modality == modality and _matches(spec, f) for f in group.files
        ):
            return False
    for d in selection.dose:
        if not any(f.modality == "RTDOSE" and _matches(d, f) for f in group.files):
            return False
    return True
