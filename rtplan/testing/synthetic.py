"""Synthetic DICOM-RT datasets for tests, benchmarks and the sample patients.

These builders turn arrays and :class:`~rtplan.grid.Grid` objects into valid pydicom
datasets (CT Image, RT Dose, RT Plan and a low-level RT Structure Set), so tests can make
exactly the odd case they need (a missing slice, decreasing GridFrameOffsetVector, a keyhole
contour, ...) without committing files.  The proper structure-set writer (masks or
structures -> RTSTRUCT referencing a CT) is :mod:`rtplan.io.rtstruct_writer`;
:func:`rtstruct_dataset_from_contours` here writes whatever contours it is given, verbatim,
so readers can be tested on malformed input too.

Conventions
-----------
* Geometry comes from a :class:`~rtplan.grid.Grid` (LPS mm, array order ``[k, j, i]``).
  ImageOrientationPatient is ``direction[:, 2]`` (row direction: column index ``i`` grows)
  followed by ``direction[:, 1]`` (column direction: row index ``j`` grows);
  PixelSpacing is ``[spacing_mm[1], spacing_mm[2]]`` = ``[row spacing, column spacing]``;
  ImagePositionPatient of slice ``k`` is ``grid.index_to_world([k, 0, 0])`` (voxel centre).
* Every decimal string (DS) is at most 16 characters (:func:`ds_str`).
* Files are written by :func:`write_datasets` atomically: to a temporary file in the
  target folder, then :func:`os.replace`.

Example
-------
>>> import numpy as np
>>> grid = cardinal_grid((2, 3, 4), (0.0, 0.0, 0.0), (2.5, 1.0, 1.0), "HFS")
>>> cts = ct_series_datasets(np.zeros(grid.shape), grid, patient_id="P1", patient_name="Test^One")
>>> [float(ds.ImagePositionPatient[2]) for ds in cts]
[0.0, 2.5]
"""

from __future__ import annotations

import datetime
import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import Tag
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

from rtplan.errors import GeometryError, InputError
from rtplan.grid import Grid
from rtplan.io.output import safe_filename, write_atomic

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
RT_DOSE_STORAGE = "1.2.840.10008.5.1.4.1.1.481.2"
RT_STRUCTURE_SET_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
RT_PLAN_STORAGE = "1.2.840.10008.5.1.4.1.1.481.5"
STUDY_COMPONENT_MANAGEMENT = "1.2.840.10008.3.1.2.3.1"

#: ImageOrientationPatient (row cosine, column cosine) of the eight cardinal patient
#: positions (DICOM PS3.3 C.7.3.1.1.2 / C.7.6.2.1.1).
PATIENT_POSITION_IOP: dict[str, tuple[float, ...]] = {
    "HFS": (1, 0, 0, 0, 1, 0),
    "HFP": (-1, 0, 0, 0, -1, 0),
    "FFS": (-1, 0, 0, 0, 1, 0),
    "FFP": (1, 0, 0, 0, -1, 0),
    "HFDL": (0, -1, 0, 1, 0, 0),
    "HFDR": (0, 1, 0, -1, 0, 0),
    "FFDL": (0, 1, 0, 1, 0, 0),
    "FFDR": (0, -1, 0, -1, 0, 0),
}

_MANUFACTURER = "rtplan synthetic"


def cardinal_grid(
    shape: Sequence[int],
    origin_mm: Sequence[float],
    spacing_mm: Sequence[float],
    patient_position: str = "HFS",
    slice_offsets_mm: Sequence[float] | None = None,
) -> Grid:
    """A grid whose axes follow a scanner's cardinal orientation for ``patient_position``.

    Parameters
    ----------
    shape, origin_mm, spacing_mm : sequences of three
        As in :class:`~rtplan.grid.Grid` (array order ``[k, j, i]``).
    patient_position : str
        One of :data:`PATIENT_POSITION_IOP` (HFS, HFP, FFS, FFP, HFDL, HFDR, FFDL, FFDR).
    slice_offsets_mm : sequence of float, optional
        Non-uniform slice positions (see :class:`~rtplan.grid.Grid`).

    Returns
    -------
    Grid
        ``direction[:, 2]`` = row cosine, ``direction[:, 1]`` = column cosine and
        ``direction[:, 0]`` = their cross product (the slice normal, along which ``k`` grows).

    Example
    -------
    >>> g = cardinal_grid((1, 1, 1), (0, 0, 0), (1, 1, 1), "FFS")
    >>> g.direction_matrix[:, 0].tolist()  # feet first: slice index grows towards the feet
    [0.0, 0.0, -1.0]
    """
    try:
        iop = np.asarray(PATIENT_POSITION_IOP[patient_position], dtype=float)
    except KeyError:
        raise InputError(
            f"unknown patient position {patient_position!r}; "
            f"expected one of {', '.join(PATIENT_POSITION_IOP)}"
        ) from None
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    direction = np.stack([normal, col, row], axis=1)
    return Grid(
        tuple(shape),
        tuple(origin_mm),
        tuple(spacing_mm),
        tuple(map(tuple, direction)),
        None if slice_offsets_mm is None else tuple(slice_offsets_mm),
    )


