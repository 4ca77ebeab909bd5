"""Reading RT Structure Sets into :class:`~rtplan.structure.StructureSet` (a named collection
of :class:`~rtplan.structure.Structure`).

What is read, per ROI: ROIName, ROINumber, RTROIInterpretedType (from
RTROIObservationsSequence), ROIDisplayColor, ReferencedFrameOfReferenceUID and every
contour with its ContourGeometricType.  ``CLOSED_PLANAR`` contours make the volume
(several per plane; holes as nested contours under the even-odd rule; keyhole contours as
drawn); ``CLOSEDPLANAR_XOR`` is read as ``CLOSED_PLANAR`` (the even-odd rule is XOR);
``POINT``, ``OPEN_PLANAR`` and ``OPEN_NONPLANAR`` contours are kept and reported but are
never volumes.

Checks.  Each structure is checked for: no contours at all (empty), closed contours of
fewer than three points, self-intersecting closed contours (proper edge crossings; the
touching sides of a keyhole channel are allowed) and contours that are not on one axial
plane.  Problems are found on demand (:attr:`~rtplan.structure.StructureSet.problems`);
``read_rtstruct(strict=True)``
checks every structure and raises the first as a :class:`~rtplan.errors.ContourError`;
with ``strict=False`` a structure is checked when it is looked up, which raises on a
problem, so no computation runs on a broken structure.

With the referenced CT (``reference=``, a :class:`~rtplan.io.ct.CTSeries` or
:class:`~rtplan.image.Image`): frames of reference must match
(:class:`~rtplan.errors.GeometryError` otherwise); each structure's
``slice_spacing_mm`` is the CT slice spacing (uniform series; ``None`` otherwise, when the
structure infers it from its contour planes); contours whose plane is not on a CT slice
(within :data:`ON_SLICE_TOLERANCE_MM` along the slice normal) are emitted as one
:class:`~rtplan.errors.RtplanWarning` per structure set (naming the structures; a partial CT
series would otherwise give one per structure) and kept in
:attr:`~rtplan.structure.StructureSet.warnings`.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from rtplan.errors import DicomReadError, GeometryError, warn
from rtplan.io.dicom_file import (
    MAX_COORDINATE_MM,
    int_value,
    modality_of,
    read_dataset,
    reading,
    require,
    text,
    value_of,
)
from rtplan.structure import Contour, Structure, StructureSet, UnassignedContours

#: A contour lies on a CT slice when its plane is this close (mm) to the slice position.
ON_SLICE_TOLERANCE_MM = 0.01
_CONTOUR_DATA = 0x30060050
GEOMETRIC_TYPES = ("CLOSED_PLANAR", "OPEN_PLANAR", "OPEN_NONPLANAR", "POINT")


def read_rtstruct(
    path: str | os.PathLike,
    *,
    reference=None,
    strict: bool = True,
    dataset: Dataset | None = None,
) -> StructureSet:
    """Read an RTSTRUCT file.

    Parameters
    ----------
    path : path
        The RTSTRUCT file (only read).
    reference : CTSeries or Image, optional
        The CT the contours were drawn on: checks the frame of reference, sets each
        structure's ``slice_spacing_mm`` and reports contours off the CT slices.
    strict : bool
        Check every structure now and raise a :class:`~rtplan.errors.ContourError` for the
        first problem (default).  With ``False`` structures are checked when looked up.
    dataset : pydicom.Dataset, optional
        The already-read dataset of ``path`` (avoids reading it twice).

    Returns
    -------
    StructureSet

    Raises
    ------
    DicomReadError
        Not an RTSTRUCT, or a required tag is missing.
    GeometryError
        The frame of reference differs from the reference CT's.
    ContourError
        ``strict`` and a structure is empty, self-intersecting or degenerate.
    """
    path = Path(path)
    ds = dataset if dataset is not None else read_dataset(path)
    with reading(path):
        if modality_of(ds, path) != "RTSTRUCT":
            raise DicomReadError(f"not an RTSTRUCT (modality {modality_of(ds, path)})", path=path)
        warnings: list[str] = []
        frame_uid, referenced_series = _references(ds, path)
        rois = _roi_definitions(ds, path, warnings)
        contours_by_roi, unassigned = _roi_contours(ds, path, rois)
        types = _interpreted_types(ds, path)
        frame_uid = frame_uid or _first_roi_frame(rois, path)
        declared_frame = frame_uid
        frame_uid = _frame_taken(reference, frame_uid, referenced_series, path, warnings)
        spacing = _reference_spacing(reference, referenced_series, path, warnings)
        structures = [
            _structure(number, item, contours_by_roi.get(number), types,
                       (declared_frame, frame_uid), spacing,
                       reference, path, warnings)
            for number, item in rois.items()
        ]  # fmt: skip
        if reference is not None:
            warnings += _off_slice(structures, reference.grid)
        names = [s.name for s in structures]
        for name in sorted({n for n in names if names.count(n) > 1}):
            warnings.append(f"two ROIs named '{name}'; lookup by name returns the first")
        result = StructureSet(
            label=text(ds, "StructureSetLabel", "", path),
            structures=tuple(structures),
            sop_instance_uid=text(ds, "SOPInstanceUID", "", path),
            series_instance_uid=text(ds, "SeriesInstanceUID", "", path),
            study_instance_uid=text(ds, "StudyInstanceUID", "", path),
            referenced_series_uid=referenced_series,
            frame_of_reference_uid=frame_uid,
            patient_id=text(ds, "PatientID", "", path),
            patient_name=text(ds, "PatientName", "", path),
            name=text(ds, "StructureSetName", "", path),
            source=str(path),
            warnings=tuple(warn(w, path=path) for w in warnings),
            unassigned=tuple(unassigned),
        )
    if strict:
        result.check()
    return result


def _roi_definitions(ds: Dataset, path: Path, warnings: list[str]) -> dict[int, Dataset]:
    """Phase 1: StructureSetROISequence items by ROINumber (the first of a repeated number)."""
    rois: dict[int, Dataset] = {}
    for n, item in enumerate(require(ds, "StructureSetROISequence", path), start=1):
        number = int_value(item, "ROINumber", path, f"StructureSetROISequence item {n}")
        if number in rois:
            warnings.append(f"ROINumber {number} used twice; the first ROI of that number is kept")
            continue
        rois[number] = item
    return rois


def _roi_contours(
    ds: Dataset, path: Path, rois: dict[int, Dataset]
) -> tuple[dict[int, Dataset], list[UnassignedContours]]:
    """Phase 2: ROIContourSequence items by ReferencedROINumber, and the items no structure
    can use: one for an ROI the structure set does not define, or a second one for an ROI
    (the first is used).  Those are :class:`~rtplan.structure.UnassignedContours`, a
    problem of the set; the ROI whose contours they probably hold reads as empty."""
    contours: dict[int, Dataset] = {}
    unassigned: list[UnassignedContours] = []
    for n, item in enumerate(value_of(ds, "ROIContourSequence", path) or [], start=1):
        where = f"ROIContourSequence item {n}"
        number = int_value(item, "ReferencedROINumber", path, where)
        if number in rois and number not in contours:
            contours[number] = item
            continue
        held = len(value_of(item, "ContourSequence", path, where) or [])
        unassigned.append(UnassignedContours(n, number, held, repeated=number in rois))
    return contours, unassigned


def _interpreted_types(ds: Dataset, path: Path) -> dict[int, str]:
    """Phase 3: RTROIInterpretedType by ROI number (RTROIObservationsSequence)."""
    types: dict[int, str] = {}
    for n, item in enumerate(value_of(ds, "RTROIObservationsSequence", path) or [], start=1):
        where = f"RTROIObservationsSequence item {n}"
        number = int_value(item, "ReferencedROINumber", path, where, default=None)
        if number is not None:
            types.setdefault(number, text(item, "RTROIInterpretedType", "", path))
    return types


def _first_roi_frame(rois: dict[int, Dataset], path: Path) -> str:
    for item in rois.values():
        frame = text(item, "ReferencedFrameOfReferenceUID", "", path)
        if frame:
            return frame
    return ""


def _frame_taken(reference, frame_uid, referenced_series, path, warnings) -> str:
    """Phase 4a: the structure set's frame of reference, checked against the reference CT's.

    A structure set that references the CT series by UID but declares another frame (rt-utils
    before 1.2.6 wrote a new random frame UID) is taken in the series' frame, with a warning.
    """
    ref_frame = getattr(reference, "frame_of_reference_uid", "")
    if not (frame_uid and ref_frame and frame_uid != ref_frame):
        return frame_uid
    ref_series = getattr(reference, "series_instance_uid", "")
    if not referenced_series or referenced_series != ref_series:
        raise GeometryError(
            f"mismatched frames of reference: structure set {frame_uid}, "
            f"CT series {ref_frame} ({getattr(reference, 'source', '')})",
            path=path,
        )
    warnings.append(
        f"the structure set declares frame of reference {frame_uid} but references CT "
        f"series {ref_series} (frame {ref_frame}) by UID: contours taken in the series' frame"
    )
    return ref_frame


def _reference_spacing(reference, referenced_series, path, warnings) -> float | None:
    """Phase 4b: the slab spacing the reference CT gives (or None)."""
    if reference is None:
        return None
    ref_series = getattr(reference, "series_instance_uid", "")
    if referenced_series and ref_series and referenced_series != ref_series:
        warnings.append(
            f"contours were drawn on series {referenced_series}, checked against "
            f"series {ref_series} of the same frame of reference"
        )
    grid = reference.grid
    if grid.is_uniform and grid.is_axial:
        return float(grid.spacing_mm[0])
    if not grid.is_uniform:
        warnings.append(
            "the CT slices are unevenly spaced; slab thickness inferred from each "
            "structure's contour planes"
        )
    return None


def _structure(number, item, rc, types, frames, spacing, reference, path, warnings):
    """Phase 5: one :class:`~rtplan.structure.Structure` from its definition and contours;
    ``frames`` = (frame the structure set declares, frame it is taken in)."""
    declared_frame, frame_uid = frames
    name = text(item, "ROIName", "", path) or f"ROI {number}"
    contours, contour_warnings = _contours(rc, path, name)
    warnings.extend(contour_warnings)
    roi_frame = text(item, "ReferencedFrameOfReferenceUID", "", path) or frame_uid
    if roi_frame == declared_frame:
        roi_frame = frame_uid
    if roi_frame != frame_uid and contours:
        ref_frame = getattr(reference, "frame_of_reference_uid", "")
        if ref_frame and roi_frame != ref_frame:
            raise GeometryError(
                f"mismatched frames of reference: ROI in {roi_frame}, CT series in {ref_frame}",
                path=path,
                structure=name,
            )
        warnings.append(
            f"structure '{name}' is in frame of reference {roi_frame}, "
            f"the structure set in {frame_uid}"
        )
    structure = Structure(
        name=name,
        contours=tuple(contours),
        number=number,
        interpreted_type=types.get(number, ""),
        color=_color(rc, path),
        frame_of_reference_uid=roi_frame,
        source=str(path),
        slice_spacing_mm=spacing,
    )
    return structure


def _references(ds: Dataset, path: Path) -> tuple[str, str]:
    """(frame of reference UID, referenced image series UID) of a structure set."""
    frame, series = "", ""
    for rfor in value_of(ds, "ReferencedFrameOfReferenceSequence", path) or []:
        frame = frame or text(rfor, "FrameOfReferenceUID", "", path)
        for study in value_of(rfor, "RTReferencedStudySequence", path) or []:
            for s in value_of(study, "RTReferencedSeriesSequence", path) or []:
                series = series or text(s, "SeriesInstanceUID", "", path)
    frame = frame or text(ds, "FrameOfReferenceUID", "", path)
    return frame, series


def _contours(rc: Dataset | None, path: Path, name: str) -> tuple[list[Contour], list[str]]:
    if rc is None:
        return [], []
    out, warnings = [], []
    for n, item in enumerate(value_of(rc, "ContourSequence", path) or [], start=1):
        where = f"structure '{name}' contour {n}"
        gtype = text(item, "ContourGeometricType", "CLOSED_PLANAR", path).upper()
        if gtype == "CLOSEDPLANAR_XOR":
            gtype = "CLOSED_PLANAR"
        if gtype not in GEOMETRIC_TYPES:
            raise DicomReadError(
                f"structure '{name}': contour {n} has unknown ContourGeometricType {gtype!r}",
                path=path,
            )
        values = _contour_values(item, path, name, n)
        if len(values) % 3:
            raise DicomReadError(
                f"structure '{name}': contour {n} ContourData has {len(values)} values, "
                "not a multiple of 3",
                path=path,
            )
        points = values.reshape(-1, 3)
        declared = int_value(item, "NumberOfContourPoints", path, where, default=None)
        if declared is not None and declared != len(points):
            warnings.append(
                f"structure '{name}': contour {n} declares {declared} points, "
                f"ContourData holds {len(points)}"
            )
        out.append(Contour(points, gtype))
    return out, warnings


def _contour_values(item: Dataset, path: Path, name: str, n: int) -> np.ndarray:
    """ContourData as floats, parsed straight from the raw bytes when possible (fast)."""
    if _CONTOUR_DATA not in item:
        raise DicomReadError(
            f"structure '{name}': contour {n} has no ContourData (3006,0050)", path=path
        )
    elem = item.get_item(_CONTOUR_DATA)
    try:
        if isinstance(elem, RawDataElement) and isinstance(elem.value, bytes):
            raw = elem.value.decode("ascii").replace("\x00", " ").strip()
            values = np.fromstring(raw, sep="\\") if raw else np.zeros(0)
            if len(values) != raw.count("\\") + 1 and raw:
                raise ValueError("unparsed values")
        else:
            values = np.atleast_1d(
                np.asarray(value_of(item, "ContourData", path) or [], dtype=float)
            )
    except (ValueError, TypeError, UnicodeDecodeError):
        raise DicomReadError(
            f"structure '{name}': contour {n} ContourData is not numeric", path=path
        ) from None
    if not np.all(np.isfinite(values)):
        raise DicomReadError(
            f"structure '{name}': contour {n} ContourData (3006,0050) holds non-finite values",
            path=path,
        )
    if len(values) and np.abs(values).max() > MAX_COORDINATE_MM:
        raise DicomReadError(
            f"structure '{name}': contour {n} ContourData (3006,0050) holds coordinates beyond "
            f"+-{MAX_COORDINATE_MM:g} mm ({np.abs(values).max():g})",
            path=path,
        )
    return values


def _color(rc: Dataset | None, path: Path) -> tuple[int, int, int] | None:
    """ROIDisplayColor (Type 3): three integers 0..255, else no colour (display only)."""
    if rc is None:
        return None
    with contextlib.suppress(DicomReadError, TypeError, ValueError):
        value = value_of(rc, "ROIDisplayColor", path)
        values = [int(v) for v in value] if value is not None else []
        if len(values) == 3 and all(0 <= v <= 255 for v in values):
            return tuple(values)
    return None


#: Structures (and planes) a warning names before ``... and N more``.
NAMED_AT_MOST = 5


def _off_slice(structures, grid) -> list[str]:
    """One warning (or none) for the planar contours of ``structures`` not on a slice of
    ``grid``: the structures (the first :data:`NAMED_AT_MOST`, with their counts), the
    total, and the first planes."""
    normal = grid.direction_matrix[:, 0]
    slices = float(np.dot(grid.origin_mm, normal)) + grid.slice_positions_mm
    counts, planes = {}, set()
    for s in structures:
        planar = [c for c in s.contours if c.geometric_type in ("CLOSED_PLANAR", "OPEN_PLANAR")]
        if not planar:
            continue
        along = np.array([float(c.points_mm.mean(axis=0) @ normal) for c in planar])
        off = along[np.abs(along[:, None] - slices[None, :]).min(axis=1) > ON_SLICE_TOLERANCE_MM]
        if len(off):
            counts[s.name] = counts.get(s.name, 0) + len(off)
            planes |= {round(float(a), 2) for a in off}
    if not counts:
        return []
    named = [f"'{n}' ({k})" for n, k in list(counts.items())[:NAMED_AT_MOST]]
    more = f" and {len(counts) - NAMED_AT_MOST} more" if len(counts) > NAMED_AT_MOST else ""
    where = ", ".join(f"{a:.2f}" for a in sorted(planes)[:NAMED_AT_MOST])
    where += " ..." if len(planes) > NAMED_AT_MOST else ""
    return [
        f"{sum(counts.values())} contour(s) of {len(counts)} structure(s) not on a CT slice: "
        f"{', '.join(named)}{more} (at {where} mm along the slice normal)"
    ]
