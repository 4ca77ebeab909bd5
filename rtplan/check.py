"""Checking a plan against a protocol: structures, prescription, fractionation, constraints.

:func:`check_plan` is the whole of ``rtplan check`` for one patient, on objects already read
(no file access).  :func:`rtplan.workflows.check.check_patient` and
:func:`rtplan.workflows.check.check_folder` feed them from DICOM files through
:mod:`rtplan.io` (one patient, or every patient and frame of reference under a folder).
:func:`check_plan` finds the protocol's structures (:mod:`rtplan.matching`), works out the
prescription of each target, decides whether doses are converted to EQD2, computes the DVHs
it needs and evaluates every constraint (:mod:`rtplan.constraints`).

Prescription
------------
Each protocol target gets the plan's own prescription when the RTPLAN states one: first the
TARGET dose reference whose ROI is the structure matched to that target, otherwise the plan's
prescription levels each go to the protocol target nearest in dose.  A target without a plan
prescription keeps the protocol's dose (and a note says so).  Prescription-relative
constraints (``D95%Rx``, ``V107%Rx``) use that dose and are always judged on physical dose;
a constraint on an organ that is relative to the prescription uses the primary target's.

Fractionation and EQD2
----------------------
The plan's number of fractions is the RTPLAN's (summed over fraction groups); without an
RTPLAN the protocol's is assumed, and a note says so.  One EQD2 policy for every protocol:
an absolute-dose constraint's doses are physical doses given in its *reference fractions*
(``Constraint.reference_fractions``, default the protocol's).  Its doses are judged

* as physical doses when the plan has the reference number of fractions, or another number
  but neither the constraint states its reference nor the protocol allows conversion (a note
  reports the difference, and the schedule line is a mismatch);
* in EQD2 otherwise: the plan's dose grid is converted voxel-wise to EQD2 with the plan's
  fractions (:func:`rtplan.dvh.radiobiology.eqd2_dose`), and each dose number of the
  constraint (the ``x`` of ``V<x>Gy``, a dose limit) is converted as a dose given in the
  reference fractions, both with the structure's alpha/beta from the protocol; the basis
  reads ``EQD2, α/β 3 Gy, limits of 25 fx``;
* in EQD2 when its ``dose_basis`` is ``eqd2`` (limits stated as EQD2 by their source): the
  dose grid is converted with the plan's fractions and the constraint's numbers are used as
  written.

With equal fractions, converting both sides would leave every ``V<x>Gy`` and ``D<x>``
verdict unchanged (the conversion is monotone), which is why nothing is converted then.

Prescription and fractionation (schedule)
-----------------------------------------
Each target gets one :class:`ScheduleResult`: the plan's total dose, fractions and dose per
fraction against the protocol's.  ``match`` when the fractions are equal and the total dose is
the protocol's (within :data:`PRESCRIPTION_TOLERANCE`, or inside its range); with different
fractions, ``converted`` when the protocol allows EQD2 conversion, gives the target an
alpha/beta, and the plan's prescription has the protocol's EQD2; otherwise ``mismatch``
(also when conversion is allowed but the protocol gives no target alpha/beta: the two
prescriptions cannot be compared).  ``not evaluated`` without an RTPLAN prescription or
fractions.  When a target's plan prescription differs from the protocol's, every ``%Rx``
constraint relative to it is judged twice: against the plan's prescription and against the
protocol's (``basis`` says which).

End caps
--------
DVHs use the end-cap convention ``end_cap`` (``rtplan check --end-cap``; default ``auto``, as
``rtplan dvh``): ``auto`` takes the convention whose structure volumes best match the
planning system's DVHs stored in the RTDOSE, and slab when it holds none
(:func:`rtplan.dvh.embedded.choose_end_cap`); :attr:`PlanCheck.end_cap` states the choice.

Verdicts and strictness
-----------------------
A check is ``strict`` by default: a mandatory constraint that was not evaluated (also when
its optional structure is absent) makes the status ``incomplete``, and a schedule
``mismatch`` or ``not evaluated`` makes it ``mismatch``; both make ``rtplan check`` exit 1,
like a failed constraint.  ``strict=False`` (``--relaxed``) reports them as notes only.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from rtplan.constraints import ConstraintResult, evaluate_constraint, format_number, not_evaluated
from rtplan.defaults import DEFAULT_END_CAP
from rtplan.dose import Dose
from rtplan.dosefield import axial_field
from rtplan.dvh import DVH
from rtplan.dvh.compute import compute
from rtplan.dvh.embedded import EndCapChoice, choose_bin_point, choose_end_cap
from rtplan.dvh.radiobiology import eqd2, eqd2_dose
from rtplan.errors import ContourError, InputError
from rtplan.matching import Match, match_structures, union_structure
from rtplan.plan import Plan
from rtplan.protocols.schema import Protocol
from rtplan.structure import Structure

#: Relative difference (fraction) above which plan and protocol prescriptions are "different".
PRESCRIPTION_TOLERANCE = 0.005


@dataclass(frozen=True)
class TargetPrescription:
    """The prescription used for one protocol target."""

    role: str
    protocol_gy: float
    plan_gy: float | None
    how: str  # "dose reference ROI", "nearest plan level", "protocol"

    @property
    def used_gy(self) -> float:
        """The dose ``%Rx`` constraints of this target are relative to (Gy)."""
        return self.protocol_gy if self.plan_gy is None else self.plan_gy


@dataclass(frozen=True)
class Fractionation:
    """Plan and protocol fractionation, and whether doses were converted to EQD2."""

    protocol_fractions: int
    plan_fractions: int | None
    converted: bool

    @property
    def fractions(self) -> int:
        """The number of fractions the plan's dose is delivered in (assumed when unknown)."""
        return self.protocol_fractions if self.plan_fractions is None else self.plan_fractions

    @property
    def differs(self) -> bool:
        return self.plan_fractions is not None and self.plan_fractions != self.protocol_fractions