def ds_str(value: float) -> str:
    """``value`` as a DICOM decimal string (DS) of at most 16 characters.

    Ten significant digits (``%.10g``: at most 16 characters for exponents of two
    digits), fewer only when needed.  :func:`pydicom.valuerep.format_number_as_ds` is not
    used: it returns 17 characters when rounding carries into a new digit
    (``-9.999999999999995`` -> ``'-10.0000000000000'``, pydicom 3.0.2).

    >>> ds_str(-9.999999999999995), ds_str(19.034504652023315), ds_str(-1.2345678912345e-05)
    ('-10', '19.03450465', '-1.234567891e-05')
    """
    v = float(value)
    if not np.isfinite(v):
        raise InputError(f"cannot write {v} as a DICOM decimal string")
    for digits in range(10, 0, -1):
        text = f"{v:.{digits}g}"
        if len(text) <= 16:
            return text
    raise InputError(f"cannot write {v} in 16 characters")


def ds_list(values: Iterable[float]) -> list[str]:
    """Values as DICOM decimal strings of at most 16 characters each (see :func:`ds_str`)."""
    arr = np.asarray(values, dtype=float).ravel()
    if not np.all(np.isfinite(arr)):
        raise InputError("cannot write non-finite values as DICOM decimal strings")
    out = [f"{v:.10g}" for v in arr.tolist()]
    return [t if len(t) <= 16 else ds_str(v) for t, v in zip(out, arr.tolist(), strict=True)]


def _set_ds_fast(item: Dataset, keyword: str, strings: list[str]) -> None:
    """Set a long multi-valued DS attribute from ready strings, as raw bytes.

    pydicom converts every DS value to a validated ``DSfloat`` (~10 us each), which makes
    large contour sets slow to build and write; a raw element of Explicit VR Little Endian
    bytes is written as it is.  The values must already be valid DS strings (:func:`ds_list`).
    """
    text = "\\".join(strings)
    if len(text) % 2:
        text += " "
    raw = text.encode("ascii")
    tag = Tag(tag_for_keyword(keyword))
    item[tag] = RawDataElement(tag, "DS", len(raw), raw, 0, False, True)
    item.set_original_encoding(False, True, "iso8859")


def _geometry_attributes(ds: Dataset, grid: Grid) -> None:
    d = grid.direction_matrix
    ds.ImageOrientationPatient = ds_list(np.concatenate([d[:, 2], d[:, 1]]))
    ds.PixelSpacing = ds_list([grid.spacing_mm[1], grid.spacing_mm[2]])
    ds.Rows = grid.shape[1]
    ds.Columns = grid.shape[2]


def _slice_normal(grid: Grid) -> np.ndarray:
    d = grid.direction_matrix
    return np.cross(d[:, 2], d[:, 1])


@dataclass
class _Common:
    patient_id: str
    patient_name: str
    study_uid: str
    frame_of_reference_uid: str
    series_uid: str
    study_date: str
    study_time: str


def _common(
    patient_id,
    patient_name,
    study_uid,
    frame_of_reference_uid,
    series_uid,
    when: datetime.datetime | None,
) -> _Common:
    when = when or datetime.datetime(2024, 1, 15, 9, 30, 0)
    return _Common(
        patient_id=patient_id,
        patient_name=patient_name,
        study_uid=study_uid or generate_uid(),
        frame_of_reference_uid=frame_of_reference_uid or generate_uid(),
        series_uid=series_uid or generate_uid(),
        study_date=when.strftime("%Y%m%d"),
        study_time=when.strftime("%H%M%S"),
    )


