"""Hostile and broken input for every ``rtplan`` subcommand: case generators and the oracle.

A *case* starts from a small synthetic patient (:func:`rtplan.testing.synthetic.write_phantom_patient`:
10 CT slices of 32 x 32, an RTSTRUCT with BODY / PTV / Bowel / Marker, a 5-fraction RTPLAN
of 25 Gy and its RTDOSE), breaks one thing (a DICOM value, an encoding, a contour, a
file-system permission, an output path, a name) and runs subcommands on it.  The truths
checked for every run are the command line's documented promises (README, docs/io.md):

* the exit code is 0, 1 or 2 (3 is an internal error) and, where the case states it, the one
  the documentation gives (garbage input is 2, an implausible dose never passes a check);
* no Python traceback, on stderr or anywhere else;
* exit 2 prints exactly one line on stderr, of at most :data:`MAX_LINE_CHARS` characters;
* every input file is byte-identical afterwards (hashes before and after);
* no temporary file (``.tmp-*``) is left, and the outputs of a run are all there or none
  (none after an error);
* a run ends within :data:`RUN_SECONDS`; runs in a subprocess also stay under
  :data:`MEMORY_LIMIT_BYTES` peak resident memory;
* what a case's ``inspect`` checks in the outputs (text from DICOM: CSV cells a spreadsheet
  would run, XML that does not parse, control characters on the terminal, names written
  into an RTSTRUCT);
* an interrupted run (SIGINT, SIGTERM at a chosen moment) leaves no temporary file and its
  reports complete or absent; runs racing for one output folder never both claim one file
  and every file a run says it wrote is there.

Runs go through :func:`rtplan.cli.main` in this process (fast); a sample, and every case
that needs another user or a memory measurement, runs as a subprocess.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import io
import os
import random
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
)

from rtplan.testing.synthetic import write_phantom_patient

COMMANDS = ("info", "dvh", "check", "agree", "expand", "volumes")
#: A run taking longer than this (s) is a hang.
RUN_SECONDS = 120
#: Longest error line accepted (rtplan.cli.MAX_ERROR_CHARS and its prefix).
MAX_LINE_CHARS = 2100
#: Peak resident memory allowed for any run (bytes).
MEMORY_LIMIT_BYTES = 2 * 1024**3
PROTOCOL = "extremity-hypo-5x5"  # 25 Gy / 5 fx: the phantom is written to match


# ----------------------------------------------------------------------------- patients
@dataclass
class Patient:
    """One copy of the phantom in a sandbox folder; mutations edit these files."""

    root: Path  # the sandbox
    folder: Path  # the patient folder (argument of every command)
    ct: list[Path]
    rtstruct: Path
    plan: Path
    dose: Path
    observer_b: Path  # second observer's RTSTRUCT (only for agree)
    out: Path  # an existing, empty output folder

    def argv(self, command: str) -> list[str]:
        """The default command line of ``command`` on this patient."""
        p = str(self.folder)
        return {
            "info": ["info", p],
            "dvh": ["dvh", p, "--json"],
            "check": ["check", p, "--protocol", PROTOCOL, "--relaxed"],
            "agree": ["agree", str(self.agree_folder()), "--no-progress", "--jobs", "1"],
            "expand": ["expand", p, "--structure", "PTV", "--name", "CTV", "--margin", "5",
                       "--out", str(self.out / "expand")],
            "volumes": ["volumes", p, "--protocol", "extremity-preop", "--gtv", "PTV",
                        "--out", str(self.out / "volumes")],
        }[command]  # fmt: skip

    def agree_folder(self) -> Path:
        """A folder with this patient's CT and RTSTRUCT and a second observer's (built on
        first use from the current, possibly mutated, files)."""
        folder = self.root / "agree"
        if not folder.exists():
            folder.mkdir()
            for f in self.ct:
                if f.exists():
                    shutil.copy2(f, folder / f.name)
            if self.rtstruct.exists():
                shutil.copy2(self.rtstruct, folder / "RS_A.dcm")
            shutil.copy2(self.observer_b, folder / "RS_B.dcm")
        return folder


class Template:
    """The phantom written once; :meth:`copy` gives each case a fresh patient."""

    def __init__(self, base: Path):
        self.base = base
        src = base / "template"
        write_phantom_patient(src, patient_id="FUZZ01", fractions=5, prescription_gy=25.0)
        # the second observer: same ROIs, its own identity, PTV drawn 1 mm larger
        ds = pydicom.dcmread(src / "RTSTRUCT.dcm")
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.StructureSetLabel = "OBS_B"
        for rc in ds.ROIContourSequence:
            if rc.ReferencedROINumber == 2:
                for c in rc.ContourSequence:
                    pts = np.asarray(c.ContourData, float).reshape(-1, 3)
                    pts[:, :2] *= 8.5 / 7.5
                    c.ContourData = [f"{v:.3f}" for v in pts.ravel()]
        ds.save_as(base / "observer_b.dcm")
        self.src = src
        self.count = 0

    def copy(self) -> Patient:
        self.count += 1
        root = self.base / f"case{self.count:04d}"
        shutil.copytree(self.src, root / "patient")
        out = root / "out"
        out.mkdir()
        shutil.copy2(self.base / "observer_b.dcm", root / "observer_b.dcm")
        folder = root / "patient"
        for d in (root, folder, out, *[p for p in folder.rglob("*") if p.is_dir()]):
            d.chmod(0o777)  # other users (the nobody runs) may read and write here
        return Patient(
            root=root,
            folder=folder,
            ct=sorted((folder / "CT").iterdir()),
            rtstruct=folder / "RTSTRUCT.dcm",
            plan=folder / "plan" / "RTPLAN.dcm",
            dose=folder / "dose" / "dose0.dcm",
            observer_b=root / "observer_b.dcm",
            out=out,
        )


# ----------------------------------------------------------------------------- editing
def edit(path: Path, change: Callable[[pydicom.Dataset], object], **save) -> None:
    """Read ``path``, apply ``change`` to the dataset, write it back (no value checks)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path)
        change(ds)
        ds.save_as(path, **save)


def set_value(keyword: str, value, item: Callable | None = None):
    """A change setting ``keyword`` (on ``item(ds)`` when given) to ``value``; ``None``
    deletes it."""

    def change(ds):
        target = item(ds) if item else ds
        if value is None:
            if keyword in target:
                delattr(target, keyword)
        else:
            setattr(target, keyword, value)

    return change


def raw_set(keyword: str, vr: str, raw: bytes, item: Callable | None = None):
    """A change putting raw bytes into an element (values no writer would produce)."""

    def change(ds):
        target = item(ds) if item else ds
        tag = pydicom.tag.Tag(pydicom.datadict.tag_for_keyword(keyword))
        target._dict[tag] = RawDataElement(tag, vr, len(raw), raw, 0, False, True)

    return change


def roi(n: int):
    return lambda ds: ds.StructureSetROISequence[n]


def roi_contour(n: int):
    return lambda ds: ds.ROIContourSequence[n]


def contour(n: int, k: int = 0):
    return lambda ds: ds.ROIContourSequence[n].ContourSequence[k]


def fraction_group(ds):
    return ds.FractionGroupSequence[0]


def dose_reference(ds):
    return ds.DoseReferenceSequence[0]


def replace_bytes(path: Path, old: bytes, new: bytes) -> None:
    data = path.read_bytes()
    assert old in data, (path, old)
    path.write_bytes(data.replace(old, new, 1))


def rewrite(path: Path, transfer_syntax, *, preamble: bool = True) -> None:
    """Write ``path`` again in another transfer syntax, or (``preamble=False``) as a bare
    implicit VR little endian dataset without preamble and file meta (older exports)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path)
        if transfer_syntax == RLELossless:
            ds.compress(RLELossless)
        else:
            ds.file_meta.TransferSyntaxUID = transfer_syntax
        if preamble:
            ds.save_as(path, enforce_file_format=True)
            return
        fp = pydicom.filebase.DicomBytesIO()
        fp.is_little_endian, fp.is_implicit_VR = True, True
        pydicom.filewriter.write_dataset(fp, ds)
        path.write_bytes(fp.getvalue())


def bow_tie(ds):
    """PTV's middle contour drawn as a self-intersecting bow tie."""
    c = ds.ROIContourSequence[1].ContourSequence[1]
    z = float(c.ContourData[2])
    pts = [[-7.5, -7.5, z], [7.5, 7.5, z], [7.5, -7.5, z], [-7.5, 7.5, z]]
    c.ContourData = [f"{v:g}" for p in pts for v in p]
    c.NumberOfContourPoints = 4


