"""Building new structures from existing ones: expand, crop, combine, with a log.

:class:`VolumeBuilder` holds the input structures and one :class:`Workspace`; every volume
it builds is a :class:`~rtplan.volumes.subvoxel.SubvoxelMask` on that workspace, and every
operation is recorded as a :class:`Step` (what, with which structure and margin, volume
before and after in cc, measured on the fine grid with sub-voxel planes).

:func:`expand_structure` is the whole of ``rtplan expand`` on structures already read.

Order of a build (:meth:`VolumeBuilder.build`): start from the source; keep only its part
within ``near`` distance of other structures (if asked); expand or shrink by the margins;
subtract each ``avoid`` structure (grown by its margin); intersect with each ``within``
structure (grown or shrunk by its margin); add back each ``keep`` volume (a CTV always
holds its GTV, also where the GTV invades an organ the CTV avoids).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from rtplan.defaults import MAX_MARGIN_MM
from rtplan.errors import ContourError, InputError, StructureNotFoundError
from rtplan.structure import Structure, names_hint
from rtplan.volumes.booleans import intersection, subtract, union, with_margin
from rtplan.volumes.margins import Margins, apply_margin
from rtplan.volumes.subvoxel import SubvoxelMask
from rtplan.volumes.workspace import FINE_MM, Workspace

#: RTROIInterpretedType guessed from a new structure's name.
_TYPE_BY_PREFIX = (("PTV", "PTV"), ("CTV", "CTV"), ("GTV", "GTV"), ("ITV", "CTV"))


@dataclass(frozen=True)
class Crop:
    """A structure to avoid or stay within, with a margin (mm) applied to it first (finite,
    at most :data:`~rtplan.defaults.MAX_MARGIN_MM` either way)."""

    structure: str
    margin_mm: float = 0.0

    def __post_init__(self):
        if not (math.isfinite(self.margin_mm) and abs(self.margin_mm) <= MAX_MARGIN_MM):
            raise InputError(
                f"crop margin of '{self.structure}' must be within ±{MAX_MARGIN_MM:g} mm, "
                f"got {self.margin_mm:g}"
            )

    @classmethod
    def parse(cls, text) -> Crop:
        """``"Femur_R"``, ``"Femur_R:5"``, ``"BODY:-3"`` (or a Crop, or a (name, mm) pair).

        Examples
        --------
        >>> Crop.parse("BODY:-3")
        Crop(structure='BODY', margin_mm=-3.0)
        """
        if isinstance(text, Crop):
            return text
        if isinstance(text, tuple):
            return cls(str(text[0]), float(text[1]))
        s = str(text).strip()
        m = re.fullmatch(r"(.+?)(?::\s*([-+]?\d+(?:\.\d*)?|[-+]?\.\d+)\s*(?:mm)?)?", s)
        if not s or m is None or not m.group(1).strip():
            raise InputError(f"'{s}' is not STRUCTURE or STRUCTURE:MM")
        if ":" in s and m.group(2) is None:
            raise InputError(f"'{s}': the margin after ':' must be a number of mm")
        return cls(m.group(1).strip(), float(m.group(2) or 0.0))

    def __str__(self) -> str:
        return self.structure if self.margin_mm == 0 else f"{self.structure}:{self.margin_mm:g}"


@dataclass(frozen=True)
class Step:
    """One logged operation of a build."""

    volume: str
    action: str
    other: str
    detail: str
    before_cc: float
    after_cc: float

    def __str__(self) -> str:
        what = f"{self.action} {self.other}".strip()
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.volume}: {what}{detail}: {self.before_cc:.2f} cc -> {self.after_cc:.2f} cc"


@dataclass
class VolumeBuilder:
    """New volumes built on one workspace from a set of structures.

    Parameters
    ----------
    structures : mapping of name to Structure, or iterable of Structure
        The input structures (looked up by exact name, then case-insensitively).
    workspace : Workspace
        The fine grid all volumes live on.
    """

    structures: Mapping[str, Structure] | Iterable[Structure]
    workspace: Workspace
    steps: list[Step] = field(default_factory=list)
    _input: dict = field(default_factory=dict, init=False, repr=False)
    _built: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self):
        self.structures = by_name(self.structures)

    # ------------------------------------------------------------------ lookup
    def find(self, name: str) -> Structure:
        """The input structure called ``name`` (exact, else unique case-insensitive)."""
        return find_structure(self.structures, name)

    def region(self, name: str) -> SubvoxelMask:
        """A volume built here, else an input structure rasterised on the workspace."""
        if name in self._built:
            return self._built[name]
        s = self.find(name)
        if s.name not in self._input:
            self._input[s.name] = self.workspace.region(s)
        return self._input[s.name]

    def volume_cc(self, name: str) -> float:
        return self.region(name).volume_cc

    # ------------------------------------------------------------------ building
    def build(
        self,
        name: str,
        source: str,
        *,
        margins=None,
        near: Sequence[str] = (),
        near_mm: float = 0.0,
        avoid: Sequence = (),
        within: Sequence = (),
        keep: Sequence[str] = (),
    ) -> SubvoxelMask:
        """Build volume ``name`` from ``source`` (module docstring: order of operations).

        Parameters
        ----------
        name : str
            The new volume.
        source : str
            A structure or a volume built before.
        margins : Margins or str, optional
            Expansion (or, all negative, shrinking) of the source.
        near : sequence of str
            Keep only the part of the source within ``near_mm`` of any of these structures
            (e.g. the part of an RPS GTV touching the posterior abdominal wall).
        avoid, within : sequence of Crop or "NAME[:MM]"
            Subtract / intersect, after growing each by its margin (mm).
        keep : sequence of str
            Volumes added back at the end (e.g. the GTV into its CTV).

        Raises
        ------
        InputError
            A shrinking margin or a crop leaves nothing.
        StructureNotFoundError
            An unknown structure name.
        """
        current = self.region(source)
        src_cc = current.volume_cc
        self._log(name, "from", source, "", src_cc, src_cc)
        if near:
            before = current.volume_cc
            current = self._near(current, near, near_mm)
            self._log(name, "near", ", ".join(near), f"{near_mm:g} mm", before, current.volume_cc)
            if current.is_empty:
                raise InputError(
                    f"{name}: no part of '{source}' lies within {near_mm:g} mm of {', '.join(near)}"
                )
        if margins is not None:
            m = Margins.parse(margins)
            before = current.volume_cc
            current = apply_margin(current, m, self.workspace.grid.direction_matrix)
            self._log(name, "margin", "", str(m), before, current.volume_cc)
            if current.is_empty:
                raise InputError(
                    f"{name}: shrinking '{source}' ({before:.2f} cc) by {m} leaves nothing"
                )
        crops = [("avoid", Crop.parse(spec), subtract) for spec in avoid]
        crops += [("within", Crop.parse(spec), intersection) for spec in within]
        if crops:
            current = self._crops(name, current, crops)
        for other in keep:
            before = current.volume_cc
            current = union(current, self.region(other))
            self._log(name, "keep", other, "", before, current.volume_cc)
        if current.is_empty:
            raise InputError(f"{name}: nothing is left after cropping")
        self._built[name] = current
        return current

    def _box_around(self, region: SubvoxelMask, margin_mm: float):
        """Index bounds of ``region``'s box grown by ``margin_mm`` and three voxels."""
        box = region.bounding_box()
        h = np.asarray(self.workspace.spacing_mm)
        pad = np.ceil(abs(margin_mm) / h).astype(int) + 3
        return np.maximum(box[0] - pad, 0), np.minimum(box[1] + pad, region.shape)

    def _crops(self, name: str, current: SubvoxelMask, crops) -> SubvoxelMask:
        """Apply ``(action, Crop, op)`` in turn, each as ``op(current, other grown by its
        margin)``, logged.  Work is done on the block around the current volume (its box
        grown by the largest crop margin): outside it the volume is empty, and another
        structure only matters within its margin of the volume."""
        if current.is_empty:
            for action, c, _ in crops:
                self._log(name, action, c.structure, f"{c.margin_mm:g} mm", 0.0, 0.0)
            return current
        lo, hi = self._box_around(current, max(abs(c.margin_mm) for _, c, _ in crops))
        block = current.cropped(lo, hi)
        for action, c, op in crops:
            before = block.volume_cc
            other = self.region(c.structure).cropped(lo, hi)
            block = op(block, with_margin(other, Margins.isotropic(c.margin_mm)))
            self._log(name, action, c.structure, f"{c.margin_mm:g} mm", before, block.volume_cc)
        return SubvoxelMask.embedded(block, lo, current.shape)

    def _near(self, current: SubvoxelMask, near: Sequence[str], mm: float) -> SubvoxelMask:
        """The part of ``current`` within ``mm`` of any of the ``near`` structures."""
        lo, hi = self._box_around(current, mm)
        zone = union(*(self.region(n).cropped(lo, hi) for n in near))
        zone = with_margin(zone, Margins.isotropic(mm))
        # outside its box the volume is empty: the block is all there is
        return SubvoxelMask.embedded(intersection(current.cropped(lo, hi), zone), lo, current.shape)

    def unite(self, name: str, parts: Sequence[str]) -> SubvoxelMask:
        """Build ``name`` as the union of structures or volumes (e.g. both compartments
        found for one role), to crop with as one."""
        region = union(*(self.region(p) for p in parts))
        self._log(name, "union", " + ".join(parts), "", 0.0, region.volume_cc)
        self._built[name] = region
        return region

    def _log(self, volume, action, other, detail, before, after):
        self.steps.append(Step(volume, action, other, detail, float(before), float(after)))

    def structure(
        self,
        name: str,
        *,
        interpreted_type: str | None = None,
        color: tuple[int, int, int] | None = None,
    ) -> Structure:
        """The built volume ``name`` as contours on the CT slices."""
        if name not in self._built:
            raise StructureNotFoundError(f"volume '{name}' has not been built")
        frame = next((s.frame_of_reference_uid for s in self.structures.values()), "")
        region = self._built[name]
        try:
            new = self.workspace.structure(
                region,
                name,
                interpreted_type=interpreted_type or guess_type(name),
                color=color,
                frame_of_reference_uid=frame,
            )
        except ContourError as exc:
            raise ContourError(
                f"{exc.problem} (it lies between the CT slices or outside the scan)",
                structure=name,
            ) from None
        off_ct = self.workspace.slabs_off_ct(region)
        if off_ct:
            detail = f"{off_ct} slice position(s) beyond the CT not written"
            self._log(name, "on the CT slices", "", detail, region.volume_cc, new.volume_cc)
        return new


