"""Safe reading of DICOM files: clear one-line errors for non-DICOM, truncated and incomplete files.

pydicom is lenient: a truncated file usually reads without complaint, with its last
elements cut short or missing.  :func:`read_dataset` checks that every top-level element
declared in the file is complete (its value ends within the file) and, for images read
without pixels, that the file is long enough to hold the pixel data its header announces.
Every failure is a :class:`~rtplan.errors.DicomReadError` naming the file.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import re
import stat
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.tag import Tag

from rtplan.errors import DicomReadError, NotDicomError, RtplanError

#: SOP classes rtplan reads, by DICOM modality.
SOP_CLASS_MODALITY = {
    "1.2.840.10008.5.1.4.1.1.2": "CT",
    "1.2.840.10008.5.1.4.1.1.481.2": "RTDOSE",
    "1.2.840.10008.5.1.4.1.1.481.3": "RTSTRUCT",
    "1.2.840.10008.5.1.4.1.1.481.5": "RTPLAN",
}
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
_UNDEFINED_LENGTH = 0xFFFFFFFF
_PIXEL_DATA = Tag(0x7FE00010)


def read_dataset(
    path: str | os.PathLike,
    *,
    stop_before_pixels: bool = False,
    defer_size: int | str | None = None,
) -> Dataset:
    """Read a DICOM file, refusing non-DICOM and truncated files.

    Parameters
    ----------
    path : path
        The file.  It is only read.
    stop_before_pixels : bool
        Skip the pixel data (for discovery); the file length is still checked against
        the pixel data its header announces (uncompressed transfer syntaxes).
    defer_size : int or str, optional
        Passed to :func:`pydicom.dcmread`: larger values are read only when used.

    Returns
    -------
    pydicom.Dataset

    Raises
    ------
    NotDicomError
        The file has no DICOM preamble and does not parse as a raw DICOM dataset.
    DicomReadError
        The file is empty, truncated or unreadable.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DicomReadError(f"cannot read file ({exc.strerror})", path=path) from None
    if size == 0:
        raise NotDicomError("empty file, not DICOM", path=path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=stop_before_pixels, defer_size=defer_size)
        except InvalidDicomError:
            ds = _read_raw_dataset(path, stop_before_pixels, defer_size)
        except Exception as exc:  # noqa: BLE001 - pydicom raises many types on corrupt files
            raise DicomReadError(f"unreadable DICOM file ({_short(exc)})", path=path) from None
    eof = [w for w in caught if "end of file" in str(w.message).lower()]
    if eof:
        raise DicomReadError(f"truncated DICOM file ({_short(eof[0].message)})", path=path)
    with reading(path), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # values decoded here are checked by the accessors
        _check_complete(ds, size, path, stop_before_pixels)
    return ds


def _read_raw_dataset(path, stop_before_pixels, defer_size) -> Dataset:
    """A dataset without Part 10 preamble (older exports), or NotDicomError."""
    try:
        ds = pydicom.dcmread(
            path, stop_before_pixels=stop_before_pixels, defer_size=defer_size, force=True
        )
        ok = "SOPClassUID" in ds and "SOPInstanceUID" in ds
        if ok:
            str(ds.SOPClassUID)
    except Exception:  # noqa: BLE001 - anything pydicom makes of a non-DICOM file
        ok = False
    if not ok:
        raise NotDicomError("not a DICOM file", path=path)
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        # a bare dataset states no transfer syntax: record the encoding pydicom read it in
        # (in memory only), so pixel data can be decoded
        implicit, little = getattr(ds, "original_encoding", None) or (True, True)
        ds.file_meta = FileMetaDataset(meta or Dataset())
        ds.file_meta.TransferSyntaxUID = (
            pydicom.uid.ImplicitVRLittleEndian
            if implicit
            else pydicom.uid.ExplicitVRLittleEndian
            if little
            else pydicom.uid.ExplicitVRBigEndian
        )
    return ds


