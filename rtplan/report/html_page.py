"""A self-contained HTML report of a protocol check (opens offline: styles and DVH plots inline).

Contents: rtplan version, protocol summary (prescription, status, sources), then per patient
the plan summary, the input files' UIDs, notes, the constraint table, the DVH plot and (when
given) the contour and isodose overlay (:mod:`rtplan.report.overlay`), each as an embedded PNG
(``<img src="data:image/png;base64,...">``).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from html import escape

from rtplan.check import PlanCheck
from rtplan.constraints import format_number
from rtplan.protocols.schema import Protocol
from rtplan.report.records import (
    Outcome,
    PatientError,
    limit_text,
    margin_text,
    metric_text,
    overall_status,
    patient_provenance,
    run_record,
    schedule_label,
    schedule_limit_text,
    schedule_value_text,
    value_text,
    verdict_label,
)
from rtplan.sanitize import xml_text

_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: left; }
th { background: #eee; }
.pass { background: #d9f2d9; } .fail { background: #f7d4d4; }
.acceptable { background: #fcefc7; } .not-evaluated, .error { background: #e8e8e8; }
.mismatch { background: #f7d4d4; } .match, .converted { background: #d9f2d9; }
.note { background: #f4f4f4; color: #555; }
.template { border: 2px solid #c80; padding: 0.5em; background: #fff6e0; }
code { font-size: 90%; }
.figures { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
.figures img { max-width: 100%; height: auto; }
.signoff { margin-top: 1em; min-width: 32em; } .signoff caption { text-align: left; font-weight: bold; }
.signoff td { width: 24em; height: 2em; }
@media print { .figures img { max-width: 48%; } }
"""


def _text(value: object) -> str:
    """DICOM and file text as HTML data: markup escaped, characters XML cannot hold shown."""
    return escape(xml_text(value))


def _row(cells: Sequence[str], css: str = "", tag: str = "td") -> str:
    cls = f' class="{css}"' if css else ""
    return f"<tr{cls}>" + "".join(f"<{tag}>{_text(c)}</{tag}>" for c in cells) + "</tr>"


def _protocol_section(protocol: Protocol) -> list[str]:
    pres = protocol.prescription
    targets = ", ".join(
        f"{protocol.structures[t.structure].label} {format_number(t.dose_gy)}"
        + (f"-{format_number(t.dose_gy_max)}" if t.dose_gy_max else "")
        + " Gy"
        for t in pres.targets
    )
    out = [
        f"<h2>Protocol {escape(protocol.name)}</h2>",
        f"<p>{escape(protocol.title)}</p>",
        f"<p>Prescription: {escape(targets)} in {pres.fractions} fractions; EQD2 conversion "
        f"{'allowed' if pres.allow_eqd2_conversion else 'not allowed'}.</p>",
    ]
    if protocol.is_template:
        out.append(
            f'<p class="template"><b>Template protocol</b>: {escape(protocol.template_note)}</p>'
        )
    out.append("<table>" + _row(["source", "citation", "verification"], tag="th"))
    for key, s in protocol.sources.items():
        out.append(_row([key, s.citation, s.verification]))
    out.append("</table>")
    return out


def _png_img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{_text(alt)}" src="data:image/png;base64,{data}">'


def _patient_section(o: Outcome, overlay: bytes | str | None = None) -> list[str]:
    if isinstance(o, PatientError):
        return [
            f"<h2>Patient {_text(o.patient)}: ERROR</h2>",
            f'<p class="error">{_text(o.message)}</p>',
        ]
    out = [f"<h2>Patient {_text(o.patient)}: {escape(o.status.upper())}</h2>"]
    out.append("<table>" + "".join(_row(r) for r in _summary_rows(o)) + "</table>")
    if o.notes:
        out.append("<ul>" + "".join(f"<li>{_text(n)}</li>" for n in o.notes) + "</ul>")
    out.append("<table>" + _row(_RESULT_HEADER, tag="th"))
    out += [_schedule_row(o, sr) for sr in o.schedule]
    out += [_result_row(o, r) for r in o.results]
    out.append("</table>")
    out += _figures(o, overlay)
    out.append(_SIGN_OFF)
    return out


_RESULT_HEADER = ["structure", "plan structure", "constraint", "priority", "value", "limit",
                  "result", "margin to limit", "basis", "source"]  # fmt: skip


def _summary_rows(o: PlanCheck) -> list[list[str]]:
    """What was checked: the patient, plan, structure set and dose files, fractions,
    prescriptions and input UIDs."""
    p = patient_provenance(o)
    frac = o.fractionation
    summary = [
        ["patient name", p["patient_name"] or "-"],
        ["patient ID", p["patient_id"] or "-"],
        [
            "plan",
            "none (protocol prescription assumed)"
            if not p["plan_label"]
            else f"{p['plan_label']} ({p['plan_date'] or 'no date'})",
        ],
        ["plan file", p["plan_file"] or "-"],
        [
            "structure set",
            f"{p['structure_set_label'] or '-'} ({p['structure_set_date'] or 'no date'})",
        ],
        ["structure set file", p["structure_set_file"] or "-"],
        ["dose file(s)", "; ".join(p["dose_files"]) or "-"],
        ["checked at (UTC)", o.checked_at or "-"],
        ["DVH end cap", p["end_cap"]],
        [
            "fractions (plan / protocol)",
            f"{frac.plan_fractions or 'unknown'} / {frac.protocol_fractions}"
            + (" - converted to EQD2" if frac.converted else ""),
        ],
    ]
    summary += [
        [f"prescription {o.protocol.structures[role].label}",
         f"{format_number(rx.used_gy)} Gy ({rx.how})"]
        for role, rx in o.prescriptions.items()
    ]  # fmt: skip
    summary += [[f"{k} UID" if k.isupper() else k, v] for k, v in o.inputs.items()]
    return summary


