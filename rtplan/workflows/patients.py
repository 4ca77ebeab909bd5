"""Which folders are patients: the rule ``rtplan agree`` and the cohort runs share.

Light on purpose (pydicom is imported only to read a PatientID): finding the patients of a
folder must not load the agreement or DVH machinery.
"""

from __future__ import annotations

import os
from pathlib import Path

from rtplan.errors import InputError


def _is_dicom_file(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def _first_patient_id(folder: Path) -> str | None:
    """PatientID of the first readable DICOM file under ``folder`` (None if none)."""
    import pydicom

    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if name.startswith(".") or not _is_dicom_file(path):
                continue
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["PatientID"])
            except Exception:  # noqa: BLE001 - an unreadable file is the worker's to report
                continue
            return str(getattr(ds, "PatientID", ""))
    return None


def find_patients(path: str | os.PathLike) -> list[Path]:
    """Patient folders under ``path``.

    ``path`` is one patient when DICOM files sit directly in it, or when all of its
    sub-folders hold the same PatientID (a ``CT/`` + ``RTSTRUCT/`` layout); otherwise
    every non-hidden sub-folder is a patient.

    Raises
    ------
    InputError
        ``path`` is not a folder.
    """
    root = Path(path)
    if not root.is_dir():
        raise InputError("not a folder", path=root)
    if any(p.is_file() and _is_dicom_file(p) for p in root.iterdir()):
        return [root]
    subfolders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    ids = {_first_patient_id(p) for p in subfolders} - {None}
    if len(ids) == 1:
        return [root]
    return subfolders or [root]
