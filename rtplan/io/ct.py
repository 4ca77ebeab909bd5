"""CT series: slice headers -> geometry (:class:`CTSeries`) -> pixels (:class:`~rtplan.image.Image`).

Conventions (DICOM PS3.3 C.7.6.2)
--------------------------------
* ImageOrientationPatient = row cosine ``r`` (direction in which the column index ``i``
  grows) then column cosine ``c`` (direction in which the row index ``j`` grows).  The
  slice normal is ``n = r x c``; slices are sorted by ``ImagePositionPatient . n``
  (never by InstanceNumber or SliceLocation), so the slice index ``k`` grows along ``n``.
  The grid direction is ``[n, c, r]`` (array axes ``k, j, i``), which covers the eight
  cardinal patient positions (HFS, HFP, FFS, FFP, HFDL, HFDR, FFDL, FFDR) and any
  oblique but orthogonal orientation.
* PixelSpacing is ``[row spacing, column spacing]`` = ``[spacing along j, along i]``.
* ImagePositionPatient is the centre of the first voxel of each slice; the grid origin is
  that of the first slice after sorting.
* HU = stored value x RescaleSlope + RescaleIntercept (per slice).
* Slice gaps that differ from the smallest gap by more than 0.01 mm make the grid
  non-uniform (``Grid.slice_offsets_mm``) and add a warning naming the gap (emitted as an
  :class:`~rtplan.errors.RtplanWarning` and kept in ``warnings``)
  (a gap that is a whole multiple of the smallest is reported as missing slices).
* Errors (:class:`~rtplan.errors.GeometryError`, naming the files): mixed orientations,
  two slices at one position, slices not stacked along the normal (gantry tilt), differing
  Rows/Columns/PixelSpacing.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from rtplan.errors import DicomReadError, GeometryError, warn
from rtplan.grid import Grid
from rtplan.image import Image
from rtplan.io.dicom_file import (
    NotDicomError,
    check_voxels,
    float_value,
    floats,
    image_size,
    list_files,
    modality_of,
    pixel_array,
    read_dataset,
    reading,
    text,
)

#: Positions along the slice normal closer than this (mm) are the same slice.
DUPLICATE_TOLERANCE_MM = 0.01
#: Gaps differing by less than this (mm) count as uniform spacing.
UNIFORM_TOLERANCE_MM = 0.01
#: Largest allowed |cos| between row and column cosines, and between normals of slices.
ORIENTATION_TOLERANCE = 1e-4
#: Largest pixel spacing or slice thickness accepted (mm).
MAX_SPACING_MM = 1000.0
#: Largest |RescaleSlope| and |RescaleIntercept| accepted.
MAX_RESCALE = 1.0e6


@dataclass(frozen=True, eq=False)
class CTSeries:
    """The geometry and identity of a CT series, from its headers (no pixels read).

    ``paths[k]`` and ``sop_instance_uids[k]`` belong to slice ``k`` of ``grid`` (sorted
    along the slice normal).  :meth:`load` reads the pixels into an
    :class:`~rtplan.image.Image`.
    """

    grid: Grid
    paths: tuple[Path, ...]
    sop_instance_uids: tuple[str, ...]
    series_instance_uid: str = ""
    study_instance_uid: str = ""
    frame_of_reference_uid: str = ""
    sop_class_uid: str = ""
    modality: str = "CT"
    patient_id: str = ""
    patient_name: str = ""
    patient_position: str = ""
    series_description: str = ""
    #: Problems found while reading (each emitted as an RtplanWarning when found).
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def source(self) -> str:
        """The folder of the series (or its single file), for messages."""
        parents = {p.parent for p in self.paths}
        return (
            str(parents.pop()) if len(parents) == 1 and len(self.paths) > 1 else str(self.paths[0])
        )

    def load(self) -> Image:
        """Read the pixel data of every slice and return the :class:`~rtplan.image.Image`."""
        check_voxels(
            int(np.prod(self.grid.shape)), self.source, "x".join(map(str, self.grid.shape))
        )
        values = np.empty(self.grid.shape, dtype=np.float32)
        for k, path in enumerate(self.paths):
            ds = read_dataset(path)
            with reading(path):
                values[k] = _slice_hu(ds, path, self.grid.shape[1:])
        return Image(
            values_hu=values,
            grid=self.grid,
            series_instance_uid=self.series_instance_uid,
            study_instance_uid=self.study_instance_uid,
            frame_of_reference_uid=self.frame_of_reference_uid,
            sop_class_uid=self.sop_class_uid,
            sop_instance_uids=self.sop_instance_uids,
            patient_id=self.patient_id,
            patient_name=self.patient_name,
            patient_position=self.patient_position,
            source=self.source,
            warnings=self.warnings,
        )


def _slice_hu(ds: Dataset, path, shape) -> np.ndarray:
    _, rows, cols = image_size(ds, path)
    if (rows, cols) != tuple(shape):
        raise GeometryError(
            f"slice has {rows} x {cols} pixels, the series has {shape[0]} x {shape[1]}", path=path
        )
    pixels = pixel_array(ds, path, (1, rows, cols))[0]
    slope = float_value(ds, "RescaleSlope", path, default=1.0, minimum=-MAX_RESCALE,
                        maximum=MAX_RESCALE)  # fmt: skip
    if slope == 0:
        raise DicomReadError("RescaleSlope (0028,1053) is 0", path=path)
    intercept = float_value(ds, "RescaleIntercept", path, default=0.0, minimum=-MAX_RESCALE,
                            maximum=MAX_RESCALE)  # fmt: skip
    return pixels.astype(np.float32) * np.float32(slope) + np.float32(intercept)


def ct_series_from_headers(headers: Sequence[tuple[Path, Dataset]]) -> CTSeries:
    """Geometry of one image series from its slice headers.

    Parameters
    ----------
    headers : sequence of (path, pydicom.Dataset)
        Every slice of one series (pixel data not needed), in any order.

    Returns
    -------
    CTSeries
        Slices sorted along the slice normal; see the module docstring for conventions.

    Raises
    ------
    GeometryError
        Mixed orientations, duplicate positions, sheared stacks, inconsistent sizes.
    DicomReadError
        A slice lacks ImagePositionPatient, ImageOrientationPatient, PixelSpacing, Rows
        or Columns.
    """
    if not headers:
        raise DicomReadError("no image slices given")
    paths = [Path(p) for p, _ in headers]
    series_uids = {text(ds, "SeriesInstanceUID", "", p) for p, ds in headers}
    if len(series_uids) > 1:
        raise GeometryError(
            f"slices of {len(series_uids)} different series given as one series "
            f"({', '.join(sorted(series_uids))})",
            path=_common_parent(paths),
        )
    iops = np.array(
        [floats(ds, "ImageOrientationPatient", p, 6, minimum=-1.0001, maximum=1.0001)
         for p, ds in headers]
    )  # fmt: skip
    ipps = np.array([floats(ds, "ImagePositionPatient", p, 3) for p, ds in headers])
    spacings = np.array(
        [floats(ds, "PixelSpacing", p, 2, above=0.0, maximum=MAX_SPACING_MM) for p, ds in headers]
    )
    sizes = np.array([image_size(ds, p)[1:] for p, ds in headers])
    check_voxels(len(headers) * int(sizes[0][0]) * int(sizes[0][1]), _common_parent(paths),
                 f"{len(headers)} x {sizes[0][0]} x {sizes[0][1]}")  # fmt: skip

    row, col, normal = _orientation(iops, spacings, sizes, paths)
    order, position, ipps = _stack(ipps, normal, paths)
    sorted_paths = [paths[i] for i in order]
    gaps = np.diff(position)

    warnings: list[str] = []
    offsets = position - position[0]
    if len(gaps):
        step = float(gaps.min())
        uniform = bool(np.all(np.abs(gaps - step) <= UNIFORM_TOLERANCE_MM))
    else:
        step = _single_slice_thickness(headers[0][1], paths[0])
        uniform = True
    if not uniform:
        warnings.append(_spacing_warning(gaps, step, position))

    direction = np.stack([normal, col, row], axis=1)
    grid = Grid(
        shape=(len(headers), int(sizes[0][0]), int(sizes[0][1])),
        origin_mm=tuple(ipps[0]),
        spacing_mm=(step, float(spacings[0][0]), float(spacings[0][1])),
        direction=tuple(map(tuple, direction)),
        slice_offsets_mm=None if uniform else tuple(offsets),
    )
    first_path, first = headers[order[0]]
    return CTSeries(
        grid=grid,
        paths=tuple(sorted_paths),
        sop_instance_uids=tuple(
            text(headers[i][1], "SOPInstanceUID", "", headers[i][0]) for i in order
        ),
        series_instance_uid=series_uids.pop(),
        study_instance_uid=text(first, "StudyInstanceUID", "", first_path),
        frame_of_reference_uid=text(first, "FrameOfReferenceUID", "", first_path),
        sop_class_uid=text(first, "SOPClassUID", "", first_path),
        modality=text(first, "Modality", "CT", first_path),
        patient_id=text(first, "PatientID", "", first_path),
        patient_name=text(first, "PatientName", "", first_path),
        patient_position=text(first, "PatientPosition", "", first_path),
        series_description=text(first, "SeriesDescription", "", first_path),
        warnings=tuple(warn(w, path=_common_parent(paths)) for w in warnings),
    )


def _orientation(iops, spacings, sizes, paths: list[Path]):
    """The series' row, column and normal directions: one orientation, pixel spacing and
    size for every slice (else a :class:`GeometryError` naming the odd slices)."""
    ref = iops[0]
    odd = np.flatnonzero(np.abs(iops - ref).max(axis=1) > ORIENTATION_TOLERANCE)
    if len(odd):
        raise GeometryError(
            "mixed image orientations in one series: "
            f"{_names(paths, odd)} differ from {paths[0].name} "
            f"({_fmt(iops[odd[0]])} vs {_fmt(ref)})",
            path=_common_parent(paths),
        )
    row, col = _orthonormal(ref, paths[0])
    for label, values in (("PixelSpacing", spacings), ("Rows/Columns", sizes)):
        odd = np.flatnonzero(np.abs(values - values[0]).max(axis=1) > 1e-6)
        if len(odd):
            raise GeometryError(
                f"{label} differs between slices: {_names(paths, odd)} vs {paths[0].name}",
                path=_common_parent(paths),
            )
    return row, col, np.cross(row, col)


def _stack(ipps, normal, paths: list[Path]):
    """The slices sorted along ``normal``: ``(order, position along the normal (mm), sorted
    positions)``; two slices at one position, or a slice off the line through the first
    along the normal (gantry tilt, shear), is a :class:`GeometryError`."""
    position = ipps @ normal
    order = np.argsort(position, kind="stable")
    position, ipps = position[order], ipps[order]
    sorted_paths = [paths[i] for i in order]
    gaps = np.diff(position)
    dup = np.flatnonzero(gaps < DUPLICATE_TOLERANCE_MM)
    if len(dup):
        a, b = sorted_paths[dup[0]], sorted_paths[dup[0] + 1]
        raise GeometryError(
            f"two slices at the same position {position[dup[0]]:.3f} mm along the slice "
            f"normal: {a.name} and {b.name}"
            + (f" (and {len(dup) - 1} more)" if len(dup) > 1 else ""),
            path=_common_parent(paths),
        )
    # every slice must sit on the line origin + s * normal (no shear / gantry tilt)
    in_plane = (ipps - ipps[0]) - np.outer(position - position[0], normal)
    shear = np.linalg.norm(in_plane, axis=1)
    if shear.max() > 0.01:
        worst = int(np.argmax(shear))
        raise GeometryError(
            f"slices are not stacked along the image normal (gantry tilt or sheared "
            f"series): {sorted_paths[worst].name} is offset {shear[worst]:.2f} mm in-plane",
            path=_common_parent(paths),
        )
    return order, position, ipps


def read_ct_series(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> Image:
    """Read a CT series into an :class:`~rtplan.image.Image` (HU, sorted slices).

    Parameters
    ----------
    paths : path or sequence of paths
        The slice files, or a folder holding exactly one image series (other DICOM
        objects in it, such as RTSTRUCT or RTDOSE, are ignored; files that are not DICOM
        are skipped; a DICOM file or sub-folder that cannot be read is an error).

    Returns
    -------
    Image
        ``values_hu[k, j, i]`` (float32), on the grid described in the module docstring;
        ``warnings`` lists non-uniform spacing / missing slices.

    Example
    -------
    >>> import numpy as np, tempfile
    >>> from rtplan.testing import synthetic
    >>> grid = synthetic.cardinal_grid((3, 2, 2), (0, 0, 0), (2.0, 1.0, 1.0), "HFS")
    >>> files = synthetic.write_datasets(synthetic.ct_series_datasets(
    ...     np.zeros(grid.shape), grid, patient_id="P", patient_name="P"), tempfile.mkdtemp())
    >>> read_ct_series(files[::-1]).grid.same_as(grid)
    True
    """
    if isinstance(paths, str | os.PathLike) and Path(paths).is_dir():
        folder = Path(paths)
        headers = []
        for p in list_files(folder)[0]:
            try:
                ds = read_dataset(p, stop_before_pixels=True)
            except NotDicomError:
                continue
            if modality_of(ds, p) == "CT":
                headers.append((p, ds))
        if not headers:
            raise DicomReadError("no CT image slices found", path=folder)
        series = {text(ds, "SeriesInstanceUID") for _, ds in headers}
        if len(series) > 1:
            raise DicomReadError(
                f"{len(series)} image series in the folder; give the files of one", path=folder
            )
    else:
        file_list = (
            [Path(paths)] if isinstance(paths, str | os.PathLike) else [Path(p) for p in paths]
        )
        headers = [(p, read_dataset(p, stop_before_pixels=True)) for p in file_list]
    return ct_series_from_headers(headers).load()


def _orthonormal(iop: np.ndarray, path: Path) -> tuple[np.ndarray, np.ndarray]:
    row, col = iop[:3], iop[3:]
    nr, nc = np.linalg.norm(row), np.linalg.norm(col)
    if nr < 0.5 or nc < 0.5:
        raise GeometryError(f"ImageOrientationPatient {_fmt(iop)} is degenerate", path=path)
    row, col = row / nr, col / nc
    if abs(float(row @ col)) > 1e-3:
        raise GeometryError(
            f"ImageOrientationPatient {_fmt(iop)}: row and column are not perpendicular",
            path=path,
        )
    col = col - (row @ col) * row
    return row, col / np.linalg.norm(col)


def _single_slice_thickness(ds: Dataset, path) -> float:
    t = float_value(ds, "SliceThickness", path, default=1.0, maximum=MAX_SPACING_MM)
    return t if t > 0 else 1.0


def _spacing_warning(gaps: np.ndarray, step: float, position: np.ndarray) -> str:
    odd = np.flatnonzero(np.abs(gaps - step) > UNIFORM_TOLERANCE_MM)
    multiples = gaps[odd] / step
    missing = np.abs(multiples - np.rint(multiples)) < UNIFORM_TOLERANCE_MM / step
    where = ", ".join(f"{position[i]:.2f}..{position[i + 1]:.2f} mm" for i in odd[:5]) + (
        " ..." if len(odd) > 5 else ""
    )
    if np.all(missing):
        n = int(np.sum(np.rint(multiples) - 1))
        return (
            f"missing slice(s): {n} slice(s) of {step:.3g} mm spacing absent between {where} "
            "(positions along the slice normal); the grid keeps the actual positions"
        )
    return (
        f"non-uniform slice spacing: gaps from {gaps.min():.3g} to {gaps.max():.3g} mm "
        f"(at {where}); the grid keeps the actual positions"
    )


def _names(paths: Sequence[Path], index) -> str:
    index = list(index)
    names = ", ".join(paths[i].name for i in index[:3])
    return names + (f" (+{len(index) - 3} more)" if len(index) > 3 else "")


def _fmt(values) -> str:
    return "\\".join(f"{v:.4g}" for v in values)


def _common_parent(paths: Sequence[Path]) -> str:
    try:
        return os.path.commonpath([str(p.parent) for p in paths])
    except ValueError:
        return str(paths[0].parent)
