"""Treatment plans (what rtplan needs from an RTPLAN)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Beam:
    """One beam of a plan: number, name, and the dose it contributes (Gy, may be unknown)."""

    number: int
    name: str = ""
    dose_gy: float | None = None


@dataclass(frozen=True)
class FractionGroup:
    """An RTPLAN fraction group: fractions planned and the beams delivered in each."""

    number: int
    fractions: int
    beams: tuple[Beam, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class DoseReference:
    """An RTPLAN DoseReferenceSequence item: what dose the plan prescribes where.

    ``prescription_gy`` is TargetPrescriptionDose (Gy, total over all fractions) for TARGET
    references, ``None`` when absent.
    """

    number: int
    reference_type: str = ""  # TARGET or ORGAN_AT_RISK
    structure_type: str = ""  # POINT, VOLUME, COORDINATES, SITE
    description: str = ""
    roi_number: int | None = None
    prescription_gy: float | None = None


@dataclass(frozen=True)
class Plan:
    """The prescription and fractionation of an RTPLAN.

    ``prescription_gy`` is the total target prescription dose (Gy) from
    DoseReferenceSequence (TargetPrescriptionDose of the first TARGET reference), or
    ``None`` when the plan states none.
    """

    label: str
    fraction_groups: tuple[FractionGroup, ...]
    prescription_gy: float | None = None
    name: str = ""
    sop_instance_uid: str = ""
    frame_of_reference_uid: str = ""
    referenced_structure_set_uid: str = ""
    source: str = ""
    dose_references: tuple[DoseReference, ...] = field(default_factory=tuple)
    series_instance_uid: str = ""
    study_instance_uid: str = ""
    patient_id: str = ""
    #: A brachytherapy plan (BrachyTreatmentTechnique or ApplicationSetupSequence present).
    brachytherapy: bool = False

    @property
    def fractions(self) -> int:
        """Total number of planned fractions (summed over fraction groups)."""
        return sum(g.fractions for g in self.fraction_groups)

    @property
    def dose_per_fraction_gy(self) -> float | None:
        """Prescription per fraction (Gy), when both prescription and fractions are known."""
        if self.prescription_gy is None or self.fractions == 0:
            return None
        return self.prescription_gy / self.fractions