SCHEDULE_VERDICTS = ("match", "converted", "mismatch", "not evaluated")

#: What a report names about the inputs of one check (values are DICOM text: data, never
#: markup), in display order.
PROVENANCE_KEYS = (
    "patient_name",
    "patient_id",
    "plan_label",
    "plan_date",
    "plan_file",
    "structure_set_label",
    "structure_set_date",
    "structure_set_file",
    "dose_files",
)


@dataclass(frozen=True)
class ScheduleResult:
    """One target's prescription and fractionation, plan against protocol.

    ``plan_gy`` / ``plan_fractions`` are ``None`` when the plan does not state them;
    ``protocol_gy_max`` is the top of a protocol dose range.  ``verdict`` is one of
    :data:`SCHEDULE_VERDICTS`; ``reason`` says what differs (or how it was converted).
    """

    role: str
    structure_name: str | None
    plan_gy: float | None
    plan_fractions: int | None
    protocol_gy: float
    protocol_gy_max: float | None
    protocol_fractions: int
    verdict: str
    reason: str = ""

    @property
    def plan_per_fraction_gy(self) -> float | None:
        if self.plan_gy is None or not self.plan_fractions:
            return None
        return self.plan_gy / self.plan_fractions

    @property
    def protocol_per_fraction_gy(self) -> float:
        return self.protocol_gy / self.protocol_fractions

    @property
    def blocking(self) -> bool:
        """True when a strict check cannot pass because of it (``mismatch``, ``not
        evaluated``)."""
        return self.verdict in ("mismatch", "not evaluated")


