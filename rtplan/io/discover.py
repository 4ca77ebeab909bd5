"""Finding DICOM-RT objects in a folder and grouping them by patient and frame of reference.

:func:`scan` walks a folder (any file names, any nesting; hidden files and folders and
symbolic links are not followed), reads every file's header
(``stop_before_pixels``, large values deferred) and returns a :class:`Catalog`.  Non-DICOM
files and DICOMDIR indexes are skipped with a note; a file that is DICOM but truncated or
unreadable is an error (:class:`~rtplan.errors.DicomReadError`).

:meth:`Catalog.groups` makes one :class:`PatientData` per (PatientID, frame of reference).
References are resolved (RTSTRUCT -> image series, RTDOSE -> RTPLAN -> RTSTRUCT); a
reference that crosses frames of reference is a :class:`~rtplan.errors.GeometryError`, so
objects in different frames are never combined.  An RTPLAN without a FrameOfReferenceUID
takes the frame of the structure set it references (else of a dose that references it).

A :class:`PatientData` holds headers only; pixels, contours and doses are read when first
used (``image()``, ``structure_sets``, ``plans``, ``doses``).
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from pydicom.dataset import Dataset

from rtplan.dose import Dose
from rtplan.errors import DicomReadError, GeometryError, InputError
from rtplan.image import Image
from rtplan.io.ct import CTSeries, ct_series_from_headers
from rtplan.io.dicom_file import (
    MEDIA_STORAGE_DIRECTORY,
    NotDicomError,
    list_files,
    modality_of,
    read_dataset,
    reading,
    text,
)
from rtplan.io.rtdose import SESSION_TYPES, read_rtdose, sum_beam_doses
from rtplan.io.rtplan import read_rtplan
from rtplan.io.rtstruct import StructureSet, read_rtstruct
from rtplan.plan import Plan

#: Modalities rtplan reads; other DICOM objects are listed in the notes and skipped.
READ_MODALITIES = ("CT", "RTSTRUCT", "RTPLAN", "RTDOSE")
_DEFER = 2048


@dataclass(frozen=True, eq=False)
class DicomFile:
    """Identity and references of one DICOM file, from its header."""

    path: Path
    modality: str
    sop_class_uid: str
    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str
    patient_id: str
    patient_name: str
    frame_of_reference_uid: str
    study_date: str = ""
    study_description: str = ""
    series_description: str = ""
    label: str = ""
    referenced_series_uid: str = ""
    referenced_plan_uid: str = ""
    referenced_structure_set_uid: str = ""
    summation_type: str = ""
    dose_units: str = ""
    header: Dataset | None = field(default=None, repr=False)


def describe_file(path: Path, ds: Dataset) -> DicomFile:
    """A :class:`DicomFile` from a dataset header."""
    modality = modality_of(ds)
    frame = text(ds, "FrameOfReferenceUID")
    ref_series = ref_plan = ref_ss = summation = label = ""
    if modality == "RTSTRUCT":
        label = text(ds, "StructureSetLabel")
        for rfor in ds.get("ReferencedFrameOfReferenceSequence", []) or []:
            frame = frame or text(rfor, "FrameOfReferenceUID")
            for study in rfor.get("RTReferencedStudySequence", []) or []:
                for s in study.get("RTReferencedSeriesSequence", []) or []:
                    ref_series = ref_series or text(s, "SeriesInstanceUID")
        if not frame:
            frame = next(
                (
                    text(i, "ReferencedFrameOfReferenceUID")
                    for i in ds.get("StructureSetROISequence", []) or []
                    if text(i, "ReferencedFrameOfReferenceUID")
                ),
                "",
            )
    elif modality == "RTDOSE":
        summation = text(ds, "DoseSummationType").upper()
        for ref in ds.get("ReferencedRTPlanSequence", []) or []:
            ref_plan = ref_plan or text(ref, "ReferencedSOPInstanceUID")
    elif modality == "RTPLAN":
        label = text(ds, "RTPlanLabel")
        for ref in ds.get("ReferencedStructureSetSequence", []) or []:
            ref_ss = ref_ss or text(ref, "ReferencedSOPInstanceUID")
    return DicomFile(
        path=path,
        modality=modality,
        sop_class_uid=text(ds, "SOPClassUID"),
        sop_instance_uid=text(ds, "SOPInstanceUID"),
        series_instance_uid=text(ds, "SeriesInstanceUID"),
        study_instance_uid=text(ds, "StudyInstanceUID"),
        patient_id=text(ds, "PatientID"),
        patient_name=text(ds, "PatientName"),
        frame_of_reference_uid=frame,
        study_date=text(ds, "StudyDate"),
        study_description=text(ds, "StudyDescription"),
        series_description=text(ds, "SeriesDescription"),
        label=label,
        referenced_series_uid=ref_series,
        referenced_plan_uid=ref_plan,
        referenced_structure_set_uid=ref_ss,
        summation_type=summation,
        dose_units=text(ds, "DoseUnits").upper() if modality == "RTDOSE" else "",
        header=ds if modality == "CT" else None,
    )


@dataclass(frozen=True, eq=False)
class Catalog:
    """The DICOM files found under ``root`` and notes on what was skipped."""

    root: Path
    files: tuple[DicomFile, ...]
    notes: tuple[str, ...] = ()

    def groups(self) -> list[PatientData]:
        """One :class:`PatientData` per (PatientID, frame of reference), sorted.

        Raises
        ------
        GeometryError
            A reference (RTSTRUCT -> series, RTDOSE -> RTPLAN, RTPLAN -> RTSTRUCT) points to
            an object in another frame of reference.
        """
        by_uid = {f.sop_instance_uid: f for f in self.files}
        series_frame = {
            f.series_instance_uid: f.frame_of_reference_uid
            for f in self.files
            if f.modality == "CT"
        }
        frame_of: dict[str, str] = {}
        for f in self.files:
            frame_of[f.sop_instance_uid] = f.frame_of_reference_uid
        # plans without a frame take their structure set's (or a dose's)
        for f in self.files:
            if f.modality == "RTPLAN" and not f.frame_of_reference_uid:
                ss = by_uid.get(f.referenced_structure_set_uid)
                doses = [d for d in self.files if d.referenced_plan_uid == f.sop_instance_uid]
                source = ss or (doses[0] if doses else None)
                frame_of[f.sop_instance_uid] = source.frame_of_reference_uid if source else ""

        def check(f: DicomFile, target: DicomFile | None, target_frame: str, what: str):
            mine = frame_of[f.sop_instance_uid]
            if target_frame and mine and target_frame != mine:
                where = f" ({target.path})" if target is not None else ""
                raise GeometryError(
                    f"mismatched frames of reference: this {f.modality} ({mine}) references "
                    f"{what}{where} in frame of reference {target_frame}",
                    path=f.path,
                )

        for f in self.files:
            if f.modality == "RTSTRUCT" and f.referenced_series_uid in series_frame:
                check(f, None, series_frame[f.referenced_series_uid],
                      f"image series {f.referenced_series_uid}")  # fmt: skip
            elif f.modality == "RTDOSE" and f.referenced_plan_uid in by_uid:
                plan = by_uid[f.referenced_plan_uid]
                check(f, plan, frame_of[plan.sop_instance_uid], "its RTPLAN")
            elif f.modality == "RTPLAN" and f.referenced_structure_set_uid in by_uid:
                ss = by_uid[f.referenced_structure_set_uid]
                check(f, ss, ss.frame_of_reference_uid, "its RTSTRUCT")

        grouped: dict[tuple[str, str], list[DicomFile]] = defaultdict(list)
        for f in self.files:
            grouped[(f.patient_id, frame_of[f.sop_instance_uid])].append(f)
        return [
            PatientData(patient_id=pid, frame_of_reference_uid=frame, files=tuple(files))
            for (pid, frame), files in sorted(grouped.items())
        ]


def scan(path: str | os.PathLike) -> Catalog:
    """Read the headers of every file under ``path`` (or of ``path`` itself).

    Parameters
    ----------
    path : path
        A folder (searched recursively) or a single file.

    Returns
    -------
    Catalog
        Files of the modalities rtplan reads; notes on skipped files.

    Raises
    ------
    DicomReadError
        ``path`` does not exist, holds no DICOM-RT file, or a DICOM file in it is truncated
        or unreadable.  A single ``path`` that is not DICOM is an error too.
    """
    root = Path(path)
    if not root.exists():
        raise DicomReadError("no such file or folder", path=root)
    if root.is_file():
        candidates, hidden = [root], 0
    else:
        candidates, hidden = list_files(root)
    files, skipped, other = [], [], defaultdict(int)
    for p in candidates:
        try:
            ds = read_dataset(p, stop_before_pixels=True, defer_size=_DEFER)
        except NotDicomError:
            if root.is_file():
                raise
            skipped.append(p)
            continue
        with reading(p):
            if (
                text(ds, "SOPClassUID") == MEDIA_STORAGE_DIRECTORY
                or text(getattr(ds, "file_meta", Dataset()), "MediaStorageSOPClassUID")
                == MEDIA_STORAGE_DIRECTORY
            ):
                other["DICOMDIR"] += 1
                continue
            info = describe_file(p, ds)
        if info.modality not in READ_MODALITIES:
            other[info.modality] += 1
            continue
        files.append(info)
    notes = []
    if skipped:
        names = ", ".join(str(p.relative_to(root)) for p in skipped[:5])
        notes.append(
            f"ignored {len(skipped)} non-DICOM file(s): {names}"
            + (" ..." if len(skipped) > 5 else "")
        )
    for modality, n in sorted(other.items()):
        notes.append(f"ignored {n} {modality} file(s) (not read by rtplan)")
    if hidden:
        notes.append(f"ignored {hidden} hidden file(s) or folder(s)")
    if not files:
        raise DicomReadError("no CT, RTSTRUCT, RTPLAN or RTDOSE file found", path=root)
    return Catalog(root=root, files=tuple(files), notes=tuple(notes))


@dataclass(eq=False)
class PatientData:
    """Everything of one patient in one frame of reference, read on first use.

    The simple way in (see :func:`rtplan.io.load_plan_folder`)::

        patient = load_plan_folder("export/")
        ss = patient.structure_set()          # the RTSTRUCT (of the plan, if several)
        dose = patient.dose()                 # the plan dose in Gy (BEAM doses summed)
        plan = patient.plan()                 # fractions, prescription
        image = patient.image()               # the CT (pixels read now)

    Attributes
    ----------
    patient_id, frame_of_reference_uid : str
    files : tuple of DicomFile
        The headers of every file in this group.
    """

    patient_id: str
    frame_of_reference_uid: str
    files: tuple[DicomFile, ...]
    fraction_dose: str = "per_fraction"

    def _of(self, modality: str) -> list[DicomFile]:
        return [f for f in self.files if f.modality == modality]

    @property
    def patient_name(self) -> str:
        return next((f.patient_name for f in self.files if f.patient_name), "")

    @property
    def study_instance_uids(self) -> list[str]:
        """Studies the objects of this group belong to, sorted."""
        return sorted({f.study_instance_uid for f in self.files})

    @cached_property
    def ct_series(self) -> list[CTSeries]:
        """Image series (geometry from headers; no pixels read), largest first."""
        by_series: dict[str, list[DicomFile]] = defaultdict(list)
        for f in self._of("CT"):
            by_series[f.series_instance_uid].append(f)
        series = [
            ct_series_from_headers([(f.path, f.header) for f in group])
            for group in by_series.values()
        ]
        return sorted(series, key=lambda s: (-s.grid.shape[0], s.series_instance_uid))

    def _series_for(self, series_uid: str) -> CTSeries | None:
        match = [s for s in self.ct_series if s.series_instance_uid == series_uid]
        if match:
            return match[0]
        return self.ct_series[0] if len(self.ct_series) == 1 else None

    def image(self, series_uid: str | None = None) -> Image | None:
        """The CT with pixels: the series named, else the one the structure set references,
        else the only one.  ``None`` when the group has no image."""
        if not self.ct_series:
            return None
        if series_uid is None and len(self.ct_series) > 1:
            refs = {f.referenced_series_uid for f in self._of("RTSTRUCT")}
            refs &= {s.series_instance_uid for s in self.ct_series}
            if len(refs) != 1:
                raise InputError(
                    f"{len(self.ct_series)} CT series in frame of reference "
                    f"{self.frame_of_reference_uid}; name one (series_uid=)",
                    path=self.ct_series[0].source,
                )
            series_uid = refs.pop()
        series = self._series_for(series_uid) if series_uid else self.ct_series[0]
        if series is None:
            raise InputError(f"no CT series {series_uid} in this frame of reference")
        return series.load()

    @cached_property
    def structure_sets(self) -> list[StructureSet]:
        """Every RTSTRUCT, read with its referenced CT series (problems kept per structure:
        see :class:`~rtplan.io.rtstruct.StructureSet`)."""
        return [
            read_rtstruct(f.path, reference=self._series_for(f.referenced_series_uid), strict=False)
            for f in self._of("RTSTRUCT")
        ]

    @cached_property
    def plans(self) -> list[Plan]:
        """Every RTPLAN."""
        return [read_rtplan(f.path) for f in self._of("RTPLAN")]

    @cached_property
    def doses(self) -> list[Dose]:
        """Every dose in Gy: one per PLAN-like RTDOSE file, and one per plan for its BEAM
        doses (summed).  FRACTION and session doses are multiplied by the planned fractions
        of the RTPLAN they reference (which must be in this group).  Doses in RELATIVE
        units cannot be in Gy: they are left out (see :attr:`relative_dose_files`)."""
        plans = {p.sop_instance_uid: p for p in self.plans}
        out, beams = [], defaultdict(list)
        for f in self._of("RTDOSE"):
            if f.dose_units == "RELATIVE":
                continue
            plan = plans.get(f.referenced_plan_uid)
            needs_plan = f.summation_type in SESSION_TYPES or (
                f.summation_type == "FRACTION" and self.fraction_dose == "per_fraction"
            )
            if needs_plan and plan is None:
                raise InputError(
                    f"a {f.summation_type} dose needs its RTPLAN for the number of fractions; "
                    f"plan {f.referenced_plan_uid or '(not referenced)'} is not in "
                    f"frame of reference {self.frame_of_reference_uid}",
                    path=f.path,
                )
            dose = read_rtdose(f.path, plan=plan, fraction_dose=self.fraction_dose)
            if f.summation_type in ("BEAM", "BEAM_SESSION"):
                beams[f.referenced_plan_uid].append(dose)
            else:
                out.append(dose)
        for plan_uid, parts in beams.items():
            out.append(sum_beam_doses(parts, plan=plans.get(plan_uid)))
        return out

    @property
    def relative_dose_files(self) -> list[DicomFile]:
        """RTDOSE files in RELATIVE units (no reference dose stated, so not read as Gy)."""
        return [f for f in self._of("RTDOSE") if f.dose_units == "RELATIVE"]

    # ------------------------------------------------------------------ one of each
    def plan(self, label: str | None = None) -> Plan:
        """The plan called ``label``, or the only plan."""
        return _one(self.plans, label, lambda p: p.label, "RTPLAN", self)

    def structure_set(self, label: str | None = None) -> StructureSet:
        """The structure set called ``label``; else the only one; else the one the only
        plan references."""
        if label is None and len(self.structure_sets) > 1 and len(self.plans) == 1:
            uid = self.plans[0].referenced_structure_set_uid
            match = [s for s in self.structure_sets if s.sop_instance_uid == uid]
            if match:
                return match[0]
        return _one(self.structure_sets, label, lambda s: s.label, "RTSTRUCT", self)

    def dose(self, plan_label: str | None = None) -> Dose:
        """The dose of the plan called ``plan_label``; else the only dose."""
        if plan_label is None:
            if not self.doses and self.relative_dose_files:
                raise InputError(
                    "the RTDOSE is in RELATIVE units (no reference dose stated), "
                    "so no dose in Gy is available",
                    path=self.relative_dose_files[0].path,
                )
            return _one(self.doses, None, lambda d: d.source, "RTDOSE", self)
        plan = self.plan(plan_label)
        match = [d for d in self.doses if d.referenced_plan_uid == plan.sop_instance_uid]
        return _one(match, None, lambda d: d.source, f"RTDOSE of plan '{plan_label}'", self)

    def describe(self) -> str:
        return (
            f"patient {self.patient_id or '(no ID)'}, frame of reference "
            f"{self.frame_of_reference_uid or '(none)'}"
        )


def _one(items, label, key, what, group: PatientData):
    if label is not None:
        match = [i for i in items if key(i) == label]
        if not match:
            have = ", ".join(repr(key(i)) for i in items) or "none"
            raise InputError(f"no {what} '{label}' for {group.describe()} (have: {have})")
        items = match
    if not items:
        raise InputError(f"no {what} for {group.describe()}")
    if len(items) > 1:
        have = ", ".join(repr(key(i)) for i in items)
        raise InputError(f"{len(items)} {what} objects for {group.describe()} ({have}); name one")
    return items[0]


def load_folder(
    path: str | os.PathLike, *, fraction_dose: str = "per_fraction"
) -> list[PatientData]:
    """Every patient / frame of reference under ``path`` (see :class:`PatientData`)."""
    groups = scan(path).groups()
    for g in groups:
        g.fraction_dose = fraction_dose
    return groups


def load_plan_folder(
    path: str | os.PathLike,
    *,
    patient_id: str | None = None,
    fraction_dose: str = "per_fraction",
) -> PatientData:
    """The one patient / frame of reference under ``path`` (or the one of ``patient_id``).

    Raises
    ------
    InputError
        The folder holds several groups (they are listed) or none for ``patient_id``.
    """
    groups = load_folder(path, fraction_dose=fraction_dose)
    if patient_id is not None:
        groups = [g for g in groups if g.patient_id == patient_id]
        if not groups:
            raise InputError(f"no patient '{patient_id}'", path=path)
    if len(groups) > 1:
        listed = "; ".join(g.describe() for g in groups[:4])
        raise InputError(
            f"{len(groups)} patients / frames of reference found ({listed}); "
            "point to one patient's folder or give patient_id",
            path=path,
        )
    return groups[0]
