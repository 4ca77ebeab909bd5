"""The fuzz suite in CI: every hostile-input family against the subcommands (fuzzlib.py).

Truths checked for every run (fuzzlib's module docstring): documented exit codes only (and
the one the docs give where a case states it), no traceback, one stderr line on exit 2,
inputs byte-identical, no temporary or partial outputs, no hang; subprocess runs also
under 2 GiB peak memory.  To stay within CI's budget each case runs on one or two
subcommands, chosen in turn so every family meets every subcommand; the larger run
(``python tests/fuzz/run_fuzz.py``) runs every case on every subcommand.
"""

from __future__ import annotations

import fuzzlib
import pytest

pytestmark = pytest.mark.slow

#: Seed of the random byte-flip cases run in CI.
SEED = 16


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    base = tmp_path_factory.mktemp("fuzz")
    return fuzzlib.Template(base)


def _commands_in_turn(cases):
    """(case, commands): each case on one of its commands (two for small families), in
    turn, so that every family meets every subcommand it can reach."""
    out = []
    for i, case in enumerate(cases):
        cmds = case.commands
        k = 2 if len(cases) < 12 and len(cmds) > 1 else 1
        out.append((case, tuple(cmds[(i * k + j) % len(cmds)] for j in range(k))))
    return out


#: Families whose runs are slow subprocesses (signals at chosen moments, racing runs): CI
#: runs this part of their cases (every one runs in ``run_fuzz.py``).
CI_SHARE = {"interrupt": slice(None, None, 2), "race": slice(0, 1)}


@pytest.mark.parametrize("family", sorted(fuzzlib.FAMILIES))
def test_family(template, family):
    """Every case of ``family`` keeps every promise (no finding at all)."""
    cases = fuzzlib.FAMILIES[family]()[CI_SHARE.get(family, slice(None))]
    findings = []
    for case, commands in _commands_in_turn(cases):
        for run in fuzzlib.run_case(template, case, commands):
            findings += [f"{case.name} / {run.command}: {p}" for p in run.problems]
    assert not findings, "\n".join(findings)


def test_random_bytes(template):
    """Seeded byte flips in the headers of each file kind: no finding."""
    findings = []
    for case, commands in _commands_in_turn(fuzzlib.random_byte_cases(SEED, 12)):
        for run in fuzzlib.run_case(template, case, commands):
            findings += [f"{case.name} / {run.command}: {p}" for p in run.problems]
    assert not findings, "\n".join(findings)


def test_oracle_catches_a_broken_promise(template):
    """The oracle itself: a run that writes onto its input is reported (the suite cannot
    pass vacuously)."""
    case = fuzzlib.Case("self-test", "rtplan pointed at nothing", commands=("info",),
                        argv=lambda p, c: ["info", str(p.root / "missing")], expect={"info": {0}})  # fmt: skip
    (run,) = fuzzlib.run_case(template, case, ("info",))
    assert run.code == 2 and any("expected [0]" in p for p in run.problems)


def test_oracle_reads_the_outputs(tmp_path):
    """The output promises can fail: a formula cell, ill-formed XML and a raw ESC in HTML
    are each found, and a file two racing runs both claim is reported."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.csv").write_text('name,value\n"=1+1",2\n"-x",3\n')
    (out / "a.xml").write_text("<a>\x1b</a>")
    (out / "a.html").write_text("<p>\x1b[31m</p>")
    patient = fuzzlib.Patient(tmp_path, tmp_path, [], tmp_path, tmp_path, tmp_path, tmp_path, out)
    found = fuzzlib.text_promises(patient, [])
    assert [f.split(":")[1].strip().split()[0] for f in found] == ["a.csv", "a.html", "a.xml"]
    case = fuzzlib.Case("self-test", "race", commands=("expand",))
    runs = [fuzzlib.Run(case, "expand", [], 0, f"wrote {out / 'a.csv'}\n", "", 0.0)] * 2
    assert fuzzlib._claims(runs) == [f"lost output: {out / 'a.csv'} claimed twice"]


def test_every_example_of_the_issue_has_its_case():
    """``run_fuzz.py --examples`` can run every example (each names an existing case whose
    commands include the one given)."""
    for label, case, command in fuzzlib.examples():
        assert command in case.commands, (label, case.name, command)