def _base(
    sop_class_uid: str,
    modality: str,
    c: _Common,
    *,
    series_number: int,
    sop_instance_uid: str | None = None,
) -> Dataset:
    """Patient, General Study, (RT/General) Series, Frame of Reference, Equipment, SOP Common."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = sop_instance_uid or generate_uid()
    ds.file_meta = _file_meta(ds)
    ds.InstanceCreationDate = c.study_date
    ds.InstanceCreationTime = c.study_time
    ds.StudyDate = c.study_date
    ds.StudyTime = c.study_time
    ds.AccessionNumber = ""
    ds.Modality = modality
    ds.Manufacturer = _MANUFACTURER
    ds.ReferringPhysicianName = ""
    ds.PatientName = c.patient_name
    ds.PatientID = c.patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.StudyInstanceUID = c.study_uid
    ds.SeriesInstanceUID = c.series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = series_number
    ds.FrameOfReferenceUID = c.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    return ds


def ct_series_datasets(
    values_hu,
    grid: Grid,
    *,
    patient_id: str,
    patient_name: str,
    study_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    series_uid: str | None = None,
    patient_position: str = "HFS",
    rescale_slope: float = 1.0,
    rescale_intercept: float = -1024.0,
    series_number: int = 1,
    when: datetime.datetime | None = None,
) -> list[Dataset]:
    """One CT Image Storage dataset per slice of ``values_hu``.

    Parameters
    ----------
    values_hu : array_like, shape ``grid.shape``
        Hounsfield units, indexed ``[k, j, i]``.
    grid : Grid
        Geometry; may have non-uniform ``slice_offsets_mm``.  Its slice axis must be
        perpendicular to the image plane (no gantry tilt).
    patient_id, patient_name : str
        Patient identification (PatientName in DICOM PN form, e.g. ``"Doe^Jane"``).
    study_uid, frame_of_reference_uid, series_uid : str, optional
        New UIDs when not given.
    patient_position : str
        Written to PatientPosition (the geometry itself comes from ``grid``; see
        :func:`cardinal_grid`).
    rescale_slope, rescale_intercept : float
        Stored values are ``round((HU - intercept) / slope)`` as unsigned 16-bit integers.

    Returns
    -------
    list of pydicom.Dataset
        In slice order ``k``; InstanceNumber ``k + 1``; SliceLocation = patient z.
    """
    values = np.asarray(values_hu, dtype=float)
    if values.shape != grid.shape:
        raise GeometryError(f"CT values shape {values.shape} does not match grid {grid.shape}")
    stored = np.rint((values - rescale_intercept) / rescale_slope)
    if stored.min() < 0 or stored.max() > 65535:
        raise InputError("CT values do not fit 16 unsigned bits with this slope/intercept")
    stored = stored.astype(np.uint16)
    c = _common(patient_id, patient_name, study_uid, frame_of_reference_uid, series_uid, when)
    k = np.arange(grid.shape[0], dtype=float)
    positions = grid.index_to_world(np.stack([k, 0 * k, 0 * k], axis=1))
    out = []
    for n in range(grid.shape[0]):
        ds = _base(CT_IMAGE_STORAGE, "CT", c, series_number=series_number)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.SeriesDate = c.study_date
        ds.SeriesTime = c.study_time
        ds.AcquisitionNumber = 1
        ds.InstanceNumber = n + 1
        ds.PatientPosition = patient_position
        ds.Laterality = ""
        ds.KVP = "120"
        _geometry_attributes(ds, grid)
        ds.ImagePositionPatient = ds_list(positions[n])
        ds.SliceLocation = ds_str(positions[n][2])
        ds.SliceThickness = ds_str(float(grid.slice_thickness_mm[n]))
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.RescaleIntercept = ds_str(rescale_intercept)
        ds.RescaleSlope = ds_str(rescale_slope)
        ds.RescaleType = "HU"
        ds.WindowCenter = "40"
        ds.WindowWidth = "400"
        ds.PixelData = stored[n].tobytes()
        out.append(ds)
    return out


@dataclass(frozen=True)
class SyntheticDVH:
    """A DVH to embed in an RTDOSE's DVHSequence.

    ``bin_widths`` and ``volumes`` are written verbatim into DVHData (pairs D1 V1 D2 V2 ...),
    in the units of the file: bin widths are in Gy x ``DVHDoseScaling`` (the reader multiplies
    them by ``dose_scaling``), volumes in ``volume_units``.
    """

    roi_number: int
    bin_widths: Sequence[float]
    volumes: Sequence[float]
    dose_scaling: float = 1.0
    dvh_type: str = "CUMULATIVE"
    volume_units: str = "CM3"
    dose_units: str = "GY"
    min_dose: float | None = None
    max_dose: float | None = None
    mean_dose: float | None = None


def rtdose_dataset(
    values_gy,
    grid: Grid,
    *,
    frame_of_reference_uid: str,
    study_uid: str,
    patient_id: str = "",
    patient_name: str = "",
    referenced_plan_uid: str | None = None,
    summation_type: str = "PLAN",
    referenced_fraction_group: int = 1,
    referenced_beam_number: int | None = None,
    gfov_mode: str = "relative",
    reverse_frames: bool = False,
    bits: int = 16,
    dose_units: str = "GY",
    dose_type: str = "PHYSICAL",
    dvhs: Sequence[SyntheticDVH] = (),
    referenced_structure_set_uid: str | None = None,
    series_uid: str | None = None,
    when: datetime.datetime | None = None,
) -> Dataset:
    """An RT Dose Storage dataset (multi-frame: one frame per grid slice).

    Parameters
    ----------
    values_gy : array_like, shape ``grid.shape``
        Dose in Gy (or relative units when ``dose_units="RELATIVE"``), ``[k, j, i]``.
    grid : Grid
        Dose grid; its slice axis must be the image normal (``row x column``) or its opposite.
    referenced_plan_uid : str, optional
        SOPInstanceUID of the RTPLAN, written to ReferencedRTPlanSequence.
    summation_type : str
        DoseSummationType (PLAN, FRACTION, BEAM, ...).  For FRACTION and BEAM the plan
        reference carries ReferencedFractionGroupSequence (and ReferencedBeamSequence with
        ``referenced_beam_number`` for BEAM).
    gfov_mode : {"relative", "absolute"}
        GridFrameOffsetVector relative to ImagePositionPatient along the image normal
        (first value 0), or absolute patient z of each frame (only for the HFS orientation
        ``1\\0\\0\\0\\1\\0``, PS3.3 C.8.8.3.2).
    reverse_frames : bool
        Store the frames in reverse slice order, so the offsets decrease from the first
        frame (which is then ``grid`` slice ``k = n-1``).
    bits : {16, 32}
        BitsAllocated of the unsigned stored values.  DoseGridScaling is chosen so the
        maximum dose maps near the top of the range; stored = round(dose / scaling).
        16 by default: dciodvfy (dicom3tools 1.00) aborts on 32-bit pixel data.
    dose_units : {"GY", "RELATIVE"}
    dvhs : sequence of SyntheticDVH
        Written to DVHSequence (with ReferencedStructureSetSequence).

    Returns
    -------
    pydicom.Dataset
    """
    values = np.asarray(values_gy, dtype=float)
    if values.shape != grid.shape:
        raise GeometryError(f"dose values shape {values.shape} does not match grid {grid.shape}")
    if np.any(values < 0):
        raise InputError("dose values must not be negative")
    if bits not in (16, 32):
        raise InputError(f"bits must be 16 or 32, got {bits}")
    normal = _slice_normal(grid)
    axis0 = grid.direction_matrix[:, 0]
    sign = float(np.dot(axis0, normal))
    if abs(abs(sign) - 1.0) > 1e-6:
        raise GeometryError("dose grid slice axis is not perpendicular to the image plane")
    order = np.arange(grid.shape[0])[::-1] if reverse_frames else np.arange(grid.shape[0])
    positions = grid.index_to_world(np.stack([order, 0 * order, 0 * order], axis=1).astype(float))
    offsets = (positions - positions[0]) @ normal
    if gfov_mode == "absolute":
        iop = np.concatenate([grid.direction_matrix[:, 2], grid.direction_matrix[:, 1]])
        if not np.allclose(iop, [1, 0, 0, 0, 1, 0]):
            raise GeometryError("absolute GridFrameOffsetVector needs orientation 1\\0\\0\\0\\1\\0")
        offsets = positions[:, 2]
    elif gfov_mode != "relative":
        raise InputError(f"gfov_mode must be 'relative' or 'absolute', got {gfov_mode!r}")

    top = 65535 if bits == 16 else 4_000_000_000
    vmax = float(values.max())
    scaling = float(ds_str(vmax / top)) if vmax > 0 else 1.0
    if vmax > 0 and vmax / scaling > (2**bits - 1):
        scaling = float(ds_str(scaling * 1.0001))
    stored = np.rint(values[order] / scaling).astype(np.uint16 if bits == 16 else np.uint32)

    c = _common(patient_id, patient_name, study_uid, frame_of_reference_uid, series_uid, when)
    ds = _base(RT_DOSE_STORAGE, "RTDOSE", c, series_number=1)
    ds.OperatorsName = ""
    ds.InstanceNumber = 1
    _geometry_attributes(ds, grid)
    ds.ImagePositionPatient = ds_list(positions[0])
    ds.SliceThickness = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.NumberOfFrames = grid.shape[0]
    ds.FrameIncrementPointer = 0x3004000C
    ds.DoseUnits = dose_units
    ds.DoseType = dose_type
    ds.DoseSummationType = summation_type
    ds.GridFrameOffsetVector = ds_list(offsets)
    ds.DoseGridScaling = ds_str(scaling)
    if referenced_plan_uid:
        ref = Dataset()
        ref.ReferencedSOPClassUID = RT_PLAN_STORAGE
        ref.ReferencedSOPInstanceUID = referenced_plan_uid
        if summation_type in ("FRACTION", "BEAM"):
            fg = Dataset()
            fg.ReferencedFractionGroupNumber = referenced_fraction_group
            if summation_type == "BEAM":
                if referenced_beam_number is None:
                    raise InputError("a BEAM dose needs referenced_beam_number")
                beam = Dataset()
                beam.ReferencedBeamNumber = referenced_beam_number
                fg.ReferencedBeamSequence = DicomSequence([beam])
            ref.ReferencedFractionGroupSequence = DicomSequence([fg])
        ds.ReferencedRTPlanSequence = DicomSequence([ref])
    if dvhs:
        if not referenced_structure_set_uid:
            raise InputError("embedded DVHs need referenced_structure_set_uid")
        ss = Dataset()
        ss.ReferencedSOPClassUID = RT_STRUCTURE_SET_STORAGE
        ss.ReferencedSOPInstanceUID = referenced_structure_set_uid
        ds.ReferencedStructureSetSequence = DicomSequence([ss])
        ds.DVHNormalizationDoseValue = ds_str(vmax)
        ds.DVHSequence = DicomSequence([_dvh_item(d) for d in dvhs])
    ds.PixelData = stored.tobytes()
    return ds


def _dvh_item(d: SyntheticDVH) -> Dataset:
    widths = np.asarray(d.bin_widths, dtype=float)
    vols = np.asarray(d.volumes, dtype=float)
    if widths.shape != vols.shape:
        raise InputError("DVH bin widths and volumes must have the same length")
    item = Dataset()
    roi = Dataset()
    roi.ReferencedROINumber = d.roi_number
    roi.DVHROIContributionType = "INCLUDED"
    item.DVHReferencedROISequence = DicomSequence([roi])
    item.DVHType = d.dvh_type
    item.DoseUnits = d.dose_units
    item.DoseType = "PHYSICAL"
    item.DVHDoseScaling = ds_str(d.dose_scaling)
    item.DVHVolumeUnits = d.volume_units
    item.DVHNumberOfBins = len(widths)
    _set_ds_fast(item, "DVHData", ds_list(np.stack([widths, vols], axis=1)))
    for keyword, value in (
        ("DVHMinimumDose", d.min_dose),
        ("DVHMaximumDose", d.max_dose),
        ("DVHMeanDose", d.mean_dose),
    ):
        if value is not None:
            setattr(item, keyword, ds_str(value))
    return item


@dataclass(frozen=True)
class SyntheticBeam:
    """A beam for :func:`rtplan_dataset`: name, dose to the prescription point per fraction
    (Gy, BeamDose) and gantry angle (degrees)."""

    name: str
    dose_gy: float | None = None
    gantry_angle: float = 0.0
    meterset_mu: float = 100.0


def rtplan_dataset(
    label: str,
    fractions: int,
    prescription_gy: float | None,
    beams: Sequence[SyntheticBeam] = (),
    *,
    patient_id: str,
    patient_name: str,
    study_uid: str,
    frame_of_reference_uid: str,
    referenced_structure_set_uid: str,
    target_roi_number: int | None = None,
    plan_name: str = "",
    isocenter_mm: Sequence[float] = (0.0, 0.0, 0.0),
    extra_fraction_groups: Sequence[tuple[int, Sequence[SyntheticBeam]]] = (),
    series_uid: str | None = None,
    when: datetime.datetime | None = None,
) -> Dataset:
    """An RT Plan Storage dataset: label, fraction group(s), prescription, beams.

    Parameters
    ----------
    label : str
        RTPlanLabel (at most 16 characters).
    fractions : int
        NumberOfFractionsPlanned of fraction group 1.
    prescription_gy : float or None
        Total target prescription dose: one DoseReferenceSequence item of type TARGET with
        TargetPrescriptionDose (Gy).  ``None`` writes no dose reference.
    beams : sequence of SyntheticBeam
        Beams of fraction group 1 (static 6 MV photon beams with two control points).
    referenced_structure_set_uid : str
        SOPInstanceUID of the RTSTRUCT (ReferencedStructureSetSequence).
    target_roi_number : int, optional
        ReferencedROINumber of the dose reference (VOLUME type); a SITE reference otherwise.
    extra_fraction_groups : sequence of (fractions, beams)
        Further fraction groups (numbers 2, 3, ...), e.g. a boost.

    Returns
    -------
    pydicom.Dataset
    """
    if len(label) > 16:
        raise InputError(f"RTPlanLabel {label!r} is longer than 16 characters")
    c = _common(patient_id, patient_name, study_uid, frame_of_reference_uid, series_uid, when)
    ds = _base(RT_PLAN_STORAGE, "RTPLAN", c, series_number=1)
    ds.OperatorsName = ""
    ds.RTPlanLabel = label
    ds.RTPlanName = plan_name
    ds.RTPlanDate = c.study_date
    ds.RTPlanTime = c.study_time
    ds.RTPlanGeometry = "PATIENT"
    ss = Dataset()
    ss.ReferencedSOPClassUID = RT_STRUCTURE_SET_STORAGE
    ss.ReferencedSOPInstanceUID = referenced_structure_set_uid
    ds.ReferencedStructureSetSequence = DicomSequence([ss])
    if prescription_gy is not None:
        ref = Dataset()
        ref.DoseReferenceNumber = 1
        ref.DoseReferenceUID = generate_uid()
        ref.DoseReferenceType = "TARGET"
        if target_roi_number is not None:
            ref.DoseReferenceStructureType = "VOLUME"
            ref.ReferencedROINumber = target_roi_number
        else:
            ref.DoseReferenceStructureType = "SITE"
        ref.DoseReferenceDescription = "PTV"
        ref.TargetPrescriptionDose = ds_str(prescription_gy)
        ds.DoseReferenceSequence = DicomSequence([ref])

    groups = [(fractions, list(beams)), *[(f, list(b)) for f, b in extra_fraction_groups]]
    all_beams: list[SyntheticBeam] = []
    fg_items = []
    for number, (n_fx, group_beams) in enumerate(groups, start=1):
        fg = Dataset()
        fg.FractionGroupNumber = number
        fg.NumberOfFractionsPlanned = n_fx
        fg.NumberOfBeams = len(group_beams)
        fg.NumberOfBrachyApplicationSetups = 0
        refs = []
        for beam in group_beams:
            all_beams.append(beam)
            rb = Dataset()
            rb.ReferencedBeamNumber = len(all_beams)
            if beam.dose_gy is not None:
                rb.BeamDose = ds_str(beam.dose_gy)
            rb.BeamMeterset = ds_str(beam.meterset_mu)
            refs.append(rb)
        if refs:
            fg.ReferencedBeamSequence = DicomSequence(refs)
        fg_items.append(fg)
    ds.FractionGroupSequence = DicomSequence(fg_items)

    setup = Dataset()
    setup.PatientSetupNumber = 1
    setup.PatientPosition = "HFS"
    ds.PatientSetupSequence = DicomSequence([setup])
    if all_beams:
        ds.BeamSequence = DicomSequence(
            [_beam_item(n, b, isocenter_mm) for n, b in enumerate(all_beams, start=1)]
        )
    return ds


def _beam_item(number: int, beam: SyntheticBeam, isocenter_mm) -> Dataset:
    item = Dataset()
    item.BeamNumber = number
    item.BeamName = beam.name
    item.BeamType = "STATIC"
    item.RadiationType = "PHOTON"
    item.TreatmentMachineName = "SYNTHETIC"
    item.PrimaryDosimeterUnit = "MU"
    item.SourceAxisDistance = "1000"
    item.TreatmentDeliveryType = "TREATMENT"
    item.ReferencedPatientSetupNumber = 1
    item.NumberOfWedges = 0
    item.NumberOfCompensators = 0
    item.NumberOfBoli = 0
    item.NumberOfBlocks = 0
    item.FinalCumulativeMetersetWeight = "1"
    jaws = []
    for kind in ("ASYMX", "ASYMY"):
        dev = Dataset()
        dev.RTBeamLimitingDeviceType = kind
        dev.NumberOfLeafJawPairs = 1
        jaws.append(dev)
    item.BeamLimitingDeviceSequence = DicomSequence(jaws)
    cp0 = Dataset()
    cp0.ControlPointIndex = 0
    cp0.NominalBeamEnergy = "6"
    cp0.GantryAngle = ds_str(beam.gantry_angle)
    cp0.GantryRotationDirection = "NONE"
    cp0.BeamLimitingDeviceAngle = "0"
    cp0.BeamLimitingDeviceRotationDirection = "NONE"
    cp0.PatientSupportAngle = "0"
    cp0.PatientSupportRotationDirection = "NONE"
    cp0.TableTopEccentricAngle = "0"
    cp0.TableTopEccentricRotationDirection = "NONE"
    cp0.TableTopVerticalPosition = ""
    cp0.TableTopLongitudinalPosition = ""
    cp0.TableTopLateralPosition = ""
    cp0.IsocenterPosition = ds_list(isocenter_mm)
    cp0.CumulativeMetersetWeight = "0"
    positions = []
    for kind in ("ASYMX", "ASYMY"):
        pos = Dataset()
        pos.RTBeamLimitingDeviceType = kind
        pos.LeafJawPositions = ["-50", "50"]
        positions.append(pos)
    cp0.BeamLimitingDevicePositionSequence = DicomSequence(positions)
    cp1 = Dataset()
    cp1.ControlPointIndex = 1
    cp1.CumulativeMetersetWeight = "1"
    item.NumberOfControlPoints = 2
    item.ControlPointSequence = DicomSequence([cp0, cp1])
    return item


@dataclass(frozen=True)
class SyntheticROI:
    """An ROI for :func:`rtstruct_dataset_from_contours`.

    ``contours`` holds ``(N, 3)`` LPS point arrays (CLOSED_PLANAR) or
    ``(points, geometric_type)`` pairs; they are written verbatim, in order.
    """

    name: str
    contours: Sequence = ()
    number: int | None = None
    interpreted_type: str = "ORGAN"
    color: tuple[int, int, int] | None = (255, 0, 0)
    frame_of_reference_uid: str | None = None
    extra: dict = field(default_factory=dict)


def rtstruct_dataset_from_contours(
    rois: Sequence[SyntheticROI],
    *,
    ct_datasets: Sequence[Dataset] | None = None,
    patient_id: str | None = None,
    patient_name: str | None = None,
    study_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    referenced_series_uid: str | None = None,
    label: str = "SYNTHETIC",
    series_uid: str | None = None,
    when: datetime.datetime | None = None,
) -> Dataset:
    """A low-level RT Structure Set holding exactly the contours given (for reader tests).

    Parameters
    ----------
    rois : sequence of SyntheticROI
        ROIs in order; ROINumber defaults to the 1-based position.
    ct_datasets : sequence of pydicom.Dataset, optional
        The referenced CT series: patient, study, frame of reference and series UIDs are
        taken from it, every slice is listed in the referenced series' ContourImageSequence
        and each contour whose plane lies on a slice (within 0.01 mm along the slice normal)
        references that slice.  Contours off every slice reference none.
    patient_id, patient_name, study_uid, frame_of_reference_uid, referenced_series_uid : str
        Used when there is no CT (and override the CT's values when given).

    Returns
    -------
    pydicom.Dataset
    """
    ct = list(ct_datasets or [])
    first = ct[0] if ct else None
    c = _common(
        patient_id if patient_id is not None else (str(first.PatientID) if first else ""),
        patient_name if patient_name is not None else (str(first.PatientName) if first else ""),
        study_uid or (first.StudyInstanceUID if first else None),
        frame_of_reference_uid or (first.FrameOfReferenceUID if first else None),
        series_uid,
        when,
    )
    ref_series = referenced_series_uid or (first.SeriesInstanceUID if first else generate_uid())
    ds = _base(RT_STRUCTURE_SET_STORAGE, "RTSTRUCT", c, series_number=1)
    ds.OperatorsName = ""
    ds.StructureSetLabel = label
    ds.StructureSetDate = c.study_date
    ds.StructureSetTime = c.study_time

    slice_pos = np.array([])
    normal = np.array([0.0, 0.0, 1.0])
    if ct:
        iop = np.asarray(first.ImageOrientationPatient, dtype=float)
        normal = np.cross(iop[:3], iop[3:])
        slice_pos = np.array(
            [np.dot(np.asarray(d.ImagePositionPatient, float), normal) for d in ct]
        )

    def image_ref(d: Dataset) -> Dataset:
        r = Dataset()
        r.ReferencedSOPClassUID = d.SOPClassUID
        r.ReferencedSOPInstanceUID = d.SOPInstanceUID
        return r

    rseries = Dataset()
    rseries.SeriesInstanceUID = ref_series
    rseries.ContourImageSequence = DicomSequence([image_ref(d) for d in ct])
    rstudy = Dataset()
    rstudy.ReferencedSOPClassUID = STUDY_COMPONENT_MANAGEMENT
    rstudy.ReferencedSOPInstanceUID = c.study_uid
    rstudy.RTReferencedSeriesSequence = DicomSequence([rseries])
    rfor = Dataset()
    rfor.FrameOfReferenceUID = c.frame_of_reference_uid
    rfor.RTReferencedStudySequence = DicomSequence([rstudy])
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([rfor])

    ss_rois, roi_contours, observations = [], [], []
    for pos, roi in enumerate(rois, start=1):
        number = roi.number if roi.number is not None else pos
        item = Dataset()
        item.ROINumber = number
        item.ReferencedFrameOfReferenceUID = roi.frame_of_reference_uid or c.frame_of_reference_uid
        item.ROIName = roi.name
        item.ROIGenerationAlgorithm = "MANUAL"
        ss_rois.append(item)

        rc = Dataset()
        rc.ReferencedROINumber = number
        if roi.color is not None:
            rc.ROIDisplayColor = [int(v) for v in roi.color]
        contours = []
        for entry in roi.contours:
            if isinstance(entry, tuple):
                points, gtype = entry
            else:
                points, gtype = entry, "CLOSED_PLANAR"
            pts = np.asarray(points, dtype=float).reshape(-1, 3)
            ci = Dataset()
            if len(ct) and len(pts):
                hit = np.flatnonzero(np.abs(slice_pos - pts[0] @ normal) < 0.01)
                if len(hit):
                    ci.ContourImageSequence = DicomSequence([image_ref(ct[int(hit[0])])])
            ci.ContourGeometricType = gtype
            ci.NumberOfContourPoints = len(pts)
            _set_ds_fast(ci, "ContourData", ds_list(pts))
            contours.append(ci)
        if contours:
            rc.ContourSequence = DicomSequence(contours)
        for keyword, value in roi.extra.items():
            setattr(rc, keyword, value)
        roi_contours.append(rc)

        obs = Dataset()
        obs.ObservationNumber = number
        obs.ReferencedROINumber = number
        obs.RTROIInterpretedType = roi.interpreted_type
        obs.ROIInterpreter = ""
        observations.append(obs)
    ds.StructureSetROISequence = DicomSequence(ss_rois)
    ds.ROIContourSequence = DicomSequence(roi_contours)
    ds.RTROIObservationsSequence = DicomSequence(observations)
    ds.ApprovalStatus = "UNAPPROVED"
    return ds


def _file_meta(ds: Dataset) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return meta


def write_datasets(
    datasets: Sequence[Dataset],
    folder: str | os.PathLike,
    names: Sequence[str] | None = None,
) -> list[Path]:
    """Write datasets as DICOM Part 10 files (Explicit VR Little Endian), atomically.

    Parameters
    ----------
    datasets : sequence of pydicom.Dataset
    folder : path
        Created when missing.
    names : sequence of str, optional
        File names; default ``<Modality>.<SOPInstanceUID>.dcm``.  Every name is passed
        through :func:`safe_filename`.

    Returns
    -------
    list of pathlib.Path
        The files written.  Each is first written to a temporary file in ``folder`` and then
        moved into place with :func:`os.replace`, so a reader never sees a partial file.
    """
    out_dir = Path(folder)
    out_dir.mkdir(parents=True, exist_ok=True)
    if names is not None and len(names) != len(datasets):
        raise InputError("write_datasets: one name per dataset needed")
    paths = []
    for n, ds in enumerate(datasets):
        if names is not None:
            name = safe_filename(names[n])
        else:
            name = safe_filename(f"{ds.Modality}.{ds.SOPInstanceUID}.dcm")
        ds.file_meta = _file_meta(ds)
        target = out_dir / name
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        paths.append(write_atomic(target, buf.getvalue()))
    return paths


@dataclass(frozen=True)
class PhantomPatient:
    """What :func:`write_phantom_patient` wrote, with the truths tests check against."""

    folder: Path
    patient_id: str
    frame_of_reference_uid: str
    study_uid: str
    ct_series_uid: str
    structure_set_uid: str
    plan_uid: str
    ct_paths: tuple[Path, ...]
    rtstruct_path: Path
    plan_path: Path
    dose_paths: tuple[Path, ...]
    #: name -> volume (cc) by hand: polygon area x slice spacing x number of planes
    volumes_cc: dict
    max_dose_gy: float
    fractions: int
    prescription_gy: float


def write_phantom_patient(
    folder: str | os.PathLike,
    *,
    patient_id: str = "PHANTOM01",
    patient_name: str = "Phantom^One",
    patient_position: str = "HFS",
    summation_type: str = "PLAN",
    fractions: int = 25,
    prescription_gy: float = 50.0,
    frame_of_reference_uid: str | None = None,
) -> PhantomPatient:
    """Write a small complete patient (CT, RTSTRUCT, RTPLAN, RTDOSE) with known truths.

    CT: 10 axial slices (2.5 mm), 32 x 32 pixels of 1.5 mm, water (0 HU), in the cardinal
    orientation of ``patient_position``.  Structures (rectangles in x-y, on CT slices):
    ``BODY`` (EXTERNAL) 42 x 42 mm on all 10 slices = 44.1 cc; ``PTV`` 15 x 15 mm on 4
    slices = 2.25 cc; ``Bowel`` a 30 x 30 mm ring with a 10 x 10 mm hole on 2 slices =
    4.0 cc; ``Marker`` one POINT.  Plan: ``fractions`` x two beams, ``prescription_gy``.
    Dose on the CT grid: ``prescription_gy`` x (1.05 at the grid centre falling linearly
    along x), PLAN; or the per-fraction dose (FRACTION); or two BEAM halves (BEAM).

    Files go to ``folder/CT/``, ``folder/RTSTRUCT.dcm``, ``folder/plan/RTPLAN.dcm`` and
    ``folder/dose/*.dcm`` (names need not mean anything to the readers).
    """
    folder = Path(folder)
    grid = cardinal_grid((10, 32, 32), (0, 0, 0), (2.5, 1.5, 1.5), patient_position)
    # centre the grid on the LPS origin, whatever its orientation
    centre = grid.index_to_world([4.5, 15.5, 15.5])
    grid = Grid(grid.shape, tuple(np.asarray(grid.origin_mm) - centre), grid.spacing_mm,
                grid.direction)  # fmt: skip
    cts = ct_series_datasets(
        np.zeros(grid.shape),
        grid,
        patient_id=patient_id,
        patient_name=patient_name,
        patient_position=patient_position,
        frame_of_reference_uid=frame_of_reference_uid,
    )
    study, frame = cts[0].StudyInstanceUID, cts[0].FrameOfReferenceUID
    k = np.arange(grid.shape[0], dtype=float)
    z = np.sort(grid.index_to_world(np.stack([k, 0 * k, 0 * k], axis=1))[:, 2])

    def rect(half_x, half_y, zz):
        return np.array(
            [
                [-half_x, -half_y, zz],
                [half_x, -half_y, zz],
                [half_x, half_y, zz],
                [-half_x, half_y, zz],
            ]
        )

    rois = [
        SyntheticROI("BODY", [rect(21, 21, zz) for zz in z], interpreted_type="EXTERNAL",
                     color=(0, 255, 0)),
        SyntheticROI("PTV", [rect(7.5, 7.5, zz) for zz in z[3:7]], interpreted_type="PTV",
                     color=(255, 0, 0)),
        SyntheticROI("Bowel", [c for zz in z[7:9] for c in (rect(15, 15, zz), rect(5, 5, zz))],
                     interpreted_type="ORGAN", color=(160, 82, 45)),
        SyntheticROI("Marker", [(np.array([[0.0, 0.0, z[5]]]), "POINT")],
                     interpreted_type="MARKER"),
    ]  # fmt: skip
    rtstruct = rtstruct_dataset_from_contours(rois, ct_datasets=cts, label="PHANTOM")
    plan = rtplan_dataset(
        "PHANTOM",
        fractions,
        prescription_gy,
        [
            SyntheticBeam("AP", prescription_gy / fractions / 2),
            SyntheticBeam("PA", prescription_gy / fractions / 2, 180.0),
        ],  # fmt: skip
        patient_id=patient_id,
        patient_name=patient_name,
        study_uid=study,
        frame_of_reference_uid=frame,
        referenced_structure_set_uid=rtstruct.SOPInstanceUID,
        target_roi_number=2,
    )
    kk, jj, ii = np.meshgrid(*(np.arange(n) for n in grid.shape), indexing="ij")
    x = grid.index_to_world(np.stack([kk, jj, ii], axis=-1).reshape(-1, 3))[:, 0]
    total = (prescription_gy * (1.05 - 0.01 * np.abs(x))).reshape(grid.shape)
    common = dict(frame_of_reference_uid=frame, study_uid=study, patient_id=patient_id,
                  patient_name=patient_name, referenced_plan_uid=plan.SOPInstanceUID)  # fmt: skip
    if summation_type == "PLAN":
        doses = [rtdose_dataset(total, grid, **common)]
    elif summation_type == "FRACTION":
        doses = [rtdose_dataset(total / fractions, grid, summation_type="FRACTION", **common)]
    elif summation_type == "BEAM":
        doses = [
            rtdose_dataset(total / 2, grid, summation_type="BEAM", referenced_beam_number=b,
                           **common)
            for b in (1, 2)
        ]  # fmt: skip
    else:
        raise InputError(f"summation_type must be PLAN, FRACTION or BEAM, got {summation_type!r}")
    ct_paths = write_datasets(cts, folder / "CT", [f"slice{n:03d}" for n in range(len(cts))])
    (rs_path,) = write_datasets([rtstruct], folder, ["RTSTRUCT.dcm"])
    (plan_path,) = write_datasets([plan], folder / "plan", ["RTPLAN.dcm"])
    dose_paths = write_datasets(doses, folder / "dose", [f"dose{n}.dcm" for n in range(len(doses))])
    return PhantomPatient(
        folder=folder,
        patient_id=patient_id,
        frame_of_reference_uid=frame,
        study_uid=study,
        ct_series_uid=cts[0].SeriesInstanceUID,
        structure_set_uid=rtstruct.SOPInstanceUID,
        plan_uid=plan.SOPInstanceUID,
        ct_paths=tuple(ct_paths),
        rtstruct_path=rs_path,
        plan_path=plan_path,
        dose_paths=tuple(dose_paths),
        volumes_cc={
            "BODY": 42 * 42 * 2.5 * 10 / 1000,
            "PTV": 15 * 15 * 2.5 * 4 / 1000,
            "Bowel": (900 - 100) * 2.5 * 2 / 1000,
        },  # fmt: skip
        max_dose_gy=float(total.max()),
        fractions=fractions,
        prescription_gy=prescription_gy,
    )
