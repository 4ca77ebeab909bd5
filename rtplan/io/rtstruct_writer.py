"""Write structures into a new DICOM RT Structure Set that references a CT series.

What the file holds (DICOM PS3.3 A.19, C.8.8.5/6/8) and the rules the writer keeps:

* Patient, General Study and Frame of Reference modules copied from the CT (same
  StudyInstanceUID, patient name, ID, birth date, sex, FrameOfReferenceUID); a new SeriesInstanceUID and SOPInstanceUID
  (:func:`pydicom.uid.generate_uid`); Manufacturer ``rtplan``; ApprovalStatus UNAPPROVED.
* ReferencedFrameOfReferenceSequence -> RTReferencedStudySequence ->
  RTReferencedSeriesSequence -> ContourImageSequence lists **every** CT slice.
* Every ROI has an ROINumber, ROIName (at most 64 characters), ROIGenerationAlgorithm, a
  display colour and a non-empty RTROIInterpretedType (EXTERNAL, GTV, CTV, PTV, ORGAN,
  ...; at most one EXTERNAL per structure set).
* Every contour lies on a CT slice (its z within ``PLANE_TOLERANCE_MM`` of the slice
  position; the written z is the slice position) and references that slice in its own
  ContourImageSequence.  CLOSED_PLANAR contours have at least 3 points, no repeated
  consecutive point and no crossing edges.  Holes are separate nested contours (even-odd
  rule), never CLOSEDPLANAR_XOR.
* Decimal strings are at most 16 characters: coordinates are written with at most 4
  decimals (0.1 micrometre); NumberOfContourPoints is an integer.  A ContourData element
  longer than the 16-bit length of Explicit VR (65 534 bytes) is decimated
  (:func:`rtplan.contouring.decimate`) until it fits.
* Existing files are never modified: ROIs of an input structure set can be copied into the
  new one (``copy_rois_from``), and the output must not exist yet.  The file is written to
  a temporary file in the target folder and moved into place with :func:`os.replace`.

Typical use (masks on the CT grid -> structures -> file)::

    from rtplan.contouring import structure_from_mask
    gtv = structure_from_mask(mask, image.grid, "GTV", interpreted_type="GTV")
    write_rtstruct("out_dir", [gtv], image, ct_header="ct/CT.0001.dcm")
"""

from __future__ import annotations

import datetime
import io
import os
from collections.abc import Sequence
from copy import deepcopy
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

from rtplan import __version__
from rtplan.contouring import decimate, edges_meet
from rtplan.errors import ContourError, GeometryError, InputError
from rtplan.image import Image
from rtplan.io.dicom_file import read_dataset, reading
from rtplan.io.output import safe_filename, write_new
from rtplan.polygon import self_intersection
from rtplan.structure import Structure

RT_STRUCTURE_SET_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
STUDY_COMPONENT_MANAGEMENT = "1.2.840.10008.3.1.2.3.1"

#: RTROIInterpretedType defined terms (PS3.3 C.8.8.8.1).
INTERPRETED_TYPES = frozenset(
    {
        "EXTERNAL", "PTV", "CTV", "GTV", "AVOIDANCE", "ORGAN", "MARKER", "REGISTRATION",
        "ISOCENTER", "CONTRAST_AGENT", "CAVITY", "BRACHY_CHANNEL", "BRACHY_ACCESSORY",
        "BRACHY_SRC_APP", "BRACHY_CHNL_SHLD", "SUPPORT", "FIXATION", "DOSE_REGION",
        "CONTROL", "DOSE_MEASUREMENT", "BOLUS",
    }
)  # fmt: skip
GEOMETRIC_TYPES = frozenset({"CLOSED_PLANAR", "OPEN_PLANAR", "OPEN_NONPLANAR", "POINT"})
GENERATION_ALGORITHMS = frozenset({"AUTOMATIC", "SEMIAUTOMATIC", "MANUAL"})

#: A contour whose z is within this distance (mm) of a CT slice lies on that slice.
PLANE_TOLERANCE_MM = 0.01
#: Largest value length of one element in Explicit VR Little Endian (16-bit, even).
MAX_ELEMENT_BYTES = 65534
#: Decimals written for contour coordinates (mm).
COORDINATE_DECIMALS = 4

