"""Reports of protocol checks: terminal text, JSON, CSV, JUnit XML and self-contained HTML.

Each ``to_*`` function takes the outcomes of a check (one :class:`rtplan.check.PlanCheck` or
:class:`~rtplan.report.records.PatientError` per patient) and the protocol, and returns the
report as a string.

The names below are imported from their modules on first use, so that importing one
report module (``rtplan dvh`` uses :mod:`rtplan.report.dvh`) does not import the check
reports and their dependencies.
"""

from importlib import import_module

#: Exported name -> the module defining it.
_EXPORTS = {
    "PatientError": "rtplan.report.records",
    "exit_code": "rtplan.report.records",
    "overall_status": "rtplan.report.records",
    "to_csv": "rtplan.report.formats",
    "to_html": "rtplan.report.html_page",
    "to_json": "rtplan.report.formats",
    "to_junit_xml": "rtplan.report.formats",
    "to_text": "rtplan.report.formats",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
