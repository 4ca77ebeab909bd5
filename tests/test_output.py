"""Output files: sanitised names and atomic writes."""

import os
import stat

import pytest

from rtplan.errors import InputError
from rtplan.io.output import safe_filename, write_atomic


def test_safe_filename_removes_path_parts():
    assert safe_filename("../../etc/passwd") == "etc_passwd"
    assert safe_filename("a/b\\c:d*e") == "a_b_c_d_e"
    assert safe_filename("...") == "file"
    assert "/" not in safe_filename("/" * 300) and len(safe_filename("x" * 300)) == 128


def test_write_atomic_replaces_whole_file_with_usual_mode(tmp_path):
    target = tmp_path / "report.csv"
    target.write_text("old contents that are longer")
    write_atomic(target, "new")
    assert target.read_text() == "new"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    assert [p.name for p in tmp_path.iterdir()] == ["report.csv"]  # no temporary left


def test_write_atomic_failure_is_one_line_and_leaves_nothing(tmp_path):
    with pytest.raises(InputError, match="cannot write file") as exc:
        write_atomic(tmp_path / "missing" / "x.png", b"\x89PNG")
    assert "\n" not in str(exc.value)
    assert list(tmp_path.iterdir()) == []