#: Display colour by interpreted type when a structure has none.
DEFAULT_COLORS = {
    "EXTERNAL": (0, 255, 0),
    "GTV": (255, 0, 0),
    "CTV": (255, 128, 0),
    "PTV": (255, 0, 255),
}
_ORGAN_PALETTE = [
    (0, 128, 255), (255, 255, 0), (0, 255, 255), (128, 0, 255), (255, 128, 128),
    (128, 255, 0), (0, 128, 128), (255, 192, 0), (128, 128, 255), (192, 64, 0),
]  # fmt: skip

_PATIENT_STUDY_ATTRIBUTES = (
    # (keyword, DICOM type): type 2 attributes are always written (empty if the CT lacks them)
    ("PatientName", 2),
    ("PatientID", 2),
    ("IssuerOfPatientID", 3),
    ("PatientBirthDate", 2),
    ("PatientSex", 2),
    ("StudyInstanceUID", 1),
    ("StudyDate", 2),
    ("StudyTime", 2),
    ("ReferringPhysicianName", 2),
    ("StudyID", 2),
    ("AccessionNumber", 2),
    ("StudyDescription", 3),
)


def rtstruct_dataset(
    structures: Sequence[Structure],
    image: Image,
    ct_header: Dataset | str | os.PathLike,
    *,
    label: str = "rtplan",
    name: str = "",
    description: str = "",
    interpreter: str = "",
    generation_algorithm: str = "AUTOMATIC",
    copy_rois_from: Dataset | str | os.PathLike | None = None,
    series_number: int = 901,
    series_description: str = "",
    series_instance_uid: str | None = None,
    sop_instance_uid: str | None = None,
    when: datetime.datetime | None = None,
) -> Dataset:
    """An RT Structure Set dataset holding ``structures`` on the CT series ``image``.

    Parameters
    ----------
    structures : sequence of Structure
        The ROIs to write.  Their contours must lie on the CT slices (see the module
        docstring); ``interpreted_type`` must be a DICOM defined term.  ROI numbers are
        kept when given and unique, otherwise the next free numbers are used.
    image : Image
        The CT series: grid (axial), slice SOPInstanceUIDs, series and frame of reference.
    ct_header : pydicom.Dataset or path
        One dataset (or file) of the CT series; patient and study attributes are copied
        from it.
    label, name, description : str
        StructureSetLabel (at most 16 characters), StructureSetName, StructureSetDescription.
    interpreter : str
        ROIInterpreter of every new ROI (e.g. the observer).
    generation_algorithm : {"AUTOMATIC", "SEMIAUTOMATIC", "MANUAL"}
        ROIGenerationAlgorithm of every new ROI.
    copy_rois_from : pydicom.Dataset or path, optional
        An existing RT Structure Set on the same frame of reference whose ROIs are copied
        (unchanged, with their numbers) before the new ones.  It is only read.
    series_number, series_description : int, str
        Of the new RTSTRUCT series.
    series_instance_uid, sop_instance_uid : str, optional
        New UIDs are generated when not given (give them only for reproducible output).
    when : datetime.datetime, optional
        Structure set, series and instance creation date/time (default: now).

    Returns
    -------
    pydicom.Dataset
        With ``file_meta`` (Explicit VR Little Endian).

    Raises
    ------
    InputError, GeometryError, ContourError
        Bad label, type, name or number; a contour off the CT slices or on another frame of
        reference; a contour with fewer than 3 points or crossing edges.
    """
    ct = _as_dataset(ct_header)
    _check_image(image, ct)
    if not label or len(label) > 16:
        raise InputError(f"StructureSetLabel must have 1 to 16 characters, got {label!r}")
    if generation_algorithm not in GENERATION_ALGORITHMS:
        raise InputError(
            f"ROIGenerationAlgorithm must be one of {sorted(GENERATION_ALGORITHMS)}, "
            f"got {generation_algorithm!r}"
        )
    when = when or datetime.datetime.now()
    date, time = when.strftime("%Y%m%d"), when.strftime("%H%M%S")
    frame_uid = image.frame_of_reference_uid or str(ct.FrameOfReferenceUID)

    ds = Dataset()
    ds.SpecificCharacterSet = ct.get("SpecificCharacterSet", "ISO_IR 100")
    ds.SOPClassUID = RT_STRUCTURE_SET_STORAGE
    ds.SOPInstanceUID = sop_instance_uid or generate_uid()
    ds.InstanceCreationDate = date
    ds.InstanceCreationTime = time
    for keyword, dicom_type in _PATIENT_STUDY_ATTRIBUTES:
        if keyword in ct:
            setattr(ds, keyword, deepcopy(ct[keyword].value))
        elif dicom_type == 2:
            setattr(ds, keyword, "")
    ds.FrameOfReferenceUID = frame_uid  # Frame of Reference module (dciodvfy requires it)
    ds.PositionReferenceIndicator = ct.get("PositionReferenceIndicator", "")
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = series_instance_uid or generate_uid()
    ds.SeriesNumber = int(series_number)
    ds.SeriesDate = date
    ds.SeriesTime = time
    if series_description:
        ds.SeriesDescription = series_description
    ds.OperatorsName = ""
    ds.Manufacturer = "rtplan"
    ds.SoftwareVersions = __version__
    ds.StructureSetLabel = label
    if name:
        ds.StructureSetName = name
    if description:
        ds.StructureSetDescription = description
    ds.InstanceNumber = 1
    ds.StructureSetDate = date
    ds.StructureSetTime = time
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([_referenced_frame(image, frame_uid)])

    ss_rois, roi_contours, observations = [], [], []
    if copy_rois_from is not None:
        ss_rois, roi_contours, observations = _copied_rois(
            copy_rois_from, frame_uid, image.series_instance_uid
        )
    used_numbers = {int(item.ROINumber) for item in ss_rois}
    used_names = {str(item.ROIName).strip().lower() for item in ss_rois}
    used_observations = {int(item.ObservationNumber) for item in observations}
    externals = sum(str(o.get("RTROIInterpretedType", "")) == "EXTERNAL" for o in observations)
    numbers = _roi_numbers(structures, used_numbers)
    slice_z = image.slice_z_mm
    for n, structure in enumerate(structures):
        _check_structure(structure, frame_uid, used_names)
        if structure.interpreted_type == "EXTERNAL":
            externals += 1
            if externals > 1:
                raise InputError(
                    "a structure set holds at most one EXTERNAL ROI", structure=structure.name
                )
        number = numbers[n]
        used_names.add(structure.name.strip().lower())

        item = Dataset()
        item.ROINumber = number
        item.ReferencedFrameOfReferenceUID = frame_uid
        item.ROIName = structure.name
        item.ROIGenerationAlgorithm = generation_algorithm
        ss_rois.append(item)

        rc = Dataset()
        rc.ROIDisplayColor = [int(v) for v in _color(structure, n)]
        rc.ContourSequence = DicomSequence(
            [_contour_item(c, image, slice_z, structure) for c in structure.contours]
        )
        rc.ReferencedROINumber = number
        roi_contours.append(rc)

        obs = Dataset()
        obs.ObservationNumber = max(used_observations, default=0) + 1
        used_observations.add(int(obs.ObservationNumber))
        obs.ReferencedROINumber = number
        obs.RTROIInterpretedType = structure.interpreted_type
        obs.ROIInterpreter = interpreter
        observations.append(obs)
    if not ss_rois:
        raise InputError("no structures to write")
    ds.StructureSetROISequence = DicomSequence(ss_rois)
    ds.ROIContourSequence = DicomSequence(roi_contours)
    ds.RTROIObservationsSequence = DicomSequence(observations)
    ds.ApprovalStatus = "UNAPPROVED"

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    ds.SpecificCharacterSet = _character_set(ds)
    return ds


