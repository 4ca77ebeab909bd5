"""Safe reading of DICOM files: clear one-line errors for non-DICOM, truncated and incomplete files.

pydicom is lenient: a truncated file usually reads without complaint, with its last
elements cut short or missing.  :func:`read_dataset` checks that every top-level element
declared in the file is complete (its value ends within the file) and, for images read
without pixels, that the file is long enough to hold the pixel data its header announces.
Every failure is a :class:`~rtplan.errors.DicomReadError` naming the file.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.tag import Tag

from rtplan.errors import DicomReadError

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


class NotDicomError(DicomReadError):
    """The file is not a DICOM dataset at all (discovery skips these with a note)."""


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
    return ds


def _check_complete(ds: Dataset, size: int, path: Path, stop_before_pixels: bool) -> None:
    """Raise when the dataset is visibly cut short.

    Checks: every top-level element of defined length ends within the file; no 1-7 stray
    bytes follow the last element (a partial element header); SOPClassUID and
    SOPInstanceUID are present; an image header's announced pixel data is present (or,
    when pixels were skipped, fits in the rest of the file).
    """
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
    for keyword in ("SOPClassUID", "SOPInstanceUID"):
        if keyword not in ds:
            raise DicomReadError(
                f"missing required tag {keyword} (truncated or incomplete DICOM file)", path=path
            )
    expected = expected_pixel_bytes(ds)
    if expected is None or _PIXEL_DATA in ds:
        return
    if not stop_before_pixels:
        raise DicomReadError("truncated DICOM file: the image has no pixel data", path=path)
    meta = getattr(ds, "file_meta", None)
    implicit = getattr(getattr(meta, "TransferSyntaxUID", None), "is_implicit_VR", False)
    header = 8 if implicit else 12
    if end + header + expected > size:
        raise DicomReadError(
            f"truncated DICOM file: header announces {expected} bytes of pixel data, "
            f"only {max(size - end - header, 0)} remain",
            path=path,
        )


def expected_pixel_bytes(ds: Dataset) -> int | None:
    """Bytes of uncompressed pixel data announced by the header (``None``: not an image or
    compressed)."""
    meta = getattr(ds, "file_meta", None)
    ts = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    if ts is not None and ts.is_compressed:
        return None
    try:
        rows, cols, bits = int(ds.Rows), int(ds.Columns), int(ds.BitsAllocated)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (AttributeError, TypeError, ValueError):
        return None
    return (rows * cols * frames * samples * bits + 7) // 8


def _short(exc) -> str:
    return str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__


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
    value = ds.get(keyword, None)
    if value is None or (not isinstance(value, int | float) and len(value) == 0):
        tag = Tag(pydicom.datadict.tag_for_keyword(keyword))
        where = f" in {what}" if what else ""
        raise DicomReadError(f"missing required tag {keyword} {tag}{where}", path=path)
    return value


def floats(ds: Dataset, keyword: str, path: object, count: int | None = None, what: str = ""):
    """A required multi-valued numeric attribute as a float array (length checked)."""
    value = require(ds, keyword, path, what)
    try:
        arr = np.atleast_1d(np.asarray(value, dtype=float)).ravel()
    except (TypeError, ValueError):
        raise DicomReadError(f"{keyword} is not numeric: {value!r}", path=path) from None
    if count is not None and len(arr) != count:
        raise DicomReadError(f"{keyword} has {len(arr)} values, expected {count}", path=path)
    if not np.all(np.isfinite(arr)):
        raise DicomReadError(f"{keyword} holds non-finite values", path=path)
    return arr


def text(ds: Dataset, keyword: str, default: str = "") -> str:
    """An optional string attribute, stripped (``default`` when absent or empty)."""
    value = ds.get(keyword, None)
    if value is None:
        return default
    s = str(value).strip()
    return s or default


def modality_of(ds: Dataset) -> str:
    """The modality rtplan treats a dataset as (SOP class first, then Modality)."""
    sop = str(ds.get("SOPClassUID", ""))
    return SOP_CLASS_MODALITY.get(sop) or text(ds, "Modality", "OTHER").upper()
