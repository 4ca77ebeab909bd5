"""Helpers shared by several test modules (import them with ``from conftest import ...``)."""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

#: Shared wrapper that installs dicom3tools on first use.
DICOM_VALIDATOR = Path("/work/shared/tools/dicom-validate")


def dciodvfy() -> str | None:
    """Path of dciodvfy (dicom3tools), installed through the shared wrapper when missing;
    ``None`` when it cannot be had (CI installs it)."""
    if not shutil.which("dciodvfy") and DICOM_VALIDATOR.exists():
        subprocess.run([str(DICOM_VALIDATOR)], capture_output=True)  # installs on first use
    return shutil.which("dciodvfy")


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