def write_rtstruct(
    output: str | os.PathLike,
    structures: Sequence[Structure],
    image: Image,
    ct_header: Dataset | str | os.PathLike,
    **options,
) -> Path:
    """Write ``structures`` as a new RTSTRUCT file referencing the CT series ``image``.

    Parameters
    ----------
    output : path
        An existing folder (the file is named ``RS.<SOPInstanceUID>.dcm``) or a file path
        ending in ``.dcm`` whose folder exists.  The file name is reduced to letters,
        digits, ``.``, ``_`` and ``-``.  An existing file is never overwritten.
    structures, image, ct_header, **options
        As for :func:`rtstruct_dataset`.

    Returns
    -------
    pathlib.Path
        The file written (atomically: a temporary file in the same folder, then
        :func:`os.replace`).

    Raises
    ------
    InputError
        When the output file exists or its folder does not, or it is the structure set
        being copied from; see :func:`rtstruct_dataset` for the rest.
    """
    source = options.get("copy_rois_from")
    copied_from = source if isinstance(source, str | os.PathLike) else None
    with reading(copied_from):  # copied items decode lazily: a damaged value is one line
        ds = rtstruct_dataset(structures, image, ct_header, **options)
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
    out = Path(output)
    if out.is_dir():
        folder, filename = out, f"RS.{ds.SOPInstanceUID}.dcm"
    elif out.suffix.lower() == ".dcm":
        folder, filename = out.parent, out.name
    else:
        raise InputError("output must be an existing folder or a .dcm file path", path=out)
    if not folder.is_dir():
        raise InputError("output folder does not exist", path=folder)
    target = folder / _safe_filename(filename)
    if copied_from is not None and _same_file(Path(copied_from), target):
        raise InputError("refusing to overwrite the structure set being copied from", path=target)
    return write_new(target, buf.getvalue())  # never overwrites, even racing another run


