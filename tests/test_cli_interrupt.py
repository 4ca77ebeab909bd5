"""Ctrl-C and SIGTERM are exits 130 and 143, never an internal error, even when Python wraps
them: raised while a class body is set up (an import in progress), they arrive as a
RuntimeError whose cause is the interrupt (Python 3.11).  Found by the fuzz suite's
interrupt family under load."""

from __future__ import annotations

import pytest

import rtplan.commands.info as info
from rtplan.cli import main


def _raising(inner: BaseException, wrapped: bool):
    def run(args):
        if not wrapped:
            raise inner
        try:
            raise inner
        except BaseException as exc:
            raise RuntimeError("Error calling __set_name__ on 'Field' instance") from exc

    return run


@pytest.mark.parametrize("wrapped", [False, True])
def test_ctrl_c_is_130_with_one_line(monkeypatch, capsys, wrapped):
    monkeypatch.setattr(info, "run", _raising(KeyboardInterrupt(), wrapped))
    assert main(["info", "nowhere"]) == 130
    assert capsys.readouterr().err == "rtplan: interrupted\n"


def test_sigterm_wrapped_by_python_is_143(monkeypatch, capsys):
    monkeypatch.setattr(info, "run", _raising(SystemExit(143), True))
    assert main(["info", "nowhere"]) == 143
    assert capsys.readouterr().err == ""


def test_a_runtime_error_is_still_an_internal_error(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(info, "run", _raising(ValueError("a bug"), True))
    assert main(["info", "nowhere"]) == 3
    assert "internal error RuntimeError" in capsys.readouterr().err