def _check_complete(ds: Dataset, size: int, path: Path, stop_before_pixels: bool) -> None:
    """Raise when the dataset is visibly cut short.

    Checks: every top-level element of defined length ends within the file; no 1-7 stray
    bytes follow the last element (a partial element header); SOPClassUID and
    SOPInstanceUID are present; an image header's announced pixel data is present (or,
    when pixels were skipped, fits in the rest of the file).
    """
    for keyword in ("SOPClassUID", "SOPInstanceUID"):
        if keyword not in ds:
            raise DicomReadError(
                f"missing required tag {keyword} (truncated or incomplete DICOM file)", path=path
            )
    meta = getattr(ds, "file_meta", None)
    syntax = value_of(meta, "TransferSyntaxUID", path) if meta is not None else None
    if syntax is not None and str(syntax) == pydicom.uid.DeflatedExplicitVRLittleEndian:
        # offsets are positions in the inflated stream, not in the file: the pixel data
        # length is checked when the pixels are decoded (pixel_array)
        return
    end, last_defined = 0, True
    for tag in list(ds.keys()):
        elem = ds.get_item(tag)
        tell = getattr(elem, "value_tell", None)
        length = getattr(elem, "length", None)
        if tell is None or length is None:
            continue
        if length == _UNDEFINED_LENGTH:
            last_defined = False
            continue
        last_defined = tell + length >= end
        end = max(end, tell + length)
        if tell + length > size:
            raise DicomReadError(
                f"truncated DICOM file: element {tag} ends at byte {tell + length}, "
                f"file has {size}",
                path=path,
            )
    if last_defined and 0 < size - end < 8:
        raise DicomReadError(
            f"truncated DICOM file: {size - end} stray byte(s) after the last element", path=path
        )
    expected = expected_pixel_bytes(ds)
    if expected is None or _PIXEL_DATA in ds:
        return
    if not stop_before_pixels:
        raise DicomReadError("truncated DICOM file: the image has no pixel data", path=path)
    implicit = (getattr(ds, "original_encoding", None) or (False, True))[0]
    header = 8 if implicit else 12  # the PixelData element's tag and length (and VR)
    if end + header + expected > size:
        raise DicomReadError(
            f"truncated DICOM file: header announces {expected} bytes of pixel data, "
            f"only {max(size - end - header, 0)} remain",
            path=path,
        )


def list_files(root: Path, notes: list | None = None) -> tuple[list[Path], int]:
    """Every regular file under the folder ``root`` (sorted, recursively) and the number of
    hidden files and folders (names starting with ``.``) left out.

    Symbolic links to files and folders are followed; each real folder is entered once
    and each real file listed once (by resolved path), so a link back to a parent folder
    ends the walk.  Links skipped that way, and broken links, are counted in ``notes``
    (when given).  A folder that cannot be listed or searched (no read or execute
    permission) is a :class:`~rtplan.errors.DicomReadError`, never silently skipped.
    """

    def fail(exc: OSError):
        raise DicomReadError(
            f"cannot read folder ({exc.strerror or exc})", path=exc.filename or root
        ) from None

    out, hidden, loops, broken = [], 0, 0, 0
    seen_dirs, seen_files = {Path(root).resolve()}, set()
    for dirpath, dirnames, filenames in os.walk(root, onerror=fail, followlinks=True):
        keep = []
        for d in sorted(dirnames):
            if d.startswith("."):
                hidden += 1
                continue
            real = (Path(dirpath) / d).resolve()
            if real in seen_dirs:
                loops += 1
                continue
            seen_dirs.add(real)
            keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if name.startswith("."):
                hidden += 1
                continue
            try:
                if stat.S_ISLNK(p.lstat().st_mode) and not p.exists():
                    broken += 1
                    continue
                regular = stat.S_ISREG(p.stat().st_mode)
            except OSError as exc:
                fail(exc)
            real = p.resolve()
            if regular and real not in seen_files:
                seen_files.add(real)
                out.append(p)
    if notes is not None and loops:
        notes.append(f"skipped {loops} link(s) to folder(s) already read (link loop or repeat)")
    if notes is not None and broken:
        notes.append(f"ignored {broken} broken link(s)")
    return out, hidden


