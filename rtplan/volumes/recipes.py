"""Target-volume recipes as data: the ``[volumes]`` table of a protocol file.

A recipe builds new volumes (GTV -> CTV -> PTV, the RPS high-risk volume) step by step from
a structure set.  It lives in the protocol's TOML file (:mod:`rtplan.protocols`) next to the
prescription and constraints, and like them cites a source for every number::

    [volumes]
    description = "..."

    [volumes.structures.gtv]          # roles, found by name like the protocol's roles
    names = ["GTV"]                   # TG-263 names, in order of preference
    aliases = ["GTV_Primary"]
    required = true                   # absent -> error (else crops with it are skipped)
    multiple = false                  # true: every match (e.g. both femurs)

    [volumes.parameters.radial_mm]    # a number a user may change (--set radial_mm=20)
    value = 15.0
    source = "wang2011"               # a key of the protocol's [sources]
    range = [10.0, 20.0]              # optional: allowed values
    verification = "not verified"     # required when the source is not fully verified
    note = "..."

    [[volumes.steps]]                 # built in order
    name = "CTV"                      # the new structure (RTROIInterpretedType from `type`
    type = "CTV"                      #  or guessed from the name)
    from = "gtv"                      # a role or an earlier step
    near = { structures = ["psoas"], distance_mm = "contact_mm" }   # optional
    margin = { radial = "radial_mm", longitudinal = "longitudinal_mm" }  # numbers or params
    avoid = ["bone", { structure = "bowel", margin_mm = -5.0 },
             { structure = "kidneys", unless_invaded = true }]
    within = ["compartment", "body"]
    keep = ["gtv"]                    # added back at the end
    source = "wang2011"               # for the step's rule and its literal numbers
    verification = "not verified"     # as for parameters
    note = "..."

Order inside a step and the meaning of each key: :meth:`VolumeBuilder.build`.  Margins are
in mm in patient directions (:class:`~rtplan.volumes.margins.Margins`).

Missing and invaded structures (what :func:`run_recipe` says in its notes):

* a crop (``avoid`` / ``within``) or ``near`` structure that is absent is skipped and a note
  names it (e.g. "CTV_High: near 'great_vessels' skipped (no such structure)");
* ``unless_invaded = true`` on an ``avoid`` entry: a structure that the step's starting
  volume overlaps by more than :data:`INVASION_CC` is invaded, so the margin is not cropped
  inside it ("0 mm into kidney and liver unless invaded"), and a note gives the overlap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rtplan.errors import InputError
from rtplan.matching import match_role
from rtplan.protocols import load_protocol
from rtplan.protocols.schema import Protocol, Source, StructureRole, _Table
from rtplan.structure import Structure
from rtplan.volumes.booleans import intersection
from rtplan.volumes.builder import Step, VolumeBuilder, by_name, guess_type, reach_of
from rtplan.volumes.margins import DIRECTIONS, SHORTHANDS, Margins
from rtplan.volumes.workspace import FINE_MM, Workspace

VERIFICATIONS = ("verified", "partial", "not verified")
#: Overlap (cc) of a step's starting volume with an ``unless_invaded`` structure above which
#: the structure counts as invaded (partial-volume contact of adjacent contours stays below).
INVASION_CC = 0.05
#: Suffix given to a new volume whose name the structure set already uses.
RENAME_SUFFIX = "_rtplan"


@dataclass(frozen=True)
class Parameter:
    """A named number of a recipe (mm), with its source."""

    key: str
    value: float
    source: str
    verification: str = "verified"
    range: tuple[float, float] | None = None
    note: str = ""


@dataclass(frozen=True)
class CropRule:
    """Crop by a role's structure(s) or an earlier step, grown by ``margin`` (mm or a
    parameter name); ``unless_invaded``: not when the step's starting volume overlaps it."""

    structure: str
    margin: float | str = 0.0
    unless_invaded: bool = False


@dataclass(frozen=True)
class RecipeStep:
    """One volume of a recipe (see the module docstring)."""

    name: str
    origin: str
    source: str
    interpreted_type: str = ""
    margin: tuple[tuple[str, float | str], ...] = ()
    near: tuple[str, ...] = ()
    near_mm: float | str = 0.0
    avoid: tuple[CropRule, ...] = ()
    within: tuple[CropRule, ...] = ()
    keep: tuple[str, ...] = ()
    verification: str = "verified"
    note: str = ""