@dataclass(frozen=True)
class PlanCheck:
    """The result of checking one plan against one protocol.

    ``results`` holds one :class:`ConstraintResult` per constraint and matched structure
    (a ``multiple`` role such as the femurs gives one per structure), in protocol order.
    ``dvhs`` are the physical DVHs computed, by plan structure name (for plots).
    ``inputs`` names the input files' identities (``RTPLAN``, ``RTDOSE``, ``RTSTRUCT`` ->
    SOPInstanceUID, and ``patient_id``), for reports.  ``checked_at`` is when the check ran
    (UTC, ISO 8601); ``provenance`` what a signed report names (:data:`PROVENANCE_KEYS`:
    patient name and ID, plan label and date, structure-set label, dose file(s), ...);
    ``colours`` the ROI display colours (RGB 0-255) of the matched structures, for plots.
    ``end_cap`` the end-cap convention of the DVHs and how it was chosen.
    """

    protocol: Protocol
    patient: str
    results: tuple[ConstraintResult, ...]
    matches: Mapping[str, Match]
    prescriptions: Mapping[str, TargetPrescription]
    fractionation: Fractionation
    notes: tuple[str, ...] = ()
    dvhs: Mapping[str, DVH] = field(default_factory=dict)
    plan: Plan | None = None
    inputs: Mapping[str, str] = field(default_factory=dict)
    schedule: tuple[ScheduleResult, ...] = ()
    strict: bool = True
    checked_at: str = ""
    provenance: Mapping[str, object] = field(default_factory=dict)
    colours: Mapping[str, tuple[int, int, int]] = field(default_factory=dict)
    end_cap: EndCapChoice = EndCapChoice("slab", "slab")

    @property
    def failed(self) -> tuple[ConstraintResult, ...]:
        """Mandatory constraints that failed (in a relaxed check, not those judged against the
        protocol's prescription only because the plan's differs: they are notes)."""
        return tuple(r for r in self.results if r.failed and (self.strict or not r.protocol_rx))

    @property
    def incomplete(self) -> tuple[ConstraintResult, ...]:
        """Mandatory constraints that could not be evaluated (structure absent, or the
        metric undefined)."""
        return tuple(
            r
            for r in self.results
            if r.verdict == "not evaluated" and r.constraint.priority == "mandatory"
        )

    @property
    def mismatched(self) -> tuple[ScheduleResult, ...]:
        """Targets whose prescription or fractionation does not match the protocol's (or
        could not be compared)."""
        return tuple(s for s in self.schedule if s.blocking)

    @property
    def status(self) -> str:
        """``fail`` (a mandatory constraint failed); when strict, ``incomplete`` (one could
        not be evaluated) and ``mismatch`` (prescription or fractionation); else ``pass``."""
        if self.failed:
            return "fail"
        if self.strict and self.incomplete:
            return "incomplete"
        if self.strict and self.mismatched:
            return "mismatch"
        return "pass"


def _prescriptions(
    protocol: Protocol, plan: Plan | None, matches: Mapping[str, Match], roi_numbers
) -> tuple[dict[str, TargetPrescription], list[str]]:
    """Each protocol target's prescription (rules in the module docstring), and notes."""
    targets = protocol.prescription.targets
    refs = [] if plan is None else [r for r in plan.dose_references if r.prescription_gy]
    levels = [r.prescription_gy for r in refs]
    if plan is not None and plan.prescription_gy and plan.prescription_gy not in levels:
        levels.append(plan.prescription_gy)
    out = _by_dose_reference(targets, refs, matches, roi_numbers, levels)
    free = [t for t in targets if t.structure not in out]
    for level in levels:  # greedy, in the plan's order: each level to the nearest free target
        if not free:
            break
        nearest = min(free, key=lambda t: abs(t.dose_gy - level) / t.dose_gy)
        out[nearest.structure] = TargetPrescription(
            nearest.structure, nearest.dose_gy, level, "nearest plan level"
        )
        free.remove(nearest)
    notes = []
    for t in targets:
        if t.structure not in out:
            out[t.structure] = TargetPrescription(t.structure, t.dose_gy, None, "protocol")
        notes += _prescription_notes(protocol, out[t.structure])
    return {t.structure: out[t.structure] for t in targets}, notes


def _by_dose_reference(targets, refs, matches, roi_numbers, levels: list) -> dict:
    """Targets whose structure a plan dose reference names by ROI number; each level used
    is taken out of ``levels``."""
    out: dict[str, TargetPrescription] = {}
    for t in targets:
        names = matches[t.structure].structures
        by_roi = [
            r.prescription_gy
            for r in refs
            if r.roi_number is not None and roi_numbers.get(r.roi_number) in names
        ]
        if by_roi:
            out[t.structure] = TargetPrescription(
                t.structure, t.dose_gy, by_roi[0], "dose reference ROI"
            )
            if by_roi[0] in levels:
                levels.remove(by_roi[0])
    return out