def expected_pixel_bytes(ds: Dataset) -> int | None:
    """Bytes of uncompressed pixel data announced by the header (``None``: not an image or
    compressed)."""
    meta = getattr(ds, "file_meta", None)
    ts = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    if ts is not None and ts.is_compressed:
        return None
    try:
        rows, cols = int_value(ds, "Rows", None), int_value(ds, "Columns", None)
        bits = int_value(ds, "BitsAllocated", None)
        samples = int_value(ds, "SamplesPerPixel", None, default=1)
        frames = int_value(ds, "NumberOfFrames", None, default=1)
    except DicomReadError:
        return None  # the readers report the bad value, naming the element
    return (rows * cols * frames * samples * bits + 7) // 8


def _short(exc) -> str:
    return shorten_text(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, 160)


# ----------------------------------------------------------------------------------------
# The input boundary: every value rtplan takes from a DICOM dataset goes through these.

#: Largest Rows or Columns accepted (pixels); larger headers are refused before decoding.
MAX_IMAGE_SIDE = 4096
#: Largest number of voxels of one image or dose grid (2**27, 512 MiB as float32); larger
#: headers are refused before anything is allocated.
MAX_VOXELS = 2**27
#: Largest |coordinate| accepted in patient space (mm): 100 m, far outside any patient.
MAX_COORDINATE_MM = 1.0e5

_MISSING = object()


def element_name(keyword: str) -> str:
    """``"DoseGridScaling (3004,000E)"``: a keyword with its tag, for messages."""
    try:
        return f"{keyword} {Tag(pydicom.datadict.tag_for_keyword(keyword))}"
    except Exception:  # noqa: BLE001 - an unknown keyword still names itself
        return keyword


def shorten_text(text: str, limit: int = 60) -> str:
    """``text`` with control characters escaped, cut to ``limit`` characters."""
    out = "".join(
        ch
        if ch.isprintable() and not 0xD800 <= ord(ch) <= 0xDFFF
        else ch.encode("unicode_escape", "backslashreplace").decode("ascii")
        for ch in str(text)
    )
    return out if len(out) <= limit else out[: limit - 3] + "..."


def shorten(value, limit: int = 60) -> str:
    """A value for a message: bytes as their length, text escaped and cut short."""
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"
    if isinstance(value, str):
        return shorten_text(repr(value), limit)
    if isinstance(value, list | tuple | pydicom.multival.MultiValue):
        shown = "\\".join(str(v) for v in list(value)[:6]) + ("\\..." if len(value) > 6 else "")
        return shorten_text(repr(shown), limit)
    return shorten_text(str(value), limit)


def _fail(keyword: str, path: object, what: str, problem: str, value=_MISSING):
    where = f" in {what}" if what else ""
    shown = "" if value is _MISSING else f": {shorten(value)}"
    return DicomReadError(f"{element_name(keyword)}{where} {problem}{shown}", path=path)


def _missing(keyword: str, path: object, what: str):
    where = f" in {what}" if what else ""
    return DicomReadError(f"missing required tag {element_name(keyword)}{where}", path=path)


def _is_empty(value) -> bool:
    if value is None:
        return True
    if isinstance(value, int | float):
        return False
    try:
        return len(value) == 0 or (isinstance(value, str) and not value.strip())
    except TypeError:
        return False


