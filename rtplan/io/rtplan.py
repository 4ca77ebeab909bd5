"""Reading RTPLAN files into :class:`~rtplan.plan.Plan` (prescription and fractionation).

What is read: RTPlanLabel and RTPlanName; every FractionGroupSequence item
(FractionGroupNumber, NumberOfFractionsPlanned, and its beams with ReferencedBeamNumber,
BeamDose and, from BeamSequence, BeamName); every DoseReferenceSequence item
(:class:`~rtplan.plan.DoseReference`); the referenced structure set
(ReferencedStructureSetSequence).  The plan's prescription is the TargetPrescriptionDose
(Gy, total) of the first TARGET dose reference that states one, ``None`` when none does.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydicom.dataset import Dataset

from rtplan.errors import DicomReadError
from rtplan.io.dicom_file import modality_of, read_dataset, require, text
from rtplan.plan import Beam, DoseReference, FractionGroup, Plan


def read_rtplan(path: str | os.PathLike, *, dataset: Dataset | None = None) -> Plan:
    """Read an RTPLAN file.

    Parameters
    ----------
    path : path
        The RTPLAN file (only read).
    dataset : pydicom.Dataset, optional
        The already-read dataset of ``path``.

    Returns
    -------
    Plan

    Raises
    ------
    DicomReadError
        Not an RTPLAN, a required tag missing (RTPlanLabel, FractionGroupNumber,
        ReferencedBeamNumber) or a non-numeric value.
    """
    path = Path(path)
    ds = dataset if dataset is not None else read_dataset(path)
    if modality_of(ds) != "RTPLAN":
        raise DicomReadError(f"not an RTPLAN (modality {modality_of(ds)})", path=path)
    label = str(require(ds, "RTPlanLabel", path)).strip()

    names = {}
    for item in ds.get("BeamSequence", []) or []:
        if "BeamNumber" in item:
            names[_int(item.BeamNumber, "BeamNumber", path)] = text(item, "BeamName")
    groups = []
    for n, fg in enumerate(ds.get("FractionGroupSequence", []) or [], start=1):
        where = f"FractionGroupSequence item {n}"
        number = _int(require(fg, "FractionGroupNumber", path, where), "FractionGroupNumber", path)
        fractions_value = fg.get("NumberOfFractionsPlanned", None)
        fractions = (
            0
            if fractions_value in (None, "")
            else _int(fractions_value, "NumberOfFractionsPlanned", path)
        )
        beams = []
        for m, rb in enumerate(fg.get("ReferencedBeamSequence", []) or [], start=1):
            bwhere = f"{where}, ReferencedBeamSequence item {m}"
            beam_number = _int(
                require(rb, "ReferencedBeamNumber", path, bwhere), "ReferencedBeamNumber", path
            )
            beams.append(
                Beam(
                    number=beam_number,
                    name=names.get(beam_number, ""),
                    dose_gy=_float_or_none(rb.get("BeamDose", None), "BeamDose", path),
                )
            )
        groups.append(FractionGroup(number=number, fractions=fractions, beams=tuple(beams)))

    references = []
    for n, item in enumerate(ds.get("DoseReferenceSequence", []) or [], start=1):
        roi = item.get("ReferencedROINumber", None)
        references.append(
            DoseReference(
                number=_int(item.get("DoseReferenceNumber", n) or n, "DoseReferenceNumber", path),
                reference_type=text(item, "DoseReferenceType").upper(),
                structure_type=text(item, "DoseReferenceStructureType").upper(),
                description=text(item, "DoseReferenceDescription"),
                roi_number=None if roi in (None, "") else _int(roi, "ReferencedROINumber", path),
                prescription_gy=_float_or_none(
                    item.get("TargetPrescriptionDose", None), "TargetPrescriptionDose", path
                ),
            )
        )
    prescription = next(
        (
            r.prescription_gy
            for r in references
            if r.reference_type == "TARGET" and r.prescription_gy is not None
        ),
        None,
    )
    structure_set = ""
    for item in ds.get("ReferencedStructureSetSequence", []) or []:
        structure_set = structure_set or text(item, "ReferencedSOPInstanceUID")

    return Plan(
        label=label,
        fraction_groups=tuple(groups),
        prescription_gy=prescription,
        name=text(ds, "RTPlanName"),
        sop_instance_uid=text(ds, "SOPInstanceUID"),
        frame_of_reference_uid=text(ds, "FrameOfReferenceUID"),
        referenced_structure_set_uid=structure_set,
        source=str(path),
        dose_references=tuple(references),
        series_instance_uid=text(ds, "SeriesInstanceUID"),
        study_instance_uid=text(ds, "StudyInstanceUID"),
        patient_id=text(ds, "PatientID"),
    )


def _int(value, keyword: str, path) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise DicomReadError(f"{keyword} is not an integer: {value!r}", path=path) from None


def _float_or_none(value, keyword: str, path) -> float | None:
    if value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise DicomReadError(f"{keyword} is not a number: {value!r}", path=path) from None
