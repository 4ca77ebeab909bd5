"""Reading RTDOSE files into :class:`~rtplan.dose.Dose` (Gy on a :class:`~rtplan.grid.Grid`).

Conventions (DICOM PS3.3 C.8.8.3)
--------------------------------
Geometry
    ImageOrientationPatient gives the row cosine ``r`` and column cosine ``c``; the frame
    normal is ``n = r x c``.  GridFrameOffsetVector (GFOV) places frame ``f`` at
    ``ImagePositionPatient + g_f n``: *relative* form when ``GFOV[0] == 0``; *absolute* form
    (``GFOV[f]`` is the patient z of frame ``f``) when ``GFOV[0]`` equals the z of
    ImagePositionPatient, allowed only for orientation ``1\\0\\0\\0\\1\\0`` — then
    ``g_f = GFOV[f] - GFOV[0]``.  Offsets may decrease or be unevenly spaced: frames are
    sorted so the slice index ``k`` grows along ``n``, and uneven offsets give a grid with
    ``slice_offsets_mm``.  PixelSpacing is ``[row spacing, column spacing]``.
Values
    Dose (Gy) = stored value x DoseGridScaling, held as float32.  DoseUnits ``GY`` is
    read as is, ``CGY`` (not a DICOM term, written by some systems) is divided by 100,
    ``RELATIVE`` is refused (no reference dose is stated).
Summation
    ``PLAN``, ``MULTI_PLAN``, ``BRACHY`` and ``BEAM`` doses are totals over the course and
    are read as they are (sum several ``BEAM`` doses with :func:`sum_beam_doses`).
    ``FRACTION_SESSION``, ``BEAM_SESSION`` and ``BRACHY_SESSION`` doses are one session:
    they are multiplied by NumberOfFractionsPlanned of the referenced fraction group of
    the RTPLAN.  ``FRACTION`` doses are multiplied the same way by default
    (``fraction_dose="per_fraction"``, the reading rtplan's users asked for, matching what
    several planning systems export).  Note that DICOM defines ``FRACTION`` as the dose of
    a whole fraction group: for files written that way pass
    ``fraction_dose="group_total"``.  As a guard, a ``FRACTION`` dose whose multiplied
    maximum exceeds twice the plan's prescription is refused with a message saying so.
Embedded DVHs
    DVHSequence items become :class:`~rtplan.dose.EmbeddedDVH`: dose bin upper edges
    ``cumsum(widths) x DVHDoseScaling`` (the scaling applies to the *dose* bin widths, not
    to volumes; dicompyler-core issue #300), volumes as stored in DVHVolumeUnits.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from rtplan.defaults import FRACTION_DOSE_MODES
from rtplan.dose import Dose, EmbeddedDVH
from rtplan.errors import DicomReadError, DoseCoverageError, GeometryError, InputError, warn
from rtplan.grid import Grid
from rtplan.io.dicom_file import (
    float_value,
    floats,
    image_size,
    int_value,
    modality_of,
    pixel_array,
    read_dataset,
    reading,
    require,
    shorten,
    text,
    value_of,
)
from rtplan.plan import Plan

#: Summation types that hold one session and are multiplied by the planned fractions.
SESSION_TYPES = ("FRACTION_SESSION", "BEAM_SESSION", "BRACHY_SESSION")
#: Summation types read as course totals.
TOTAL_TYPES = ("PLAN", "MULTI_PLAN", "BRACHY", "BEAM", "PLAN_OVERVIEW")
_HFS_IOP = np.array([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])
#: Largest pixel spacing or slice thickness accepted (mm).
MAX_SPACING_MM = 1000.0
#: Largest DoseGridScaling accepted (Gy per stored unit): 1 Gy per unit already makes a
#: 16-bit dose reach 65 kGy.
MAX_DOSE_GRID_SCALING = 1.0


def dose_grid(ds: Dataset, path: object = None) -> tuple[Grid, np.ndarray]:
    """The grid of an RTDOSE and the frame order that sorts its frames along the normal.

    Parameters
    ----------
    ds : pydicom.Dataset
        RTDOSE header (pixel data not needed).
    path : path, optional
        For messages.

    Returns
    -------
    (Grid, numpy.ndarray)
        ``values[k] = frames[order[k]]``.

    Raises
    ------
    DicomReadError
        Missing geometry tags, GFOV of the wrong length or of neither form.
    GeometryError
        Two frames at one offset; degenerate orientation.
    """
    iop = floats(ds, "ImageOrientationPatient", path, 6, minimum=-1.0001, maximum=1.0001)
    ipp = floats(ds, "ImagePositionPatient", path, 3)
    spacing = floats(ds, "PixelSpacing", path, 2, above=0.0, maximum=MAX_SPACING_MM)
    frames, rows, cols = image_size(ds, path, "NumberOfFrames")
    if min(np.linalg.norm(iop[:3]), np.linalg.norm(iop[3:])) < 0.5:
        raise GeometryError("ImageOrientationPatient is degenerate", path=path)
    row, col = iop[:3] / np.linalg.norm(iop[:3]), iop[3:] / np.linalg.norm(iop[3:])
    if abs(float(row @ col)) > 1e-3:
        raise GeometryError(
            "ImageOrientationPatient row and column are not perpendicular", path=path
        )
    col = col - (row @ col) * row
    col /= np.linalg.norm(col)
    normal = np.cross(row, col)

    if value_of(ds, "GridFrameOffsetVector", path) is not None:
        gfov = floats(ds, "GridFrameOffsetVector", path)
    elif frames == 1:
        gfov = np.zeros(1)
    else:
        raise DicomReadError(
            "missing required tag GridFrameOffsetVector (3004,000C) for a multi-frame dose",
            path=path,
        )
    if len(gfov) != frames:
        raise DicomReadError(
            f"GridFrameOffsetVector has {len(gfov)} values for {frames} frames", path=path
        )
    if gfov[0] == 0:
        rel = gfov
    elif abs(gfov[0] - ipp[2]) < 1e-3 and np.allclose(iop, _HFS_IOP, atol=1e-4):
        rel = gfov - gfov[0]  # absolute z positions (C.8.8.3.2), normal = +z
    else:
        raise DicomReadError(
            f"GridFrameOffsetVector starts at {gfov[0]:g}: neither 0 (relative offsets) nor "
            f"ImagePositionPatient z {ipp[2]:g} with orientation 1\\0\\0\\0\\1\\0 (absolute)",
            path=path,
        )
    order = np.argsort(rel, kind="stable")
    ordered = rel[order]
    gaps = np.diff(ordered)
    if len(gaps) and gaps.min() < 1e-3:
        raise GeometryError(
            f"two dose frames at the same offset {ordered[int(np.argmin(gaps))]:g} mm", path=path
        )
    if len(gaps):
        step = float(gaps.min())
    else:
        thickness = float_value(ds, "SliceThickness", path, default=1.0, maximum=MAX_SPACING_MM)
        step = thickness if thickness > 0 else 1.0
    origin = ipp + ordered[0] * normal
    grid = Grid(
        shape=(frames, rows, cols),
        origin_mm=tuple(origin),
        spacing_mm=(step, float(spacing[0]), float(spacing[1])),
        direction=tuple(map(tuple, np.stack([normal, col, row], axis=1))),
        slice_offsets_mm=tuple(ordered - ordered[0]) if frames > 1 else None,
    )
    return grid, order


def read_rtdose(
    path: str | os.PathLike,
    *,
    plan: Plan | None = None,
    fraction_dose: str = "per_fraction",
    dataset: Dataset | None = None,
) -> Dose:
    """Read one RTDOSE file as dose in Gy (see the module docstring for every convention).

    Parameters
    ----------
    path : path
        The RTDOSE file (only read).
    plan : Plan, optional
        The RTPLAN the dose belongs to; required for FRACTION and \\*_SESSION doses (the
        number of fractions).
    fraction_dose : {"per_fraction", "group_total"}
        How to read DoseSummationType FRACTION (module docstring).
    dataset : pydicom.Dataset, optional
        The already-read dataset of ``path`` (must include pixel data).

    Returns
    -------
    Dose

    Raises
    ------
    DicomReadError
        Not an RTDOSE, missing tags, undecodable pixels.
    InputError
        RELATIVE dose units; FRACTION/SESSION dose without its plan, or with a plan that is
        not the one referenced; an implausible FRACTION multiplication.
    """
    path = Path(path)
    if fraction_dose not in FRACTION_DOSE_MODES:
        raise InputError(
            f"fraction_dose must be one of {FRACTION_DOSE_MODES}, got {fraction_dose!r}"
        )
    ds = dataset if dataset is not None else read_dataset(path)
    with reading(path):
        return _dose_from_dataset(ds, path, plan, fraction_dose)


def _gy_per_unit(ds: Dataset, path: Path) -> float:
    """Gy per unit of DoseUnits (GY or CGY; RELATIVE has no value in Gy)."""
    units = str(require(ds, "DoseUnits", path)).strip().upper()
    if units == "RELATIVE":
        raise InputError(
            "DoseUnits RELATIVE: the file states no reference dose, so Gy cannot be known",
            path=path,
        )
    if units not in ("GY", "CGY"):
        raise DicomReadError(f"unknown DoseUnits {shorten(units)}", path=path)
    return 0.01 if units == "CGY" else 1.0


def _stored_dose(ds: Dataset, path: Path, grid, order, unit_factor: float) -> np.ndarray:
    """The pixel data x DoseGridScaling x ``unit_factor`` (Gy), float32, in the grid's
    ``[k, j, i]`` order."""
    if value_of(ds, "PixelData", path) is None:
        raise DicomReadError("RTDOSE has no pixel data (7FE0,0010)", path=path)
    # required whenever there is pixel data (PS3.3 C.8.8.3): no default of 1
    scaling = float_value(ds, "DoseGridScaling", path, above=0.0, maximum=MAX_DOSE_GRID_SCALING)
    stored = pixel_array(ds, path, grid.shape)
    if stored.dtype.kind == "i" and stored.size and stored.min() < 0:
        raise DicomReadError(
            "negative stored dose values (PixelRepresentation 1 with negative pixels)",
            path=path,
        )
    return stored[order].astype(np.float32) * np.float32(scaling * unit_factor)


def _dose_from_dataset(ds: Dataset, path: Path, plan: Plan | None, fraction_dose: str) -> Dose:
    if modality_of(ds, path) != "RTDOSE":
        raise DicomReadError(f"not an RTDOSE (modality {modality_of(ds, path)})", path=path)
    unit_factor = _gy_per_unit(ds, path)
    summation = str(require(ds, "DoseSummationType", path)).strip().upper()
    grid, order = dose_grid(ds, path)
    values = _stored_dose(ds, path, grid, order, unit_factor)

    plan_uid, group_number, beam_numbers = _plan_reference(ds, path)
    warnings: list[str] = []
    multiplier = 1
    if summation in SESSION_TYPES or (summation == "FRACTION" and fraction_dose == "per_fraction"):
        multiplier = _planned_fractions(path, summation, plan, plan_uid, group_number)
        values *= np.float32(multiplier)
        if summation == "FRACTION" and plan.prescription_gy and multiplier > 1:
            top = float(values.max())
            if top > 2.0 * plan.prescription_gy:
                raise InputError(
                    f"FRACTION dose x {multiplier} fractions gives a maximum of {top:.1f} Gy, "
                    f"over twice the {plan.prescription_gy:g} Gy prescription: the file "
                    "probably holds the fraction-group total (DICOM's definition); read it "
                    "with fraction_dose='group_total'",
                    path=path,
                )
    elif summation not in TOTAL_TYPES and summation != "FRACTION":
        warnings.append(f"DoseSummationType {summation} read as a course total")

    dvhs, dvh_warnings = read_embedded_dvhs(ds, path)
    warnings.extend(dvh_warnings)
    return Dose(
        values_gy=values,
        grid=grid,
        frame_of_reference_uid=text(ds, "FrameOfReferenceUID"),
        summation_type=summation,
        dose_type=text(ds, "DoseType", "PHYSICAL").upper(),
        source=str(path),
        sop_instance_uid=text(ds, "SOPInstanceUID"),
        referenced_plan_uid=plan_uid,
        embedded_dvhs=dvhs,
        fraction_scaling=multiplier,
        referenced_beam_numbers=beam_numbers,
        warnings=tuple(warn(w, path=path) for w in warnings),
    )


def _plan_reference(ds: Dataset, path=None) -> tuple[str, int | None, tuple[int, ...]]:
    """(referenced plan UID, fraction group number, beam numbers) of an RTDOSE."""
    plan_uid, group, beams = "", None, []
    for ref in value_of(ds, "ReferencedRTPlanSequence", path) or []:
        plan_uid = plan_uid or text(ref, "ReferencedSOPInstanceUID", "", path)
        for fg in value_of(ref, "ReferencedFractionGroupSequence", path) or []:
            if group is None:
                group = int_value(fg, "ReferencedFractionGroupNumber", path, default=None)
            for rb in value_of(fg, "ReferencedBeamSequence", path) or []:
                number = int_value(rb, "ReferencedBeamNumber", path, default=None)
                if number is not None:
                    beams.append(number)
    return plan_uid, group, tuple(beams)


def _planned_fractions(path, summation, plan, plan_uid, group_number) -> int:
    if plan is None:
        raise InputError(
            f"a {summation} dose holds one fraction (or session): give its RTPLAN to know "
            "the number of fractions",
            path=path,
        )
    if plan_uid and plan.sop_instance_uid and plan_uid != plan.sop_instance_uid:
        raise InputError(
            f"the dose refers to plan {plan_uid}, but plan {plan.sop_instance_uid} "
            f"({plan.source or plan.label}) was given",
            path=path,
        )
    groups = {g.number: g for g in plan.fraction_groups}
    if group_number is not None:
        if group_number not in groups:
            raise InputError(
                f"the dose refers to fraction group {group_number}, which plan "
                f"'{plan.label}' does not have",
                path=path,
            )
        fractions = groups[group_number].fractions
    elif len(groups) == 1:
        fractions = next(iter(groups.values())).fractions
    else:
        raise InputError(
            f"the {summation} dose names no fraction group and plan '{plan.label}' has "
            f"{len(groups)}",
            path=path,
        )
    if fractions < 1:
        raise InputError(f"plan '{plan.label}' plans no fractions for the dose's group", path=path)
    return fractions


def read_embedded_dvhs(
    ds: Dataset, path: object = None
) -> tuple[tuple[EmbeddedDVH, ...], list[str]]:
    """DVHs stored in an RTDOSE's DVHSequence (module docstring: DVHDoseScaling on dose).

    Returns
    -------
    (tuple of EmbeddedDVH, list of str)
        The DVHs (dose in Gy, or in % of the prescription for RELATIVE dose units), and
        warnings.
    """
    out, warnings = [], []
    for n, item in enumerate(value_of(ds, "DVHSequence", path) or [], start=1):
        where = f"DVHSequence item {n}"
        refs = require(item, "DVHReferencedROISequence", path, where)
        roi = int_value(refs[0], "ReferencedROINumber", path, where)
        units = text(item, "DoseUnits", "GY", path).upper()
        factor = 0.01 if units == "CGY" else 1.0
        data = floats(item, "DVHData", path, what=where)
        if len(data) % 2:
            raise DicomReadError(f"DVHData in {where} has an odd number of values", path=path)
        scaling = float_value(item, "DVHDoseScaling", path, where, default=1.0, above=0.0)
        widths, volumes = data[0::2], data[1::2]

        def stat(keyword, item=item, factor=factor, where=where):
            value = float_value(item, keyword, path, where, default=None)
            return None if value is None else value * factor

        out.append(
            EmbeddedDVH(
                roi_number=roi,
                dose_gy=np.cumsum(widths) * scaling * factor,
                volume_cc=volumes,
                dvh_type=text(item, "DVHType", "CUMULATIVE", path).upper(),
                volume_units=text(item, "DVHVolumeUnits", "CM3", path).upper(),
                dose_units="PERCENT" if units in ("RELATIVE", "PERCENT") else "GY",
                min_dose_gy=stat("DVHMinimumDose"),
                max_dose_gy=stat("DVHMaximumDose"),
                mean_dose_gy=stat("DVHMeanDose"),
            )
        )
    return tuple(out), warnings


def sum_beam_doses(doses: Sequence[Dose], *, plan: Plan | None = None) -> Dose:
    """The plan dose as the sum of its BEAM doses.

    Parameters
    ----------
    doses : sequence of Dose
        BEAM (or BEAM_SESSION, already multiplied) doses of one plan, in one frame of
        reference.  Doses on other grids are resampled onto the first one's grid by
        trilinear interpolation; each must cover that grid (within 1e-3 mm).
    plan : Plan, optional
        When given, every beam of the plan must be present exactly once.

    Returns
    -------
    Dose
        ``summation_type="BEAM"``, ``referenced_beam_numbers`` of all parts.

    Raises
    ------
    GeometryError
        Different frames of reference or plans.
    DoseCoverageError
        A beam dose grid does not cover the first grid.
    InputError
        Not all BEAM doses; a plan beam without dose, or a beam twice.
    """
    doses = list(doses)
    if not doses:
        raise InputError("no beam doses to sum")
    first = doses[0]
    for d in doses:
        _check_beam_part(d, first)
    beams = [b for d in doses for b in d.referenced_beam_numbers]
    if plan is not None:
        _check_plan_beams(plan, beams, first.source)
    total = np.array(first.values_gy, dtype=np.float32, copy=True)
    for d in doses[1:]:
        total += _on_grid(d, first.grid)
    return Dose(
        values_gy=total,
        grid=first.grid,
        frame_of_reference_uid=first.frame_of_reference_uid,
        summation_type="BEAM",
        dose_type=first.dose_type,
        source=", ".join(d.source for d in doses),
        referenced_plan_uid=first.referenced_plan_uid,
        fraction_scaling=first.fraction_scaling,
        referenced_beam_numbers=tuple(beams),
        warnings=tuple(w for d in doses for w in d.warnings),
    )


def _check_beam_part(d: Dose, first: Dose) -> None:
    """A part of a beam sum: a BEAM dose of the first part's frame of reference and plan."""
    if d.summation_type not in ("BEAM", "BEAM_SESSION"):
        raise InputError(f"only BEAM doses can be summed, got {d.summation_type}", path=d.source)
    if d.frame_of_reference_uid != first.frame_of_reference_uid:
        raise GeometryError(
            f"mismatched frames of reference: {d.frame_of_reference_uid} vs "
            f"{first.frame_of_reference_uid} ({first.source})",
            path=d.source,
        )
    if d.referenced_plan_uid != first.referenced_plan_uid:
        raise GeometryError(
            f"beam doses of different plans ({d.referenced_plan_uid} vs "
            f"{first.referenced_plan_uid})",
            path=d.source,
        )


