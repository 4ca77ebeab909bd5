"""Plain records (dicts and rows) of protocol checks, shared by every report format.

A cohort check is a sequence of *outcomes*: a :class:`rtplan.check.PlanCheck` for each patient
that could be checked, or a :class:`rtplan.check.PatientError` for one that could not.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

from rtplan import __version__
from rtplan.check import PROVENANCE_KEYS, Outcome, PatientError, PlanCheck, ScheduleResult
from rtplan.constraints import ConstraintResult, format_number
from rtplan.protocols.schema import Protocol

#: Provenance columns of every CSV row (who, which plan, which files, which protocol, when).
PROVENANCE_FIELDS = (
    *PROVENANCE_KEYS,
    "plan_fractions",
    "protocol_fractions",
    "end_cap",
    "protocol_file",
    "protocol_sha256",
    "rtplan_version",
    "checked_at",
)

#: Columns of the CSV report and of :func:`result_rows`, in order.
ROW_FIELDS = (
    "patient",
    "protocol",
    "constraint",
    "structure",
    "plan_structure",
    "metric",
    "comparison",
    "limit",
    "unit",
    "priority",
    "value",
    "evaluated_limit",
    "verdict",
    "label",
    "prescription_gy",
    "margin",
    "margin_pct",
    "basis",
    "source",
    "verification",
    "reason",
    *PROVENANCE_FIELDS,
)

VERDICT_LABELS = {
    "pass": "PASS",
    "acceptable": "ACCEPTABLE",
    "fail": "FAIL",
    "not evaluated": "NOT EVALUATED",
    "error": "ERROR",
    "match": "MATCH",
    "converted": "MATCH (EQD2)",
    "mismatch": "MISMATCH",
}

#: Patient statuses that make ``rtplan check`` exit 1, most serious first.
JUDGED_NOT_PASSING = ("fail", "incomplete", "mismatch")


def overall_status(outcomes: Sequence[Outcome]) -> str:
    """``fail`` if a mandatory constraint failed anywhere, else ``incomplete`` if one could
    not be evaluated, else ``mismatch`` if a prescription or fractionation does not match
    (the last two only for strict checks), else ``error`` if a patient could not be read,
    else ``pass``."""
    statuses = {o.status for o in outcomes}
    for s in (*JUDGED_NOT_PASSING, "error"):
        if s in statuses:
            return s
    return "pass"


def exit_code(outcomes: Sequence[Outcome]) -> int:
    """The ``rtplan check`` exit code: 1 when a mandatory constraint failed or (strict) could
    not be evaluated, or a prescription or fractionation does not match; else 2 when a patient
    could not be checked; else 0."""
    status = overall_status(outcomes)
    return 0 if status == "pass" else 1 if status in JUDGED_NOT_PASSING else 2


def metric_text(result: ConstraintResult) -> str:
    """The constraint's metric, labelled when judged in EQD2: ``V40Gy% (EQD2, α/β 3 Gy)``."""
    metric = result.constraint.metric
    if result.basis.startswith("EQD2") and result.value is not None:
        return f"{metric} ({result.basis.split(', limits')[0]})"
    return metric


def _relaxed(label: str) -> str:
    return f"{label} (note, relaxed)"


def verdict_label(result: ConstraintResult, strict: bool = True) -> str:
    """``PASS``, ``FAIL``, ``ACCEPTABLE``, ``NOT EVALUATED``; optimal misses say so, and a
    mandatory constraint not evaluated in a relaxed check is a note."""
    label = VERDICT_LABELS[result.verdict]
    if result.verdict == "fail" and result.constraint.priority == "optimal":
        return "FAIL (optimal)"
    if result.verdict == "fail" and result.protocol_rx and not strict:
        return _relaxed(label)
    if result.verdict == "not evaluated":
        if result.constraint.priority == "optimal":
            return "NOT EVALUATED (optimal)"
        if not strict:
            return _relaxed(label)
    return label


def schedule_label(result: ScheduleResult, strict: bool = True) -> str:
    """``MATCH``, ``MATCH (EQD2)``, ``MISMATCH``, ``NOT EVALUATED`` (notes when relaxed)."""
    label = VERDICT_LABELS[result.verdict]
    return _relaxed(label) if result.blocking and not strict else label