def _prescription_notes(protocol: Protocol, p: TargetPrescription) -> list[str]:
    """Notes on one target's prescription: the protocol's used, or the plan's differs."""
    label = protocol.structures[p.role].label
    if p.plan_gy is None:
        return [
            f"no plan prescription for {label}: "
            f"the protocol's {format_number(p.protocol_gy)} Gy is used"
        ]
    if abs(p.plan_gy - p.protocol_gy) > PRESCRIPTION_TOLERANCE * p.protocol_gy:
        return [
            f"plan prescribes {format_number(p.plan_gy)} Gy to {label}, the protocol "
            f"{format_number(p.protocol_gy)} Gy"
        ]
    return []


def _dose_basis(c, alpha_beta: float | None, frac: Fractionation, pres, kind: str):
    """How a constraint's doses are judged (the EQD2 policy of the module docstring):
    ``(alpha_beta or None for the dose as read, limit-dose converter or None, basis
    label)``; ``kind`` is the dose's (:attr:`rtplan.dose.Dose.kind`, e.g. "physical")."""
    if not c.is_absolute:
        return None, None, kind
    ab_text = f"EQD2, α/β {format_number(alpha_beta)} Gy" if alpha_beta is not None else ""
    if c.dose_basis == "eqd2":
        return alpha_beta, None, f"{ab_text}, limits in EQD2"
    reference = c.reference_fractions or pres.fractions
    if frac.fractions != reference and (
        c.reference_fractions is not None or pres.allow_eqd2_conversion
    ):

        def to_basis(x, _ab=alpha_beta, _n=reference):
            return eqd2(x, _n, alpha_beta_gy=_ab)

        return alpha_beta, to_basis, f"{ab_text}, limits of {reference} fx"
    return None, None, kind


def _within(value: float, low: float, high: float | None) -> bool:
    """``value`` equals ``low`` (or lies in ``[low, high]``) within the tolerance."""
    tol = PRESCRIPTION_TOLERANCE
    return low * (1 - tol) <= value <= (high if high is not None else low) * (1 + tol)


def _schedule(
    protocol: Protocol,
    prescriptions: Mapping[str, TargetPrescription],
    matches: Mapping[str, Match],
    frac: Fractionation,
) -> tuple[ScheduleResult, ...]:
    """One :class:`ScheduleResult` per protocol target (rules in the module docstring)."""
    out = []
    n_protocol = frac.protocol_fractions
    n_plan = frac.plan_fractions
    for t in protocol.prescription.targets:
        role = protocol.structures[t.structure]
        p = prescriptions[t.structure]
        names = matches[t.structure].structures

        def result(verdict: str, reason: str, _t=t, _p=p, _names=names) -> ScheduleResult:
            return ScheduleResult(
                _t.structure,
                _names[0] if _names else None,
                _p.plan_gy,
                n_plan,
                _t.dose_gy,
                _t.dose_gy_max,
                n_protocol,
                verdict,
                reason,
            )

        rx = f"{format_number(t.dose_gy)}" + (
            f"-{format_number(t.dose_gy_max)}" if t.dose_gy_max else ""
        )
        if p.plan_gy is None or n_plan is None:
            missing = "prescription" if p.plan_gy is None else "number of fractions"
            out.append(result("not evaluated", f"the plan states no {missing} for {role.label}"))
            continue
        plan_text = f"{format_number(p.plan_gy)} Gy / {n_plan} fx"
        if n_plan == n_protocol:
            if _within(p.plan_gy, t.dose_gy, t.dose_gy_max):
                out.append(result("match", ""))
            else:
                out.append(
                    result(
                        "mismatch",
                        f"plan {plan_text}, protocol {rx} Gy / {n_protocol} fx: "
                        "total dose and dose per fraction differ",
                    )
                )
            continue
        differs = f"plan {plan_text}, protocol {rx} Gy / {n_protocol} fx"
        if not frac.converted:
            out.append(
                result("mismatch", f"{differs}; the protocol does not allow EQD2 conversion")
            )
            continue
        ab = role.alpha_beta_gy
        if ab is None:
            out.append(
                result(
                    "mismatch",
                    f"{differs}; the protocol allows EQD2 conversion but gives no alpha/beta "
                    f"for {role.label}, so the prescriptions cannot be compared",
                )
            )
            continue
        plan_eqd2 = eqd2(p.plan_gy, n_plan, alpha_beta_gy=ab)
        low = eqd2(t.dose_gy, n_protocol, alpha_beta_gy=ab)
        high = None if t.dose_gy_max is None else eqd2(t.dose_gy_max, n_protocol, alpha_beta_gy=ab)
        eq = (
            f"EQD2 (alpha/beta {format_number(ab)} Gy) plan {format_number(round(plan_eqd2, 2))}"
            f" Gy, protocol {format_number(round(low, 2))}"
            + (f"-{format_number(round(high, 2))}" if high is not None else "")
            + " Gy"
        )
        if _within(plan_eqd2, low, high):
            out.append(result("converted", f"{differs}; same {eq}"))
        else:
            out.append(result("mismatch", f"{differs}; {eq}"))
    return tuple(out)


