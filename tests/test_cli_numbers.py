"""Numeric options are checked when the command line is parsed (rtplan/commands/numbers.py):
a value that is not a finite number in the option's documented range is exit 2 with one
stderr line naming the option, before any file is read (the path given does not exist)."""

from __future__ import annotations

import pytest

from rtplan.cli import main

#: (command line before the option, option, values outside its documented range, one inside)
OPTIONS = [
    (["dvh", "nowhere"], "--jobs", ["0", "1025", "1.5", "1e3", "nan"], "2"),
    (["check", "nowhere", "--protocol", "p"], "--jobs", ["0", "-3"], "1"),
    (["agree", "nowhere"], "--jobs", ["0", "inf"], "4"),
    (["dvh", "nowhere"], "--scheduler-timeout", ["0", "-1", "inf", "nan", "3601"], "3600"),
    (["check", "nowhere", "--protocol", "p"], "--scheduler-timeout", ["0", "1e308"], "0.5"),
    (["agree", "nowhere"], "--scheduler-timeout", ["0", "nan"], "10"),
    (["dvh", "nowhere"], "--curve-step", ["0", "-0.1", "inf", "101"], "0.01"),
    (["dvh", "nowhere"], "--outside-tolerance-pct", ["-1", "100.5", "nan"], "0"),
    (["dvh", "nowhere"], "--outside-tolerance-cc", ["-1", "1e308", "inf"], "100000"),
    (["agree", "nowhere"], "--tolerance-mm", ["0", "-1", "nan", "100.1", "1e308"], "100"),
    (["agree", "nowhere"], "--in-plane-mm", ["0", "inf"], "0.5"),
    (["expand", "nowhere", "--structure", "G", "--name", "C", "--margin", "5", "--out", "o"],
     "--fine-mm", ["0", "0.09", "1e-6", "10.5", "nan", "inf"], "0.1"),
    (["volumes", "nowhere", "--protocol", "p", "--gtv", "G", "--out", "o"],
     "--fine-mm", ["0", "1e308"], "10"),
    (["expand", "nowhere", "--structure", "G", "--name", "C", "--out", "o"],
     "--margin", ["1e308", "-1e308", "inf", "nan", "501", "radial=1e308,longitudinal=5"], "500"),
    (["expand", "nowhere", "--structure", "G", "--name", "C", "--margin", "5", "--out", "o"],
     "--within", ["BODY:99999999999", "BODY:-501"], "BODY:-3"),
    (["expand", "nowhere", "--structure", "G", "--name", "C", "--margin", "5", "--out", "o"],
     "--avoid", ["Femur:1000"], "Femur:5"),
]  # fmt: skip


@pytest.mark.parametrize(
    "before, option, value",
    [(b, o, v) for b, o, bad, _ in OPTIONS for v in bad],
    ids=lambda x: x if isinstance(x, str) else None,
)
def test_out_of_range_is_one_usage_line(capsys, before, option, value):
    with pytest.raises(SystemExit) as exc:
        main([*before, f"{option}={value}"])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert err.startswith(f"rtplan {before[0]}: error: argument {option}"), err


@pytest.mark.parametrize("before, option, good", [(b, o, g) for b, o, _, g in OPTIONS])
def test_in_range_passes_parsing(monkeypatch, before, option, good):
    """A value inside the range reaches the command (stopped there: nothing is read)."""
    import rtplan.cli

    seen = {}

    def stop(args, argv, debug):
        seen.update(vars(args))
        return 0

    monkeypatch.setattr(rtplan.cli, "_run", stop)
    assert main([*before, f"{option}={good}"]) == 0
    value = seen[option.lstrip("-").replace("-", "_")]
    value = value[-1] if isinstance(value, list) else value  # --avoid/--within append
    assert value == good if isinstance(value, str) else value == float(good)


def test_each_range_is_in_the_help(capsys):
    """The help states the range the parser enforces."""
    from rtplan.commands import numbers

    with pytest.raises(SystemExit):
        main(["dvh", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for number in (numbers.JOBS, numbers.CURVE_STEP_GY, numbers.OUTSIDE_TOLERANCE_PCT,
                   numbers.OUTSIDE_TOLERANCE_CC, numbers.SCHEDULER_TIMEOUT_S):  # fmt: skip
        assert f"({number.range}" in out, number.range


def test_usage_errors_are_one_line(capsys):
    for argv in (["dvh"], ["nonsense"], ["dvh", "x", "--bogus"], []):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and err.count("\n") == 1, err
