"""Text formats of a protocol check: terminal table, JSON, CSV and JUnit XML.

Every function returns a string; writing it to a file or the terminal is the caller's job.

JUnit XML (the schema CI systems read): one ``<testsuite>`` per patient, one ``<testcase>`` per
target prescription (``Rx / fx``) and per constraint and structure.  A failed mandatory
constraint is a ``<failure type="constraint">``, a prescription or fractionation mismatch a
``<failure type="mismatch">``; a mandatory constraint that could not be evaluated (structure
absent or metric undefined), a prescription that could not be compared, or a patient that
could not be read, is an ``<error>``.  In a relaxed check (``--relaxed``) the not-evaluated and
mismatch cases pass with a ``<system-out>`` note, and optional constraints on absent
structures are ``<skipped>``.  A missed *optimal* constraint or an *acceptable variation*
passes (as it does for the exit code) and says so in ``<system-out>``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from rtplan import __version__
from rtplan.check import PlanCheck
from rtplan.constraints import ConstraintResult, format_number
from rtplan.protocols.schema import Protocol
from rtplan.report.records import (
    ROW_FIELDS,
    Outcome,
    PatientError,
    limit_text,
    margin_text,
    metric_text,
    overall_status,
    patient_provenance,
    report_record,
    result_rows,
    run_record,
    schedule_label,
    schedule_limit_text,
    schedule_value_text,
    value_text,
    verdict_label,
)
from rtplan.sanitize import csv_cell, xml_text


def _clean(value):
    """JSON has no NaN: undefined numbers become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def to_json(outcomes: Sequence[Outcome], protocol: Protocol) -> str:
    """The report as JSON (schema: :func:`rtplan.report.records.report_record`)."""
    return json.dumps(_clean(report_record(outcomes, protocol)), indent=2) + "\n"


def to_csv(outcomes: Sequence[Outcome], protocol: Protocol) -> str:
    """One CSV row per patient and constraint (columns :data:`ROW_FIELDS`)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=ROW_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in result_rows(outcomes, protocol):
        writer.writerow({k: "" if v is None else csv_cell(v) for k, v in row.items()})
    return buf.getvalue()


def _case_name(result: ConstraintResult, protocol: Protocol) -> str:
    c = result.constraint
    label = protocol.structures[c.structure].label
    where = f" [{result.structure_name}]" if result.structure_name else ""
    return f"{label} {c.text()}{where}"


def _summary(result: ConstraintResult) -> str:
    return (
        f"{metric_text(result)} = {value_text(result)}, limit {limit_text(result)}, "
        f"margin {margin_text(result)} ({result.basis})"
    )


def _schedule_case(suite, classname: str, sr, o) -> str:
    """Add one prescription test case; returns the count it adds to (``failures``,
    ``errors`` or ``tests`` only)."""
    label = o.protocol.structures[sr.role].label
    case = ET.SubElement(suite, "testcase", classname=classname, name=f"{label} Rx / fx", time="0")
    text = f"plan {schedule_value_text(sr)}, protocol {schedule_limit_text(sr)}"
    if sr.reason:
        text += f": {sr.reason}"
    text = xml_text(text)
    if sr.blocking and o.strict:
        label = schedule_label(sr, o.strict)
        if sr.verdict == "mismatch":
            ET.SubElement(case, "failure", message=f"{label}: {text}", type="mismatch").text = text
            return "failures"
        ET.SubElement(case, "error", message=f"{label}: {text}", type="not evaluated").text = text
        return "errors"
    ET.SubElement(case, "system-out").text = f"{schedule_label(sr, o.strict)}: {text}"
    return "tests"


def _properties(suite, o, run: dict) -> None:
    """``<properties>``: the report's provenance (protocol file and SHA-256, rtplan version,
    time; the patient's name, ID, plan, structure set, dose files, fractionation)."""
    props = ET.SubElement(suite, "properties")
    values = dict(run)
    if not isinstance(o, PatientError):
        p = patient_provenance(o)
        p["dose_files"] = "; ".join(p["dose_files"])
        values.update(p)
        values["strict"] = "true" if o.strict else "false (--relaxed)"
    for key, value in values.items():
        text = "" if value is None else str(value)
        ET.SubElement(props, "property", name=key, value=xml_text(text))