@dataclass(frozen=True)
class Recipe:
    """The ``[volumes]`` recipe of a protocol."""

    protocol: str
    description: str
    roles: dict[str, StructureRole]
    parameters: dict[str, Parameter]
    steps: tuple[RecipeStep, ...]
    sources: dict[str, Source]
    path: str = ""

    @property
    def gtv_role(self) -> str:
        """The role the first step grows from (what ``--gtv`` names)."""
        return self.steps[0].origin

    def numbers(self) -> list[tuple[str, float, str, str]]:
        """Every number as ``(where, value, source key, verification)``."""
        out = [
            (f"parameter {p.key}", p.value, p.source, p.verification)
            for p in self.parameters.values()
        ]
        for s in self.steps:
            for key, v in s.margin:
                if not isinstance(v, str):
                    out.append((f"step {s.name} margin {key}", v, s.source, s.verification))
            for kind, rules in (("avoid", s.avoid), ("within", s.within)):
                for r in rules:
                    if not isinstance(r.margin, str):
                        out.append(
                            (
                                f"step {s.name} {kind} {r.structure}",
                                r.margin,
                                s.source,
                                s.verification,
                            )
                        )
            if s.near and not isinstance(s.near_mm, str):
                out.append((f"step {s.name} near distance", s.near_mm, s.source, s.verification))
        return out


# ---------------------------------------------------------------------------- parsing
class _T(_Table):
    """Strict access to one TOML table (unknown keys are errors: usually typos); ``get``
    takes Python types (or a tuple of them) as they stand in the TOML document."""

    def get(self, key, kinds, default: Any = ...):
        value, present = self.lookup(key, default)
        if not present:
            return value
        kinds_t = kinds if isinstance(kinds, tuple) else (kinds,)
        if (isinstance(value, bool) and bool not in kinds_t) or not isinstance(value, kinds):
            names = "/".join(k.__name__ for k in kinds_t)
            raise self.error(f"'{key}' must be {names}")
        if isinstance(value, float) and not math.isfinite(value):
            raise self.error(f"'{key}' must be finite")
        return value

    def strings(self, key) -> tuple[str, ...]:
        value = self.get(key, (str, list), ())
        value = [value] if isinstance(value, str) else value
        if not all(isinstance(v, str) and v for v in value):
            raise self.error(f"'{key}' must be a string or a list of strings")
        return tuple(value)


def _number_or_name(t: _T, key: str, value, parameters) -> float | str:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise t.error(f"'{key}' must be a number of mm or a parameter name")
    if isinstance(value, str):
        if value not in parameters:
            raise t.error(f"'{key}' names an unknown parameter '{value}'")
        return value
    if not math.isfinite(value):
        raise t.error(f"'{key}' must be finite")
    return float(value)


def _verification(t: _T, source_key: str, sources: dict[str, Source]) -> str:
    if source_key not in sources:
        raise t.error(f"source '{source_key}' is not in [sources]")
    stated = t.get("verification", str, None)
    if stated is not None and stated not in VERIFICATIONS:
        raise t.error(f"'verification' must be one of {', '.join(VERIFICATIONS)}")
    base = sources[source_key].verification
    if stated is None:
        if base != "verified":
            raise t.error(
                f"cites source '{source_key}' ({base}): say so with verification = \"{base}\""
            )
        return base
    if VERIFICATIONS.index(stated) < VERIFICATIONS.index(base):
        raise t.error(f"cannot be more verified ('{stated}') than its source ('{base}')")
    return stated


def _crops(t: _T, key: str, parameters) -> tuple[CropRule, ...]:
    raw = t.get(key, list, [])
    out = []
    for i, item in enumerate(raw):
        if isinstance(item, str) and item:
            out.append(CropRule(item))
            continue
        c = _T(item, f"{t.where} {key}[{i}]", t.path)
        name = c.get("structure", str)
        margin = _number_or_name(
            c, "margin_mm", c.get("margin_mm", (int, float, str), 0.0), parameters
        )
        invaded = c.get("unless_invaded", bool, False)
        if invaded and key != "avoid":
            raise c.error("'unless_invaded' is for avoid crops")
        c.finish()
        out.append(CropRule(name, margin, invaded))
    return tuple(out)