# ---------------------------------------------------------------------------- helpers
_TEXT_VRS = ("SH", "LO", "ST", "LT", "UT", "UC", "PN")
#: The VRs of the standard: a copied element with another (a corrupt file) is decoded, which
#: fails with a one-line error instead of writing the corrupt element out.
_KNOWN_VRS = frozenset(vr.value for vr in pydicom.valuerep.VR)


def _dictionary_vr(tag) -> str | None:
    """The data dictionary's VR of ``tag``, or None for a private or unknown tag."""
    try:
        return pydicom.datadict.dictionary_VR(tag)
    except KeyError:
        return None


def _character_set(ds: Dataset) -> str:
    """The dataset's SpecificCharacterSet if every text value can be written in it, else
    ``ISO_IR 192`` (UTF-8): a name such as ``胃癌_CTV`` is never written as ``??_CTV``."""
    declared = str(ds.get("SpecificCharacterSet", "") or "ISO_IR 6")
    codec = pydicom.charset.python_encoding.get(declared.strip() or "ISO_IR 6", "")
    if not codec:  # multi-valued or code-extension sets: write UTF-8
        return "ISO_IR 192"

    def fits(item: Dataset) -> bool:
        # elements() leaves copied elements raw: only sequences and text are decoded, never
        # the contour data (decoding every copied ContourData cost ~0.8 s per written file)
        for raw in item.elements():
            vr = raw.VR if raw.VR not in (None, "UN") else _dictionary_vr(raw.tag)
            if vr not in _TEXT_VRS and vr != "SQ" and vr in _KNOWN_VRS:
                continue  # an unknown (corrupt) VR is decoded below, which raises
            elem = item[raw.tag]
            if elem.VR == "SQ":
                if not all(fits(sub) for sub in elem.value):
                    return False
            elif elem.VR in _TEXT_VRS and elem.value is not None:
                values = elem.value if elem.VM > 1 else [elem.value]
                try:
                    for v in values:
                        str(v).encode(codec)
                except UnicodeEncodeError:
                    return False
        return True

    return declared if fits(ds) else "ISO_IR 192"


def _as_dataset(source) -> Dataset:
    if isinstance(source, Dataset):
        return source
    return read_dataset(source, stop_before_pixels=True)


def _check_image(image: Image, ct: Dataset) -> None:
    if not image.grid.is_axial:
        raise GeometryError(
            "RTSTRUCT contours are written on axial CT slices only", path=image.source or None
        )
    if len(image.sop_instance_uids) != image.grid.shape[0]:
        raise InputError(
            f"the CT image lists {len(image.sop_instance_uids)} slice SOPInstanceUIDs for "
            f"{image.grid.shape[0]} slices",
            path=image.source or None,
        )
    if image.series_instance_uid and str(ct.get("SeriesInstanceUID", "")) not in (
        "",
        image.series_instance_uid,
    ):
        raise GeometryError(
            "the CT header is not from the image's series (SeriesInstanceUID differs)",
            path=image.source or None,
        )
    frame = str(ct.get("FrameOfReferenceUID", ""))
    if image.frame_of_reference_uid and frame and frame != image.frame_of_reference_uid:
        raise GeometryError(
            "the CT header's FrameOfReferenceUID differs from the image's",
            path=image.source or None,
        )
    if not (image.frame_of_reference_uid or frame):
        raise InputError("the CT has no FrameOfReferenceUID", path=image.source or None)
    if not (image.study_instance_uid or "StudyInstanceUID" in ct):
        raise InputError("the CT has no StudyInstanceUID", path=image.source or None)


