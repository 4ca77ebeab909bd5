"""Reading RTPLAN files into :class:`~rtplan.plan.Plan` (prescription and fractionation).

What is read: RTPlanLabel and RTPlanName; every FractionGroupSequence item
(FractionGroupNumber, NumberOfFractionsPlanned, and its beams with ReferencedBeamNumber,
BeamDose and, from BeamSequence or IonBeamSequence, BeamName); every DoseReferenceSequence
item (:class:`~rtplan.plan.DoseReference`); the referenced structure set
(ReferencedStructureSetSequence); whether it is a brachytherapy plan
(BrachyTreatmentTechnique or ApplicationSetupSequence present).  The plan's prescription is the TargetPrescriptionDose
(Gy, total) of the first TARGET dose reference that states one, ``None`` when none does.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydicom.dataset import Dataset

from rtplan.errors import DicomReadError
from rtplan.io.dicom_file import (
    float_value,
    int_value,
    modality_of,
    read_dataset,
    reading,
    require,
    text,
    value_of,
)
from rtplan.plan import Beam, DoseReference, FractionGroup, Plan

#: Largest number of fractions accepted in a fraction group.
MAX_FRACTIONS = 1000
#: Largest prescription or beam dose accepted (Gy): far above any course of radiotherapy.
MAX_DOSE_GY = 1000.0


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
        Not an RTPLAN; a required element missing (RTPlanLabel, FractionGroupSequence,
        FractionGroupNumber, NumberOfFractionsPlanned, ReferencedBeamNumber); a value that
        is not a number, not finite or out of range (0 fractions, a negative or absurd
        prescription; see :data:`MAX_FRACTIONS`, :data:`MAX_DOSE_GY`).
    """
    path = Path(path)
    ds = dataset if dataset is not None else read_dataset(path)
    with reading(path):
        return _plan_from_dataset(ds, path)


def _plan_from_dataset(ds: Dataset, path: Path) -> Plan:
    if modality_of(ds, path) != "RTPLAN":
        raise DicomReadError(f"not an RTPLAN (modality {modality_of(ds, path)})", path=path)
    label = str(require(ds, "RTPlanLabel", path)).strip()

    names = {}
    for sequence in ("BeamSequence", "IonBeamSequence"):  # RT Plan, RT Ion Plan
        for n, item in enumerate(value_of(ds, sequence, path) or [], start=1):
            number = int_value(item, "BeamNumber", path, f"{sequence} item {n}", default=None)
            if number is not None:
                names[number] = text(item, "BeamName", "", path)
    groups = []
    # Type 1 in the RT Fraction Scheme module (PS3.3 C.8.8.13): a plan without fraction
    # groups states no fractionation, and rtplan does not guess one
    for n, fg in enumerate(require(ds, "FractionGroupSequence", path), start=1):
        where = f"FractionGroupSequence item {n}"
        number = int_value(fg, "FractionGroupNumber", path, where)
        fractions = int_value(
            fg, "NumberOfFractionsPlanned", path, where, minimum=1, maximum=MAX_FRACTIONS
        )
        beams = []
        for m, rb in enumerate(value_of(fg, "ReferencedBeamSequence", path) or [], start=1):
            bwhere = f"{where}, ReferencedBeamSequence item {m}"
            beam_number = int_value(rb, "ReferencedBeamNumber", path, bwhere)
            beams.append(
                Beam(
                    number=beam_number,
                    name=names.get(beam_number, ""),
                    dose_gy=float_value(
                        rb, "BeamDose", path, bwhere, default=None, minimum=0.0, maximum=MAX_DOSE_GY
                    ),
                )
            )
        groups.append(FractionGroup(number=number, fractions=fractions, beams=tuple(beams)))

    references = []
    for n, item in enumerate(value_of(ds, "DoseReferenceSequence", path) or [], start=1):
        where = f"DoseReferenceSequence item {n}"
        references.append(
            DoseReference(
                number=int_value(item, "DoseReferenceNumber", path, where, default=n),
                reference_type=text(item, "DoseReferenceType", "", path).upper(),
                structure_type=text(item, "DoseReferenceStructureType", "", path).upper(),
                description=text(item, "DoseReferenceDescription", "", path),
                roi_number=int_value(item, "ReferencedROINumber", path, where, default=None),
                prescription_gy=float_value(
                    item,
                    "TargetPrescriptionDose",
                    path,
                    where,
                    default=None,
                    above=0.0,
                    maximum=MAX_DOSE_GY,
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
    for item in value_of(ds, "ReferencedStructureSetSequence", path) or []:
        structure_set = structure_set or text(item, "ReferencedSOPInstanceUID", "", path)

    return Plan(
        label=label,
        fraction_groups=tuple(groups),
        prescription_gy=prescription,
        name=text(ds, "RTPlanName", "", path),
        sop_instance_uid=text(ds, "SOPInstanceUID", "", path),
        frame_of_reference_uid=text(ds, "FrameOfReferenceUID", "", path),
        referenced_structure_set_uid=structure_set,
        source=str(path),
        dose_references=tuple(references),
        series_instance_uid=text(ds, "SeriesInstanceUID", "", path),
        study_instance_uid=text(ds, "StudyInstanceUID", "", path),
        patient_id=text(ds, "PatientID", "", path),
        brachytherapy="BrachyTreatmentTechnique" in ds or "ApplicationSetupSequence" in ds,
    )