def recipe_from_protocol(protocol: Protocol) -> Recipe:
    """The ``[volumes]`` recipe of a loaded protocol.

    Raises
    ------
    InputError
        The protocol has no ``[volumes]`` table, or it is malformed (one line naming the
        file, the table and the problem).
    """
    path = protocol.path
    if "volumes" not in protocol.extra:
        raise InputError(f"protocol '{protocol.name}' has no [volumes] recipe", path=path or None)
    top = _T(protocol.extra["volumes"], "[volumes]", path)
    description = top.get("description", str, "")
    roles = {}
    for key, data in top.get("structures", dict).items():
        r = _T(data, f"[volumes.structures.{key}]", path)
        roles[key] = StructureRole(
            key=key,
            names=r.strings("names") or (key,),
            aliases=r.strings("aliases"),
            required=r.get("required", bool, False),
            multiple=r.get("multiple", bool, False),
            description=r.get("description", str, ""),
        )
        r.finish()
    parameters: dict[str, Parameter] = {}
    for key, data in top.get("parameters", dict, {}).items():
        p = _T(data, f"[volumes.parameters.{key}]", path)
        value = float(p.get("value", (int, float)))
        source = p.get("source", str)
        rng = p.get("range", list, None)
        if rng is not None:
            if len(rng) != 2 or not all(isinstance(v, (int, float)) for v in rng):
                raise p.error("'range' must be [low, high]")
            rng = (float(rng[0]), float(rng[1]))
            if not rng[0] <= value <= rng[1]:
                raise p.error(f"value {value:g} is outside its range {rng[0]:g}..{rng[1]:g}")
        parameters[key] = Parameter(
            key, value, source, _verification(p, source, protocol.sources), rng,
            p.get("note", str, ""),
        )  # fmt: skip
        p.finish()
    raw_steps = top.get("steps", list)
    if not raw_steps:
        raise top.error("'steps' is empty")
    steps: list[RecipeStep] = []
    for i, data in enumerate(raw_steps):
        s = _T(data, f"[[volumes.steps]] #{i + 1}", path)
        name = s.get("name", str)
        s.where = f"[[volumes.steps]] '{name}'"
        origin = s.get("from", str)
        known = set(roles) | {st.name for st in steps}
        for ref in (origin,):
            if ref not in known:
                raise s.error(f"'from' = '{ref}' is neither a role nor an earlier step")
        margin = []
        for k, v in s.get("margin", dict, {}).items():
            if k not in DIRECTIONS and k not in SHORTHANDS:
                raise s.error(f"margin key '{k}' is not a direction or shorthand")
            margin.append((k, _number_or_name(s, f"margin.{k}", v, parameters)))
        near_t = s.get("near", dict, None)
        near, near_mm = (), 0.0
        if near_t is not None:
            n = _T(near_t, f"{s.where} near", path)
            near = n.strings("structures")
            near_mm = _number_or_name(
                n, "distance_mm", n.get("distance_mm", (int, float, str)), parameters
            )
            n.finish()
        avoid = _crops(s, "avoid", parameters)
        within = _crops(s, "within", parameters)
        keep = s.strings("keep")
        for ref in [*near, *(c.structure for c in avoid + within), *keep]:
            if ref not in known:
                raise s.error(f"'{ref}' is neither a role nor an earlier step")
        source = s.get("source", str)
        steps.append(
            RecipeStep(
                name=name,
                origin=origin,
                source=source,
                interpreted_type=s.get("type", str, ""),
                margin=tuple(margin),
                near=near,
                near_mm=near_mm,
                avoid=avoid,
                within=within,
                keep=keep,
                verification=_verification(s, source, protocol.sources),
                note=s.get("note", str, ""),
            )
        )
        s.finish()
    top.finish()
    recipe = Recipe(
        protocol.name, description.strip(), roles, parameters, tuple(steps), protocol.sources, path
    )
    unverified = [n for n in recipe.numbers() if n[3] == "not verified"]
    if unverified and not protocol.is_template:
        raise InputError(
            f"[volumes]: {unverified[0][0]} is not verified; the protocol must be a template",
            path=path or None,
        )
    return recipe


def load_recipe(name_or_path: str | Path) -> Recipe:
    """The recipe of a shipped protocol name or a protocol file."""
    return recipe_from_protocol(load_protocol(name_or_path))


