"""Segmentation masks (NIfTI, NRRD) as structures on a patient's CT lattice.

Automatic segmentation tools (TotalSegmentator, nnU-Net, vendor auto-contouring) write
voxel masks, not RTSTRUCTs.  This module reads them with SimpleITK and places them in the
patient's frame so that they can be compared with contours (``rtplan agree``).

Conventions
-----------
Files
    ``.nii``, ``.nii.gz``, ``.nrrd`` and ``.nhdr``, read with SimpleITK.  SimpleITK reports
    every image's geometry in DICOM patient coordinates (LPS, mm) whatever the file stores
    (NIfTI's RAS affine is converted on reading: x and y change sign), so a mask is placed
    by its own origin, spacing and direction -- never by assuming its array order.
Observer folders
    A folder of mask files is one observer, named after the folder.  Without a labels file
    every file is a binary mask (non-zero = inside) of the structure named after the file
    (``liver.nii.gz`` -> ``liver``): the layout TotalSegmentator writes.  A file whose
    non-zero voxels hold more than one value is a label map and needs a labels file beside
    it: ``dataset.json`` (nnU-Net v1 ``{"labels": {"1": "GTV"}}`` or v2
    ``{"labels": {"GTV": 1}}``, a region as a list of values) or ``labels.json`` (the same
    mapping, with or without the ``"labels"`` key).  A folder with a labels file holds
    exactly one label map.  Value 0 (background) is never a structure.
Fitting the CT
    A mask must lie on the CT series' voxel lattice: its axes parallel to the CT's (each
    may run either way, in any order), the same spacing, voxel centres on CT voxel centres
    (within :data:`LATTICE_TOLERANCE` of a voxel) and every voxel inside the CT.  Tools
    write their masks on the input image's grid, so this holds for masks made from the
    planning CT; anything else is a :class:`~rtplan.errors.GeometryError` naming the file
    and the misfit.  No resampling, so no interpolation convention: each mask voxel is one
    CT voxel.
Laziness
    Geometry is checked from the file headers when a folder is read; voxels are read the
    first time a structure is needed (a TotalSegmentator folder holds over 100 files) and
    kept cropped to the non-zero box.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from rtplan.errors import GeometryError, InputError
from rtplan.grid import Grid
from rtplan.io.output import write_atomic

#: File name endings read as masks.
MASK_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr")
#: Labels files accepted beside a label map, in order of preference.
LABEL_FILES = ("dataset.json", "labels.json")
#: Largest distance (in voxels) of a mask voxel centre from a CT voxel centre.
LATTICE_TOLERANCE = 0.01


def is_mask_file(path: str | os.PathLike) -> bool:
    """True when ``path`` ends like a mask file (:data:`MASK_SUFFIXES`)."""
    return Path(path).name.lower().endswith(MASK_SUFFIXES)


def mask_name(path: str | os.PathLike) -> str:
    """Structure name of a binary mask file: the file name without its suffix."""
    name = Path(path).name
    for suffix in MASK_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _sitk_grid(reader) -> Grid:
    """Grid (``[k, j, i]`` order) of an image whose header ``reader`` has read."""
    size = reader.GetSize()
    if len(size) != 3:
        raise GeometryError(f"a mask must be a 3-D image, this one has {len(size)} dimensions")
    d = np.asarray(reader.GetDirection(), dtype=float).reshape(3, 3)[:, ::-1]
    return Grid(
        shape=size[::-1],
        origin_mm=reader.GetOrigin(),
        spacing_mm=reader.GetSpacing()[::-1],
        direction=tuple(map(tuple, d)),
    )


def lattice_placement(
    mask_grid: Grid, ct_grid: Grid
) -> tuple[tuple[int, ...], tuple[bool, ...], tuple[int, ...]]:
    """How a mask's array maps onto the CT's array, exactly.

    Returns
    -------
    axes : tuple of int
        ``axes[r]`` is the mask array axis that runs along CT array axis ``r``.
    flip : tuple of bool
        Whether that mask axis runs against the CT axis.
    first : tuple of int
        CT index ``(k, j, i)`` of the reoriented mask's first voxel.

    Raises
    ------
    GeometryError
        The mask is not on the CT's voxel lattice or reaches outside the CT (module
        docstring); the message says how.
    """
    if not ct_grid.is_uniform:
        raise GeometryError("the CT series has unevenly spaced slices: masks cannot be placed")
    turn = ct_grid.direction_matrix.T @ mask_grid.direction_matrix
    perm = np.round(turn)
    one_each = np.abs(perm).sum(axis=0).tolist() == [1, 1, 1] == np.abs(perm).sum(axis=1).tolist()
    if not one_each or np.abs(turn - perm).max() > 1e-4:
        raise GeometryError("mask axes are not parallel to the CT's (oblique or rotated)")
    # CT index of mask index m: c = L m + t, L = perm when the spacings agree
    to_ct = np.linalg.inv(ct_grid.affine) @ mask_grid.affine
    linear, shift = to_ct[:3, :3], to_ct[:3, 3]
    extent = np.asarray(mask_grid.shape) - 1
    if np.any(np.abs(linear - perm) @ extent > LATTICE_TOLERANCE):
        ct_sp = "x".join(f"{v:g}" for v in ct_grid.spacing_mm[::-1])
        sp = "x".join(f"{v:g}" for v in mask_grid.spacing_mm[::-1])
        raise GeometryError(f"mask voxels of {sp} mm do not match the CT's {ct_sp} mm")
    offset = np.abs(shift - np.round(shift)).max()
    if offset > LATTICE_TOLERANCE:
        raise GeometryError(f"mask voxel centres lie {offset:.2f} voxel off the CT's")
    corners = np.array(
        [[k, j, i] for k in (0, extent[0]) for j in (0, extent[1]) for i in (0, extent[2])]
    )
    ct_index = np.round(corners @ perm.T + shift).astype(int)
    lo, hi = ct_index.min(axis=0), ct_index.max(axis=0)
    if np.any(lo < 0) or np.any(hi >= np.asarray(ct_grid.shape)):
        raise GeometryError(
            f"mask reaches outside the CT series (CT indices k,j,i {tuple(lo)}..{tuple(hi)}, "
            f"CT shape {ct_grid.shape})"
        )
    axes = tuple(int(np.flatnonzero(perm[r])[0]) for r in range(3))
    flip = tuple(bool(perm[r, axes[r]] < 0) for r in range(3))
    return axes, flip, tuple(int(v) for v in lo)


@dataclass(eq=False)
class MaskFile:
    """One mask file placed on a CT lattice; voxels read on first use.

    Parameters
    ----------
    path : pathlib.Path
        The file.
    ct_grid : Grid
        The patient's CT grid.
    labels : mapping of str to tuple of int, optional
        Label map: structure name -> voxel values.  ``None``: a binary mask.
    """

    path: Path
    ct_grid: Grid
    labels: Mapping[str, tuple[int, ...]] | None = None
    placement: tuple = field(init=False)

    def __post_init__(self):
        import SimpleITK as sitk

        reader = sitk.ImageFileReader()
        reader.SetFileName(str(self.path))
        try:
            reader.ReadImageInformation()
            self.placement = lattice_placement(_sitk_grid(reader), self.ct_grid)
        except RuntimeError as exc:
            raise InputError(f"cannot read mask: {_first_line(exc)}", path=self.path) from None
        except GeometryError as exc:
            raise GeometryError(
                f"does not fit the CT series: {exc.problem}", path=self.path
            ) from None

    @cached_property
    def masks(self) -> dict[str, tuple[np.ndarray, tuple[int, int, int]]]:
        """``{structure: (boolean block, CT index of its first voxel)}``, cropped to the
        non-zero box (an empty mask is a ``(0, 0, 0)`` block)."""
        import SimpleITK as sitk

        try:
            image = sitk.ReadImage(str(self.path))
            array = sitk.GetArrayViewFromImage(image)  # valid while ``image`` lives
        except RuntimeError as exc:
            raise InputError(f"cannot read mask: {_first_line(exc)}", path=self.path) from None
        axes, flip, first = self.placement
        array = np.transpose(array, axes)
        array = array[tuple(slice(None, None, -1) if f else slice(None) for f in flip)]
        if self.labels is None:
            values = array[array != 0]
            if values.size and np.any(values != values.flat[0]):
                raise InputError(
                    f"holds several labels ({len(np.unique(values))} values): a label map "
                    f"needs a labels file ({' or '.join(LABEL_FILES)}) beside it",
                    path=self.path,
                )
            wanted = {mask_name(self.path): array != 0}
        else:
            wanted = {name: np.isin(array, v) for name, v in self.labels.items()}
        return {name: _crop(m, first) for name, m in wanted.items()}


def _crop(mask: np.ndarray, first) -> tuple[np.ndarray, tuple[int, int, int]]:
    nz = np.nonzero(mask)
    if not nz[0].size:
        return np.zeros((0, 0, 0), bool), tuple(first)
    lo = [int(a.min()) for a in nz]
    hi = [int(a.max()) + 1 for a in nz]
    block = np.ascontiguousarray(mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]])
    return block, tuple(f + v for f, v in zip(first, lo, strict=True))


def _first_line(exc: Exception) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[-1] if lines else type(exc).__name__


@dataclass(frozen=True, eq=False)
class MaskStructure:
    """A structure given as a voxel mask on the patient's CT lattice.

    It offers what the agreement code needs of a :class:`~rtplan.structure.Structure`:
    ``name``, ``source``, ``frame_of_reference_uid``, ``is_volume``, ``bounds_mm`` and
    ``binary_mask(grid)``.
    """

    name: str
    file: MaskFile
    frame_of_reference_uid: str = ""

    @property
    def source(self) -> str:
        return str(self.file.path)

    @property
    def _block(self) -> tuple[np.ndarray, tuple[int, int, int]]:
        return self.file.masks[self.name]

    @property
    def is_volume(self) -> bool:
        """True when the mask has at least one voxel."""
        return self._block[0].size > 0

    @property
    def voxel_count(self) -> int:
        return int(self._block[0].sum())

    def bounds_mm(self) -> tuple[np.ndarray, np.ndarray]:
        """LPS bounding box ``(lo, hi)`` (mm) of the mask's voxels (voxel faces)."""
        block, first = self._block
        if not block.size:
            raise GeometryError("mask is empty", path=self.source, structure=self.name)
        ct = self.file.ct_grid
        a = np.asarray(first) - 0.5
        b = np.asarray(first) + np.asarray(block.shape) - 0.5
        corners = np.array(
            [[k, j, i] for k in (a[0], b[0]) for j in (a[1], b[1]) for i in (a[2], b[2])]
        )
        w = ct.index_to_world(corners)
        return w.min(axis=0), w.max(axis=0)

    def binary_mask(self, grid: Grid) -> np.ndarray:
        """The mask on ``grid``, which must be a part of the CT lattice (e.g. the CT grid
        cropped by :func:`rtplan.agreement.pairwise.common_grid`); voxels outside the mask
        file are outside."""
        block, first = self._block
        ct = self.file.ct_grid
        start = ct.world_to_index(np.asarray(grid.origin_mm))
        if (
            not np.allclose(grid.direction_matrix, ct.direction_matrix, atol=1e-6)
            or not np.allclose(grid.spacing_mm, ct.spacing_mm, rtol=1e-6)
            or np.abs(start - np.round(start)).max() > LATTICE_TOLERANCE
        ):
            raise GeometryError("comparison grid is not on the CT lattice", path=self.source)
        out = np.zeros(grid.shape, bool)
        if not block.size:
            return out
        rel = np.asarray(first) - np.round(start).astype(int)
        src, dst = [], []
        for r in range(3):
            lo, hi = max(rel[r], 0), min(rel[r] + block.shape[r], grid.shape[r])
            if lo >= hi:
                return out
            dst.append(slice(lo, hi))
            src.append(slice(lo - rel[r], hi - rel[r]))
        out[tuple(dst)] = block[tuple(src)]
        return out