def _referenced_frame(image: Image, frame_uid: str) -> Dataset:
    images = []
    for uid in image.sop_instance_uids:
        ref = Dataset()
        ref.ReferencedSOPClassUID = image.sop_class_uid
        ref.ReferencedSOPInstanceUID = uid
        images.append(ref)
    series = Dataset()
    series.SeriesInstanceUID = image.series_instance_uid
    series.ContourImageSequence = DicomSequence(images)
    study = Dataset()
    study.ReferencedSOPClassUID = STUDY_COMPONENT_MANAGEMENT
    study.ReferencedSOPInstanceUID = image.study_instance_uid
    study.RTReferencedSeriesSequence = DicomSequence([series])
    frame = Dataset()
    frame.FrameOfReferenceUID = frame_uid
    frame.RTReferencedStudySequence = DicomSequence([study])
    return frame


def _roi_numbers(structures: Sequence[Structure], taken: set[int]) -> list[int]:
    """ROINumber of each new structure: its own when given (it must be unique among the
    new ones; one taken by a copied ROI is replaced), else the next free number."""
    numbers: list[int | None] = []
    mine: set[int] = set()
    for s in structures:
        if s.number is not None and s.number in mine:
            raise InputError(f"ROI number {s.number} is used twice", structure=s.name)
        if s.number is not None:
            mine.add(int(s.number))
        numbers.append(None if s.number is None or s.number in taken else int(s.number))
    used = set(taken) | {n for n in numbers if n is not None}
    out = []
    for n in numbers:
        if n is None:
            n = max(used, default=0) + 1
            used.add(n)
        out.append(n)
    return out


def _check_structure(structure: Structure, frame_uid: str, used_names: set[str]) -> None:
    name = structure.name
    if not name.strip() or len(name) > 64 or "\\" in name:
        raise InputError(
            f"ROIName must have 1 to 64 characters and no backslash, got {name!r}",
            structure=name,
        )
    if name.strip().lower() in used_names:
        raise InputError("ROI name is used twice in the structure set", structure=name)
    if structure.interpreted_type not in INTERPRETED_TYPES:
        raise InputError(
            f"RTROIInterpretedType must be a DICOM defined term (EXTERNAL, GTV, CTV, PTV, "
            f"ORGAN, ...), got {structure.interpreted_type!r}",
            structure=name,
        )
    if structure.frame_of_reference_uid and structure.frame_of_reference_uid != frame_uid:
        raise GeometryError(
            "structure is on another frame of reference than the CT", structure=name
        )
    if not structure.contours:
        raise ContourError("structure has no contours", structure=name)


def _contour_item(contour, image: Image, slice_z: np.ndarray, structure: Structure) -> Dataset:
    """One ContourSequence item: the contour on its CT slice, checked and encoded."""
    gtype = contour.geometric_type
    if gtype not in GEOMETRIC_TYPES:
        raise InputError(f"unknown ContourGeometricType {gtype!r}", structure=structure.name)
    pts = np.asarray(contour.points_mm, dtype=float)
    if len(pts) == 0 or not np.all(np.isfinite(pts)):
        raise ContourError("contour with no or non-finite points", structure=structure.name)
    z = pts[:, 2]
    if np.ptp(z) > PLANE_TOLERANCE_MM:
        raise GeometryError(
            f"contour is not on one axial plane (z spans {np.ptp(z):.3f} mm)",
            structure=structure.name,
        )
    k = int(np.argmin(np.abs(slice_z - z.mean())))
    if abs(slice_z[k] - z.mean()) > PLANE_TOLERANCE_MM:
        raise GeometryError(
            f"contour at z={z.mean():.3f} mm is not on a CT slice", structure=structure.name
        )
    pts = np.column_stack([pts[:, :2], np.full(len(pts), slice_z[k])])
    if gtype == "CLOSED_PLANAR":
        pts = pts[np.any(pts != np.roll(pts, 1, axis=0), axis=1)] if len(pts) > 1 else pts
        if len(pts) < 3:
            raise ContourError(
                f"closed contour with {len(pts)} distinct point(s) at z={slice_z[k]:.2f} mm",
                structure=structure.name,
            )
        crossing = self_intersection(pts[:, :2])
        if crossing is not None:
            raise ContourError(
                f"self-intersecting contour at z={slice_z[k]:.2f} mm (edges {crossing})",
                structure=structure.name,
            )
    values = _encode(pts)
    if _encoded_bytes(values) > MAX_ELEMENT_BYTES:
        pts, values = _fit_element(pts, values, structure, slice_z[k], gtype)
    item = Dataset()
    ref = Dataset()
    ref.ReferencedSOPClassUID = image.sop_class_uid
    ref.ReferencedSOPInstanceUID = image.sop_instance_uids[k]
    item.ContourImageSequence = DicomSequence([ref])
    item.ContourGeometricType = gtype
    item.NumberOfContourPoints = int(len(pts))
    item.ContourData = values
    return item