def check_plan(
    protocol: Protocol,
    structures: Sequence[Structure],
    dose: Dose,
    plan: Plan | None = None,
    *,
    mapping: Mapping[str, str | Sequence[str]] | None = None,
    patient: str = "",
    inputs: Mapping[str, str] | None = None,
    dvh_function: Callable[..., DVH] | None = None,
    problems: Mapping[str, Sequence[str]] | None = None,
    strict: bool = True,
    provenance: Mapping[str, object] | None = None,
    end_cap: str = DEFAULT_END_CAP,
) -> PlanCheck:
    """Check one plan against a protocol (rules in the module docstring).

    Parameters
    ----------
    protocol : Protocol
        The protocol (:func:`rtplan.protocols.load_protocol`).
    structures : sequence of Structure
        The plan's structures (an RTSTRUCT's).
    dose : Dose
        The plan's total physical dose (Gy).
    plan : Plan, optional
        The RTPLAN: prescription and number of fractions.  Without it the protocol's
        prescription and fractions are assumed (and noted).
    mapping : mapping, optional
        User structure mapping (role key or TG-263 name -> plan name).
    patient : str
        How to name the patient in reports (ID or folder).
    inputs : mapping, optional
        Input identities for reports (modality -> SOPInstanceUID).
    dvh_function : callable, optional
        ``f(structure, dose) -> DVH``; default :func:`rtplan.dvh.compute.compute`.
    problems : mapping, optional
        ``{name: reasons}`` of structures that cannot stand for a volume
        (:attr:`rtplan.structure.StructureSet.problems`): a constraint that needs one of
        them raises a :class:`~rtplan.errors.ContourError` instead of being judged.
    strict : bool
        ``True`` (default): mandatory constraints not evaluated and prescription or
        fractionation mismatches make the check fail (module docstring); ``False`` reports
        them as notes.
    provenance : mapping, optional
        What reports name about the inputs (:data:`PROVENANCE_KEYS`); the plan's label is
        filled in from ``plan`` when absent.
    end_cap : {"auto", "slab", "none"}
        End-cap convention of the DVHs (module docstring); not used by ``dvh_function``.

    Returns
    -------
    PlanCheck

    Raises
    ------
    StructureNotFoundError
        A required structure is not in the plan (the message lists the closest names).
    InputError
        Ambiguous structure names, or an invalid mapping.
    """
    checked_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    by_name = {s.name: s for s in structures}
    source = next((s.source for s in structures if s.source), "")
    matches = match_structures(protocol.structures, list(by_name), mapping, source=source)
    roi_numbers = {s.number: s.name for s in structures if s.number is not None}
    prescriptions, notes = _prescriptions(protocol, plan, matches, roi_numbers)
    unbuilt = _unite_parts(protocol, matches, by_name, problems, notes)
    frac = _fractionation(protocol.prescription, plan, notes)
    usable = [s for s in structures if not (problems and problems.get(s.name))]
    rx = plan.prescription_gy if plan is not None else None  # reads headers in % of it
    point = choose_bin_point("auto", dose.embedded_dvhs, rx).used
    cap = choose_end_cap(end_cap, usable, dose.embedded_dvhs, prescription_gy=rx, point=point)
    dvh_of = _DVHs(dose, frac.fractions, by_name, problems, dvh_function, cap.used)
    results: list[ConstraintResult] = []
    for c in protocol.constraints:
        results += _judge(c, protocol, matches, unbuilt, prescriptions, frac, dvh_of)
    plotted = [n for m in matches.values() for n in m.structures if n not in unbuilt]
    for name in plotted:  # physical DVHs of every matched structure, for plots
        dvh_of(name, None)
    schedule = _schedule(protocol, prescriptions, matches, frac)
    if not strict:
        notes += _relaxed_notes(protocol, results, schedule)
    _check_plausible(dose, plan, prescriptions, matches, dvh_of)
    return PlanCheck(
        protocol=protocol,
        patient=patient,
        results=tuple(results),
        matches=matches,
        prescriptions=prescriptions,
        fractionation=frac,
        notes=tuple(notes),
        dvhs=dvh_of.physical(),
        plan=plan,
        inputs=dict(inputs or {}),
        schedule=schedule,
        strict=strict,
        checked_at=checked_at,
        provenance=_provenance(provenance, plan, structures, dose),
        colours=_colours(matches, by_name),
        end_cap=cap,
    )