def to_junit_xml(outcomes: Sequence[Outcome], protocol: Protocol) -> str:
    """The report as JUnit XML (mapping of verdicts in the module docstring).  Each
    ``<testsuite>`` has a ``timestamp`` (UTC), ``<properties>`` (provenance) and each
    ``<testcase>`` the ``time`` its evaluation took (s); DICOM text is data
    (:func:`rtplan.sanitize.xml_text`)."""
    run = run_record(outcomes, protocol)
    root = ET.Element("testsuites", name=f"rtplan check {protocol.name}")
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    total_time = 0.0
    for o in outcomes:
        stamp = (getattr(o, "checked_at", "") or run["checked_at"]).split("+")[0]
        suite = ET.SubElement(
            root,
            "testsuite",
            name=xml_text(f"{o.patient} / {protocol.name}"),
            timestamp=stamp,
        )
        _properties(suite, o, run)
        counts = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
        suite_time = 0.0
        classname = xml_text(f"rtplan.check.{protocol.name}.{o.patient}")
        if isinstance(o, PatientError):
            case = ET.SubElement(
                suite, "testcase", classname=classname, name="read input", time="0"
            )
            ET.SubElement(case, "error", message=o.message, type="InputError").text = o.message
            counts["tests"] += 1
            counts["errors"] += 1
        else:
            for sr in o.schedule:
                counts["tests"] += 1
                kind = _schedule_case(suite, classname, sr, o)
                if kind != "tests":
                    counts[kind] += 1
            for r in o.results:
                suite_time += r.seconds
                counts["tests"] += 1
                kind = _result_case(suite, classname, r, o, protocol)
                if kind is not None:
                    counts[kind] += 1
            if o.notes:
                ET.SubElement(suite, "system-out").text = xml_text("\n".join(o.notes))
        for k, v in counts.items():
            suite.set(k, str(v))
            totals[k] += v
        suite.set("time", f"{suite_time:.3f}")
        total_time += suite_time
    for k, v in totals.items():
        root.set(k, str(v))
    root.set("time", f"{total_time:.3f}")
    for element in root.iter():  # DICOM text is data: no character XML 1.0 cannot hold
        element.attrib.update({k: xml_text(v) for k, v in element.attrib.items()})
        if element.text:
            element.text = xml_text(element.text)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _result_case(suite, classname: str, r: ConstraintResult, o: PlanCheck, protocol) -> str | None:
    """One constraint result as a ``<testcase>``; returns the count it adds to (``failures``,
    ``errors``, ``skipped``) or None (passed, or only reported)."""
    case = ET.SubElement(
        suite,
        "testcase",
        classname=classname,
        name=xml_text(_case_name(r, protocol)),
        time=f"{r.seconds:.3f}",
    )
    mandatory = r.constraint.priority == "mandatory"
    if r.verdict == "fail" and mandatory and (o.strict or not r.protocol_rx):
        ET.SubElement(case, "failure", message=f"FAIL: {_summary(r)}", type="constraint").text = (
            r.constraint.note or _summary(r)
        )
        return "failures"
    if r.verdict == "not evaluated" and mandatory and o.strict:
        ET.SubElement(
            case, "error", message=f"NOT EVALUATED: {r.reason}", type="not evaluated"
        ).text = r.reason
        return "errors"
    if r.verdict == "not evaluated" and r.structure_name is None and not mandatory:
        ET.SubElement(case, "skipped", message=r.reason)
        return "skipped"
    if r.verdict == "not evaluated":
        ET.SubElement(case, "system-out").text = f"{verdict_label(r, o.strict)}: {r.reason}"
    else:
        ET.SubElement(case, "system-out").text = f"{verdict_label(r)}: {_summary(r)}"
    return None


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return [line(header), line(["-" * w for w in widths]), *map(line, rows)]


def _provenance_text(o) -> str:
    """``patient NAME (ID ...); plan LABEL (date); structure set LABEL; dose FILE``."""
    p = patient_provenance(o)
    plan = (
        f"plan {p['plan_label']} ({p['plan_date'] or 'no date'})"
        if p["plan_label"]
        else ("no RTPLAN")
    )
    doses = ", ".join(p["dose_files"]) or "-"
    return (
        f"patient {p['patient_name'] or '-'} (ID {p['patient_id'] or '-'}); {plan}; "
        f"structure set {p['structure_set_label'] or '-'}; dose {doses}"
    )


