"""rtplan.io.dicom_file.text: plain ASCII values are read from the raw bytes, every other
value through pydicom; both give what pydicom decodes (the truth: pydicom's own decoding of
the same element, in every character set)."""

from __future__ import annotations

import io

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from rtplan.errors import DicomReadError
from rtplan.io import dicom_file
from rtplan.io.dicom_file import _plain_floats, _plain_int, _plain_text, floats, int_value, text

CASES = [  # (character set, keyword, value, read from the raw bytes)
    ("ISO_IR 100", "PatientName", "Bench^Process", True),
    ("ISO_IR 100", "PatientName", "Müller^Hans", False),
    ("ISO_IR 192", "StudyDescription", "Épaule gauche ✓", False),
    (["", "ISO 2022 IR 87"], "PatientName", "Yamada^Tarou=山田^太郎", False),
    ("ISO_IR 100", "PatientID", "  P 01  ", True),
    ("ISO_IR 100", "StudyDescription", "", None),  # None: either way
    ("ISO_IR 100", "ImageType", ["ORIGINAL", "PRIMARY", "AXIAL"], False),
    ("ISO_IR 100", "ContourGeometricType", "CLOSED_PLANAR", True),
    ("ISO_IR 100", "StudyDate", "20240131", True),
    ("ISO_IR 100", "SeriesInstanceUID", "1.2.826.0.1.3680043.8.498.1", True),
    ("ISO_IR 100", "SeriesInstanceUID", "1.2.3", True),  # odd length: NUL-padded
    ("ISO_IR 100", "StructureSetLabel", "tab\there", False),
]


def _raw(charset: str, keyword: str, value, syntax) -> Dataset:
    """A dataset written to bytes and read back: its elements are raw until accessed."""
    ds = Dataset()
    ds.SpecificCharacterSet = charset
    setattr(ds, keyword, value)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=False, implicit_vr=syntax == ImplicitVRLittleEndian)
    buf.seek(0)
    return pydicom.dcmread(buf, force=True)


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
@pytest.mark.parametrize("charset,keyword,value,plain", CASES)
def test_text_equals_pydicom_decoding(charset, keyword, value, plain, syntax):
    fast = _raw(charset, keyword, value, syntax)
    if plain is not None:
        assert (_plain_text(fast, keyword) is not None) == plain
    decoded = _raw(charset, keyword, value, syntax)
    decoded.decode()  # pydicom decodes every element in its character set
    truth = str(decoded.get(keyword, "")).strip().rstrip("\x00") or "default"
    assert text(fast, keyword, "default") == truth


def test_absent_element_gives_the_default():
    ds = _raw("ISO_IR 100", "PatientID", "P1", ExplicitVRLittleEndian)
    assert text(ds, "PatientName", "none") == "none"
    assert _plain_text(ds, "PatientName") == ""


@pytest.mark.filterwarnings("ignore:Invalid value for VR IS:UserWarning")  # pydicom on "1.5"
@pytest.mark.filterwarnings("ignore:Value .* is not valid for elements with a VR of IS")
@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
@pytest.mark.parametrize("raw,plain", [("12", True), (" 7", True), ("+3", True), ("-2", True),
                                       ("012", True), ("1.5", False), (["3", "4"], False),
                                       ("", False), ("1e2", False)])  # fmt: skip
def test_int_value_equals_pydicom_decoding(raw, plain, syntax):
    fast = _raw("ISO_IR 100", "NumberOfContourPoints", raw, syntax)
    assert (_plain_int(fast, "NumberOfContourPoints") is not None) == plain
    decoded = _raw("ISO_IR 100", "NumberOfContourPoints", raw, syntax)
    decoded.decode()
    value = decoded.get("NumberOfContourPoints")
    try:  # truth: pydicom's IS value, a whole number and single
        truth = int(value) if value not in (None, "") and float(value) == int(value) else "x"
    except TypeError:  # several values
        truth = "x"
    try:
        got = int_value(fast, "NumberOfContourPoints", None, default="x")
    except DicomReadError:
        got = "x"
    assert got == truth


@pytest.mark.parametrize("implicit,little", [(True, True), (False, True), (False, False)])
@pytest.mark.parametrize("keyword,value", [("Rows", 512), ("Rows", [2, 3]),
                                           ("TagAngleSecondAxis", -7), ("ReferencePixelX0", -70000),
                                           ("SimpleFrameList", 4000000000)])  # fmt: skip
def test_binary_int_value_equals_pydicom_decoding(keyword, value, implicit, little):
    ds = Dataset()
    setattr(ds, keyword, value)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=False, implicit_vr=implicit, little_endian=little)
    raw = buf.getvalue()

    def read():
        return pydicom.filereader.read_dataset(io.BytesIO(raw), implicit, little)

    fast = read()
    assert (_plain_int(fast, keyword) is not None) == (not isinstance(value, list))
    try:
        got = int_value(fast, keyword, None)
    except DicomReadError:
        got = "several"
    truth = read()
    truth.decode()
    assert got == ("several" if isinstance(value, list) else int(truth[keyword].value))


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
@pytest.mark.parametrize("value,plain", [(["-249.5", "-249.5", "12.25"], True),
                                         (["1e2", " 3.5", "+0.1"], True), (["1", "2"], True),
                                         (["1e400", "0", "0"], True)])  # fmt: skip
def test_floats_equal_pydicom_decoding_and_fail_alike(value, plain, syntax, monkeypatch):
    # truth: what floats() gives when pydicom decodes the element (the raw path switched off)
    fast = _raw("ISO_IR 100", "ImagePositionPatient", value, syntax)
    assert (_plain_floats(fast, "ImagePositionPatient") is not None) == plain

    def outcome(ds):
        try:
            return floats(ds, "ImagePositionPatient", "f.dcm", 3).tolist()
        except DicomReadError as exc:
            return str(exc)

    got = outcome(fast)
    monkeypatch.setattr(dicom_file, "_plain_floats", lambda ds, keyword: None)
    assert got == outcome(_raw("ISO_IR 100", "ImagePositionPatient", value, syntax))
    if plain and len(value) == 3 and value[0] != "1e400":
        assert got == [float(v) for v in value]