def _colours(matches, by_name) -> dict[str, tuple]:
    """The display colour of every matched structure that has one."""
    return {
        n: tuple(by_name[n].color)
        for m in matches.values()
        for n in m.structures
        if n in by_name and by_name[n].color is not None
    }


def _unite_parts(protocol, matches, by_name: dict, problems, notes: list[str]) -> dict[str, str]:
    """Phase 1: build the union of a combined structure's parts (``Kidneys`` from
    ``Kidney_L`` and ``Kidney_R``) into ``by_name``, noted; returns union name -> why it
    could not be built.  A broken part is bad input, as a broken structure is."""
    unbuilt: dict[str, str] = {}
    for m in matches.values():
        if not m.is_union:
            continue
        (union_name,) = m.structures
        label = protocol.structures[m.role].label
        for part in m.parts:
            if problems and problems.get(part):
                raise ContourError(
                    problems[part][0], path=by_name[part].source or None, structure=part
                )
        try:
            by_name[union_name] = union_structure(union_name, [by_name[p] for p in m.parts])
            notes.append(
                f"{label} not in the plan: the union of {' and '.join(m.parts)} is used "
                f"({by_name[union_name].volume_cc:.2f} cc)"
            )
        except ContourError as exc:
            unbuilt[union_name] = f"{label} not in the plan and its parts cannot be united: {exc}"
    return unbuilt


def _fractionation(pres, plan: Plan | None, notes: list[str]) -> Fractionation:
    """Phase 2: the protocol's and the plan's fractions, and whether doses are converted to
    EQD2 (noted when the plan's fractions are unknown or differ)."""
    plan_fractions = plan.fractions if plan is not None and plan.fractions > 0 else None
    frac = Fractionation(
        pres.fractions,
        plan_fractions,
        converted=plan_fractions is not None
        and plan_fractions != pres.fractions
        and pres.allow_eqd2_conversion,
    )
    if plan_fractions is None:
        notes.append(
            f"plan fractionation unknown: the protocol's {pres.fractions} fractions are assumed"
        )
    elif frac.differs:
        notes.append(
            f"plan has {plan_fractions} fractions, the protocol {pres.fractions}: "
            + (
                "absolute-dose constraints judged in EQD2 (voxel-wise, alpha/beta per structure)"
                if frac.converted
                else "judged on physical dose without conversion (the protocol does not allow it)"
            )
        )
    return frac


