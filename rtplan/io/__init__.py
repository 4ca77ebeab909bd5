"""Reading DICOM-RT exports: CT series, RTSTRUCT, RTPLAN and RTDOSE into rtplan's domain objects.

The simple way in
-----------------
::

    from rtplan.io import load_plan_folder
    patient = load_plan_folder("export/patient_01")  # one patient, one frame of reference
    ss = patient.structure_set()   # rtplan.structure.StructureSet; ss["PTV"] -> Structure (LPS mm contours)
    dose = patient.dose()          # Dose in Gy (FRACTION x fractions, BEAM doses summed)
    plan = patient.plan()          # Plan: fractions, prescription_gy
    image = patient.image()        # Image (HU), pixels read only now

``load_folder(path)`` returns one :class:`PatientData` per (patient, frame of reference) for a
folder holding several; ``scan(path)`` gives the header-level :class:`Catalog` (and the
notes on skipped files).  Objects in different frames of reference are never combined.

Single objects: :func:`read_ct_series`, :func:`read_rtstruct`, :func:`read_rtdose`,
:func:`read_dose_files` (several BEAM doses summed), :func:`read_rtplan`.  The conventions each
applies (slice sorting and orientation, GridFrameOffsetVector forms, dose summation types,
contour checks) are documented in the module that applies them: :mod:`rtplan.io.ct`,
:mod:`rtplan.io.rtstruct`, :mod:`rtplan.io.rtdose`, :mod:`rtplan.io.rtplan`,
:mod:`rtplan.io.discover`.  Every failure is an :class:`~rtplan.errors.RtplanError` whose
one-line message names the file (and structure).  Input files are only ever read.
"""

from rtplan.io.ct import CTSeries, read_ct_series
from rtplan.io.discover import Catalog, DicomFile, PatientData, load_folder, load_plan_folder, scan
from rtplan.io.rtdose import read_dose_files, read_rtdose, sum_beam_doses
from rtplan.io.rtplan import read_rtplan
from rtplan.io.rtstruct import read_rtstruct

__all__ = [
    "CTSeries",
    "Catalog",
    "DicomFile",
    "PatientData",
    "load_folder",
    "load_plan_folder",
    "read_ct_series",
    "read_dose_files",
    "read_rtdose",
    "read_rtplan",
    "read_rtstruct",
    "scan",
    "sum_beam_doses",
]