def schedule_value_text(result: ScheduleResult) -> str:
    """The plan's schedule, e.g. ``25 Gy / 5 fx (5 Gy/fx)``."""
    if result.plan_gy is None or result.plan_fractions is None:
        gy = "?" if result.plan_gy is None else format_number(result.plan_gy)
        fx = "?" if result.plan_fractions is None else str(result.plan_fractions)
        return f"{gy} Gy / {fx} fx"
    return (
        f"{format_number(result.plan_gy)} Gy / {result.plan_fractions} fx "
        f"({format_number(round(result.plan_per_fraction_gy, 3))} Gy/fx)"
    )


def schedule_limit_text(result: ScheduleResult) -> str:
    """The protocol's schedule, e.g. ``= 50.4 Gy / 28 fx (1.8 Gy/fx)``."""
    top = f"-{format_number(result.protocol_gy_max)}" if result.protocol_gy_max else ""
    per = format_number(round(result.protocol_per_fraction_gy, 3))
    return f"= {format_number(result.protocol_gy)}{top} Gy / {result.protocol_fractions} fx ({per} Gy/fx)"


def schedule_record(result: ScheduleResult, check: PlanCheck) -> dict[str, Any]:
    """One target's prescription and fractionation check as a flat dict (JSON)."""
    return {
        "target": check.protocol.structures[result.role].label,
        "plan_structure": result.structure_name,
        "plan_gy": result.plan_gy,
        "plan_fractions": result.plan_fractions,
        "plan_gy_per_fraction": result.plan_per_fraction_gy,
        "protocol_gy": result.protocol_gy,
        "protocol_gy_max": result.protocol_gy_max,
        "protocol_fractions": result.protocol_fractions,
        "protocol_gy_per_fraction": result.protocol_per_fraction_gy,
        "verdict": result.verdict,
        "label": schedule_label(result, check.strict),
        "reason": result.reason or None,
    }


def _rx_gy(result: ConstraintResult, value: float) -> str:
    """`` (47.88 Gy)``: a ``%Rx`` dose in Gy, or the Gy threshold of ``V<x>%Rx``; else ``""``."""
    rx = result.prescription_gy
    if rx is None:
        return ""
    m = result.constraint.parsed_metric
    if result.unit == "%Rx":
        return f" ({value * rx / 100.0:.2f} Gy)"
    if m.kind == "vrx" and m.number is not None:
        return f" (at {m.number * rx / 100.0:.2f} Gy)"
    return ""


def limit_text(result: ConstraintResult) -> str:
    """The limit as evaluated, e.g. ``< 195 cc``, ``< 33.15 Gy`` or ``>= 95 %Rx (47.88 Gy)``."""
    c = result.constraint
    limit = c.limit if result.limit is None else result.limit
    unit = {"%": "%", "1": ""}.get(c.unit, f" {c.unit}")
    text = f"{c.comparison} {format_number(round(limit, 4))}{unit}"
    if result.unit == "%Rx":
        text += _rx_gy(result, limit)
    acceptable = result.acceptable if result.acceptable is not None else c.acceptable
    if acceptable is not None:
        text += f" (acceptable {format_number(round(acceptable, 4))})"
    return text


def value_text(result: ConstraintResult) -> str:
    """The value with its unit, and in Gy for a ``%Rx`` value (``99.55 %Rx (50.17 Gy)``)."""
    if result.value is None:
        return "-"
    unit = {"%": "%", "1": ""}.get(result.unit, f" {result.unit}")
    return f"{result.value:.2f}{unit}" + _rx_gy(result, result.value)


def margin_text(result: ConstraintResult) -> str:
    """How far from the limit: ``+145.00 cc (74.4%)`` headroom, ``-5.00 cc (-2.6%)`` exceeded."""
    if result.margin is None:
        return result.reason or "-"
    unit = {"%": " %-pts", "1": "", "%Rx": " %Rx-pts"}.get(result.unit, f" {result.unit}")
    pct = "" if result.margin_pct is None else f" ({result.margin_pct:+.1f}%)"
    gy = ""
    if result.unit == "%Rx" and result.prescription_gy:  # a %Rx margin also in Gy
        gy = f" = {result.margin * result.prescription_gy / 100.0:+.2f} Gy"
    return f"{result.margin:+.2f}{unit}{gy}{pct}"