def _check_plan_beams(plan: Plan, beams: list[int], source: str) -> None:
    """Every beam of ``plan`` has a dose, and only one."""
    planned = sorted(b.number for g in plan.fraction_groups for b in g.beams)
    missing = sorted(set(planned) - set(beams))
    twice = sorted({b for b in beams if beams.count(b) > 1})
    if missing or twice:
        problem = (f"no dose for beam(s) {missing}" if missing else "") + (
            f"{'; ' if missing else ''}beam(s) {twice} given twice" if twice else ""
        )
        raise InputError(f"beam doses of plan '{plan.label}': {problem}", path=source)


def _on_grid(dose: Dose, grid: Grid) -> np.ndarray:
    """``dose`` resampled at the voxel centres of ``grid`` (trilinear, slice by slice)."""
    from scipy import ndimage  # only needed when beam grids differ

    if dose.grid.same_as(grid):
        return np.asarray(dose.values_gy, dtype=np.float32)
    out = np.empty(grid.shape, dtype=np.float32)
    jj, ii = np.meshgrid(np.arange(grid.shape[1]), np.arange(grid.shape[2]), indexing="ij")
    upper = np.asarray(dose.grid.shape) - 1
    for k in range(grid.shape[0]):
        idx = np.stack([np.full(jj.shape, k), jj, ii], axis=-1).reshape(-1, 3).astype(float)
        src = dose.grid.world_to_index(grid.index_to_world(idx))
        tol = 1e-3 / np.asarray(dose.grid.spacing_mm)
        if np.any(src < -tol) or np.any(src > upper + tol):
            raise DoseCoverageError(
                "beam dose grid does not cover the grid of the first beam dose; cannot sum",
                path=dose.source,
            )
        src = np.clip(src, 0, upper)
        out[k] = ndimage.map_coordinates(
            np.asarray(dose.values_gy, dtype=np.float32), src.T, order=1
        ).reshape(grid.shape[1:])
    return out


def read_dose_files(
    paths: Sequence[str | os.PathLike],
    *,
    plan: Plan | None = None,
    fraction_dose: str = "per_fraction",
) -> Dose:
    """One dose from RTDOSE files: a single file as it is, several BEAM files summed.

    See :func:`read_rtdose` and :func:`sum_beam_doses`.
    """
    doses = [read_rtdose(p, plan=plan, fraction_dose=fraction_dose) for p in paths]
    if len(doses) == 1:
        return doses[0]
    return sum_beam_doses(doses, plan=plan)
