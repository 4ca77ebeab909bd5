"""Finding DICOM-RT objects in a folder and grouping them by patient and frame of reference.

:func:`scan` walks a folder (any file names, any nesting; hidden files and folders are
skipped; symbolic links to files and folders are followed, each real file and folder read
once, so a link loop ends), reads every file's header
(``stop_before_pixels``, large values deferred) and returns a :class:`Catalog`.  Non-DICOM
files and DICOMDIR indexes are skipped with a note; a file that is DICOM but truncated or
unreadable is an error (:class:`~rtplan.errors.DicomReadError`).

:meth:`Catalog.groups` makes one :class:`PatientData` per (PatientID, frame of reference);
objects that reference each other by UID in one frame of reference are in one group even
when their PatientID differs (the choice of objects then refuses to combine them, see
:mod:`rtplan.io.selection`).  References are resolved (RTSTRUCT -> image series, RTDOSE ->
RTPLAN -> RTSTRUCT); a reference that crosses frames of reference is a
:class:`~rtplan.errors.GeometryError`, so objects in different frames are never combined.
An RTPLAN without a FrameOfReferenceUID takes the frame of the structure set it references
(else of a dose that references it).  The same object (SOPInstanceUID) in several files is
read once, with a note.

A :class:`PatientData` holds headers only; pixels, contours and doses are read when first
used (``image()``, ``structure_sets``, ``plans``, ``doses``).  Which plan, structure set
and dose(s) a job uses is decided by :mod:`rtplan.io.selection` (``patient.plan()``,
``patient.structure_set()``, ``patient.dose()``).
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

from pydicom.dataset import Dataset

from rtplan.dose import Dose
from rtplan.errors import DicomReadError, GeometryError, InputError, NotDicomError
from rtplan.image import Image
from rtplan.io.ct import CTSeries, ct_series_from_headers
from rtplan.io.dicom_file import (
    MEDIA_STORAGE_DIRECTORY,
    list_files,
    modality_of,
    read_dataset,
    reading,
    text,
    value_of,
)
from rtplan.io.rtdose import SESSION_TYPES, read_rtdose, sum_beam_doses
from rtplan.io.rtplan import read_rtplan
from rtplan.io.rtstruct import read_rtstruct
from rtplan.io.selection import (
    BEAM_SUM_TOLERANCE,
    BEAM_TYPES,
    Choice,
    Selection,
    check_identity,
    choose,
    select_patient,
)
from rtplan.plan import Plan
from rtplan.structure import StructureSet

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
        for rfor in value_of(ds, "ReferencedFrameOfReferenceSequence", path) or []:
            frame = frame or text(rfor, "FrameOfReferenceUID")
            for study in value_of(rfor, "RTReferencedStudySequence", path) or []:
                for s in value_of(study, "RTReferencedSeriesSequence", path) or []:
                    ref_series = ref_series or text(s, "SeriesInstanceUID")
        if not frame:
            frame = next(
                (
                    text(i, "ReferencedFrameOfReferenceUID")
                    for i in value_of(ds, "StructureSetROISequence", path) or []
                    if text(i, "ReferencedFrameOfReferenceUID")
                ),
                "",
            )
    elif modality == "RTDOSE":
        summation = text(ds, "DoseSummationType").upper()
        for ref in value_of(ds, "ReferencedRTPlanSequence", path) or []:
            ref_plan = ref_plan or text(ref, "ReferencedSOPInstanceUID")
    elif modality == "RTPLAN":
        label = text(ds, "RTPlanLabel")
        for ref in value_of(ds, "ReferencedStructureSetSequence", path) or []:
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
        frame_of = self._frames()
        self._check_references(frame_of)
        out = []
        for files in self._linked(frame_of):
            kept, notes = _unique_objects(files)
            frame = next(
                (frame_of[f.sop_instance_uid] for f in kept if frame_of[f.sop_instance_uid]), ""
            )
            out.append(PatientData(patient_id=_main_patient_id(kept), frame_of_reference_uid=frame,
                                   files=tuple(kept), notes=list(notes)))  # fmt: skip
        return sorted(out, key=lambda g: (g.patient_id, g.frame_of_reference_uid))

    def _frames(self) -> dict[str, str]:
        """FrameOfReferenceUID of every object by SOPInstanceUID; a structure set takes the
        frame of the CT series it references by UID (rt-utils before 1.2.6 wrote a new random
        frame UID into every structure set it made; the series reference is exact); a plan
        without one takes its structure set's (or a dose's)."""
        by_uid = {f.sop_instance_uid: f for f in self.files}
        frame_of = {f.sop_instance_uid: f.frame_of_reference_uid for f in self.files}
        series_frame = {f.series_instance_uid: f.frame_of_reference_uid
                        for f in self.files if f.modality == "CT"}  # fmt: skip
        for f in self.files:
            if f.modality == "RTSTRUCT" and series_frame.get(f.referenced_series_uid):
                frame_of[f.sop_instance_uid] = series_frame[f.referenced_series_uid]
        for f in self.files:
            if f.modality == "RTPLAN" and not f.frame_of_reference_uid:
                ss = by_uid.get(f.referenced_structure_set_uid)
                doses = [d for d in self.files if d.referenced_plan_uid == f.sop_instance_uid]
                source = ss or (doses[0] if doses else None)
                frame_of[f.sop_instance_uid] = frame_of[source.sop_instance_uid] if source else ""
        return frame_of

    def _check_references(self, frame_of: dict[str, str]) -> None:
        """Raise :class:`GeometryError` when a reference crosses frames of reference (a
        structure set cannot: it is in the frame of the series it references, :meth:`_frames`)."""
        by_uid = {f.sop_instance_uid: f for f in self.files}

        def check(f: DicomFile, target: DicomFile, target_frame: str, what: str):
            mine = frame_of[f.sop_instance_uid]
            if target_frame and mine and target_frame != mine:
                raise GeometryError(
                    f"mismatched frames of reference: this {f.modality} ({mine}) references "
                    f"{what} ({target.path}) in frame of reference {target_frame}",
                    path=f.path,
                )

        for f in self.files:
            if f.modality == "RTDOSE" and f.referenced_plan_uid in by_uid:
                plan = by_uid[f.referenced_plan_uid]
                check(f, plan, frame_of[plan.sop_instance_uid], "its RTPLAN")
            elif f.modality == "RTPLAN" and f.referenced_structure_set_uid in by_uid:
                ss = by_uid[f.referenced_structure_set_uid]
                check(f, ss, frame_of[ss.sop_instance_uid], "its RTSTRUCT")

    def _linked(self, frame_of: dict[str, str]) -> list[list[DicomFile]]:
        """The files in groups: one per (PatientID, frame), joined with every group an object
        references in the same frame (union-find)."""
        parent = list(range(len(self.files)))

        def root(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        def join(i: int, j: int) -> None:
            parent[root(i)] = root(j)

        index = {}
        first_of_key: dict[tuple[str, str], int] = {}
        first_of_series: dict[str, int] = {}
        for i, f in enumerate(self.files):
            index.setdefault(f.sop_instance_uid, i)
            join(i, first_of_key.setdefault((f.patient_id, frame_of[f.sop_instance_uid]), i))
            if f.modality == "CT":
                join(i, first_of_series.setdefault(f.series_instance_uid, i))
        for i, f in enumerate(self.files):
            mine = frame_of[f.sop_instance_uid]
            targets = [index[u] for u in (f.referenced_plan_uid, f.referenced_structure_set_uid)
                       if u in index]  # fmt: skip
            if f.referenced_series_uid in first_of_series:
                targets.append(first_of_series[f.referenced_series_uid])
            for j in targets:
                if frame_of[self.files[j].sop_instance_uid] == mine:
                    join(i, j)
        grouped: dict[int, list[DicomFile]] = defaultdict(list)
        for i, f in enumerate(self.files):
            grouped[root(i)].append(f)
        return list(grouped.values())


def _main_patient_id(files: list[DicomFile]) -> str:
    """PatientID of a group: that of its structure set, else of its first file."""
    ss = [f.patient_id for f in files if f.modality == "RTSTRUCT"]
    return (ss or [f.patient_id for f in files] or [""])[0]


def _unique_objects(files: list[DicomFile]) -> tuple[list[DicomFile], list[str]]:
    """The files with the same SOPInstanceUID kept once (the first, by path), and notes."""
    seen: dict[str, DicomFile] = {}
    notes = []
    for f in sorted(files, key=lambda f: str(f.path)):
        if f.sop_instance_uid and f.sop_instance_uid in seen:
            if f.modality != "CT":
                notes.append(
                    f"{f.modality} {f.sop_instance_uid} is in two files: read "
                    f"{seen[f.sop_instance_uid].path}, ignored {f.path}"
                )
            continue
        seen[f.sop_instance_uid] = f
    order = {id(f): n for n, f in enumerate(files)}
    return sorted(seen.values(), key=lambda f: order[id(f)]), notes


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
        candidates, hidden, walk_notes = [root], 0, []
    else:
        walk_notes = []
        candidates, hidden = list_files(root, walk_notes)
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
    notes = list(walk_notes)
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
    notes : list of str
        What was decided while reading and choosing (duplicate files skipped, PLAN dose
        preferred over BEAM doses, identities combined, ...); reports show them.
    selection : Selection
        The user's choices (:mod:`rtplan.io.selection`).
    """

    patient_id: str
    frame_of_reference_uid: str
    files: tuple[DicomFile, ...]
    fraction_dose: str = "per_fraction"
    notes: list = field(default_factory=list)
    selection: Selection = field(default_factory=Selection)

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
        see :class:`~rtplan.structure.StructureSet`)."""
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
            dose = self._read_dose(f, plans)
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
    @cached_property
    def choice(self) -> Choice:
        """The plan, structure set and dose files used (:func:`rtplan.io.selection.choose`),
        after the patient identity check; decisions are added to :attr:`notes`."""
        return self._choose(self.selection)

    def _choose(self, selection: Selection) -> Choice:
        choice = choose(self.files, selection)
        ct = []
        if choice.structure_set is not None:
            ct = [f for f in self._of("CT")
                  if f.series_instance_uid == choice.structure_set.referenced_series_uid]  # fmt: skip
        for note in [*choice.notes, *check_identity(choice, ct, selection.mixed_patients)]:
            if note not in self.notes:
                self.notes.append(note)
        return choice

    def _read_plan(self, f: DicomFile) -> Plan:
        return next(p for p in self.plans if p.sop_instance_uid == f.sop_instance_uid)

    def plan(self, label: str | None = None) -> Plan:
        """The chosen plan; ``label`` (label, UID or file) chooses another."""
        choice = self.choice if label is None else self._choose(replace(self.selection, plan=label))
        if choice.plan is None:
            raise InputError(f"no RTPLAN for {self.describe()}")
        return self._read_plan(choice.plan)

    def structure_set(self, label: str | None = None) -> StructureSet:
        """The chosen structure set (the plan's); ``label`` (label, UID or file) chooses
        another."""
        choice = (
            self.choice
            if label is None
            else self._choose(replace(self.selection, structure_set=label))
        )
        if choice.structure_set is None:
            raise InputError(f"no RTSTRUCT for {self.describe()}")
        uid = choice.structure_set.sop_instance_uid
        return next(s for s in self.structure_sets if s.sop_instance_uid == uid)

    def dose(self, plan_label: str | None = None) -> Dose:
        """The chosen dose in Gy (BEAM doses summed, several plans added); ``plan_label``
        chooses the dose of another plan.

        When a PLAN dose and BEAM doses of the same plan are present, the PLAN dose is
        used and the BEAM doses' sum is compared with it: a difference above
        :data:`~rtplan.io.selection.BEAM_SUM_TOLERANCE` of its maximum is noted.
        """
        choice = (
            self.choice
            if plan_label is None
            else self._choose(replace(self.selection, plan=plan_label))
        )
        key = tuple(f.sop_instance_uid for f in choice.doses)
        if key not in self._dose_cache:
            self._dose_cache[key] = self._read_doses(choice)
        return self._dose_cache[key]

    @cached_property
    def _dose_cache(self) -> dict:
        return {}

    def _read_doses(self, choice: Choice) -> Dose:
        if not choice.doses:
            if self.relative_dose_files:
                raise InputError(
                    "the RTDOSE is in RELATIVE units (no reference dose stated), "
                    "so no dose in Gy is available",
                    path=self.relative_dose_files[0].path,
                )
            raise InputError(f"no RTDOSE for {self.describe()}")
        plans = {p.sop_instance_uid: p for p in self.plans}
        parts, beams = [], defaultdict(list)
        for f in choice.doses:
            dose = self._read_dose(f, plans)
            if f.summation_type in BEAM_TYPES:
                beams[f.referenced_plan_uid].append(dose)
            else:
                parts.append(dose)
        parts += [sum_beam_doses(b, plan=plans.get(uid)) for uid, b in beams.items()]
        if choice.beam_check and len(parts) == 1:
            self._check_beams(parts[0], choice, plans)
        if len(parts) == 1:
            return parts[0]
        from rtplan.plansum import sum_doses  # several plans: added on the first grid

        return sum_doses(parts)

    def _read_dose(self, f: DicomFile, plans: dict) -> Dose:
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
        return read_rtdose(f.path, plan=plan, fraction_dose=self.fraction_dose)

    def _check_beams(self, whole: Dose, choice: Choice, plans: dict) -> None:
        """Note when the BEAM doses do not sum to the PLAN dose (within the tolerance)."""
        from rtplan.errors import RtplanError
        from rtplan.io.rtdose import _on_grid

        try:
            beams = [self._read_dose(f, plans) for f in choice.beam_check]
            total = _on_grid(sum_beam_doses(beams), whole.grid)
        except RtplanError as exc:
            self.notes.append(f"BEAM doses not compared with the PLAN dose: {exc}")
            return
        import numpy as np

        top = float(np.nanmax(whole.values_gy))
        diff = float(np.nanmax(np.abs(total - whole.values_gy))) / top if top > 0 else 0.0
        names = ", ".join(f.path.name for f in choice.beam_check)
        if diff > BEAM_SUM_TOLERANCE:
            self.notes.append(
                f"the BEAM doses ({names}) differ from the PLAN dose by up to "
                f"{100 * diff:.2f} % of its maximum ({top:.4g} Gy); the PLAN dose is used"
            )
        else:
            self.notes.append(
                f"the BEAM doses ({names}) sum to the PLAN dose within {100 * diff:.2f} % "
                "of its maximum"
            )

    def describe(self) -> str:
        return (
            f"patient {self.patient_id or '(no ID)'}, frame of reference "
            f"{self.frame_of_reference_uid or '(none)'}"
        )


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
    plan: str | None = None,
    structure_set: str | None = None,
    dose=(),
    mixed_patients: bool = False,
    fraction_dose: str = "per_fraction",
) -> PatientData:
    """The one patient under ``path`` with its plan, structure set and dose chosen.

    Keywords as :class:`rtplan.io.selection.Selection` (the command options
    ``--patient-id``, ``--plan``, ``--structure-set``, ``--dose``, ``--mixed-patients``);
    rules in :mod:`rtplan.io.selection`.

    Raises
    ------
    InputError
        The folder is ambiguous (candidates and the option that chooses are listed), a
        choice names nothing, or objects of different patients would be combined.
    """
    selection = Selection(patient_id=patient_id, plan=plan, structure_set=structure_set,
                          dose=tuple(dose or ()), mixed_patients=mixed_patients)  # fmt: skip
    return select_patient(path, selection, fraction_dose=fraction_dose)