@lru_cache(maxsize=32)
def _sha256(path: str, mtime_ns: int, size: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def protocol_sha256(protocol: Protocol) -> str | None:
    """SHA-256 (hex) of the protocol's file, as ``sha256sum`` prints it; ``None`` when the
    protocol was not read from a file."""
    if not protocol.path:
        return None
    try:
        st = Path(protocol.path).stat()
        return _sha256(str(Path(protocol.path).resolve()), st.st_mtime_ns, st.st_size)
    except OSError:
        return None


def checked_at(outcomes: Sequence[Outcome]) -> str:
    """When the check ran (UTC, ISO 8601): the first patient's check, else now."""
    times = [o.checked_at for o in outcomes if isinstance(o, PlanCheck) and o.checked_at]
    return min(times) if times else datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_record(outcomes: Sequence[Outcome], protocol: Protocol) -> dict[str, Any]:
    """The report-wide provenance: rtplan version, time, protocol name, file and SHA-256."""
    return {
        "rtplan_version": __version__,
        "checked_at": checked_at(outcomes),
        "protocol_name": protocol.name,
        "protocol_file": str(Path(protocol.path).resolve()) if protocol.path else None,
        "protocol_sha256": protocol_sha256(protocol),
    }


def patient_provenance(check: PlanCheck) -> dict[str, Any]:
    """One patient's provenance (:data:`rtplan.check.PROVENANCE_KEYS`), fractionation and
    end-cap convention of the DVHs (``end_cap``: the one used and why)."""
    out = {k: check.provenance.get(k, "") for k in PROVENANCE_KEYS}
    out["dose_files"] = list(out["dose_files"] or [])
    out["plan_fractions"] = check.fractionation.plan_fractions
    out["protocol_fractions"] = check.fractionation.protocol_fractions
    out["end_cap"] = check.end_cap.summary()
    out["checked_at"] = check.checked_at
    return out


def protocol_record(protocol: Protocol) -> dict[str, Any]:
    """The protocol summary of a report."""
    pres = protocol.prescription
    return {
        "name": protocol.name,
        "title": protocol.title,
        "status": protocol.status,
        "template_note": protocol.template_note,
        "file": protocol.path,
        "sha256": protocol_sha256(protocol),
        "prescription": {
            "fractions": pres.fractions,
            "allow_eqd2_conversion": pres.allow_eqd2_conversion,
            "targets": [
                {
                    "role": t.structure,
                    "structure": protocol.structures[t.structure].label,
                    "dose_gy": t.dose_gy,
                    "dose_gy_max": t.dose_gy_max,
                }
                for t in pres.targets
            ],
        },
        "sources": {
            k: {"citation": s.citation, "verification": s.verification}
            for k, s in protocol.sources.items()
        },
    }


def result_record(
    result: ConstraintResult, protocol: Protocol, strict: bool = True
) -> dict[str, Any]:
    """One constraint result as a flat dict (JSON and CSV)."""
    c = result.constraint
    source = protocol.sources.get(c.source)
    return {
        "constraint": c.id,
        "structure": protocol.structures[c.structure].label,
        "plan_structure": result.structure_name,
        "metric": c.metric,
        "metric_label": metric_text(result),
        "reference_fractions": c.reference_fractions,
        "comparison": c.comparison,
        "limit": c.limit,
        "acceptable": c.acceptable,
        "unit": c.unit,
        "priority": c.priority,
        "value": result.value,
        "evaluated_limit": result.limit,
        "verdict": result.verdict,
        "label": verdict_label(result, strict),
        "prescription_gy": result.prescription_gy,
        "margin": result.margin,
        "margin_pct": result.margin_pct,
        "basis": result.basis,
        "queried_metric": result.queried_metric or None,
        "source": source.short() if source else c.source,
        "verification": c.verification,
        "reason": result.reason or None,
        "note": c.note or None,
    }


def check_record(outcome: Outcome) -> dict[str, Any]:
    """One patient's outcome as a dict (JSON)."""
    if isinstance(outcome, PatientError):
        return {"patient": outcome.patient, "status": "error", "error": outcome.message}
    c = outcome
    plan = c.plan
    return {
        "patient": c.patient,
        "status": c.status,
        "provenance": patient_provenance(c),
        "inputs": dict(c.inputs),
        "plan": None
        if plan is None
        else {
            "label": plan.label,
            "fractions": plan.fractions,
            "prescription_gy": plan.prescription_gy,
            "sop_instance_uid": plan.sop_instance_uid,
        },
        "fractionation": {
            "protocol_fractions": c.fractionation.protocol_fractions,
            "plan_fractions": c.fractionation.plan_fractions,
            "converted_to_eqd2": c.fractionation.converted,
        },
        "prescriptions": {
            role: {
                "structure": c.protocol.structures[role].label,
                "protocol_gy": p.protocol_gy,
                "plan_gy": p.plan_gy,
                "used_gy": p.used_gy,
                "how": p.how,
            }
            for role, p in c.prescriptions.items()
        },
        "structures": {
            role: {"matched": list(m.structures), "how": m.how} for role, m in c.matches.items()
        },
        "strict": c.strict,
        "end_cap_choice": c.end_cap.as_dict(),
        "schedule": [schedule_record(s, c) for s in c.schedule],
        "notes": list(c.notes),
        "constraints": [result_record(r, c.protocol, c.strict) for r in c.results],
    }


def report_record(outcomes: Sequence[Outcome], protocol: Protocol) -> dict[str, Any]:
    """The whole report as one dict: version, protocol, summary, one entry per patient."""
    counts = {s: sum(o.status == s for o in outcomes) for s in ("pass", *JUDGED_NOT_PASSING)}
    counts["error"] = sum(isinstance(o, PatientError) for o in outcomes)
    return {
        "rtplan_version": __version__,
        "provenance": run_record(outcomes, protocol),
        "protocol": protocol_record(protocol),
        "summary": {
            "status": overall_status(outcomes),
            "exit_code": exit_code(outcomes),
            "patients": len(outcomes),
            **counts,
        },
        "patients": [check_record(o) for o in outcomes],
    }


def result_rows(outcomes: Sequence[Outcome], protocol: Protocol) -> list[dict[str, Any]]:
    """One row per patient and constraint (columns :data:`ROW_FIELDS`); a patient that
    could not be checked gives one row with verdict ``error``."""
    run = run_record(outcomes, protocol)
    common = {k: run[k] for k in ("protocol_file", "protocol_sha256", "rtplan_version")}
    rows = []
    for o in outcomes:
        if isinstance(o, PatientError):
            row = dict.fromkeys(ROW_FIELDS)
            row.update(patient=o.patient, protocol=protocol.name, verdict="error", reason=o.message)
            row.update(common, checked_at=run["checked_at"])
            rows.append(row)
            continue
        prov = patient_provenance(o)
        prov["dose_files"] = "; ".join(prov["dose_files"])
        prov.update(common)
        first = len(rows)
        for sr in o.schedule:
            row = dict.fromkeys(ROW_FIELDS)
            row.update(
                patient=o.patient,
                protocol=protocol.name,
                constraint="prescription",
                structure=protocol.structures[sr.role].label,
                plan_structure=sr.structure_name,
                metric="Rx / fx",
                value=schedule_value_text(sr),
                evaluated_limit=schedule_limit_text(sr),
                unit="Gy / fx",
                priority="mandatory",
                verdict=sr.verdict,
                label=schedule_label(sr, o.strict),
                reason=sr.reason or None,
            )
            rows.append(row)
        for r in o.results:
            rec = result_record(r, protocol, o.strict)
            rows.append(
                {"patient": o.patient, "protocol": protocol.name}
                | {k: rec[k] for k in ROW_FIELDS[2:] if k in rec}
            )
        for row in rows[first:]:
            row.update(prov)
    return rows