class _DVHs:
    """The DVHs a check needs, each computed once: ``dvhs(name, alpha_beta)`` on the physical
    dose (``alpha_beta`` None) or on its EQD2 at that alpha/beta (the EQD2 dose and each
    dose's sampling field are also made once), with the end cap ``end_cap``."""

    def __init__(self, dose: Dose, fractions: int, by_name, problems, dvh_function, end_cap):
        self.by_name, self.problems, self.dvh_function = by_name, problems, dvh_function
        self.end_cap = end_cap
        self.fractions = fractions
        self.doses: dict[float | None, Dose] = {None: dose}
        self.fields: dict[float | None, object] = {}
        self.dvhs: dict[tuple[str, float | None], DVH] = {}

    def dose_on(self, alpha_beta: float | None) -> Dose:
        if alpha_beta not in self.doses:
            physical = self.doses[None]
            self.doses[alpha_beta] = eqd2_dose(physical, self.fractions, alpha_beta_gy=alpha_beta)
        return self.doses[alpha_beta]

    def __call__(self, name: str, alpha_beta: float | None) -> DVH:
        if self.problems and self.problems.get(name):
            source = self.by_name[name].source or None
            raise ContourError(self.problems[name][0], path=source, structure=name)
        key = (name, alpha_beta)
        if key not in self.dvhs:
            d = self.dose_on(alpha_beta)
            if self.dvh_function is not None:
                self.dvhs[key] = self.dvh_function(self.by_name[name], d)
            else:
                if alpha_beta not in self.fields:
                    self.fields[alpha_beta] = axial_field(d)
                self.dvhs[key] = compute(
                    self.by_name[name], d, end_cap=self.end_cap, field=self.fields[alpha_beta]
                )
        return self.dvhs[key]

    def physical(self) -> dict[str, DVH]:
        """The physical-dose DVHs computed, by structure name."""
        return {name: dvh for (name, ab), dvh in self.dvhs.items() if ab is None}


def _judge(c, protocol, matches, unbuilt, prescriptions, frac, dvh_of) -> list[ConstraintResult]:
    """Phase 3: one constraint's results, one per structure its role matched (and a second
    against the protocol's prescription for a %Rx constraint whose plan prescription
    differs), each with the seconds it took."""
    started = time.perf_counter()
    pres = protocol.prescription
    role = protocol.structures[c.structure]
    match = matches[c.structure]
    if not match.found:
        return [not_evaluated(c, f"{role.label} not in the plan (optional structure)")]
    if match.structures[0] in unbuilt:
        return [not_evaluated(c, unbuilt[match.structures[0]], match.structures[0])]
    target = prescriptions.get(c.structure, prescriptions[pres.primary.structure])
    rx = target.used_gy
    rx_protocol = (
        target.protocol_gy
        if not c.is_absolute
        and c.parsed_metric.needs_prescription
        and target.plan_gy is not None
        and not _within(target.plan_gy, target.protocol_gy, None)
        else None
    )
    kind = dvh_of.doses[None].kind
    alpha_beta, to_basis, basis = _dose_basis(c, role.alpha_beta_gy, frac, pres, kind)
    results = []
    for name in match.structures:
        results.append(
            evaluate_constraint(
                c,
                dvh_of(name, alpha_beta),
                structure_name=name,
                prescription_gy=rx,
                dose_to_basis=to_basis,
                basis=basis if rx_protocol is None else f"{basis}, plan Rx {format_number(rx)} Gy",
            )
        )
        if rx_protocol is not None:
            second = evaluate_constraint(
                c,
                dvh_of(name, None),
                structure_name=name,
                prescription_gy=rx_protocol,
                basis=f"{kind}, protocol Rx {format_number(rx_protocol)} Gy",
            )
            results.append(dataclasses.replace(second, protocol_rx=True))
    seconds = (time.perf_counter() - started) / max(1, len(results))
    return [dataclasses.replace(r, seconds=seconds) for r in results]