def repeat_item(n: int):
    """A change appending a copy of ROIContourSequence item ``n`` (a second item for one ROI)."""

    def change(ds):
        import copy

        ds.ROIContourSequence.append(copy.deepcopy(ds.ROIContourSequence[n]))

    return change


def one_frame(ds):
    """The RTDOSE cut to its middle frame (one plane: the slab thickness is SliceThickness)."""
    frames = int(ds.NumberOfFrames)
    pixels = ds.pixel_array.reshape(frames, ds.Rows, ds.Columns)
    ds.PixelData = pixels[frames // 2].tobytes()
    ds.NumberOfFrames = "1"
    ds.GridFrameOffsetVector = ["0"]


def scale_dose(factor: float, negative: bool = False):
    def change(ds):
        pixels = ds.pixel_array.astype(np.int64)
        if negative:
            ds.PixelRepresentation = 1
            ds.BitsStored, ds.HighBit = ds.BitsAllocated, ds.BitsAllocated - 1
            pixels = -(pixels // 4)  # within the signed range
            dtype = np.int32 if ds.BitsAllocated == 32 else np.int16
            ds.PixelData = pixels.astype(dtype).tobytes()
        else:
            ds.DoseGridScaling = f"{float(ds.DoseGridScaling) * factor:.6g}"

    return change


def coverage_dose(factor: float):
    """Multiply the stored dose (not the scaling): a plan whose coverage is ``factor`` x."""

    def change(ds):
        pixels = ds.pixel_array.astype(np.float64) * factor
        ds.PixelData = np.clip(pixels, 0, 2**32 - 1).astype(np.uint32).tobytes()
        ds.BitsAllocated = ds.BitsStored = 32
        ds.HighBit = 31

    return change


def device_node(p: Patient) -> Path:
    """A device node in the sandbox standing in for ``/dev/null`` (a character device when
    running as root, else a FIFO): the suite never points rtplan at the real one."""
    node = p.root / "devnull"
    if not node.exists():
        if os.geteuid() == 0:
            os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        else:
            os.mkfifo(node)
    return node


def chmod(mode: int, which: Callable[[Patient], Path]):
    def lock(p: Patient):
        which(p).chmod(mode)

    return lock


# ----------------------------------------------------------------------------- cases
@dataclass
class Case:
    """One hostile input and the commands run on it.

    ``expect`` maps a command to the exit codes the documentation allows for this input
    (default: 0, 1 or 2); ``argv`` overrides the command lines (a function of the
    patient); ``outputs`` lists the output paths a command line asks for (all or none);
    ``nobody`` runs it as an unprivileged user (permission cases, when tests run as root).
    """

    family: str
    name: str
    mutate: Callable[[Patient], None] = lambda p: None
    commands: tuple[str, ...] = COMMANDS
    expect: dict[str, set[int]] = field(default_factory=dict)
    argv: Callable[[Patient, str], list[str]] | None = None
    outputs: Callable[[Patient, str], list[Path]] | None = None
    nobody: bool = False
    subprocess: bool = False
    lock: Callable[[Patient], None] | None = None  # permissions, set after the snapshot
    #: (signal, seconds): the run (a subprocess) gets this signal that long after its start
    interrupt: tuple[int, float] | None = None
    #: this many subprocesses run the same command line at once (races for one output)
    concurrent: int = 1
    #: more promises about the outputs: (patient, runs) -> problems ("content: ...")
    inspect: Callable[[Patient, list[Run]], list[str]] | None = None


def _on(path_of: Callable[[Patient], Path], *changes, **save):
    def mutate(p: Patient):
        for change in changes:
            edit(path_of(p), change, **save)

    return mutate


def dose(p):
    return p.dose


def plan(p):
    return p.plan


def rs(p):
    return p.rtstruct


def ct0(p):
    return p.ct[0]


def ct_all(*changes):
    def mutate(p: Patient):
        for f in p.ct:
            for change in changes:
                edit(f, change)

    return mutate


BAD = {2}
FAIL = {1, 2}  # the check cannot pass
DOSE_READERS = ("info", "dvh", "check")
LOCAL = ("info", "dvh", "check", "expand", "volumes")  # agree reads its own copy


def _bad_for(commands, codes=BAD):
    return {c: set(codes) for c in commands}


def value_cases() -> list[Case]:
    """Missing, malformed, non-finite, out-of-range and multi-valued elements."""
    out = []
    dose_values = [
        ("DoseGridScaling missing", set_value("DoseGridScaling", None)),
        ("DoseGridScaling negative", set_value("DoseGridScaling", "-0.001")),
        ("DoseGridScaling zero", set_value("DoseGridScaling", "0")),
        ("DoseGridScaling nan", raw_set("DoseGridScaling", "DS", b"nan ")),
        ("DoseGridScaling inf", raw_set("DoseGridScaling", "DS", b"inf ")),
        ("DoseGridScaling text", raw_set("DoseGridScaling", "DS", b"abc ")),
        ("DoseGridScaling huge", set_value("DoseGridScaling", "1e30")),
        ("DoseGridScaling two values", raw_set("DoseGridScaling", "DS", b"0.001\\0.002 ")),
        ("Rows two values", raw_set("Rows", "US", b"\x20\x00\x20\x00")),
        ("Rows zero", set_value("Rows", 0)),
        ("NumberOfFrames text", raw_set("NumberOfFrames", "IS", b"ab")),
        ("NumberOfFrames zero", set_value("NumberOfFrames", "0")),
        ("NumberOfFrames negative", set_value("NumberOfFrames", "-3")),
        ("GridFrameOffsetVector short", set_value("GridFrameOffsetVector", ["0", "2.5"])),
        ("GridFrameOffsetVector text", raw_set("GridFrameOffsetVector", "DS", b"a\\b ")),
        ("PixelSpacing zero", set_value("PixelSpacing", ["0", "0"])),
        ("PixelSpacing one value", set_value("PixelSpacing", "1.5")),
        ("PixelSpacing nan", raw_set("PixelSpacing", "DS", b"nan\\1 ")),
        ("ImagePositionPatient 1e308", set_value("ImagePositionPatient", ["1e308", "0", "0"])),
        ("ImageOrientationPatient zeros", set_value("ImageOrientationPatient", ["0"] * 6)),
        ("DoseUnits unknown", set_value("DoseUnits", "FOO")),
        ("FrameOfReferenceUID two values", raw_set("FrameOfReferenceUID", "UI", b"1.2.3\\1.2.4\0")),
        ("FrameOfReferenceUID 200 characters", raw_set("FrameOfReferenceUID", "UI", b"1." * 100)),
        ("DoseSummationType missing", set_value("DoseSummationType", None)),
        ("PixelData missing", set_value("PixelData", None)),
        ("BitsAllocated 12", set_value("BitsAllocated", 12)),
    ]
    for name, change in dose_values:
        out.append(
            Case("values", f"RTDOSE {name}", _on(dose, change), expect=_bad_for(DOSE_READERS))
        )
    plan_values = [
        ("FractionGroupSequence missing", set_value("FractionGroupSequence", None)),
        ("0 fractions", set_value("NumberOfFractionsPlanned", "0", fraction_group)),
        ("fractions text", raw_set("NumberOfFractionsPlanned", "IS", b"ab", fraction_group)),
        ("fractions negative", set_value("NumberOfFractionsPlanned", "-5", fraction_group)),
        ("prescription inf", raw_set("TargetPrescriptionDose", "DS", b"inf ", dose_reference)),
        ("prescription negative", set_value("TargetPrescriptionDose", "-20", dose_reference)),
        ("prescription text", raw_set("TargetPrescriptionDose", "DS", b"abc ", dose_reference)),
        ("prescription 1e308", set_value("TargetPrescriptionDose", "1e308", dose_reference)),
        ("FractionGroupNumber missing", set_value("FractionGroupNumber", None, fraction_group)),
        (
            "ReferencedBeamNumber text",
            raw_set(
                "ReferencedBeamNumber",
                "IS",
                b"x ",
                lambda ds: ds.FractionGroupSequence[0].ReferencedBeamSequence[0],
            ),
        ),  # fmt: skip
        ("RTPlanLabel missing", set_value("RTPlanLabel", None)),
    ]
    for name, change in plan_values:
        out.append(Case("values", f"RTPLAN {name}", _on(plan, change), expect=_bad_for(("check",))))
    struct_values = [
        ("ROINumber text", raw_set("ROINumber", "IS", b"abc ", roi(1))),
        ("ReferencedROINumber text", raw_set("ReferencedROINumber", "IS", b"x ", roi_contour(1))),
        ("NumberOfContourPoints text", raw_set("NumberOfContourPoints", "IS", b"abc ", contour(1))),
        ("ContourData 1e308", set_value("ContourData", ["1e308", "0", "0"] * 3, contour(1))),
        (
            "ContourData nan",
            raw_set("ContourData", "DS", b"nan\\0\\0\\1\\0\\0\\0\\1\\0 ", contour(1)),
        ),
        ("ContourData text", raw_set("ContourData", "DS", b"a\\b\\c ", contour(1))),
        ("ContourData not x3", set_value("ContourData", ["1", "2", "3", "4"], contour(1))),
        ("StructureSetROISequence missing", set_value("StructureSetROISequence", None)),
        ("ContourGeometricType unknown", set_value("ContourGeometricType", "FOO", contour(1))),
    ]
    for name, change in struct_values:
        out.append(Case("values", f"RTSTRUCT {name}", _on(rs, change),
                        expect=_bad_for(("dvh", "check", "expand", "volumes"))))  # fmt: skip
    ct_values = [
        ("RescaleSlope text", ct_all(raw_set("RescaleSlope", "DS", b"abc "))),
        ("RescaleSlope nan", ct_all(raw_set("RescaleSlope", "DS", b"nan "))),
        ("RescaleIntercept inf", ct_all(raw_set("RescaleIntercept", "DS", b"inf "))),
        ("RescaleIntercept text", ct_all(raw_set("RescaleIntercept", "DS", b"x1 "))),
        ("Rows two values", _on(ct0, raw_set("Rows", "US", b"\x20\x00\x20\x00"))),
        ("ImagePositionPatient missing", _on(ct0, set_value("ImagePositionPatient", None))),
        ("PixelSpacing zero", ct_all(set_value("PixelSpacing", ["0", "0"]))),
        ("one slice 16 rows", _on(ct0, set_value("Rows", 16))),
    ]
    for name, change in ct_values:
        # info reads CT headers only; expand and volumes read the pixels
        out.append(Case("values", f"CT {name}", change, expect=_bad_for(("expand", "volumes"))))
    # SliceThickness is read only where positions cannot give the spacing: a single slice or
    # frame (elsewhere a garbage value is never used, and the run is as the original)
    for name, raw in (("text", b"thick "), ("nan", b"nan ")):
        out.append(Case("values", f"RTDOSE single frame, SliceThickness {name}",
                        _on(dose, one_frame, raw_set("SliceThickness", "DS", raw)),
                        expect=_bad_for(DOSE_READERS)))  # fmt: skip
        out.append(Case("values", f"CT SliceThickness {name} (unused: 10 slices)",
                        ct_all(raw_set("SliceThickness", "DS", raw)),
                        expect=_same_as_baseline()))  # fmt: skip
    return out


def encoding_cases() -> list[Case]:
    """Transfer syntaxes and byte-level damage."""
    out = [
        Case("encoding", "RTDOSE transfer syntax 1.2.3.4",
             _on(dose, lambda ds: setattr(ds.file_meta, "TransferSyntaxUID", "1.2.3.4")),
             expect=_bad_for(DOSE_READERS)),
        Case("encoding", "RTSTRUCT corrupt VR", lambda p: replace_bytes(
            p.rtstruct, b"\x06\x30\x26\x00LO", b"\x06\x30\x26\x00ZZ"),
            expect=_bad_for(("dvh", "check", "expand", "volumes"))),
        # an element the reader never reads but expand/volumes copy into the new RTSTRUCT
        Case("encoding", "RTSTRUCT corrupt VR of a copied element", lambda p: replace_bytes(
            p.rtstruct, b"\x06\x30\x36\x00CS", b"\x06\x30\x36\x00ZZ"),
            expect=_bad_for(("expand", "volumes"))),
        Case("encoding", "RTDOSE truncated", lambda p: p.dose.write_bytes(p.dose.read_bytes()[:-999]),
             expect=_bad_for(LOCAL)),
        Case("encoding", "RTSTRUCT empty file", lambda p: p.rtstruct.write_bytes(b"")),
        Case("encoding", "garbage .dcm file", lambda p: (p.folder / "junk.dcm").write_bytes(
            b"DICM" * 100)),
    ]  # fmt: skip
    for label in ("CT", "RTDOSE", "RTSTRUCT", "RTPLAN"):
        for ts_name, ts, preamble in (
            ("no preamble, implicit VR", ImplicitVRLittleEndian, False),
            ("deflated explicit VR", DeflatedExplicitVRLittleEndian, True),
            ("implicit VR", ImplicitVRLittleEndian, True),
        ):
            if label == "CT":
                mutate = _rewrite_all(ts, preamble)
            else:
                attr = {"RTDOSE": "dose", "RTSTRUCT": "rtstruct", "RTPLAN": "plan"}[label]
                mutate = _rewrite_one(attr, ts, preamble)
            # valid files pydicom reads: rtplan must read them as the original
            out.append(Case("encoding", f"{label} {ts_name}", mutate, expect=_same_as_baseline()))
    out.append(Case("encoding", "CT RLE lossless", _rewrite_all(RLELossless, True),
                    expect=_same_as_baseline()))  # fmt: skip
    return out


def _rewrite_all(ts, preamble):
    def mutate(p: Patient):
        for f in p.ct:
            rewrite(f, ts, preamble=preamble)

    return mutate


def _rewrite_one(attr, ts, preamble):
    def mutate(p: Patient):
        rewrite(getattr(p, attr), ts, preamble=preamble)

    return mutate


BASELINE = {"info": {0}, "dvh": {0}, "check": {0}, "agree": {0}, "expand": {0}, "volumes": {0}}


def _same_as_baseline():
    return dict(BASELINE)


def structure_cases() -> list[Case]:
    """Structures that cannot be used, and files or folders that cannot be read."""
    need_ptv = ("check", "expand", "volumes")
    out = [
        Case("structures", "PTV bow-tie contour", _on(rs, bow_tie),
             expect=_bad_for(need_ptv) | {"dvh": {1, 2}},
             argv=None),
        Case("structures", "PTV contour of 2 points", _on(rs, set_value(
            "ContourData", ["0", "0", "0", "1", "1", "0"], contour(1, 1))),
            expect=_bad_for(need_ptv) | {"dvh": {1, 2}}),
        # contours of no structure: dvh over all structures lists them (exit 1), info refuses
        Case("structures", "PTV contours point at a missing ROI", _on(rs, set_value(
            "ReferencedROINumber", "99", roi_contour(1))),
            expect=_bad_for(need_ptv + ("info",)) | {"dvh": {1}}),
        Case("structures", "Bowel ROIContour repeated", _on(rs, repeat_item(2)),
             expect={"info": BAD, "dvh": {1}}),
        # an ROI without contours is an empty ROI (common in exports): dvh lists it as empty
        Case("structures", "PTV ROIContour removed", _on(rs, lambda ds: ds.ROIContourSequence.pop(1)),
             expect=_bad_for(need_ptv) | {"dvh": {0, 1}}),
        Case("structures", "CT folder unreadable (mode 000)", lock=chmod(0o000, lambda p: p.folder / "CT"),
             nobody=True, expect=_bad_for(LOCAL)),
        Case("structures", "CT folder not searchable (mode 644)",
             lock=chmod(0o644, lambda p: p.folder / "CT"), nobody=True, expect=_bad_for(LOCAL)),
        Case("structures", "RTSTRUCT unreadable (mode 000)", lock=chmod(0o000, rs), nobody=True,
             expect=_bad_for(LOCAL)),
        Case("structures", "RTDOSE unreadable (mode 000)", lock=chmod(0o000, dose), nobody=True,
             expect=_bad_for(LOCAL)),
        # a patient that cannot be checked: exit 2 and its one line (the report says it too)
        Case("structures", "RTDOSE removed", lambda p: p.dose.unlink(),
             expect={"check": BAD, "dvh": BAD}),
    ]  # fmt: skip
    return out


def plausibility_cases() -> list[Case]:
    """Doses a check must never pass."""
    return [
        Case("plausibility", "dose x 100 (max far above prescription)",
             _on(dose, scale_dose(100.0)), expect={"check": FAIL}),
        Case("plausibility", "coverage 160 %Rx", _on(dose, coverage_dose(1.6)),
             expect={"check": FAIL}),
        Case("plausibility", "negative dose", _on(dose, scale_dose(1.0, negative=True)),
             expect={"check": FAIL, "dvh": {1, 2}}),
    ]  # fmt: skip


def limit_cases() -> list[Case]:
    """Headers announcing far more pixels than the file holds."""

    def rle_claim(side):
        def mutate(p: Patient):
            _rewrite_all(RLELossless, True)(p)
            edit(p.ct[0], set_value("Rows", side))
            edit(p.ct[0], set_value("Columns", side))

        return mutate

    def all_rle_claim(side):
        def mutate(p: Patient):
            for f in p.ct:
                rewrite(f, RLELossless)
                edit(f, set_value("Rows", side))
                edit(f, set_value("Columns", side))

        return mutate

    return [
        Case("limits", "RLE CT claims 65535 x 65535", all_rle_claim(65535), subprocess=True,
             expect=_bad_for(("info", "expand", "volumes"))),
        Case("limits", "RLE CT claims 16384 x 16384", all_rle_claim(16384), subprocess=True,
             expect=_bad_for(("info", "expand", "volumes"))),
        Case("limits", "RLE CT slice claims 4096 x 4096", rle_claim(4096), subprocess=True,
             expect=_bad_for(("info", "expand", "volumes"))),
        Case("limits", "RTDOSE claims 100000 frames", _on(dose, set_value("NumberOfFrames", "100000")),
             subprocess=True, expect=_bad_for(DOSE_READERS)),
        Case("limits", "RTDOSE pixel data longer", _on(dose, lambda ds: setattr(
            ds, "PixelData", ds.PixelData + b"\0" * 4096)), expect=_bad_for(DOSE_READERS)),
        Case("limits", "RTDOSE pixel data shorter", _on(dose, lambda ds: setattr(
            ds, "PixelData", ds.PixelData[:-4096])), expect=_bad_for(DOSE_READERS)),
        Case("limits", "RTDOSE 4096 x 4096 claim", _on(
            dose, set_value("Rows", 4096), set_value("Columns", 4096)), subprocess=True,
            expect=_bad_for(DOSE_READERS)),
    ]  # fmt: skip


def output_cases() -> list[Case]:
    """Output paths that must never destroy anything."""

    def dvh_csv(target):
        return lambda p, c: ["dvh", str(p.folder), "--csv", str(target(p))]

    def check_out(opt, target):
        return lambda p, c: ["check", str(p.folder), "--protocol", PROTOCOL, opt, str(target(p))]

    def expand_out(target, png=False):
        def argv(p, c):
            a = p.argv("expand")[:-1] + [str(target(p))]
            return a + (["--png", str(target(p))] if png else [])

        return argv

    def under_a_file(p):
        return p.rtstruct / "sub" / "x.csv"

    def read_only(p):
        d = p.root / "ro"
        d.mkdir(exist_ok=True)
        d.chmod(0o555)
        return d / "x.csv"

    def non_utf8(p):
        return Path(os.fsdecode(bytes(p.out) + b"/out\xff\xfe.csv"))

    def non_utf8_dir(p):
        return Path(os.fsdecode(bytes(p.out) + b"/dir\xff"))

    out = []
    for name, target in (
        ("onto the input RTDOSE", lambda p: p.dose),
        ("onto /dev/null", device_node),
        ("under a file", under_a_file),
        ("a folder", lambda p: p.out),
        ("non-UTF-8 name", non_utf8),
    ):
        ok = name == "non-UTF-8 name"
        out.append(Case("outputs", f"dvh --csv {name}", commands=("dvh",), argv=dvh_csv(target),
                        expect={"dvh": {0} if ok else BAD},
                        outputs=(lambda p, c, t=target: [t(p)]) if ok else None))  # fmt: skip
    out.append(Case("outputs", "dvh --csv read-only folder", commands=("dvh",),
                    argv=dvh_csv(read_only), nobody=True, expect={"dvh": BAD}))  # fmt: skip
    for opt in ("--junit", "--csv", "--html"):
        out.append(
            Case(
                "outputs",
                f"check {opt} /dev/null",
                commands=("check",),
                argv=check_out(opt, device_node),
                expect={"check": BAD},
            )
        )
    out.append(
        Case(
            "outputs",
            "check --csv onto the input RTPLAN",
            commands=("check",),
            argv=check_out("--csv", lambda p: p.plan),
            expect={"check": BAD},
        )
    )
    out.append(Case("outputs", "check three reports, html under a file", commands=("check",),
                    argv=lambda p, c: ["check", str(p.folder), "--protocol", PROTOCOL,
                                       "--csv", str(p.out / "r.csv"), "--junit", str(p.out / "r.xml"),
                                       "--html", str(under_a_file(p))],
                    outputs=lambda p, c: [p.out / "r.csv", p.out / "r.xml"],
                    expect={"check": BAD}))  # fmt: skip
    for name, target, code in (
        ("--out is a file", lambda p: p.rtstruct, BAD),
        ("--out under a file", lambda p: p.rtstruct / "x", BAD),
        ("--out /dev/null", device_node, BAD),
        ("--out non-UTF-8 folder", non_utf8_dir, {0}),
    ):
        out.append(Case("outputs", f"expand {name}", commands=("expand",), argv=expand_out(target),
                        expect={"expand": code}))  # fmt: skip
    out.append(Case("outputs", "check --csv read-only folder", commands=("check",),
                    argv=check_out("--csv", read_only), nobody=True, expect={"check": BAD}))  # fmt: skip
    out.append(Case("outputs", "expand --out read-only folder", commands=("expand",),
                    argv=expand_out(lambda p: read_only(p).parent), nobody=True,
                    expect={"expand": BAD}))  # fmt: skip
    out.append(Case("outputs", "expand --png under a file", commands=("expand",),
                    argv=lambda p, c: p.argv("expand") + ["--png", str(p.rtstruct / "png")],
                    expect={"expand": BAD}))  # fmt: skip
    out.append(Case("outputs", "volumes --out under a file", commands=("volumes",),
                    argv=lambda p, c: p.argv("volumes")[:-1] + [str(p.rtstruct / "v")],
                    expect={"volumes": BAD}))  # fmt: skip
    out.append(Case("outputs", "agree --csv onto an input RTSTRUCT", commands=("agree",),
                    argv=lambda p, c: p.argv("agree") + ["--csv", str(p.agree_folder() / "RS_B.dcm")],
                    expect={"agree": BAD}))  # fmt: skip
    out.append(Case("outputs", "agree --plots under a file", commands=("agree",),
                    argv=lambda p, c: p.argv("agree") + ["--plots", str(p.rtstruct / "plots")],
                    expect={"agree": BAD}))  # fmt: skip
    out.append(Case("outputs", "dvh --plot onto /dev/null", commands=("dvh",),
                    argv=lambda p, c: ["dvh", str(p.folder), "--plot", str(device_node(p))],
                    expect={"dvh": BAD}))  # fmt: skip
    return out


HOSTILE_NAMES = [
    "$x^2$ PTV", "PTV $", "=HYPERLINK(\"http://x\")", "+1", "-1+2", "@SUM(A1)", "\tPTV",
    "PT\rV", "PTV\x1b[31mred", "PTV\x00", "胃癌_PTV", "P" * 300, "<script>alert(1)</script>",
    "PTV\\x", "../../etc/passwd",
]  # fmt: skip


def text_promises(p: Patient, runs: list[Run]) -> list[str]:
    """Text from DICOM stayed data in every file under the output folder: CSV rows as long
    as the header, no cell a spreadsheet would run (``=``, ``+``, ``@``, tab, CR, or ``-``
    before something that is not a number), no raw control character; XML that parses;
    HTML without raw control characters; DICOM files pydicom reads."""
    import csv
    import xml.etree.ElementTree as ET

    problems = []
    for f in sorted(x for x in p.out.rglob("*") if x.is_file()):
        data = f.read_bytes()
        if f.suffix == ".csv":
            rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
            if any(len(r) != len(rows[0]) for r in rows):
                problems.append(f"content: {f.name}: rows of different lengths")
            for cell in (c for r in rows[1:] for c in r):
                if _spreadsheet_runs(cell) or _RAW_CONTROL.search(cell):
                    problems.append(f"content: {f.name}: cell {cell[:40]!r}")
                    break
        elif f.suffix == ".xml":
            try:
                ET.fromstring(data)
            except ET.ParseError as exc:
                problems.append(f"content: {f.name} is not well-formed XML ({exc})")
        elif f.suffix == ".html" and _RAW_CONTROL.search(data.decode("utf-8")):
            problems.append(f"content: {f.name}: raw control character")
        elif f.suffix == ".dcm":
            try:
                pydicom.dcmread(f)
            except Exception as exc:  # noqa: BLE001 - any failure is the finding
                problems.append(f"content: {f.name} unreadable ({exc})")
    return problems


def _spreadsheet_runs(cell: str) -> bool:
    if cell[:1] in ("=", "+", "@", "\t", "\r"):
        return True
    if cell[:1] == "-":
        try:
            float(cell)
        except ValueError:
            return True
    return False


def written_name(new: str, charset: str | None):
    """The new RTSTRUCT (if a run wrote one) holds the ROI ``new`` exactly, in ``charset``."""

    def inspect(p: Patient, runs: list[Run]) -> list[str]:
        files = sorted((p.out / "expand").glob("*.dcm")) if (p.out / "expand").exists() else []
        if runs[0].code != 0:
            return []
        if len(files) != 1:
            return [f"content: {len(files)} RTSTRUCT(s) written"]
        ds = pydicom.dcmread(files[0])
        names = [r.ROIName for r in ds.StructureSetROISequence]
        problems = [] if new in names else [f"content: ROI {new!r} not in {names}"]
        if charset and ds.get("SpecificCharacterSet") != charset:
            problems.append(f"content: SpecificCharacterSet {ds.get('SpecificCharacterSet')!r}")
        return problems

    return inspect


def text_cases() -> list[Case]:
    """Text from DICOM that must stay data: plots, CSV, XML, HTML, the terminal."""
    out = []
    for name in HOSTILE_NAMES:

        def rename(p: Patient, name=name):
            edit(p.rtstruct, set_value("ROIName", name, roi(2)))  # Bowel
            edit(p.rtstruct, set_value("PatientName", name))
            for f in [p.plan, p.dose, *p.ct]:
                edit(f, set_value("PatientName", name))

        def argv(p: Patient, c: str):
            a = p.argv(c)
            extra = {
                "dvh": ["--plot", str(p.out / "dvh.png"), "--csv", str(p.out / "dvh.csv")],
                "check": ["--csv", str(p.out / "c.csv"), "--junit", str(p.out / "c.xml"),
                          "--html", str(p.out / "c.html"), "--png", str(p.out / "c.png")],
                "agree": ["--plots", str(p.out / "plots"), "--csv", str(p.out / "a.csv")],
                "expand": ["--png", str(p.out / "png")],
            }.get(c, [])  # fmt: skip
            return a + extra

        # a name that reads as 'PTV' once stripped duplicates the PTV: the check may then
        # not judge it (exit 1); every other command works as on the original
        expect = _same_as_baseline() | {"check": {0, 1}}
        out.append(Case("text", f"names {name[:20]!r}", rename, argv=argv, expect=expect,
                        inspect=text_promises))  # fmt: skip

    for new, charset in (("胃癌_CTV", "ISO_IR 192"), ("$CTV$", None), ("=CTV", None),
                         ("CTV\x1b[2J", None)):  # fmt: skip
        out.append(Case("text", f"expand --name {new!r}", commands=("expand",),
                        argv=lambda p, c, new=new: p.argv("expand")[:4] + ["--name", new] +
                        p.argv("expand")[6:] + ["--png", str(p.out / "png")],
                        expect={"expand": {0, 2}},
                        inspect=written_name(new, charset) if charset or new[0] in "$=" else None))  # fmt: skip
    return out


def usage_cases() -> list[Case]:
    """Garbage option values and empty inputs: exit 2 with one line."""

    def empty(p):
        d = p.root / "empty"
        d.mkdir(exist_ok=True)
        return d

    cases = [
        ("agree on an empty folder", "agree", lambda p: ["agree", str(empty(p)), "--no-progress"]),
        ("check on an empty folder", "check", lambda p: ["check", str(empty(p)), "--protocol", PROTOCOL]),
        ("dvh on an empty folder", "dvh", lambda p: ["dvh", str(empty(p))]),
        ("info on a missing path", "info", lambda p: ["info", str(p.root / "missing")]),
        ("dvh --metrics Dinf%", "dvh", lambda p: ["dvh", str(p.folder), "--metrics", "Dinf%"]),
        ("dvh --metrics Dnan%", "dvh", lambda p: ["dvh", str(p.folder), "--metrics", "Dnan%"]),
        ("dvh --metrics V1e308Gy", "dvh", lambda p: ["dvh", str(p.folder), "--metrics", "V1e308Gy"]),
        ("dvh --dose missing file", "dvh", lambda p: ["dvh", str(p.folder), "--dose", str(p.root / "no.dcm")]),
        ("dvh --dose a CT slice", "dvh", lambda p: ["dvh", str(p.folder), "--dose", str(p.ct[0])]),
        ("expand --margin inf", "expand", lambda p: p.argv("expand")[:6] + ["--margin", "inf"] + p.argv("expand")[8:]),
        ("expand --margin nan", "expand", lambda p: p.argv("expand")[:6] + ["--margin", "nan"] + p.argv("expand")[8:]),
        ("expand --margin 1e308", "expand", lambda p: p.argv("expand")[:6] + ["--margin", "1e308"] + p.argv("expand")[8:]),
        ("expand --fine-mm 0", "expand", lambda p: p.argv("expand") + ["--fine-mm", "0"]),
        ("expand --fine-mm 1e-6", "expand", lambda p: p.argv("expand") + ["--fine-mm", "1e-6"]),
        ("agree --tolerance-mm nan", "agree", lambda p: p.argv("agree") + ["--tolerance-mm", "nan"]),
        ("agree --tolerance-mm -1", "agree", lambda p: p.argv("agree") + ["--tolerance-mm", "-1"]),
        ("agree --in-plane-mm 0", "agree", lambda p: p.argv("agree") + ["--in-plane-mm", "0"]),
        ("agree --jobs 0", "agree", lambda p: p.argv("agree") + ["--jobs", "0"]),
        ("check --protocol missing", "check", lambda p: ["check", str(p.folder), "--protocol", "nope"]),
        ("volumes --set inf", "volumes", lambda p: p.argv("volumes") + ["--set", "ptv_mm=inf"]),
        ("volumes --set text", "volumes", lambda p: p.argv("volumes") + ["--set", "ptv_mm=abc"]),
        ("volumes --fine-mm 1e308", "volumes", lambda p: p.argv("volumes") + ["--fine-mm", "1e308"]),
        ("expand --margin=-1e308", "expand", lambda p: p.argv("expand")[:6] + ["--margin=-1e308"] + p.argv("expand")[8:]),
        ("expand --within BODY:1e308", "expand", lambda p: p.argv("expand") + ["--within", "BODY:1e308"]),
        ("expand --avoid Bowel:99999999999", "expand", lambda p: p.argv("expand") + ["--avoid", "Bowel:99999999999"]),
        ("dvh --curve-step inf", "dvh", lambda p: ["dvh", str(p.folder), "--curves", str(p.out / "c.csv"), "--curve-step", "inf"]),
        ("dvh --outside-tolerance-pct nan", "dvh", lambda p: ["dvh", str(p.folder), "--outside-tolerance-pct", "nan"]),
        ("dvh --outside-tolerance-cc 1e308", "dvh", lambda p: ["dvh", str(p.folder), "--outside-tolerance-cc", "1e308"]),
        ("dvh --jobs 0", "dvh", lambda p: ["dvh", str(p.folder), "--jobs", "0"]),
        ("check --jobs -1", "check", lambda p: p.argv("check") + ["--jobs=-1"]),
        ("check --scheduler-timeout inf", "check", lambda p: p.argv("check") + ["--scheduler-timeout", "inf"]),
        ("agree --scheduler-timeout 0", "agree", lambda p: p.argv("agree") + ["--scheduler-timeout", "0"]),
        ("agree --tolerance-mm 1e308", "agree", lambda p: p.argv("agree") + ["--tolerance-mm", "1e308"]),
        ("info without a path", "info", lambda p: ["info"]),
        ("dvh unknown option", "dvh", lambda p: ["dvh", str(p.folder), "--bogus"]),
    ]  # fmt: skip
    return [
        Case("usage", name, commands=(cmd,), argv=lambda p, c, f=f: f(p), expect={cmd: BAD})
        for name, cmd, f in cases
    ]


def network_cases() -> list[Case]:
    """A Dask scheduler address that accepts the connection and never answers."""
    return [
        Case(
            "network",
            "agree --scheduler silent",
            commands=("agree",),
            argv=lambda p, c: (
                p.argv("agree") + ["--scheduler", f"tcp://127.0.0.1:{silent_server()}",
                                   "--scheduler-timeout", "3"]
            ),
            expect={"agree": BAD},
        ),
        Case("network", "dvh cohort --scheduler silent", commands=("dvh",),
             argv=lambda p, c: ["dvh", str(cohort(p)), "--scheduler",
                                f"tcp://127.0.0.1:{silent_server()}", "--scheduler-timeout", "3"],
             expect={"dvh": BAD}),
        Case("network", "check cohort --scheduler silent", commands=("check",),
             argv=lambda p, c: ["check", str(cohort(p)), "--protocol", PROTOCOL, "--scheduler",
                                f"tcp://127.0.0.1:{silent_server()}", "--scheduler-timeout", "3"],
             expect={"check": BAD}),
    ]  # fmt: skip


def cohort(p: Patient) -> Path:
    """A folder of two patients (this one and a second phantom) for the cohort commands."""
    folder = p.root / "cohort"
    if not folder.exists():
        shutil.copytree(p.folder, folder / "P1")
        write_phantom_patient(folder / "P2", patient_id="FUZZ02", fractions=5,
                              prescription_gy=25.0)  # fmt: skip
    return folder


_SILENT: list[int] = []


def silent_server() -> int:
    """Port of a TCP server (in this process) that accepts and never answers."""
    if not _SILENT:
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(16)
        held = []

        def serve():
            while True:
                conn, _ = srv.accept()
                held.append(conn)

        threading.Thread(target=serve, daemon=True).start()
        _SILENT.append(srv.getsockname()[1])
    return _SILENT[0]


def interrupt_cases() -> list[Case]:
    """Ctrl-C (SIGINT) and ``kill`` (SIGTERM) at chosen moments of a run that writes several
    files: exit 130/143 (or the run's own code if it ended first; or killed by the signal,
    -2/-15 here, which a shell shows as 130/143, in the instants before rtplan's handlers are
    set or after the command has finished), no traceback, no temporary file, the reports of
    one run complete or absent."""

    def check_argv(p, c):
        return ["check", str(p.folder), "--protocol", PROTOCOL, "--relaxed",
                "--csv", str(p.out / "r.csv"), "--junit", str(p.out / "r.xml"),
                "--html", str(p.out / "r.html")]  # fmt: skip

    def dvh_argv(p, c):
        return ["dvh", str(p.folder), "--csv", str(p.out / "d.csv"), "--plot", str(p.out / "d.png")]

    def expand_argv(p, c):
        return p.argv("expand") + ["--png", str(p.out / "png")]

    out = []
    for sig, codes in ((signal.SIGINT, {130, -2}), (signal.SIGTERM, {143, -15})):
        name = signal.Signals(sig).name
        for t in (0.3, 0.8, 1.3, 1.8, 2.5):
            out.append(Case("interrupt", f"check 3 reports, {name} at {t} s", commands=("check",),
                            argv=check_argv, interrupt=(sig, t), expect={"check": {0, 1, *codes}},
                            outputs=lambda p, c: [p.out / n for n in ("r.csv", "r.xml", "r.html")]))  # fmt: skip
        for t in (0.5, 1.0):
            out.append(Case("interrupt", f"dvh --csv --plot, {name} at {t} s", commands=("dvh",),
                            argv=dvh_argv, interrupt=(sig, t), expect={"dvh": {0, *codes}},
                            outputs=lambda p, c: [p.out / "d.csv", p.out / "d.png"]))  # fmt: skip
        for t in (1.0, 2.0):
            out.append(Case("interrupt", f"expand --png, {name} at {t} s", commands=("expand",),
                            argv=expand_argv, interrupt=(sig, t), expect={"expand": {0, *codes}},
                            inspect=rtstruct_and_png))  # fmt: skip
    return out


def rtstruct_and_png(p: Patient, runs: list[Run]) -> list[str]:
    """``expand --out --png``: the new RTSTRUCT and its picture both written, or neither."""
    found = [len(list((p.out / d).glob(g))) if (p.out / d).exists() else 0
             for d, g in (("expand", "*.dcm"), ("png", "*.png"))]  # fmt: skip
    want = [1, 1] if runs[0].code == 0 else None
    if found != want and (want is not None or found != [0, 0]):
        return [f"partial outputs after exit {runs[0].code}: {found[0]} RTSTRUCT, {found[1]} PNG"]
    return []


def race_cases() -> list[Case]:
    """Runs writing into one folder (or one file) at the same time: no file claimed twice,
    none lost, no partial output of a run that lost the race."""

    def expand_argv(p, c):
        return p.argv("expand")[:-1] + [str(p.out)] + ["--png", str(p.out)]

    def volumes_argv(p, c):
        return p.argv("volumes")[:-1] + [str(p.out)] + ["--png", str(p.out)]

    def all_claimed(p: Patient, runs: list[Run]) -> list[str]:
        claimed = {ln[6:].strip() for r in runs for ln in r.stdout.splitlines()
                   if ln.startswith("wrote ")}  # fmt: skip
        extra = [f.name for f in p.out.iterdir() if str(f) not in claimed]
        lost = [] if any(r.code == 0 for r in runs) else ["no run succeeded"]
        return lost + ([f"partial outputs: {extra} written by a run that failed"] if extra else [])

    return [
        Case("race", "two expand --png into one folder", commands=("expand",), concurrent=2,
             argv=expand_argv, expect={"expand": {0, 2}}, inspect=all_claimed),
        Case("race", "three expand --png into one folder", commands=("expand",), concurrent=3,
             argv=expand_argv, expect={"expand": {0, 2}}, inspect=all_claimed),
        Case("race", "two volumes --png into one folder", commands=("volumes",), concurrent=2,
             argv=volumes_argv, expect={"volumes": {0, 2}}, inspect=all_claimed),
        Case("race", "two dvh --csv onto one file", commands=("dvh",), concurrent=2,
             argv=lambda p, c: ["dvh", str(p.folder), "--csv", str(p.out / "d.csv")],
             expect={"dvh": {0}}, inspect=text_promises),
    ]  # fmt: skip


def rename_inputs(folder: bytes, files: bytes):
    """A change renaming the patient folder to ``folder`` and the input files (CT slices,
    RTSTRUCT, RTPLAN, RTDOSE) to names starting with ``files`` (bytes: any encoding)."""

    def mutate(p: Patient):
        def renamed(path: Path, new: bytes) -> Path:
            target = Path(os.fsdecode(os.fsencode(path.parent) + b"/" + new))
            path.rename(target)
            return target

        p.ct = [renamed(f, files + b"ct%03d.dcm" % i) for i, f in enumerate(p.ct)]
        p.rtstruct = renamed(p.rtstruct, files + b"rs.dcm")
        p.plan = renamed(p.plan, files + b"plan.dcm")
        p.dose = renamed(p.dose, files + b"dose.dcm")
        new = renamed(p.folder, folder)
        p.ct = [new / f.relative_to(p.folder) for f in p.ct]
        p.rtstruct, p.plan, p.dose = (new / f.relative_to(p.folder)
                                      for f in (p.rtstruct, p.plan, p.dose))  # fmt: skip
        p.folder = new

    return mutate


def name_cases() -> list[Case]:
    """File and folder names from elsewhere: not UTF-8, with control characters, with ``$``
    and spreadsheet characters.  Read as any other name; printed escaped."""

    def every_output(p, c):
        return p.argv(c) + {
            "dvh": ["--csv", str(p.out / "d.csv"), "--plot", str(p.out / "d.png")],
            "check": ["--csv", str(p.out / "c.csv"), "--junit", str(p.out / "c.xml"),
                      "--html", str(p.out / "c.html")],
            "expand": ["--png", str(p.out / "png")],
        }.get(c, [])  # fmt: skip

    return [
        Case("names", f"input names {label}", rename_inputs(folder, files), argv=every_output,
             expect=_same_as_baseline(), inspect=text_promises)
        for label, folder, files in (
            ("not UTF-8", b"pat\xff\xfeient", b"\xe9\xff"),
            ("with newline and ESC", b"pat\nient\x1b[31m", b"a\rb\x1b"),
            ("with $ and =", b"$x^2$ =1+1", b"=cmd|' -C calc'!A0 $"),
        )
    ]  # fmt: skip


FAMILIES = {
    "values": value_cases,
    "encoding": encoding_cases,
    "structures": structure_cases,
    "plausibility": plausibility_cases,
    "limits": limit_cases,
    "outputs": output_cases,
    "text": text_cases,
    "usage": usage_cases,
    "network": network_cases,
    "interrupt": interrupt_cases,
    "race": race_cases,
    "names": name_cases,
}


def all_cases() -> list[Case]:
    return [c for make in FAMILIES.values() for c in make()]


#: Every example of the issue that asked for this suite: (what it reported, the case that
#: reproduces it, the command).  ``run_fuzz.py --examples`` runs them and prints the table.
EXAMPLES = [
    ("RTDOSE without DoseGridScaling", "RTDOSE DoseGridScaling missing", "check"),
    ("RTDOSE without DoseGridScaling", "RTDOSE DoseGridScaling missing", "dvh"),
    ("negative DoseGridScaling", "RTDOSE DoseGridScaling negative", "check"),
    ("NaN DoseGridScaling", "RTDOSE DoseGridScaling nan", "dvh"),
    ("infinite DoseGridScaling", "RTDOSE DoseGridScaling inf", "check"),
    ("bow-tie target", "PTV bow-tie contour", "check"),
    ("bow-tie target", "PTV bow-tie contour", "expand"),
    ("bow-tie target (all structures)", "PTV bow-tie contour", "dvh"),
    ("ROIContour to a missing ROI", "PTV contours point at a missing ROI", "dvh"),
    ("ROIContour to a missing ROI", "PTV contours point at a missing ROI", "check"),
    ("CT folder mode 000", "CT folder unreadable (mode 000)", "check"),
    ("dvh --csv onto the input RTDOSE", "dvh --csv onto the input RTDOSE", "dvh"),
    ("--junit onto a device node", "check --junit /dev/null", "check"),
    ("interrupt during check", "check 3 reports, SIGINT at 0.8 s", "check"),
    ("kill during check", "check 3 reports, SIGTERM at 0.8 s", "check"),
    ("two expand --png into one folder", "two expand --png into one folder", "expand"),
    ("non-numeric ROINumber", "RTSTRUCT ROINumber text", "dvh"),
    ("non-numeric ReferencedROINumber", "RTSTRUCT ReferencedROINumber text", "check"),
    ("non-numeric NumberOfContourPoints", "RTSTRUCT NumberOfContourPoints text", "expand"),
    ("non-numeric NumberOfFrames", "RTDOSE NumberOfFrames text", "dvh"),
    ("non-numeric SliceThickness", "RTDOSE single frame, SliceThickness text", "dvh"),
    ("non-numeric RescaleSlope", "CT RescaleSlope text", "expand"),
    ("non-numeric RescaleIntercept", "CT RescaleIntercept text", "volumes"),
    ("Rows with two values (RTDOSE)", "RTDOSE Rows two values", "dvh"),
    ("Rows with two values (CT)", "CT Rows two values", "expand"),
    ("invalid transfer syntax UID", "RTDOSE transfer syntax 1.2.3.4", "check"),
    ("corrupt VR", "RTSTRUCT corrupt VR", "dvh"),
    ("RTDOSE pixel data too long", "RTDOSE pixel data longer", "check"),
    ("RTPLAN without FractionGroupSequence", "RTPLAN FractionGroupSequence missing", "check"),
    ("RTPLAN with 0 fractions", "RTPLAN 0 fractions", "check"),
    ("contour coordinates 1e308", "RTSTRUCT ContourData 1e308", "dvh"),
    ("expand --margin 1e308", "expand --margin 1e308", "expand"),
    ("output folder under a file", "expand --out under a file", "expand"),
    ("report under a file (others staged)", "check three reports, html under a file", "check"),
    ("output folder read-only", "dvh --csv read-only folder", "dvh"),
    ("non-UTF-8 input file names", "input names not UTF-8", "expand"),
    ("non-UTF-8 output folder", "expand --out non-UTF-8 folder", "expand"),
    ("folder readable, not searchable", "CT folder not searchable (mode 644)", "check"),
    ("$ in names: dvh --plot", "names '$x^2$ PTV'", "dvh"),
    ("$ in names: check --html/--png", "names '$x^2$ PTV'", "check"),
    ("$ in names: expand --png", "names '$x^2$ PTV'", "expand"),
    ("$ in names: agree --plots", "names '$x^2$ PTV'", "agree"),
    ("RLE CT claiming 65535 x 65535", "RLE CT claims 65535 x 65535", "expand"),
    ("RLE CT claiming 65535 x 65535", "RLE CT claims 65535 x 65535", "info"),
    ("no preamble, implicit VR (CT)", "CT no preamble, implicit VR", "expand"),
    ("no preamble, implicit VR (RTDOSE)", "RTDOSE no preamble, implicit VR", "dvh"),
    ("deflated explicit VR (CT)", "CT deflated explicit VR", "expand"),
    ("deflated explicit VR (RTDOSE)", "RTDOSE deflated explicit VR", "check"),
    ("'=' name in CSV", "names '=HYPERLINK(\"http://x'", "dvh"),
    ("'+' name in CSV", "names '+1'", "check"),
    ("'-' name in CSV", "names '-1+2'", "dvh"),
    ("'@' name in CSV", "names '@SUM(A1)'", "agree"),
    ("ESC in names: JUnit, terminal", "names 'PTV\\x1b[31mred'", "check"),
    ("NUL in names: JUnit", "names 'PTV\\x00'", "check"),
    ("CR in names: CSV", "names 'PT\\rV'", "dvh"),
    ("--name 胃癌_CTV", "expand --name '胃癌_CTV'", "expand"),
    ("infinite prescription", "RTPLAN prescription inf", "check"),
    ("agree on an empty folder", "agree on an empty folder", "agree"),
    ("Dask scheduler that never answers", "agree --scheduler silent", "agree"),
    ("Dask scheduler that never answers", "dvh cohort --scheduler silent", "dvh"),
]


def examples() -> list[tuple[str, Case, str]]:
    """:data:`EXAMPLES` with their cases."""
    by_name = {c.name: c for c in all_cases()}
    return [(label, by_name[name], command) for label, name, command in EXAMPLES]


def random_byte_cases(seed: int, n: int) -> list[Case]:
    """``n`` seeded cases flipping bytes in a file's header (the first 4 KB), and ``n // 2``
    flipping bytes anywhere in it (contour data, pixel data, sequences further on)."""
    rng = random.Random(seed)
    out = []
    for k in range(n):
        which = rng.choice(["rtstruct", "plan", "dose", "ct"])
        flips = [(rng.randrange(132, 4096), rng.randrange(256)) for _ in range(rng.randint(1, 8))]
        out.append(Case("bytes", f"seed {seed} #{k} {which} {len(flips)} byte(s)",
                        _flip(which, flips)))  # fmt: skip
    rng = random.Random(f"anywhere {seed}")
    for k in range(n // 2):
        which = rng.choice(["rtstruct", "plan", "dose", "ct"])
        flips = [(rng.random(), rng.randrange(256)) for _ in range(rng.randint(1, 8))]
        out.append(Case("bytes", f"seed {seed} anywhere #{k} {which} {len(flips)} byte(s)",
                        _flip(which, flips)))  # fmt: skip
    return out


def _flip(which: str, flips: list[tuple[float, int]]):
    """A change setting bytes of one file: at an offset, or (a fraction below 1) at that
    fraction of the file past its preamble."""

    def mutate(p: Patient):
        f = p.ct[0] if which == "ct" else getattr(p, which)
        data = bytearray(f.read_bytes())
        for where, byte in flips:
            pos = where if isinstance(where, int) else 132 + int(where * (len(data) - 132))
            if pos < len(data):
                data[pos] = byte
        f.write_bytes(bytes(data))

    return mutate


# ----------------------------------------------------------------------------- running
@dataclass
class Run:
    case: Case
    command: str
    argv: list[str]
    code: int
    stdout: str
    stderr: str
    seconds: float
    peak_bytes: int | None = None
    problems: list[str] = field(default_factory=list)


def snapshot(root: Path) -> dict[str, tuple]:
    """Every file under ``root``: (mode, hash) by path (bytes of the name)."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            st = p.lstat()
            digest = ""
            if stat.S_ISREG(st.st_mode):
                try:
                    digest = hashlib.sha256(p.read_bytes()).hexdigest()
                except OSError:
                    digest = "unreadable"
            out[os.fsencode(p)] = (stat.S_IFMT(st.st_mode), digest)
    return out


class _Timeout(Exception):
    pass


def run_in_process(argv: list[str]) -> tuple[int, str, str]:
    """``rtplan ARGV`` through :func:`rtplan.cli.main` with captured output; an exception
    that escapes is returned as exit 3 with its traceback on stderr."""
    import traceback

    from rtplan.cli import main

    out, err = io.StringIO(), io.StringIO()

    def alarm(signum, frame):
        raise _Timeout()

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(RUN_SECONDS)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                warnings.catch_warnings():  # fmt: skip
            warnings.simplefilter("always")
            try:
                code = main(argv)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 2
            except _Timeout:
                code = -1
                err.write("HANG\n")
            except BaseException:  # noqa: BLE001 - recorded as a finding
                code = 3
                err.write(traceback.format_exc())
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    return code, out.getvalue(), err.getvalue()


_SCRATCH: list[Path] = []


def _child_scratch() -> Path:
    """One private folder per test run (in the system's temp location, removed at exit) for
    the children's matplotlib config and kernel cache, shared by every child of the run."""
    if not _SCRATCH:
        _SCRATCH.append(Path(tempfile.mkdtemp(prefix="rtplan-fuzz-")))
        atexit.register(shutil.rmtree, _SCRATCH[0], ignore_errors=True)
    return _SCRATCH[0]


def run_subprocess(
    argv: list[str], *, nobody: bool = False, interrupt: tuple[int, float] | None = None
) -> tuple[int, str, str, int]:
    """``python -m rtplan.cli ARGV`` in a child; returns its peak resident memory too.

    ``nobody``: file modes must apply to the child; when running as root (CI) it runs
    without the capabilities that let root ignore them (``setpriv``).  ``interrupt``:
    (signal, seconds) sent to the child that long after its start (Ctrl-C, ``kill``)."""
    env = dict(os.environ)
    repo = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = repo + os.pathsep + env.get("PYTHONPATH", "")
    scratch = _child_scratch()
    env.setdefault("MPLCONFIGDIR", str(scratch / "mpl"))
    env.setdefault("NUMBA_CACHE_DIR", str(scratch / "numba"))
    for d in (env["MPLCONFIGDIR"], env["NUMBA_CACHE_DIR"]):
        os.makedirs(d, exist_ok=True)
    prefix = []
    if nobody and os.geteuid() == 0:  # root ignores file modes: drop that privilege
        prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner"]
    proc = subprocess.Popen(
        [*prefix, sys.executable, "-m", "rtplan.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd="/",
    )
    streams = {}

    def drain(name, stream):
        streams[name] = stream.read()

    readers = [
        threading.Thread(target=drain, args=(n, getattr(proc, n))) for n in ("stdout", "stderr")
    ]
    for t in readers:
        t.start()
    timer = threading.Timer(RUN_SECONDS, proc.kill)
    timer.start()
    reaped = threading.Event()
    if interrupt is not None:
        threading.Thread(
            target=_interrupt, args=(proc.pid, reaped, *interrupt), daemon=True
        ).start()
    _, status, usage = os.wait4(proc.pid, 0)  # the child's own peak memory (KiB on Linux)
    reaped.set()
    hung = not timer.is_alive()
    timer.cancel()

    for t in readers:
        t.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    out = streams["stdout"].decode(errors="replace")
    err = streams["stderr"].decode(errors="replace")
    if hung:
        return -1, out, "HANG\n" + err, usage.ru_maxrss * 1024
    return proc.returncode, out, err, usage.ru_maxrss * 1024


def _interrupt(pid: int, reaped: threading.Event, signum: int, seconds: float) -> None:
    """Send ``signum`` to the child ``seconds`` after rtplan's main began (it then handles
    SIGTERM: /proc/PID/status SigCgt; before that, the interpreter is still starting, which
    no program can make answer a signal cleanly)."""
    status = Path(f"/proc/{pid}/status")
    deadline = time.monotonic() + RUN_SECONDS
    while not reaped.is_set() and time.monotonic() < deadline:
        try:
            caught = next(ln for ln in status.read_text().splitlines() if ln.startswith("SigCgt"))
        except (OSError, StopIteration):
            break  # no /proc: count from the start
        if int(caught.split()[1], 16) >> (signal.SIGTERM - 1) & 1:
            break
        time.sleep(0.005)
    if not reaped.wait(seconds):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


#: Characters that must never reach the terminal raw (newline, tab and CR are text).
_RAW_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def judge(run: Run, before: dict, after: dict, everything: dict, outputs: list[Path]) -> None:
    """Fill ``run.problems`` with every broken promise (module docstring)."""
    allowed = run.case.expect.get(run.command, {0, 1, 2})
    if run.code == -1:
        run.problems.append("hang")
    elif run.code == 3 or "Traceback (most recent call last)" in run.stderr + run.stdout:
        run.problems.append("traceback")
    if run.code not in allowed and run.code not in (-1, 3):
        run.problems.append(f"exit {run.code}, expected {sorted(allowed)}")
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    if run.code == 2 and len(lines) != 1:
        run.problems.append(f"exit 2 with {len(lines)} stderr lines")
    elif run.code == 2 and len(lines[0]) > MAX_LINE_CHARS:
        run.problems.append(f"exit 2 with stderr lines too long: {len(lines[0])} characters")
    raw = _RAW_CONTROL.search(run.stdout + run.stderr)
    if raw:
        run.problems.append(f"content: raw control character {raw.group(0)!r} on the terminal")
    changed = [k for k in before if before[k] != after.get(k)]
    if changed:
        run.problems.append(f"modified input: {os.fsdecode(changed[0])}")
    temps = [k for k in everything if os.path.basename(k).startswith(b".tmp")]
    if temps:
        run.problems.append(f"temp file left: {os.fsdecode(temps[0])}")
    exist = [o.exists() for o in outputs]
    if any(exist) and (run.code == 2 or not all(exist)):
        run.problems.append(
            f"partial outputs after exit {run.code}: "
            f"{[str(o) for o, e in zip(outputs, exist, strict=True) if e]}"
        )
    if run.peak_bytes is not None and run.peak_bytes > MEMORY_LIMIT_BYTES:
        run.problems.append(f"peak memory {run.peak_bytes / 2**30:.2f} GiB")


def run_case(
    template: Template, case: Case, commands: tuple[str, ...], *, subprocess_all: bool = False
) -> list[Run]:
    """Run ``case`` on the given commands, each on a fresh copy of the patient."""
    runs = []
    for command in commands:
        patient = template.copy()
        case.mutate(patient)
        argv = case.argv(patient, command) if case.argv else patient.argv(command)
        if command == "agree":
            patient.agree_folder()
        outputs = [Path(o) for o in case.outputs(patient, command)] if case.outputs else []
        outputs = [o for o in outputs if not o.exists()]
        inputs = [patient.folder, patient.root / "agree", patient.observer_b]
        before = _snapshot_inputs(inputs)
        if case.lock:
            case.lock(patient)
        if case.concurrent > 1:
            together = _run_together(case, command, argv, case.concurrent)
        else:
            t0 = time.perf_counter()
            if case.nobody or case.subprocess or subprocess_all or case.interrupt:
                code, out, err, peak = run_subprocess(
                    argv, nobody=case.nobody, interrupt=case.interrupt
                )
            else:
                code, out, err = run_in_process(argv)
                peak = None
            together = [Run(case, command, argv, code, out, err, time.perf_counter() - t0, peak)]
        _restore_modes(patient.root)
        after = _snapshot_inputs(inputs)
        everything = snapshot(patient.root)
        for run in together:
            judge(run, before, after, everything, outputs)
        if case.inspect:
            together[0].problems += case.inspect(patient, together)
        if len(together) > 1:
            together[0].problems += _claims(together)
        runs += together
        shutil.rmtree(patient.root, ignore_errors=True)
    return runs


def _run_together(case: Case, command: str, argv: list[str], n: int) -> list[Run]:
    """``n`` subprocesses running ``argv`` at once (each judged on its own)."""
    results: list = [None] * n

    def one(i):
        t0 = time.perf_counter()
        code, out, err, peak = run_subprocess(argv)
        results[i] = Run(case, command, argv, code, out, err, time.perf_counter() - t0, peak)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _claims(runs: list[Run]) -> list[str]:
    """Runs racing for one folder: every file a run says it wrote ('wrote PATH') is there,
    and no two runs claim one file (one of them would have been lost)."""
    claimed = [line[6:].strip() for r in runs for line in r.stdout.splitlines()
               if line.startswith("wrote ")]  # fmt: skip
    problems = [f"lost output: {c} claimed twice" for c in sorted(set(claimed))
                if claimed.count(c) > 1]  # fmt: skip
    problems += [f"lost output: {c} claimed, absent" for c in claimed if not Path(c).exists()]
    return problems


def _snapshot_inputs(paths: list[Path]) -> dict:
    snap = {}
    for p in paths:
        if p.is_dir():
            snap.update(snapshot(p))
        elif p.exists():
            snap[os.fsencode(p)] = (stat.S_IFREG, hashlib.sha256(p.read_bytes()).hexdigest())
    return snap


def _restore_modes(root: Path) -> None:
    """Make everything under ``root`` readable and writable again (after a lock)."""
    for dirpath, dirnames, files in os.walk(root):
        for name in dirnames + files:
            p = Path(dirpath) / name
            if not p.is_symlink():
                with contextlib.suppress(OSError):
                    os.chmod(p, 0o777 if p.is_dir() else 0o666)