def _schedule_row(o: PlanCheck, sr) -> str:
    """A prescription-and-fractionation row of the results table."""
    rx_source = o.protocol.sources.get(o.protocol.prescription.source)
    return _row(
        [
            o.protocol.structures[sr.role].label,
            sr.structure_name or "-",
            "prescription and fractionation",
            "mandatory",
            schedule_value_text(sr),
            schedule_limit_text(sr),
            schedule_label(sr, o.strict),
            sr.reason or "",
            "",
            rx_source.short() if rx_source else "",
        ],
        css="note" if sr.blocking and not o.strict else sr.verdict.replace(" ", "-"),
    )


def _result_row(o: PlanCheck, r) -> str:
    """A constraint's row of the results table (a relaxed verdict styled as a note)."""
    c = r.constraint
    src = o.protocol.sources.get(c.source)
    mark = "" if c.verification == "verified" else f" ({c.verification})"
    relaxed = not o.strict and (
        r.verdict == "not evaluated" or (r.verdict == "fail" and r.protocol_rx)
    )
    return _row(
        [
            o.protocol.structures[c.structure].label,
            r.structure_name or "-",
            c.text()
            if metric_text(r) == c.metric
            else c.text().replace(c.metric, metric_text(r), 1),
            c.priority,
            value_text(r),
            limit_text(r),
            verdict_label(r, o.strict),
            margin_text(r),
            r.basis if r.value is not None else "",
            (src.short() if src else c.source) + mark,
        ],
        css="note" if relaxed else r.verdict.replace(" ", "-"),
    )


def _figures(o: PlanCheck, overlay: bytes | str | None) -> list[str]:
    """The DVH figure and the overlay (PNG bytes), or why the overlay is missing (text)."""
    out, figures = [], []
    if o.dvhs:
        from rtplan.report.plots import check_dvh_figure, figure_to_png  # matplotlib: only here

        png = figure_to_png(check_dvh_figure(o))
        figures.append(_png_img(png, f"cumulative DVH of {o.patient}"))
    if isinstance(overlay, bytes):
        figures.append(_png_img(overlay, f"contours and isodose lines of {o.patient}"))
    if figures:
        out.append('<div class="figures">' + "".join(figures) + "</div>")
    if isinstance(overlay, str):
        out.append(f'<p class="error">{_text(overlay)}</p>')
    return out


#: Filled in by hand on the printed or saved report.
_SIGN_OFF = (
    '<table class="signoff"><caption>Physics check sign-off</caption>'
    "<tr><th>checked by</th><td></td></tr><tr><th>date</th><td></td></tr>"
    "<tr><th>signature</th><td></td></tr><tr><th>comments</th><td></td></tr></table>"
)


def to_html(
    outcomes: Sequence[Outcome],
    protocol: Protocol,
    overlays: Sequence[bytes | str | None] | None = None,
) -> str:
    """The report as one self-contained HTML page.

    ``overlays``, when given, holds one item per outcome: the PNG of its contour and isodose
    overlay (:func:`rtplan.report.overlay.check_overlay`), a one-line reason why there is
    none (shown instead), or ``None``.
    """
    if overlays is None:
        overlays = [None] * len(outcomes)
    if len(overlays) != len(outcomes):
        raise ValueError(f"{len(overlays)} overlays for {len(outcomes)} outcomes")
    status = overall_status(outcomes)
    run = run_record(outcomes, protocol)
    body = [
        f"<h1>rtplan check: {_text(protocol.name)} - {escape(status.upper())}</h1>",
        "<table>"
        + "".join(
            _row(r)
            for r in [
                ["rtplan version", f"rtplan {run['rtplan_version']}"],
                ["checked at (UTC)", run["checked_at"]],
                ["protocol", protocol.name],
                ["protocol file", run["protocol_file"] or "(not read from a file)"],
                ["protocol SHA-256", run["protocol_sha256"] or "-"],
                ["patients", str(len(outcomes))],
                [
                    "verdicts",
                    "strict"
                    if all(getattr(o, "strict", True) for o in outcomes)
                    else "relaxed: NOT EVALUATED and MISMATCH are notes",
                ],
            ]
        )
        + "</table>",
        *_protocol_section(protocol),
    ]
    for o, overlay in zip(outcomes, overlays, strict=True):
        body.extend(_patient_section(o, overlay))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>rtplan check {escape(protocol.name)}</title><style>{_STYLE}</style></head>"
        "<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
