"""Running a target-volume recipe: the ``[volumes]`` table of a protocol file.

The recipe itself (roles, parameters, steps, each number with its source) is data, read by
:mod:`rtplan.protocols.recipe` (:func:`~rtplan.protocols.recipe.load_recipe`); its roles are
found in a structure set by :func:`rtplan.matching.match_role`.  :func:`run_recipe` builds the
new volumes step by step with :class:`~rtplan.volumes.builder.VolumeBuilder` (the order inside
a step and the meaning of each key: :meth:`VolumeBuilder.build`).

Missing and invaded structures (what :func:`run_recipe` says in its notes):

* a crop (``avoid`` / ``within``) or ``near`` structure that is absent is skipped and a note
  names it (e.g. "CTV_High: near 'great_vessels' skipped (no such structure)");
* ``unless_invaded = true`` on an ``avoid`` entry: a structure that the step's starting
  volume overlaps by more than :data:`INVASION_CC` is invaded, so the margin is not cropped
  inside it ("0 mm into kidney and liver unless invaded"), and a note gives the overlap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rtplan.errors import InputError
from rtplan.structure import Structure
from rtplan.volumes.booleans import intersection
from rtplan.volumes.builder import Step, VolumeBuilder, by_name, guess_type, reach_of
from rtplan.volumes.margins import Margins
from rtplan.volumes.workspace import FINE_MM, Workspace

#: Overlap (cc) of a step's starting volume with an ``unless_invaded`` structure above which
#: the structure counts as invaded (partial-volume contact of adjacent contours stays below).
INVASION_CC = 0.05
#: Suffix given to a new volume whose name the structure set already uses.
RENAME_SUFFIX = "_rtplan"


@dataclass(frozen=True)
class RecipeResult:
    """What a recipe built."""

    structures: tuple[Structure, ...]
    steps: tuple[Step, ...]
    notes: tuple[str, ...]
    parameters: dict[str, float] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # step name -> structure name

    def volume_cc(self, name: str) -> float:
        return next(s.volume_cc for s in self.structures if s.name == self.names.get(name, name))


def run_recipe(
    recipe: Any,
    structures: Mapping[str, Structure] | Sequence[Structure],
    roles: Mapping[str, Sequence[str]],
    *,
    slice_z_mm: Sequence[float] | None = None,
    parameters: Mapping[str, float] | None = None,
    fine_mm: float = FINE_MM,
    source: str = "",
) -> RecipeResult:
    """Build every volume of ``recipe`` from ``structures``.

    Parameters
    ----------
    recipe : rtplan.protocols.recipe.Recipe
        The recipe (:func:`rtplan.protocols.recipe.load_recipe`).
    structures : mapping or sequence of Structure
        The structure set's structures.
    roles : mapping
        Each role key of the recipe -> the names of its structures in ``structures`` (empty
        when absent), as :func:`rtplan.matching.match_role` finds them.
    slice_z_mm : sequence of float, optional
        CT slice positions (default: the GTV's contour planes).
    parameters : mapping, optional
        New values for the recipe's parameters (checked against their ranges).
    fine_mm : float
        Fine grid spacing (mm).
    source : str
        The structure set's file, for messages.

    Returns
    -------
    RecipeResult
        The new structures (contours on the CT slices) in step order, the log, notes (a
        crop skipped for lack of an optional structure, a volume renamed because its name
        was taken).
    """
    table = by_name(structures)
    values = _parameter_values(recipe, parameters or {})
    run = _Run(recipe, roles, values, source)
    margins = [_margins(s, values) for s in recipe.steps]
    run.start(table, margins, slice_z_mm, fine_mm)
    for step, m in zip(recipe.steps, margins, strict=True):
        run.build(step, m)
    out, names = run.new_structures(table)
    return RecipeResult(tuple(out), tuple(run.builder.steps), tuple(run.notes), values, names)


class _Run:
    """One run of a recipe, phase by phase: :meth:`start` (the workspace around the GTV),
    :meth:`build` (each step: its start, ``near``, crops), :meth:`new_structures` (named so
    as not to clash with the structure set)."""

    def __init__(self, recipe, roles: Mapping[str, Sequence[str]], values, source: str):
        self.recipe, self.roles, self.values, self.source = recipe, roles, values, source
        self.step_names = {s.name for s in recipe.steps}
        self.notes: list[str] = []
        self.builder: VolumeBuilder

    def names_of(self, ref: str) -> tuple[str, ...]:
        """The structures a role or an earlier step stands for."""
        return (ref,) if ref in self.step_names else tuple(self.roles.get(ref, ()))

    def error(self, message: str) -> InputError:
        return InputError(message, path=self.source or None)

    def mm(self, value: float | str) -> float:
        """A number of mm, or the value of the parameter it names."""
        return self.values[value] if isinstance(value, str) else value

    def start(self, table, margins: list[Margins], slice_z_mm, fine_mm: float) -> None:
        origin = self.names_of(self.recipe.gtv_role)
        if not origin:
            raise self.error(f"no structure found for '{self.recipe.gtv_role}'")
        lo, hi = reach_of(margins)
        workspace = Workspace.around(
            [table[n] for n in origin],
            reach_lo_mm=lo,
            reach_hi_mm=hi,
            slice_z_mm=slice_z_mm,
            fine_mm=fine_mm,
        )
        self.builder = VolumeBuilder(table, workspace)

    def build(self, step, margins: Margins) -> None:
        start = self.names_of(step.origin)
        if len(start) != 1:
            raise self.error(
                f"step '{step.name}': '{step.origin}' matches {len(start)} structures "
                f"({', '.join(start) or 'none'}); name one with a mapping"
            )
        self.builder.build(
            step.name,
            start[0],
            margins=None if margins.is_zero else margins,
            near=self.near(step),
            near_mm=self.mm(step.near_mm),
            avoid=self.crops(step, start[0], step.avoid, "avoid"),
            within=self.crops(step, start[0], step.within, "within"),
            keep=[n for ref in step.keep for n in self.names_of(ref)],
        )

    def near(self, step) -> list[str]:
        """The structures of ``near`` present (a note for each one absent; none: error)."""
        for ref in step.near:
            if not self.names_of(ref):
                self.notes.append(f"{step.name}: near '{ref}' skipped (no such structure)")
        near = [n for ref in step.near for n in self.names_of(ref)]
        if step.near and not near:
            raise self.error(f"step '{step.name}': none of {', '.join(step.near)} is present")
        return near

    def crops(self, step, start: str, rules, kind: str) -> list[tuple[str, float]]:
        """``(structure, mm)`` of each crop rule; absent ones noted, invaded ones dropped,
        several structures of one ``within`` rule united (within any of them)."""
        out = []
        for rule in rules:
            found = self.names_of(rule.structure)
            if not found:
                self.notes.append(
                    f"{step.name}: {kind} '{rule.structure}' skipped (no such structure)"
                )
            if rule.unless_invaded:
                found = tuple(n for n in found if not self.invaded(step, start, n))
            if kind == "within" and len(found) > 1:
                joined = f"{rule.structure} ({' + '.join(found)})"
                self.builder.unite(joined, found)
                found = (joined,)
            out.extend((n, self.mm(rule.margin)) for n in found)
        return out

    def invaded(self, step, origin: str, organ: str) -> bool:
        """Whether ``origin`` overlaps ``organ`` by more than :data:`INVASION_CC` (noted)."""
        region = self.builder.region
        overlap = intersection(region(origin), region(organ)).volume_cc
        if overlap <= INVASION_CC:
            return False
        self.notes.append(
            f"{step.name}: not cropped inside {organ}: {origin} overlaps it by "
            f"{overlap:.2f} cc (invaded), so the margin may enter it"
        )
        return True

    def new_structures(self, table) -> tuple[list[Structure], dict[str, str]]:
        """The built volumes in step order, renamed (with a note) when the name is taken."""
        out, names = [], {}
        for step in self.recipe.steps:
            name = step.name
            while name in table:
                name = f"{name}{RENAME_SUFFIX}" if not name.endswith(RENAME_SUFFIX) else name + "2"
            if name != step.name:
                self.notes.append(
                    f"'{step.name}' exists in the structure set: the new one is '{name}'"
                )
            names[step.name] = name
            s = self.builder.structure(step.name, interpreted_type=step.interpreted_type or None)
            out.append(_renamed(s, name, step.interpreted_type or guess_type(step.name)))
        return out, names


def _renamed(s: Structure, name: str, kind: str) -> Structure:
    return Structure(
        name=name,
        contours=s.contours,
        interpreted_type=kind,
        color=s.color,
        frame_of_reference_uid=s.frame_of_reference_uid,
        slice_spacing_mm=s.slice_spacing_mm,
    )


def _parameter_values(recipe, given: Mapping[str, float]) -> dict[str, float]:
    values = {k: p.value for k, p in recipe.parameters.items()}
    for key, value in given.items():
        if key not in recipe.parameters:
            have = ", ".join(sorted(recipe.parameters)) or "none"
            raise InputError(f"recipe '{recipe.protocol}' has no parameter '{key}' (have: {have})")
        p = recipe.parameters[key]
        v = float(value)
        if p.range is not None and not p.range[0] <= v <= p.range[1]:
            raise InputError(
                f"parameter '{key}' = {v:g} is outside its range {p.range[0]:g}..{p.range[1]:g} "
                f"(source: {p.source})"
            )
        values[key] = v
    return values


def _margins(step, values: Mapping[str, float]) -> Margins:
    resolved = {k: (values[v] if isinstance(v, str) else v) for k, v in step.margin}
    return Margins.parse(resolved) if resolved else Margins()