# ------------------------------------------------------------------ folders and labels
def read_labels(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """Structure name -> voxel values from a labels file (module docstring).

    Examples
    --------
    nnU-Net v2 ``{"labels": {"background": 0, "GTV": 1, "both": [1, 2]}}`` gives
    ``{"GTV": (1,), "both": (1, 2)}``; v1 ``{"labels": {"0": "background", "1": "GTV"}}``
    gives ``{"GTV": (1,)}``.

    Raises
    ------
    InputError
        Not JSON, or not such a mapping.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read labels file: {exc}", path=path) from None
    table = doc.get("labels", doc) if isinstance(doc, dict) else None
    if not isinstance(table, dict) or not table:
        raise InputError("labels file holds no {value: name} or {name: value} mapping", path=path)

    def as_int(v):
        if isinstance(v, bool) or not isinstance(v, int | str):
            raise ValueError(v)
        return int(v)

    out: dict[str, tuple[int, ...]] = {}
    try:
        if all(isinstance(k, str) and k.strip().lstrip("-").isdigit() for k in table):
            pairs = [(str(name), (as_int(k),)) for k, name in table.items()]
        else:
            pairs = [
                (name, tuple(as_int(x) for x in (v if isinstance(v, list) else [v])))
                for name, v in table.items()
            ]
    except ValueError:
        raise InputError(
            "labels file: every label value must be a whole number", path=path
        ) from None
    for name, values in pairs:
        values = tuple(v for v in values if v != 0)
        if values:
            if name in out:
                raise InputError(f"labels file names '{name}' twice", path=path)
            out[name] = values
    return out


def read_mask_observer(
    folder: str | os.PathLike, ct_grid: Grid, frame_of_reference_uid: str = ""
) -> dict[str, MaskStructure]:
    """The structures of one observer folder (module docstring), checked against the CT.

    Raises
    ------
    InputError
        Unreadable files, two files for one structure, a labels file beside several maps.
    GeometryError
        A mask not on the CT's lattice.
    """
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file() and is_mask_file(p))
    labels_file = next((folder / n for n in LABEL_FILES if (folder / n).is_file()), None)
    if labels_file is not None:
        if len(files) != 1:
            raise InputError(
                f"a folder with {labels_file.name} must hold exactly one label map, "
                f"found {len(files)} mask files",
                path=folder,
            )
        labels = read_labels(labels_file)
        f = MaskFile(files[0], ct_grid, labels)
        return {n: MaskStructure(n, f, frame_of_reference_uid) for n in labels}
    out: dict[str, MaskStructure] = {}
    for p in files:
        name = mask_name(p)
        if name.casefold() in {n.casefold() for n in out}:
            raise InputError(f"two mask files for structure '{name}'", path=folder)
        out[name] = MaskStructure(name, MaskFile(p, ct_grid), frame_of_reference_uid)
    return out


def mask_folders(patient_folder: str | os.PathLike) -> list[Path]:
    """Sub-folders of a patient folder that hold mask files, sorted (hidden ones skipped).

    Raises
    ------
    InputError
        A mask file sits directly in the patient folder (it belongs in an observer folder).
    """
    folder = Path(patient_folder)
    loose = sorted(p.name for p in folder.iterdir() if p.is_file() and is_mask_file(p))
    if loose:
        raise InputError(
            f"mask file '{loose[0]}' must sit in an observer folder (one folder per observer)",
            path=folder,
        )
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_dir() and not p.name.startswith(".") and any(is_mask_file(f) for f in p.iterdir())
    )


def write_mask(path: str | os.PathLike, mask: np.ndarray, grid: Grid) -> Path:
    """Write a mask (``[k, j, i]`` array on ``grid``) as NIfTI or NRRD (by the suffix of
    ``path``), as uint8 0/1 or the array's integer labels; returns the path."""
    import tempfile

    import SimpleITK as sitk

    path = Path(path)
    writable = (".nii.gz", ".nii", ".nrrd")  # .nhdr keeps its voxels in a second file
    if not path.name.lower().endswith(writable):
        raise InputError(f"mask files are written as {', '.join(writable)}", path=path)
    array = np.asarray(mask)
    array = array.astype(np.uint8) if array.dtype == bool else array
    image = grid.to_sitk(array)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = next(s for s in writable if path.name.lower().endswith(s))
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        staged = Path(tmp) / f"mask{suffix}"
        sitk.WriteImage(image, str(staged), useCompression=suffix in (".nii.gz", ".nrrd"))
        return write_atomic(path, staged.read_bytes())
