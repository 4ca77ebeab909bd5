"""Every command names an unknown structure the same way: one rule for the closest names
(:func:`rtplan.structure.closest_names`) and one hint (:func:`rtplan.structure.names_hint`).

Truth: the structure names of ``sample_dicom`` (GTV and PTV are drawn in both patients; a
misspelling one letter away is closest to them), and exit code 2 for bad input.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rtplan.cli import main

SAMPLE = Path(__file__).resolve().parents[1] / "sample_dicom"


@pytest.mark.parametrize(
    ("argv", "line_ends"),
    [
        (["dvh", "rps_01", "--structure", "PTV_Hgh"], "no structure 'PTV_Hgh' in structure set "
         "'observer1'; closest names present: 'PTV'"),
        (["expand", "extremity_01", "--structure", "GTX", "--margin", "5", "--name", "CTV"],
         "no structure 'GTX' in structure set 'observer1'; closest names present: 'GTV'"),
        (["volumes", "extremity_01", "--protocol", "extremity-preop", "--gtv", "GTX"],
         "the structure mapping sends 'gtv' to 'GTX', which is not in the plan; "
         "closest names present: 'GTV'"),
    ],
)  # fmt: skip
def test_unknown_structure_line(capsys, tmp_path, argv, line_ends):
    argv = [argv[0], str(SAMPLE / argv[1]), *argv[2:]]
    if argv[0] in ("expand", "volumes"):
        argv += ["--out", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.endswith(line_ends), err