# ---------------------------------------------------------------------------- running
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
    recipe: Recipe,
    structures: Mapping[str, Structure] | Sequence[Structure],
    *,
    slice_z_mm: Sequence[float] | None = None,
    mapping: Mapping[str, str | Sequence[str]] | None = None,
    parameters: Mapping[str, float] | None = None,
    gtv: str | None = None,
    fine_mm: float = FINE_MM,
    source: str = "",
) -> RecipeResult:
    """Build every volume of ``recipe`` from ``structures``.

    Parameters
    ----------
    recipe : Recipe
    structures : mapping or sequence of Structure
        The structure set's structures.
    slice_z_mm : sequence of float, optional
        CT slice positions (default: the GTV's contour planes).
    mapping : mapping, optional
        Role key (or TG-263 name) -> structure name(s), overriding the name matching.
    parameters : mapping, optional
        New values for the recipe's parameters (checked against their ranges).
    gtv : str, optional
        Name of the structure the recipe grows from (the first step's role).
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
    user_map = dict(mapping or {})
    if gtv:
        user_map[recipe.gtv_role] = gtv
    present = list(table)
    matched = {
        key: match_role(role, present, user_map, source=source).structures
        for key, role in recipe.roles.items()
    }
    step_names = {s.name for s in recipe.steps}
    notes: list[str] = []

    def names_of(ref: str) -> tuple[str, ...]:
        return (ref,) if ref in step_names else matched[ref]

    origin = names_of(recipe.gtv_role)
    if not origin:
        raise InputError(f"no structure found for '{recipe.gtv_role}'", path=source or None)
    margins = [_margins(s, values) for s in recipe.steps]
    lo, hi = reach_of(margins)
    seeds = [table[n] for n in origin]
    workspace = Workspace.around(
        seeds, reach_lo_mm=lo, reach_hi_mm=hi, slice_z_mm=slice_z_mm, fine_mm=fine_mm
    )
    builder = VolumeBuilder(table, workspace)
    for step, m in zip(recipe.steps, margins, strict=True):
        start = names_of(step.origin)
        if len(start) != 1:
            raise InputError(
                f"step '{step.name}': '{step.origin}' matches {len(start)} structures "
                f"({', '.join(start) or 'none'}); name one with a mapping",
                path=source or None,
            )

        def crops(rules, kind, step=step, start=start):
            out = []
            for rule in rules:
                found = names_of(rule.structure)
                if not found:
                    notes.append(
                        f"{step.name}: {kind} '{rule.structure}' skipped (no such structure)"
                    )
                if rule.unless_invaded:
                    found = tuple(n for n in found if not invaded(step, start[0], n))
                mm = values[rule.margin] if isinstance(rule.margin, str) else rule.margin
                if kind == "within" and len(found) > 1:  # within any of them
                    joined = f"{rule.structure} ({' + '.join(found)})"
                    builder.unite(joined, found)
                    found = (joined,)
                out.extend((n, mm) for n in found)
            return out

        def invaded(step, origin: str, organ: str) -> bool:
            overlap = intersection(builder.region(origin), builder.region(organ)).volume_cc
            if overlap <= INVASION_CC:
                return False
            notes.append(
                f"{step.name}: not cropped inside {organ}: {origin} overlaps it by "
                f"{overlap:.2f} cc (invaded), so the margin may enter it"
            )
            return True

        for ref in step.near:
            if not names_of(ref):
                notes.append(f"{step.name}: near '{ref}' skipped (no such structure)")
        near = [n for ref in step.near for n in names_of(ref)]
        if step.near and not near:
            raise InputError(
                f"step '{step.name}': none of {', '.join(step.near)} is present",
                path=source or None,
            )
        near_mm = values[step.near_mm] if isinstance(step.near_mm, str) else step.near_mm
        builder.build(
            step.name,
            start[0],
            margins=None if m.is_zero else m,
            near=near,
            near_mm=near_mm,
            avoid=crops(step.avoid, "avoid"),
            within=crops(step.within, "within"),
            keep=[n for ref in step.keep for n in names_of(ref)],
        )
    out, names = [], {}
    for step in recipe.steps:
        name = step.name
        while name in table:
            name = f"{name}{RENAME_SUFFIX}" if not name.endswith(RENAME_SUFFIX) else name + "2"
        if name != step.name:
            notes.append(f"'{step.name}' exists in the structure set: the new one is '{name}'")
        names[step.name] = name
        s = builder.structure(step.name, interpreted_type=step.interpreted_type or None)
        out.append(_renamed(s, name, step.interpreted_type or guess_type(step.name)))
    return RecipeResult(tuple(out), tuple(builder.steps), tuple(notes), values, names)


def _renamed(s: Structure, name: str, kind: str) -> Structure:
    return Structure(
        name=name,
        contours=s.contours,
        interpreted_type=kind,
        color=s.color,
        frame_of_reference_uid=s.frame_of_reference_uid,
        slice_spacing_mm=s.slice_spacing_mm,
    )


def _parameter_values(recipe: Recipe, given: Mapping[str, float]) -> dict[str, float]:
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


def _margins(step: RecipeStep, values: Mapping[str, float]) -> Margins:
    resolved = {k: (values[v] if isinstance(v, str) else v) for k, v in step.margin}
    return Margins.parse(resolved) if resolved else Margins()