def _prescription_text(o) -> str:
    pres = []
    for role, p in o.prescriptions.items():
        label = o.protocol.structures[role].label
        pres.append(f"{label} {format_number(p.used_gy)} Gy ({p.how})")
    frac = o.fractionation
    plan_fx = "unknown" if frac.plan_fractions is None else str(frac.plan_fractions)
    return (
        f"prescription: {'; '.join(pres)}; fractions: plan {plan_fx}, protocol "
        f"{frac.protocol_fractions}{' (EQD2 conversion)' if frac.converted else ''}"
    )


def to_text(outcomes: Sequence[Outcome], protocol: Protocol) -> str:
    """The terminal report: protocol header, then per patient a table of structure, metric,
    value, limit, result and margin to the limit; with several patients, one table with a
    patient column."""
    run = run_record(outcomes, protocol)
    lines = [
        f"rtplan {__version__} check: protocol {protocol.name} - {protocol.title}",
        f"checked at {run['checked_at']}; protocol file {run['protocol_file'] or '(not a file)'}"
        f" sha256 {run['protocol_sha256'] or '-'}",
    ]
    if protocol.is_template:
        lines.append(f"TEMPLATE protocol: {protocol.template_note}")
    many = len(outcomes) > 1
    header = ["structure", "metric", "value", "limit", "result", "margin to limit", "basis"]
    all_rows: list[list[str]] = []
    for o in outcomes:
        if isinstance(o, PatientError):
            lines.append(f"{o.patient}: ERROR {o.message}")
            continue
        lines += _patient_lines(o, many)
        rows = _text_rows(o, protocol)
        if many:
            all_rows += [[o.patient, *row] for row in rows]
        else:
            lines.append("")
            lines.extend(_table(header, rows))
    if many and all_rows:
        lines.append("")
        lines.extend(_table(["patient", *header], all_rows))
    checked = [o for o in outcomes if not isinstance(o, PatientError)]
    if any(r.constraint.verification != "verified" for o in checked for r in o.results):
        lines.append(
            "* number not fully verified against the primary source (see the protocol file)"
        )
    lines.append(_result_line(outcomes, checked))
    return "\n".join(lines) + "\n"


def _patient_lines(o: PlanCheck, many: bool) -> list[str]:
    """A patient's provenance (and prescription, alone) and notes; prefixed when many."""
    if many:
        return [
            f"{o.patient}: {_provenance_text(o)}",
            f"{o.patient}: end cap: {o.end_cap.summary()}",
            *(f"{o.patient}: note: {n}" for n in o.notes),
        ]
    return [
        _provenance_text(o),
        _prescription_text(o),
        f"end cap: {o.end_cap.summary()}",
        *(f"note: {n}" for n in o.notes),
    ]


def _text_rows(o: PlanCheck, protocol: Protocol) -> list[list[str]]:
    """A patient's table rows: the prescription schedule, then every constraint result."""
    rows = []
    for sr in o.schedule:
        rows.append([
            sr.structure_name or protocol.structures[sr.role].label,
            "Rx / fx",
            schedule_value_text(sr),
            schedule_limit_text(sr),
            schedule_label(sr, o.strict),
            sr.reason or "",
            "",
        ])  # fmt: skip
    for r in o.results:
        c = r.constraint
        flag = "" if c.verification == "verified" else " *"
        rows.append([
            r.structure_name or protocol.structures[c.structure].label,
            metric_text(r) + flag,
            value_text(r),
            limit_text(r),
            verdict_label(r, o.strict),
            margin_text(r),
            r.basis if r.value is not None else "",
        ])  # fmt: skip
    return rows


def _result_line(outcomes: Sequence[Outcome], checked: list[PlanCheck]) -> str:
    """The last line: overall status and the counts behind it."""
    status = overall_status(outcomes)
    failed = sum(len(o.failed) for o in checked)
    incomplete = sum(len(o.incomplete) for o in checked)
    mismatched = sum(len(o.mismatched) for o in checked)
    relaxed = any(not o.strict for o in checked)
    return (
        f"result: {status.upper()} ({len(outcomes)} patient(s); "
        f"{failed} mandatory constraint(s) failed, {incomplete} not evaluated, "
        f"{mismatched} prescription(s) not matching"
        + ("; relaxed: not-evaluated and mismatch are notes" if relaxed else "")
        + ")"
    )
