"""What is in a folder of DICOM-RT files, as a JSON-ready dictionary (``rtplan info``).

:func:`folder_inventory` reads every object under a path (see :mod:`rtplan.io.discover`) and
describes it: patients, studies, frames of reference, CT series, structure sets with every
structure (name, type, contours, slice range, volume in cc), plans (fractions,
prescription) and doses (grid, maximum, summation type).  The schema is documented in
``docs/io.md`` and versioned by the ``"schema"`` key.

Structure volumes are :attr:`rtplan.structure.Structure.volume_cc` (polygon area x slab,
slab = CT slice spacing when the referenced CT is present, see :mod:`rtplan.structure`).
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np

from rtplan.dose import Dose
from rtplan.errors import ContourError
from rtplan.grid import Grid
from rtplan.io.ct import CTSeries
from rtplan.io.dicom_file import read_dataset
from rtplan.io.discover import DicomFile, PatientData, scan
from rtplan.io.rtdose import dose_grid
from rtplan.io.selection import Selection, identity_conflict, select_patient
from rtplan.plan import Plan
from rtplan.structure import Structure, StructureSet

SCHEMA = "rtplan-info/1"


def folder_inventory(
    path: str | os.PathLike,
    *,
    lenient: bool = False,
    fraction_dose: str = "per_fraction",
    selection: Selection | None = None,
) -> dict:
    """Describe every DICOM-RT object under ``path``.

    Parameters
    ----------
    path : path
        Folder (searched recursively) or single file; only read.
    lenient : bool
        Report structure problems (self-intersecting, ...) in the output instead of
        raising the first as a :class:`~rtplan.errors.ContourError`.
    fraction_dose : {"per_fraction", "group_total"}
        How to read FRACTION doses (:mod:`rtplan.io.rtdose`).
    selection : Selection, optional
        Describe only the patient and objects chosen (:mod:`rtplan.io.selection`: the
        chosen plan, structure set and doses, and the CT series).

    Returns
    -------
    dict
        JSON-serialisable; schema ``rtplan-info/1`` (docs/io.md).

    Raises
    ------
    RtplanError
        Unreadable or inconsistent input (one line naming file, structure, problem).
    """
    catalog = scan(path)
    if selection is not None and selection.names_objects:
        chosen = select_patient(path, selection, fraction_dose=fraction_dose)
        keep = {id(f) for f in [*chosen.choice.files, *chosen.choice.beam_check]}
        files = tuple(f for f in chosen.files if f.modality == "CT" or id(f) in keep)
        groups = [PatientData(chosen.patient_id, chosen.frame_of_reference_uid, files,
                              notes=list(chosen.notes))]  # fmt: skip
    else:
        groups = catalog.groups()
    notes = list(catalog.notes)
    for g in groups:
        g.fraction_dose = fraction_dose
        notes += [n for n in g.notes if n not in notes]
        conflict = identity_conflict(g.files)
        if conflict and not any("different patients combined" in n for n in g.notes):
            notes.append(
                f"objects tied by UID references carry different patient identities: {conflict}"
                "; dvh and check use them only with --patient-id (one identity's objects) or "
                "--mixed-patients"
            )
    patients: dict[str, dict] = {}
    for g in groups:
        entry = patients.setdefault(
            g.patient_id,
            {"patient_id": g.patient_id, "patient_name": g.patient_name, "studies": {},
             "frames_of_reference": []},
        )  # fmt: skip
        for f in g.files:
            entry["studies"].setdefault(
                f.study_instance_uid,
                {
                    "study_instance_uid": f.study_instance_uid,
                    "study_date": f.study_date,
                    "study_description": f.study_description,
                },
            )
        entry["frames_of_reference"].append(_frame(g, lenient))
    for entry in patients.values():
        entry["studies"] = sorted(entry["studies"].values(), key=lambda s: s["study_instance_uid"])
    return {
        "schema": SCHEMA,
        "path": str(Path(path)),
        "notes": notes,
        "patients": [patients[k] for k in sorted(patients)],
    }


def _frame(g: PatientData, lenient: bool) -> dict:
    study_of = {str(f.path): f.study_instance_uid for f in g.files}
    structure_sets = g.structure_sets
    if not lenient:
        for ss in structure_sets:
            ss.check()
    return {
        "frame_of_reference_uid": g.frame_of_reference_uid,
        "study_instance_uids": g.study_instance_uids,
        "series": [_series(s) for s in g.ct_series],
        "structure_sets": [_structure_set(ss, study_of) for ss in structure_sets],
        "plans": [_plan(p) for p in g.plans],
        "doses": [_dose(d, g, study_of) for d in g.doses]
        + [_relative_dose(f) for f in g.relative_dose_files],
    }


def grid_summary(grid: Grid) -> dict:
    """A grid as JSON: shape/spacing in array order ``[k, j, i]``, LPS mm."""
    lo, hi = grid.world_bounds_mm()
    return {
        "shape": list(grid.shape),
        "spacing_mm": list(grid.spacing_mm),
        "origin_mm": list(grid.origin_mm),
        "direction": [list(r) for r in grid.direction],
        "uniform": grid.is_uniform,
        "slice_offsets_mm": None if grid.is_uniform else list(grid.slice_offsets_mm),
        "extent_mm": {"lo": lo.tolist(), "hi": hi.tolist()},
    }


def _series(s: CTSeries) -> dict:
    return {
        "series_instance_uid": s.series_instance_uid,
        "study_instance_uid": s.study_instance_uid,
        "modality": s.modality,
        "description": s.series_description,
        "patient_position": s.patient_position,
        "slices": s.grid.shape[0],
        "grid": grid_summary(s.grid),
        "source": s.source,
        "warnings": list(s.warnings),
    }


def _structure_set(ss: StructureSet, study_of: dict) -> dict:
    return {
        "label": ss.label,
        "sop_instance_uid": ss.sop_instance_uid,
        "series_instance_uid": ss.series_instance_uid,
        "study_instance_uid": study_of.get(ss.source, ss.study_instance_uid),
        "referenced_series_uid": ss.referenced_series_uid,
        "file": ss.source,
        "warnings": list(ss.warnings),
        "unassigned_contours": [u.problem for u in ss.unassigned],
        "structures": [
            _structure(s, [] if not s.contours else list(ss.problems_for(s))) for s in ss
        ],
    }


def _structure(s: Structure, problems: list[str]) -> dict:
    kinds = Counter(c.geometric_type for c in s.contours)
    z = [float(c.points_mm[:, 2].mean()) for c in s.contours if len(c.points_mm)]
    volume = 0.0 if not s.contours else None
    if s.is_volume and not problems:
        try:
            volume = s.volume_cc
        except ContourError as exc:  # e.g. one plane and no CT: thickness unknown
            problems = [*problems, exc.problem]
    return {
        "name": s.name,
        "number": s.number,
        "type": s.interpreted_type,
        "color": list(s.color) if s.color is not None else None,
        "is_volume": s.is_volume,
        "contours": len(s.contours),
        "contour_types": dict(sorted(kinds.items())),
        "planes": len({round(v, 2) for v in z}),
        "slice_range_mm": [min(z), max(z)] if z else None,
        "slice_spacing_mm": s.slice_spacing_mm,
        "volume_cc": volume,
        "flags": ["empty"] if not s.contours else [],
        "problems": problems,
    }


def _plan(p: Plan) -> dict:
    return {
        "label": p.label,
        "name": p.name,
        "sop_instance_uid": p.sop_instance_uid,
        "study_instance_uid": p.study_instance_uid,
        "file": p.source,
        "fractions": p.fractions,
        "prescription_gy": p.prescription_gy,
        "dose_per_fraction_gy": p.dose_per_fraction_gy,
        "fraction_groups": [
            {
                "number": g.number,
                "fractions": g.fractions,
                "beams": [
                    {"number": b.number, "name": b.name, "dose_gy": b.dose_gy} for b in g.beams
                ],
            }
            for g in p.fraction_groups
        ],
        "referenced_structure_set_uid": p.referenced_structure_set_uid,
        "brachytherapy": p.brachytherapy,
    }


def _relative_dose(f: DicomFile) -> dict:
    """A dose in RELATIVE units, described from its header (no value in Gy exists)."""
    grid, _ = dose_grid(read_dataset(f.path, stop_before_pixels=True), f.path)
    return {
        "sop_instance_uid": f.sop_instance_uid,
        "study_instance_uid": f.study_instance_uid,
        "files": [str(f.path)],
        "summation_type": f.summation_type,
        "file_units": ["RELATIVE"],
        "units": "RELATIVE",
        "dose_type": "",
        "max_gy": None,
        "fraction_scaling": 1,
        "referenced_plan_uid": f.referenced_plan_uid,
        "referenced_beam_numbers": [],
        "embedded_dvhs": None,
        "grid": grid_summary(grid),
        "warnings": ["DoseUnits RELATIVE: no reference dose is stated, so no value in Gy"],
    }


def _dose(d: Dose, g: PatientData, study_of: dict) -> dict:
    sources = [f for f in g.files if f.modality == "RTDOSE" and str(f.path) in d.source.split(", ")]
    return {
        "sop_instance_uid": d.sop_instance_uid,
        "study_instance_uid": study_of.get(str(sources[0].path), "") if sources else "",
        "files": [str(f.path) for f in sources],
        "summation_type": d.summation_type,
        "file_units": sorted({f.dose_units for f in sources}),
        "units": "Gy",
        "dose_type": d.dose_type,
        "max_gy": float(np.max(d.values_gy)),
        "fraction_scaling": d.fraction_scaling,
        "referenced_plan_uid": d.referenced_plan_uid,
        "referenced_beam_numbers": list(d.referenced_beam_numbers),
        "embedded_dvhs": len(d.embedded_dvhs),
        "grid": grid_summary(d.grid),
        "warnings": list(d.warnings),
    }
