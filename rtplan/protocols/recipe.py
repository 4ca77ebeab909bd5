"""Target-volume recipes as data: the ``[volumes]`` table of a protocol file.

A recipe builds new volumes (GTV -> CTV -> PTV, the RPS high-risk volume) step by step from
a structure set.  It lives in the protocol's TOML file next to the prescription and
constraints, and like them cites a source for every number (the same rule as the rest of the
file, :func:`rtplan.protocols.schema.cite`)::

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

The recipe is run by :func:`rtplan.volumes.recipes.run_recipe` (the meaning of each key and
the order inside a step: :meth:`rtplan.volumes.builder.VolumeBuilder.build`).  Margins are in
mm in patient directions (:class:`rtplan.volumes.margins.Margins`; the names:
:data:`rtplan.grid.DIRECTIONS` and :data:`rtplan.grid.SHORTHANDS`).

Examples
--------
>>> r = load_recipe("extremity-preop")
>>> r.gtv_role, [s.name for s in r.steps], r.parameters["radial_mm"].value
('gtv', ['CTV', 'PTV'], 15.0)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtplan.errors import InputError
from rtplan.grid import DIRECTIONS, SHORTHANDS
from rtplan.protocols.schema import Protocol, Source, StructureRole, Table, cite, require_template


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
        """Every number (mm) as ``(where, value, source key, verification)``: the parameters
        with their ranges, and each step's literal margins, crop margins (0 mm when not
        given: the crop is at the structure's surface) and near distance."""
        out = []
        for p in self.parameters.values():
            out.append((f"parameter {p.key}", p.value, p.source, p.verification))
            if p.range is not None:
                out += [
                    (f"parameter {p.key} range {end}", v, p.source, p.verification)
                    for end, v in (("low", p.range[0]), ("high", p.range[1]))
                ]
        for s in self.steps:
            literal = [(f"margin {key}", v) for key, v in s.margin]
            literal += [(f"{kind} {r.structure}", r.margin)
                        for kind, rules in (("avoid", s.avoid), ("within", s.within))
                        for r in rules]  # fmt: skip
            literal += [("near distance", s.near_mm)] if s.near else []
            out += [
                (f"step {s.name} {what}", v, s.source, s.verification)
                for what, v in literal
                if not isinstance(v, str)
            ]
        return out


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
    top = Table(protocol.extra["volumes"], "[volumes]", path)
    description = top.get("description", str, "")
    roles = {k: _role(k, v, path) for k, v in top.get("structures", dict).items()}
    parameters = {
        k: _parameter(k, v, protocol.sources, path)
        for k, v in top.get("parameters", dict, {}).items()
    }
    raw_steps, _ = top.lookup("steps")
    if not isinstance(raw_steps, list):
        raise top.error("'steps' must be an array of tables ([[volumes.steps]])")
    if not raw_steps:
        raise top.error("'steps' is empty")
    steps: list[RecipeStep] = []
    for i, data in enumerate(raw_steps):
        known = set(roles) | {s.name for s in steps}
        steps.append(_step(i, data, known, parameters, protocol.sources, path))
    top.finish()
    recipe = Recipe(
        protocol.name, description.strip(), roles, parameters, tuple(steps), protocol.sources, path
    )
    require_template(protocol, recipe.numbers(), top)
    return recipe


def load_recipe(name_or_path: str | Path) -> Recipe:
    """The recipe of a shipped protocol name or a protocol file."""
    from rtplan.protocols import load_protocol

    return recipe_from_protocol(load_protocol(name_or_path))


# ---------------------------------------------------------------------------- the tables
def _role(key: str, data: Any, path: str) -> StructureRole:
    r = Table(data, f"[volumes.structures.{key}]", path)
    role = StructureRole(
        key=key,
        names=r.strings("names", ()) or (key,),
        aliases=r.strings("aliases", ()),
        required=r.get("required", bool, False),
        multiple=r.get("multiple", bool, False),
        description=r.get("description", str, ""),
    )
    r.finish()
    return role


def _parameter(key: str, data: Any, sources: dict[str, Source], path: str) -> Parameter:
    p = Table(data, f"[volumes.parameters.{key}]", path)
    value = p.get("value", float)
    rng, _ = p.lookup("range", None)
    if rng is not None:
        numbers = isinstance(rng, list) and len(rng) == 2
        if not numbers or not all(isinstance(v, (int, float)) for v in rng):
            raise p.error("'range' must be [low, high]")
        rng = (float(rng[0]), float(rng[1]))
        if not rng[0] <= value <= rng[1]:
            raise p.error(f"value {value:g} is outside its range {rng[0]:g}..{rng[1]:g}")
    parameter = Parameter(
        key, value, p.get("source", str), cite(p, sources, "source", "verification"), rng,
        p.get("note", str, ""),
    )  # fmt: skip
    p.finish()
    return parameter


def _step(i: int, data: Any, known: set[str], parameters, sources, path: str) -> RecipeStep:
    """Step ``i`` of ``[[volumes.steps]]``; ``known``: the roles and the earlier steps."""
    s = Table(data, f"[[volumes.steps]] #{i + 1}", path)
    name = s.get("name", str)
    s.where = f"[[volumes.steps]] '{name}'"
    origin = s.get("from", str)
    if origin not in known:
        raise s.error(f"'from' = '{origin}' is neither a role nor an earlier step")
    m = Table(s.get("margin", dict, {}), f"{s.where} margin", path)
    for k in m.data:
        if k not in DIRECTIONS and k not in SHORTHANDS:
            raise m.error(f"key '{k}' is not a direction or shorthand")
    margin = [(k, m.number_or_name(k, parameters)) for k in m.data]
    near, near_mm = (), 0.0
    near_t = s.get("near", dict, None)
    if near_t is not None:
        n = Table(near_t, f"{s.where} near", path)
        near = n.strings("structures", ())
        near_mm = n.number_or_name("distance_mm", parameters)
        n.finish()
    avoid, within = _crops(s, "avoid", parameters), _crops(s, "within", parameters)
    keep = s.strings("keep", ())
    for ref in [*near, *(c.structure for c in avoid + within), *keep]:
        if ref not in known:
            raise s.error(f"'{ref}' is neither a role nor an earlier step")
    step = RecipeStep(
        name=name,
        origin=origin,
        source=s.get("source", str),
        interpreted_type=s.get("type", str, ""),
        margin=tuple(margin),
        near=near,
        near_mm=near_mm,
        avoid=avoid,
        within=within,
        keep=keep,
        verification=cite(s, sources, "source", "verification"),
        note=s.get("note", str, ""),
    )
    s.finish()
    return step


def _crops(t: Table, key: str, parameters) -> tuple[CropRule, ...]:
    raw, _ = t.lookup(key, [])
    if not isinstance(raw, list):
        raise t.error(f"'{key}' must be a list")
    out = []
    for i, item in enumerate(raw):
        if isinstance(item, str) and item:
            out.append(CropRule(item))
            continue
        c = Table(item, f"{t.where} {key}[{i}]", t.path)
        rule = CropRule(
            c.get("structure", str),
            c.number_or_name("margin_mm", parameters, 0.0),
            c.get("unless_invaded", bool, False),
        )
        if rule.unless_invaded and key != "avoid":
            raise c.error("'unless_invaded' is for avoid crops")
        c.finish()
        out.append(rule)
    return tuple(out)