def _relaxed_notes(protocol, results, schedule) -> list[str]:
    """Phase 4 (``strict=False``): what would have failed the check, as notes."""
    notes = []
    for r in results:
        if r.failed and r.protocol_rx:
            notes.append(
                f"relaxed: {r.constraint.id} on {r.structure_name} fails against the "
                f"protocol's prescription ({format_number(r.prescription_gy)} Gy), which "
                "the plan does not prescribe"
            )
        if r.verdict == "not evaluated" and r.constraint.priority == "mandatory":
            notes.append(
                f"relaxed: mandatory {r.constraint.id} on "
                f"{r.structure_name or protocol.structures[r.constraint.structure].label} "
                f"not evaluated ({r.reason})"
            )
    for sr in schedule:
        if sr.blocking:
            notes.append(
                f"relaxed: prescription of {protocol.structures[sr.role].label} "
                f"{sr.verdict}: {sr.reason}"
            )
    return notes


#: A dose maximum above this multiple of the prescription is not a plan but a reading error
#: (DoseGridScaling, units): such a check is refused, never judged.
MAX_DOSE_OVER_PRESCRIPTION = 2.0
#: A target whose D95% exceeds this percentage of its prescription is refused the same way.
MAX_TARGET_D95_PCT = 150.0


def _check_plausible(dose: Dose, plan: Plan | None, prescriptions, matches, dvh_of) -> None:
    """Plausibility guards (docs/protocols.md): raise an :class:`InputError` for a dose no
    check may pass: negative doses, a maximum above :data:`MAX_DOSE_OVER_PRESCRIPTION` x the
    highest prescription (not for brachytherapy: next to a source the dose is tens of times
    the prescription), a target D95% above :data:`MAX_TARGET_D95_PCT` % of its own."""
    values = dose.values_gy
    if values.size and float(values.min()) < 0:
        raise InputError(
            f"negative doses (minimum {float(values.min()):.4g} Gy): not judged",
            path=dose.source or None,
        )
    rx_top = max((p.used_gy for p in prescriptions.values() if p.used_gy), default=None)
    top = float(dose.max_gy)
    brachy = (plan is not None and plan.brachytherapy) or dose.summation_type.startswith("BRACHY")
    if rx_top and not brachy and top > MAX_DOSE_OVER_PRESCRIPTION * rx_top:
        raise InputError(
            f"dose maximum {top:.4g} Gy is {top / rx_top:.1f} x the {rx_top:g} Gy prescription "
            f"(plausible up to {MAX_DOSE_OVER_PRESCRIPTION:g} x): check DoseGridScaling and "
            "DoseUnits; not judged",
            path=dose.source or None,
        )
    for role, p in prescriptions.items():
        match = matches.get(role)
        if not p.used_gy or match is None or not match.found:
            continue
        for name in match.structures:
            d95 = float(dvh_of(name, None).dose_at_volume_gy(0.95 * dvh_of(name, None).volume_cc))
            if d95 > MAX_TARGET_D95_PCT / 100.0 * p.used_gy:
                raise InputError(
                    f"target {name}: D95% {d95:.4g} Gy is {100 * d95 / p.used_gy:.0f} %Rx "
                    f"(plausible up to {MAX_TARGET_D95_PCT:g} %Rx): check the dose scaling; "
                    "not judged",
                    path=dose.source or None,
                )


def _provenance(given, plan, structures, dose) -> dict[str, object]:
    """``given`` completed from the objects (plan label and file, dose file)."""
    out: dict[str, object] = dict.fromkeys(PROVENANCE_KEYS, "")
    out["dose_files"] = [dose.source] if dose.source else []
    if plan is not None:
        out["plan_label"], out["plan_file"] = plan.label, plan.source
    source = next((s.source for s in structures if s.source), "")
    out["structure_set_file"] = source
    out.update({k: v for k, v in (given or {}).items() if v not in ("", None, [])})
    return out


@dataclass(frozen=True)
class PatientError:
    """A patient that could not be checked, and the one-line reason."""

    patient: str
    message: str

    @property
    def status(self) -> str:
        return "error"


#: What checking one patient gives: a :class:`PlanCheck`, or a :class:`PatientError`.
Outcome = PlanCheck | PatientError