def guess_type(name: str) -> str:
    """RTROIInterpretedType for a new volume's name (``PTV_High`` -> ``PTV``)."""
    upper = name.upper()
    for prefix, kind in _TYPE_BY_PREFIX:
        if upper.startswith(prefix):
            return kind
    return "CTV" if "CTV" in upper else ("PTV" if "PTV" in upper else "ORGAN")


def reach_of(margins: Iterable) -> tuple[np.ndarray, np.ndarray]:
    """Total outward reach (mm) of a chain of margins along -x, -y, -z and +x, +y, +z."""
    lo, hi = np.zeros(3), np.zeros(3)
    for spec in margins:
        m = Margins.parse(spec)
        if not m.is_expansion:
            continue
        lo += (m.right, m.anterior, m.inferior)
        hi += (m.left, m.posterior, m.superior)
    return lo, hi


@dataclass(frozen=True)
class ExpandResult:
    """What :func:`expand_structure` made: the structure, its log, its volume."""

    structure: Structure
    steps: tuple[Step, ...]
    volume_cc: float
    source_volume_cc: float


def expand_structure(
    structures: Mapping[str, Structure] | Iterable[Structure],
    source: str,
    margins,
    *,
    name: str,
    avoid: Sequence = (),
    within: Sequence = (),
    slice_z_mm: Sequence[float] | None = None,
    fine_mm: float = FINE_MM,
    interpreted_type: str | None = None,
    keep_source: bool = False,
) -> ExpandResult:
    """Expand (or shrink) one structure, crop it, and return it as contours on the CT slices.

    Parameters
    ----------
    structures : mapping or iterable of Structure
        The structure set's structures.
    source : str
        Name of the structure to expand.
    margins : Margins or str
        e.g. ``"radial=15,longitudinal=35"`` (see :class:`Margins`).
    name : str
        Name of the new structure.
    avoid, within : sequence of Crop or "NAME[:MM]"
        See :meth:`VolumeBuilder.build`.
    slice_z_mm : sequence of float, optional
        CT slice positions (default: the source's contour planes and slab thickness).
    fine_mm : float
        Fine grid spacing (mm).
    interpreted_type : str, optional
        RTROIInterpretedType (default from the name: CTV, PTV, GTV, else ORGAN).
    keep_source : bool
        Add the source back after cropping.

    Returns
    -------
    ExpandResult
        ``volume_cc`` is the new structure's volume from its contours (slab convention).
    """
    m = Margins.parse(margins)
    table = by_name(structures)
    src = find_structure(table, source)
    if name in table:
        raise InputError(f"a structure called '{name}' exists already; choose another --name")
    lo, hi = reach_of([m])
    ws = Workspace.around(
        [src], reach_lo_mm=lo, reach_hi_mm=hi, slice_z_mm=slice_z_mm, fine_mm=fine_mm
    )
    builder = VolumeBuilder(table, ws)
    builder.build(
        name,
        src.name,
        margins=m,
        avoid=avoid,
        within=within,
        keep=[src.name] if keep_source else [],
    )
    new = builder.structure(name, interpreted_type=interpreted_type)
    return ExpandResult(new, tuple(builder.steps), new.volume_cc, src.volume_cc)


def by_name(structures: Mapping[str, Structure] | Iterable[Structure]) -> dict[str, Structure]:
    """Structures keyed by name."""
    items = structures.values() if isinstance(structures, Mapping) else structures
    return {s.name: s for s in items}


def find_structure(
    structures: Mapping[str, Structure], name: str, *, label: str = "", path: str | None = None
) -> Structure:
    """The structure called ``name`` (exact, else unique case-insensitive match);
    ``label``, ``path``: the structure set's, for the message.

    Raises
    ------
    StructureNotFoundError
        With the closest names present (the message of
        :meth:`rtplan.structure.StructureSet.__getitem__`).
    """
    if name in structures:
        return structures[name]
    folded = [s for n, s in structures.items() if n.casefold() == name.casefold()]
    if len(folded) == 1:
        return folded[0]
    in_set = f" in structure set '{label}'" if label else ""
    raise StructureNotFoundError(
        f"no structure '{name}'{in_set}; {names_hint([name], list(structures))}", path=path
    )


__all__ = [
    "Crop",
    "ExpandResult",
    "Step",
    "VolumeBuilder",
    "by_name",
    "expand_structure",
    "find_structure",
    "guess_type",
    "reach_of",
]
