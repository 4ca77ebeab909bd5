"""Helpers shared by several test modules (import them with ``from conftest import ...``)."""

from __future__ import annotations

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
