"""Reports of protocol checks: terminal text, JSON, CSV, JUnit XML and self-contained HTML.

Each ``to_*`` function takes the outcomes of a check (one :class:`rtplan.check.PlanCheck` or
:class:`~rtplan.report.records.PatientError` per patient) and the protocol, and returns the
report as a string.
"""

from rtplan.report.formats import to_csv, to_json, to_junit_xml, to_text
from rtplan.report.html_page import to_html
from rtplan.report.records import PatientError, exit_code, overall_status

__all__ = [
    "PatientError",
    "exit_code",
    "overall_status",
    "to_csv",
    "to_html",
    "to_json",
    "to_junit_xml",
    "to_text",
]