def _encode(points: np.ndarray) -> list[str]:
    """Coordinates as DS strings of at most ``COORDINATE_DECIMALS`` decimals (<= 16 chars)."""
    v = np.round(np.asarray(points, dtype=float).ravel(), COORDINATE_DECIMALS)
    if np.any(np.abs(v) >= 1e9):
        raise GeometryError("contour coordinates beyond 1e9 mm")
    v[v == 0] = 0.0  # no "-0"
    s = np.char.mod(f"%.{COORDINATE_DECIMALS}f", v)
    s = np.char.rstrip(np.char.rstrip(s, "0"), ".")
    return s.tolist()


def _encoded_bytes(values: list[str]) -> int:
    n = sum(len(v) for v in values) + max(len(values) - 1, 0)
    return n + (n % 2)


def _fit_element(pts, values, structure, z, gtype):
    """Decimate a contour until its ContourData fits one Explicit VR element."""
    if gtype != "CLOSED_PLANAR":
        raise ContourError(
            f"{gtype} contour at z={z:.2f} mm is too long for one DICOM element",
            structure=structure.name,
        )
    original = pts
    while _encoded_bytes(values) > MAX_ELEMENT_BYTES:
        target = int(len(pts) * MAX_ELEMENT_BYTES / _encoded_bytes(values) * 0.98)
        pts = decimate(pts, target)
        values = _encode(pts)
    if edges_meet(pts):
        raise ContourError(
            f"contour at z={z:.2f} mm ({len(original)} points) is too long for one DICOM "
            "element and cannot be simplified without crossing edges",
            structure=structure.name,
        )
    return pts, values


def _color(structure: Structure, n: int) -> tuple[int, int, int]:
    if structure.color is not None:
        rgb = tuple(int(v) for v in structure.color)
        if len(rgb) != 3 or min(rgb) < 0 or max(rgb) > 255:
            raise InputError(
                f"ROIDisplayColor must be three values 0-255, got {structure.color}",
                structure=structure.name,
            )
        return rgb
    return DEFAULT_COLORS.get(structure.interpreted_type, _ORGAN_PALETTE[n % len(_ORGAN_PALETTE)])


def _copied_rois(source, frame_uid: str, series_uid: str):
    """Deep copies of the ROI items of an existing structure set on frame ``frame_uid``.

    A frame the source declares for CT series ``series_uid`` itself (rt-utils before 1.2.6
    wrote a new random frame UID) is rewritten to ``frame_uid``."""
    ds = _as_dataset(source)
    where = source if not isinstance(source, Dataset) else None
    if str(ds.get("SOPClassUID", "")) != RT_STRUCTURE_SET_STORAGE:
        raise InputError("copy_rois_from is not an RT Structure Set", path=where)
    same_series_frames = {
        str(ref.get("FrameOfReferenceUID", ""))
        for ref in ds.get("ReferencedFrameOfReferenceSequence", [])
        for study in ref.get("RTReferencedStudySequence", [])
        for series in study.get("RTReferencedSeriesSequence", [])
        if str(series.get("SeriesInstanceUID", "")) == series_uid
    }
    ss_rois = [deepcopy(item) for item in ds.get("StructureSetROISequence", [])]
    for item in ss_rois:
        if str(item.get("ReferencedFrameOfReferenceUID", "")) in same_series_frames:
            item.ReferencedFrameOfReferenceUID = frame_uid
        if str(item.get("ReferencedFrameOfReferenceUID", "")) != frame_uid:
            raise GeometryError(
                "ROI is on another frame of reference than the CT; it cannot be copied",
                path=where,
                structure=str(item.get("ROIName", "")),
            )
    roi_contours = [deepcopy(item) for item in ds.get("ROIContourSequence", [])]
    observations = [deepcopy(item) for item in ds.get("RTROIObservationsSequence", [])]
    return ss_rois, roi_contours, observations


def _safe_filename(name: str) -> str:
    """A safe file name (:func:`~rtplan.io.output.safe_filename`) ending in ``.dcm``."""
    safe = safe_filename(name, default="RS")
    return safe if safe.lower().endswith(".dcm") else f"{safe}.dcm"


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False
