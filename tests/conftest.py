"""Helpers shared by several test modules (import them with ``from conftest import ...``)."""

from __future__ import annotations

import math
import os
import shutil

import pytest

#: Set (by ``.ci/run``) to make a test marked ``requires_tool`` fail, not skip, when its tool
#: is absent: CI must run every test.
REQUIRE_TOOLS_ENV = "RTPLAN_REQUIRE_TOOLS"


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "requires_tool(name): needs the command-line tool `name` on PATH; skipped when it is "
        f"absent, except under {REQUIRE_TOOLS_ENV}=1 (CI), where it fails",
    )


def pytest_runtest_setup(item):
    for mark in item.iter_markers("requires_tool"):
        tool = mark.args[0]
        if shutil.which(tool) is None:
            message = f"optional tool {tool} is not on PATH"
            if os.environ.get(REQUIRE_TOOLS_ENV) == "1":
                pytest.fail(f"{message} ({REQUIRE_TOOLS_ENV}=1: CI must run this test)")
            pytest.skip(message)


def dciodvfy() -> str:
    """Path of ``dciodvfy`` (dicom3tools) on PATH.  A test that calls it without the
    ``requires_tool("dciodvfy")`` marker fails when the tool is absent."""
    tool = shutil.which("dciodvfy")
    if tool is None:
        pytest.fail(
            "dciodvfy (dicom3tools) is not on PATH; mark the test requires_tool('dciodvfy')"
        )
    return tool


def box_sum_volume(a, b, c, m) -> float:
    """Volume (mm^3) of box a (x) x b (y) x c (z) mm grown by the
    :class:`~rtplan.volumes.margins.Margins` ``m``: the box plus the octant-wise ellipsoid
    of the margins (Minkowski sum, closed form)."""
    X, Y, Z = m.left + m.right, m.anterior + m.posterior, m.superior + m.inferior
    return (
        a * b * c
        + a * b * Z
        + a * c * Y
        + b * c * X
        + math.pi / 4 * (a * Y * Z + b * X * Z + c * X * Y)
        + math.pi / 6 * X * Y * Z
    )
