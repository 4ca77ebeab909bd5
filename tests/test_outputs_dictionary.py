"""docs/outputs.md lists every column the cohort writers produce (truth: the writers' own
column lists)."""

import re
from pathlib import Path

from rtplan.agreement.summary import SUMMARY_COLUMNS
from rtplan.workflows.agree import columns
from rtplan.workflows.dvh_cohort import CURVE_COLUMNS, DVH_COLUMNS

DOC = (Path(__file__).parents[1] / "docs" / "outputs.md").read_text()


def _section(title_start: str) -> set[str]:
    part = DOC.split(title_start, 1)[1].split("\n## ", 1)[0]
    names = set()
    for line in part.splitlines():
        if line.startswith("| `"):
            names |= set(re.findall(r"`([^`]+)`", line.split("|")[1]))
    return names


def test_every_column_is_documented():
    for title, cols in (
        ("## `rtplan agree --csv", columns()),
        ("## `rtplan agree --summary-csv", SUMMARY_COLUMNS),
        ("## `rtplan dvh FOLDER_OF_PATIENTS", DVH_COLUMNS),
        ("## `rtplan dvh ... --curves", CURVE_COLUMNS),
    ):
        missing = set(cols) - _section(title)
        assert not missing, (title, missing)
