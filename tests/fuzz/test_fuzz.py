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


@pytest.mark.parametrize("family", sorted(fuzzlib.FAMILIES))
def test_family(template, family):
    """Every case of ``family`` keeps every promise (no finding at all)."""
    cases = fuzzlib.FAMILIES[family]()
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
