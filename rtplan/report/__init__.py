"""Reports of protocol checks: terminal text, JSON, CSV, JUnit XML and self-contained HTML.

Each ``to_*`` function takes the outcomes of a check (one :class:`rtplan.check.PlanCheck` or
:class:`~rtplan.report.records.PatientError` per patient) and the protocol, and returns the
report as a string.

The names below are imported from their modules on first use, so that importing one
report module (``rtplan dvh`` uses :mod:`rtplan.report.dvh`) does not import the check
reports and their dependencies.
"""

import rtplan

#: Exported name -> the submodule defining it.
_EXPORTS = {
    "PatientError": "records",
    "exit_code": "records",
    "overall_status": "records",
    "to_csv": "formats",
    "to_html": "html_page",
    "to_json": "formats",
    "to_junit_xml": "formats",
    "to_text": "formats",
}

__all__ = sorted(_EXPORTS)
__getattr__ = rtplan.lazy_exports(__name__, _EXPORTS)
