"""Each command imports only what it uses (start-up time is what a user of a small plan sees).

Truth checked, in a fresh interpreter per case (``sys.modules`` after ``rtplan.cli.main``):

* ``rtplan --help``, ``--version`` and ``rtplan CMD --help`` import no package of the numpy
  stack (argparse needs none);
* ``rtplan info`` and ``rtplan dvh`` never import matplotlib, numba or SimpleITK unless a
  plot is asked for; with ``--plot`` matplotlib is imported (so the check can fail).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_dicom" / "rps_01"
COMMANDS = ["info", "dvh", "check", "agree", "expand", "volumes"]
#: the numpy stack and the other heavy dependencies (top-level package names)
HEAVY = {"numpy", "scipy", "pydicom", "matplotlib", "numba", "llvmlite", "SimpleITK",
         "contourpy", "dask", "distributed", "PIL", "tqdm"}  # fmt: skip
PLOT_OR_KERNEL = {"matplotlib", "numba", "llvmlite", "SimpleITK"}

_RUN = """
import contextlib, io, json, sys
from rtplan.cli import main
codes = []
for argv in json.loads(sys.argv[1]):
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            codes.append(main(argv))
        except SystemExit as exc:
            codes.append(exc.code)
print(json.dumps({"codes": codes, "modules": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def imported(*argvs: list[str]) -> tuple[list, set[str]]:
    """Exit codes of ``rtplan.cli.main(argv)`` for each argv, run one after the other in a
    new interpreter, and the top-level packages imported by then."""
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    out = subprocess.run([sys.executable, "-c", _RUN, json.dumps(list(argvs))],
                         capture_output=True, text=True, env=env, cwd=ROOT)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.splitlines()[-1])
    return got["codes"], set(got["modules"])


def test_help_and_version_import_nothing_heavy():
    argvs = [["--help"], ["--version"]] + [[c, "--help"] for c in COMMANDS]
    codes, modules = imported(*argvs)
    assert codes == [0] * len(argvs)
    assert not modules & HEAVY, sorted(modules & HEAVY)


@pytest.mark.parametrize(
    "argv",
    [
        ["info", str(SAMPLE)],
        ["info", str(SAMPLE), "--json"],
        ["dvh", str(SAMPLE), "--json"],
        ["dvh", str(SAMPLE), "--structure", "PTV", "--compare-embedded"],
    ],
    ids=["info", "info-json", "dvh-json", "dvh-embedded"],
)
def test_info_and_dvh_import_no_plot_or_kernel_library(argv):
    codes, modules = imported(argv)
    assert codes == [0]
    assert not modules & PLOT_OR_KERNEL, sorted(modules & PLOT_OR_KERNEL)


def test_dvh_plot_imports_matplotlib(tmp_path):
    codes, modules = imported(["dvh", str(SAMPLE), "--structure", "PTV", "--plot",
                               str(tmp_path / "dvh.png")])  # fmt: skip
    assert codes == [0] and (tmp_path / "dvh.png").stat().st_size > 0
    assert "matplotlib" in modules
    assert not modules & {"numba", "SimpleITK"}


def test_help_lists_the_shipped_protocols():
    """``rtplan check --help`` lists the protocols without importing their parser: the
    same names as :func:`rtplan.protocols.available_protocols`."""
    from rtplan.commands.check import shipped_protocols
    from rtplan.protocols import available_protocols

    assert shipped_protocols() == available_protocols() and "rps-preop" in shipped_protocols()