def value_of(ds: Dataset, keyword: str, path: object, what: str = ""):
    """The value of an attribute, ``None`` when absent or empty.

    pydicom converts values lazily, on first access; whatever it raises or warns while
    decoding (an unknown VR, a value that does not fit its VR) becomes one
    :class:`~rtplan.errors.DicomReadError` naming the element here.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = ds.get(keyword, None)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on corrupt values
        raise _fail(keyword, path, what, f"cannot be decoded ({_short(exc)})") from None
    return None if _is_empty(value) else value


def require(ds: Dataset, keyword: str, path: object, what: str = ""):
    """The value of a required attribute, or a :class:`DicomReadError` naming the tag.

    Parameters
    ----------
    ds : pydicom.Dataset
        The dataset (or a sequence item).
    keyword : str
        DICOM keyword, e.g. ``"ImagePositionPatient"``.
    path : path
        The file, for the message.
    what : str
        Where the item sits, e.g. ``"ROIContourSequence item 3"``, for the message.
    """
    value = value_of(ds, keyword, path, what)
    if value is None:
        raise _missing(keyword, path, what)
    return value


def _single(value, keyword, path, what):
    if isinstance(value, list | tuple | pydicom.multival.MultiValue):
        if len(value) != 1:
            raise _fail(keyword, path, what, f"has {len(value)} values, expected 1", value)
        return value[0]
    return value


def _check_range(number, keyword, path, what, minimum, maximum, above):
    if minimum is not None and number < minimum:
        raise _fail(keyword, path, what, f"is below the allowed minimum {minimum:g}", number)
    if above is not None and not number > above:
        raise _fail(keyword, path, what, f"must be greater than {above:g}", number)
    if maximum is not None and number > maximum:
        raise _fail(keyword, path, what, f"is above the allowed maximum {maximum:g}", number)


def _single_or_default(ds: Dataset, keyword: str, path: object, what: str, default):
    """``(True, value)`` of a present single-valued attribute, ``(False, default)`` when it
    is absent or empty; an error when absent without a default or when it has several
    values."""
    value = value_of(ds, keyword, path, what)
    if value is None:
        if default is _MISSING:
            raise _missing(keyword, path, what)
        return False, default
    return True, _single(value, keyword, path, what)


def int_value(
    ds: Dataset,
    keyword: str,
    path: object,
    what: str = "",
    *,
    default=_MISSING,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    """A single integer attribute (IS, US, SS, UL, SL).

    Missing or empty: ``default`` when given, else an error.  Several values, a value that
    is not a whole number, or one outside ``[minimum, maximum]``: a
    :class:`~rtplan.errors.DicomReadError` naming the file, the element and the value.
    A single plain value is read from the raw bytes (:func:`_plain_int`).
    """
    number = _plain_int(ds, keyword)
    if number is None:
        found, value = _single_or_default(ds, keyword, path, what, default)
        if not found:
            return value
        try:
            number = float(str(value).strip()) if not isinstance(value, int) else value
            if not math.isfinite(number) or number != int(number):
                raise ValueError
            number = int(number)
        except (TypeError, ValueError, OverflowError):
            raise _fail(keyword, path, what, "is not an integer", value) from None
    _check_range(number, keyword, path, what, minimum, maximum, None)
    return number


def float_value(
    ds: Dataset,
    keyword: str,
    path: object,
    what: str = "",
    *,
    default=_MISSING,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
) -> float:
    """A single finite number (DS, FD, FL, IS).

    Missing or empty: ``default`` when given, else an error.  Several values, text that is
    not a number, NaN or infinity, or a value outside ``[minimum, maximum]`` (or not
    greater than ``above``): a :class:`~rtplan.errors.DicomReadError` naming the file,
    the element and the value.
    """
    found, value = _single_or_default(ds, keyword, path, what, default)
    if not found:
        return value
    try:
        number = float(str(value).strip()) if isinstance(value, str | bytes) else float(value)
    except (TypeError, ValueError, OverflowError):
        raise _fail(keyword, path, what, "is not a number", value) from None
    if not math.isfinite(number):
        raise _fail(keyword, path, what, "is not finite", value)
    _check_range(number, keyword, path, what, minimum, maximum, above)
    return number


def floats(
    ds: Dataset,
    keyword: str,
    path: object,
    count: int | None = None,
    what: str = "",
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
    limit: float | None = MAX_COORDINATE_MM,
) -> np.ndarray:
    """A required multi-valued numeric attribute as a float array.

    The number of values must be ``count`` (when given); every value must be finite, at
    most ``limit`` in magnitude and within ``[minimum, maximum]`` (greater than ``above``).
    Plain decimal strings (VR DS) are read from the raw bytes (:func:`_plain_floats`); a
    value that fails a check is decoded by pydicom, so the message shows it as before.
    """
    checks = dict(minimum=minimum, maximum=maximum, above=above, limit=limit)
    arr = _plain_floats(ds, keyword)
    if arr is not None:
        with contextlib.suppress(DicomReadError):
            return _checked_floats(arr, arr, keyword, path, count, what, **checks)
    value = require(ds, keyword, path, what)
    try:
        if isinstance(value, bytes | bytearray):
            raise ValueError
        arr = np.atleast_1d(np.asarray(value, dtype=float)).ravel()
    except (TypeError, ValueError, OverflowError):
        raise _fail(keyword, path, what, "is not numeric", value) from None
    return _checked_floats(arr, value, keyword, path, count, what, **checks)


def _checked_floats(arr, value, keyword, path, count, what, *, minimum, maximum, above, limit):
    """``arr`` (the numbers of ``value``) when it passes the checks of :func:`floats`."""
    if count is not None and len(arr) != count:
        raise _fail(keyword, path, what, f"has {len(arr)} values, expected {count}", value)
    if not np.all(np.isfinite(arr)):
        raise _fail(keyword, path, what, "holds non-finite values", value)
    if limit is not None and len(arr) and np.abs(arr).max() > limit:
        raise _fail(keyword, path, what, f"holds values beyond +-{limit:g}", value)
    for number in (arr.min(), arr.max()) if len(arr) else ():
        _check_range(float(number), keyword, path, what, minimum, maximum, above)
    return arr


def image_size(
    ds: Dataset, path: object, frames_keyword: str | None = None
) -> tuple[int, int, int]:
    """(frames, rows, columns) of an image header, checked against the ceilings.

    Rows and Columns must be whole numbers in ``1..MAX_IMAGE_SIDE``; NumberOfFrames (when
    ``frames_keyword`` is given; default 1) at least 1; the product at most
    :data:`MAX_VOXELS`.  Checked before any pixel is decoded or allocated.
    """
    rows = int_value(ds, "Rows", path, minimum=1, maximum=MAX_IMAGE_SIDE)
    cols = int_value(ds, "Columns", path, minimum=1, maximum=MAX_IMAGE_SIDE)
    frames = 1
    if frames_keyword:
        frames = int_value(ds, frames_keyword, path, default=1, minimum=1, maximum=MAX_VOXELS)
    check_voxels(frames * rows * cols, path, f"{frames} x {rows} x {cols}")
    return frames, rows, cols


def check_voxels(count: int, path: object, shape: str) -> None:
    """Refuse an image of more than :data:`MAX_VOXELS` voxels (before allocating it)."""
    if count > MAX_VOXELS:
        raise DicomReadError(
            f"image of {shape} = {count} voxels exceeds rtplan's limit of {MAX_VOXELS} voxels",
            path=path,
        )


def pixel_array(ds: Dataset, path: object, shape: tuple[int, int, int]) -> np.ndarray:
    """The decoded pixels of an image of ``shape`` (frames, rows, columns), as an array of
    that shape.

    Before decoding: BitsAllocated must be 8, 16 or 32 and SamplesPerPixel 1; the
    transfer syntax must be one pydicom knows; uncompressed pixel data must hold exactly
    the bytes Rows x Columns x frames x BitsAllocated announce (one padding byte allowed).
    Whatever pydicom raises or warns while decoding becomes a
    :class:`~rtplan.errors.DicomReadError`.
    """
    bits = int_value(ds, "BitsAllocated", path)
    if bits not in (8, 16, 32):
        raise _fail("BitsAllocated", path, "", "must be 8, 16 or 32", bits)
    int_value(ds, "SamplesPerPixel", path, default=1, minimum=1, maximum=1)
    int_value(ds, "PixelRepresentation", path, default=0, minimum=0, maximum=1)
    meta = getattr(ds, "file_meta", None)
    ts = value_of(meta, "TransferSyntaxUID", path) if meta is not None else None
    if ts is not None and not pydicom.uid.UID(str(ts)).is_transfer_syntax:
        raise _fail("TransferSyntaxUID", path, "", "is not a known transfer syntax", str(ts))
    if _PIXEL_DATA not in ds:
        raise DicomReadError("the image has no pixel data (7FE0,0010)", path=path)
    expected = shape[0] * shape[1] * shape[2] * bits // 8
    compressed = ts is not None and pydicom.uid.UID(str(ts)).is_compressed
    if not compressed:
        raw = value_of(ds, "PixelData", path)
        have = 0 if raw is None else len(raw)
        if have not in (expected, expected + 1):
            raise DicomReadError(
                f"PixelData (7FE0,0010) holds {have} bytes, the header announces {expected} "
                f"({' x '.join(map(str, shape))} pixels of {bits} bits)",
                path=path,
            )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pixels = np.asarray(ds.pixel_array)
    except Exception as exc:  # noqa: BLE001 - pydicom/numpy raise many types on bad data
        raise DicomReadError(f"cannot decode pixel data ({_short(exc)})", path=path) from None
    if pixels.size != expected * 8 // bits:
        raise DicomReadError(
            f"pixel data decode to {pixels.size} values, the header announces "
            f"{' x '.join(map(str, shape))}",
            path=path,
        )
    return pixels.reshape(shape)


@contextmanager
def reading(path: object):
    """Turn an exception raised inside pydicom while reading ``path`` into a one-line
    :class:`~rtplan.errors.DicomReadError` (pydicom decodes values lazily, so a corrupt
    value can raise long after ``dcmread`` returned).  Other exceptions pass through."""
    try:
        yield
    except RtplanError as exc:
        if exc.path is None and path is not None:
            raise type(exc)(exc.problem, path=path, structure=exc.structure) from None
        raise
    except Exception as exc:  # noqa: BLE001 - only exceptions raised inside pydicom
        if not _raised_in_pydicom(exc):
            raise
        raise DicomReadError(f"unreadable DICOM value ({_short(exc)})", path=path) from None


_PYDICOM_DIR = os.path.dirname(pydicom.__file__)


def _raised_in_pydicom(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.startswith(_PYDICOM_DIR):
            return True
        tb = tb.tb_next
    return False


#: A UID as read: one value of 1 to 64 printable characters without spaces (PS3.5 9.1
#: allows digits and dots only; the few exports with other characters are still read).
_UID = re.compile(r"[\x21-\x7e]{1,64}")


def text(ds: Dataset, keyword: str, default: str = "", path: object = None) -> str:
    """An optional string attribute, stripped (``default`` when absent or empty).

    A value pydicom cannot decode is an error naming the element (see :func:`value_of`), and
    so is a UID (VR UI) with several values or that is not a UID (:data:`_UID`): a damaged
    file cannot make a frame of reference out of kilobytes of other elements.  A single
    value of plain ASCII is taken from the file's bytes as they are (:func:`_plain_text`).
    """
    uid = _vr(keyword) == "UI"
    s = _plain_text(ds, keyword)
    if s is None:
        value = value_of(ds, keyword, path)
        if value is None:
            return default
        if uid:
            value = _single(value, keyword, path, "")
        with warnings.catch_warnings():  # pydicom checks lengths when it formats a value
            warnings.simplefilter("ignore")
            s = str(value).strip()
    if uid:
        s = s.rstrip("\x00")
        if s and not _UID.fullmatch(s):
            raise _fail(keyword, path, "", "is not a UID", s)
    return s or default


@functools.cache
def _vr(keyword: str) -> str:
    tag = pydicom.datadict.tag_for_keyword(keyword)
    return pydicom.datadict.dictionary_VR(tag) if tag is not None else ""


@functools.cache
def _tag(keyword: str) -> int | None:
    return pydicom.datadict.tag_for_keyword(keyword)


#: Text VRs whose plain values :func:`_plain_text` reads from the raw bytes.
_PLAIN_VRS = frozenset({"AE", "AS", "CS", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "TM", "UI"})
#: One value of printable ASCII (no backslash: the value separator), NUL-padded for a UID:
#: every DICOM character set decodes these bytes to the same characters.
_PLAIN = {vr: re.compile(rb"[\x20-\x5b\x5d-\x7e]*") for vr in _PLAIN_VRS - {"UI"}}
_PLAIN["UI"] = re.compile(rb"[\x20-\x5b\x5d-\x7e]*\x00?")


def _plain_text(ds: Dataset | None, keyword: str) -> str | None:
    """The stripped value of a text element not yet decoded by pydicom when its bytes are
    plain (:data:`_PLAIN`), as pydicom would decode it (``""`` when absent); else None.

    pydicom decodes each element on first access, through several layers, for every
    header of a folder scan; plain ASCII needs none of that.
    """
    vr = _vr(keyword)
    if ds is None or vr not in _PLAIN_VRS:
        return None
    if _tag(keyword) not in ds:
        return ""
    elem = _raw_element(ds, keyword)
    if elem is None or not _PLAIN[vr].fullmatch(elem.value):
        return None
    return elem.value.decode("ascii").strip().rstrip("\x00").strip()


#: Decimal strings (VR DS) separated by backslashes.
_PLAIN_DS = re.compile(rb"[ 0-9eE+.\\\-]+")


def _plain_floats(ds: Dataset | None, keyword: str) -> np.ndarray | None:
    """The numbers of a DS element not yet decoded by pydicom when its bytes are plain
    decimal strings (:data:`_PLAIN_DS`), as pydicom reads them; else None."""
    if ds is None or _vr(keyword) != "DS":
        return None
    elem = _raw_element(ds, keyword)
    if elem is None or not _PLAIN_DS.fullmatch(elem.value):
        return None
    try:
        return np.array([float(v) for v in elem.value.split(b"\\")])
    except ValueError:  # an empty or malformed value: pydicom decides
        return None


#: One integer string (VR IS) as pydicom reads it.
_PLAIN_IS = re.compile(rb" *[+-]?[0-9]{1,15} *")
#: Binary integer VRs: (bytes of one value, signed).
_BINARY_INTS = {"US": (2, False), "SS": (2, True), "UL": (4, False), "SL": (4, True)}


def _plain_int(ds: Dataset | None, keyword: str) -> int | None:
    """The value of an integer element not yet decoded by pydicom when it holds exactly
    one value (an IS string of digits, or one binary US/SS/UL/SL number); else None
    (absent, empty, several values, ...: :func:`int_value` decodes it)."""
    vr = _vr(keyword)
    if ds is None or (vr != "IS" and vr not in _BINARY_INTS):
        return None
    elem = _raw_element(ds, keyword)
    if elem is None:
        return None
    if vr == "IS":
        return int(elem.value) if _PLAIN_IS.fullmatch(elem.value) else None
    size, signed = _BINARY_INTS[vr]
    if len(elem.value) != size:
        return None
    order = "little" if elem.is_little_endian else "big"
    return int.from_bytes(elem.value, order, signed=signed)


def _raw_element(ds: Dataset, keyword: str) -> RawDataElement | None:
    """An element pydicom has not decoded yet, with its bytes, stored with the VR of its
    keyword (or implicitly); else None."""
    elem = ds.get_item(_tag(keyword))
    if isinstance(elem, RawDataElement) and elem.VR in (None, _vr(keyword)):
        return elem if isinstance(elem.value, bytes) else None
    return None


def modality_of(ds: Dataset, path: object = None) -> str:
    """The modality rtplan treats a dataset as (SOP class first, then Modality)."""
    sop = text(ds, "SOPClassUID", "", path)
    return SOP_CLASS_MODALITY.get(sop) or text(ds, "Modality", "OTHER", path).upper()
