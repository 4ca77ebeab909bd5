"""The protocol data model and its validation (the schema of the TOML protocol files).

A protocol file has these top-level tables (full description with an example in
``docs/protocols.md``)::

    schema_version = 1
    [protocol]             name, title, status ("clinical" | "template"), template_note, description
    [prescription]         fractions, source, allow_eqd2_conversion, [[prescription.targets]]
    [structures.<role>]    names (TG-263 first), aliases, kind, required, multiple, alpha_beta_gy
    [[constraints]]        id, structure, metric, comparison, limit, unit, priority, source, ...
    [sources.<key>]        author, year, journal, citation, verification, reference

Any other top-level table (for instance ``[volumes]``, the margin recipes of
:mod:`rtplan.volumes`) is kept untouched in :attr:`Protocol.extra` for the module that owns it.
Inside the tables above, unknown keys are errors (they are usually typos).

Every number has a source: the prescription's fractions and each target dose cite ``source``,
each constraint cites ``source`` (for its limit, its metric's dose and its ``acceptable`` limit),
and each ``alpha_beta_gy`` cites ``alpha_beta_source``.  A source records how far its numbers
are verified (``verified``, ``partial``, ``not verified``).  An item may lower that status for
itself (``verification = "not verified"`` next to the number) but never raise it, and an item
citing a source that is not fully verified must say so with its own ``verification`` key, so
that every unverified number is marked where it stands.  A protocol holding any ``not
verified`` number must be ``status = "template"`` with a ``template_note`` saying why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from rtplan.constraints import Constraint
from rtplan.errors import InputError

SCHEMA_VERSION = 1
STATUSES = ("clinical", "template")
VERIFICATIONS = ("verified", "partial", "not verified")
KINDS = ("target", "organ")
_KNOWN_TOP = {"schema_version", "protocol", "prescription", "structures", "constraints", "sources"}


@dataclass(frozen=True)
class Source:
    """A published source of protocol numbers, as recorded in the project reference.

    ``verification`` is how far the numbers were checked (``verified``: the number appears in
    the cited text or the abstract / secondary page named in ``reference``; ``partial``: weak
    secondary support; ``not verified``).
    """

    key: str
    author: str
    year: int
    journal: str
    citation: str
    verification: str
    reference: str = ""
    note: str = ""

    def short(self) -> str:
        """``"Kavanagh BD 2010, Int J Radiat Oncol Biol Phys"``."""
        return f"{self.author} {self.year}, {self.journal}"


@dataclass(frozen=True)
class Target:
    """A prescription level: ``dose_gy`` (up to ``dose_gy_max`` for a range) to a target role."""

    structure: str
    dose_gy: float
    source: str
    dose_gy_max: float | None = None
    verification: str = "verified"


@dataclass(frozen=True)
class Prescription:
    """Total doses per target and the number of fractions they are given in."""

    fractions: int
    source: str
    targets: tuple[Target, ...]
    allow_eqd2_conversion: bool = False
    note: str = ""
    verification: str = "verified"

    @property
    def primary(self) -> Target:
        """The first target listed (the main prescription level)."""
        return self.targets[0]

    @property
    def total_gy(self) -> float:
        """Total dose (Gy) of the primary target."""
        return self.primary.dose_gy

    @property
    def dose_per_fraction_gy(self) -> float:
        """Dose per fraction (Gy) of the primary target."""
        return self.primary.dose_gy / self.fractions


@dataclass(frozen=True)
class StructureRole:
    """A structure a protocol refers to, and how to find it in a plan.

    ``names`` are the TG-263 names, in order of preference; ``aliases`` other names in use.
    ``multiple``: every present structure matching the role is checked (e.g. left and right
    femur); otherwise exactly one is.  ``alpha_beta_gy`` (with its source) is what EQD2
    conversion uses for this structure; without it the structure's doses are never converted.
    """

    key: str
    names: tuple[str, ...]
    kind: str = "organ"
    aliases: tuple[str, ...] = ()
    required: bool = False
    multiple: bool = False
    description: str = ""
    alpha_beta_gy: float | None = None
    alpha_beta_source: str | None = None
    alpha_beta_verification: str = "verified"

    @property
    def label(self) -> str:
        """The role's first TG-263 name (how reports name it)."""
        return self.names[0]


@dataclass(frozen=True)
class Protocol:
    """A validated protocol.  Build one with :func:`parse_protocol` or :func:`load_protocol`."""

    name: str
    title: str
    status: str
    prescription: Prescription
    structures: dict[str, StructureRole]
    constraints: tuple[Constraint, ...]
    sources: dict[str, Source]
    description: str = ""
    template_note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    path: str = ""

    @property
    def is_template(self) -> bool:
        return self.status == "template"

    def numbers(self) -> list[tuple[str, float, str, str]]:
        """Every number of the protocol as ``(where, value, source key, verification)``."""
        p = self.prescription
        out = [("prescription.fractions", float(p.fractions), p.source, p.verification)]
        for t in p.targets:
            out.append((f"target {t.structure} dose_gy", t.dose_gy, t.source, t.verification))
            if t.dose_gy_max is not None:
                out.append(
                    (f"target {t.structure} dose_gy_max", t.dose_gy_max, t.source, t.verification)
                )
        for r in self.structures.values():
            if r.alpha_beta_gy is not None:
                out.append(
                    (
                        f"structure {r.key} alpha_beta_gy",
                        r.alpha_beta_gy,
                        r.alpha_beta_source,
                        r.alpha_beta_verification,
                    )
                )
        for c in self.constraints:
            out.append((f"constraint {c.id} limit", c.limit, c.source, c.verification))
            for number in c.dose_numbers:
                out.append((f"constraint {c.id} metric", number, c.source, c.verification))
            if c.acceptable is not None:
                out.append(
                    (f"constraint {c.id} acceptable", c.acceptable, c.source, c.verification)
                )
        return out

    def unverified(self) -> list[tuple[str, float, str, str]]:
        """The numbers whose verification is not ``verified``."""
        return [n for n in self.numbers() if n[3] != "verified"]


# ---------------------------------------------------------------------------- parsing
class Table:
    """Typed, strict access to one TOML table; every error names the file and the table."""

    def __init__(self, data: Any, where: str, path: str):
        if not isinstance(data, dict):
            raise InputError(f"{where} must be a table", path=path or None)
        self.data, self.where, self.path = data, where, path
        self.used: set[str] = set()

    def error(self, message: str) -> InputError:
        return InputError(f"{self.where}: {message}", path=self.path or None)

    def lookup(self, key: str, default: Any = ...) -> tuple[Any, bool]:
        """``(value, True)`` for a key present (marked as used), ``(default, False)`` for
        an absent one; absent without a default is an error."""
        self.used.add(key)
        if key in self.data:
            return self.data[key], True
        if default is ...:
            raise self.error(f"missing '{key}'")
        return default, False

    def get(self, key: str, kind, default: Any = ..., *, choices=None):
        value, present = self.lookup(key, default)
        if not present:
            return value
        if kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            ok = ok and math.isfinite(value)
            value = float(value) if ok else value
        elif kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif kind is list:
            ok = isinstance(value, list) and all(isinstance(v, str) and v for v in value)
            value = tuple(value) if ok else value
        else:
            ok = isinstance(value, kind)
        if not ok:
            raise self.error(f"'{key}' must be {_KIND_NAMES.get(kind, kind.__name__)}")
        if choices is not None and value not in choices:
            raise self.error(f"'{key}' must be one of {', '.join(map(repr, choices))}")
        return value

    def strings(self, key: str, default: Any = ...) -> tuple[str, ...]:
        """A string or a list of strings, as a tuple."""
        value = self.data.get(key)
        if isinstance(value, str) and value:
            self.used.add(key)
            return (value,)
        return self.get(key, list, default)

    def names(self, key: str) -> tuple[str, ...]:
        """A string or a list of strings, as a non-empty tuple."""
        out = self.strings(key)
        if not out:
            raise self.error(f"'{key}' must not be empty")
        return out

    def number_or_name(self, key: str, names, default: Any = ...) -> float | str:
        """A finite number, or the name of one of ``names`` (a recipe's parameters)."""
        value, present = self.lookup(key, default)
        if not present:
            return value
        if isinstance(value, str):
            if value not in names:
                raise self.error(f"'{key}' names an unknown parameter '{value}'")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(f"'{key}' must be a number of mm or a parameter name")
        if not math.isfinite(value):
            raise self.error(f"'{key}' must be finite")
        return float(value)

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise self.error(f"unknown key(s) {', '.join(map(repr, unknown))}")


_KIND_NAMES = {
    float: "a number",
    int: "an integer",
    str: "a string",
    bool: "true or false",
    list: "a list of strings",
    dict: "a table",
}


def _positive(table: Table, key: str, value: float | None) -> None:
    if value is not None and not value > 0:
        raise table.error(f"'{key}' must be positive")


def _parse_source(key: str, data: Any, path: str) -> Source:
    t = Table(data, f"[sources.{key}]", path)
    src = Source(
        key=key,
        author=t.get("author", str),
        year=t.get("year", int),
        journal=t.get("journal", str),
        citation=t.get("citation", str),
        verification=t.get("verification", str, choices=VERIFICATIONS),
        reference=t.get("reference", str, ""),
        note=t.get("note", str, ""),
    )
    t.finish()
    return src


def cite(t: Table, sources: dict[str, Source], source_key: str, verification_key: str) -> str:
    """Check that ``t[source_key]`` names a source and return the item's verification.

    An item citing a source that is not fully verified must state the verification next to
    its number (``verification_key``); an item may lower the source's status, never raise it.
    """
    key = t.get(source_key, str)
    if key not in sources:
        raise t.error(f"'{source_key}' = '{key}' is not a key of [sources]")
    of_source = sources[key].verification
    stated = t.get(verification_key, str, None, choices=VERIFICATIONS)
    if stated is None:
        if of_source != "verified":
            raise t.error(
                f"source '{key}' is '{of_source}': say so next to the number "
                f'({verification_key} = "{of_source}")'
            )
        return of_source
    if VERIFICATIONS.index(stated) < VERIFICATIONS.index(of_source):
        raise t.error(f"{verification_key} '{stated}' is stronger than source '{key}' allows")
    return stated


def require_template(
    protocol: Protocol, numbers: list[tuple[str, float, str, str]], table: Table
) -> None:
    """The rule for a whole protocol: one ``not verified`` number among ``numbers`` makes it a
    template (``status = "template"``), or ``table`` reports the error."""
    unverified = [n for n in numbers if n[3] == "not verified"]
    if unverified and not protocol.is_template:
        raise table.error(
            f"holds numbers that are not verified ({unverified[0][0]}, ...): "
            'set status = "template" and say why in template_note'
        )


def _parse_role(key: str, data: Any, sources: dict[str, Source], path: str) -> StructureRole:
    t = Table(data, f"[structures.{key}]", path)
    alpha_beta = t.get("alpha_beta_gy", float, None)
    _positive(t, "alpha_beta_gy", alpha_beta)
    ab_source, ab_verification = None, "verified"
    if alpha_beta is not None:
        ab_source = t.get("alpha_beta_source", str)
        ab_verification = cite(t, sources, "alpha_beta_source", "alpha_beta_verification")
    elif "alpha_beta_source" in t.data:
        raise t.error("'alpha_beta_source' given without 'alpha_beta_gy'")
    role = StructureRole(
        key=key,
        names=t.names("names"),
        kind=t.get("kind", str, "organ", choices=KINDS),
        aliases=t.get("aliases", list, ()),
        required=t.get("required", bool, False),
        multiple=t.get("multiple", bool, False),
        description=t.get("description", str, ""),
        alpha_beta_gy=alpha_beta,
        alpha_beta_source=ab_source,
        alpha_beta_verification=ab_verification,
    )
    t.finish()
    return role


def _parse_prescription(
    data: Any, roles: dict[str, StructureRole], sources: dict[str, Source], path: str
) -> Prescription:
    t = Table(data, "[prescription]", path)
    fractions = t.get("fractions", int)
    _positive(t, "fractions", fractions)
    verification = cite(t, sources, "source", "verification")
    raw_targets = t.data.get("targets")
    t.used.add("targets")
    if not isinstance(raw_targets, list) or not raw_targets:
        raise t.error("needs at least one [[prescription.targets]]")
    targets = []
    for i, item in enumerate(raw_targets):
        tt = Table(item, f"[[prescription.targets]] #{i + 1}", path)
        role = tt.get("structure", str)
        if role not in roles or roles[role].kind != "target":
            raise tt.error(f"structure '{role}' is not a [structures] role of kind 'target'")
        dose = tt.get("dose_gy", float)
        dose_max = tt.get("dose_gy_max", float, None)
        _positive(tt, "dose_gy", dose)
        if dose_max is not None and not dose_max > dose:
            raise tt.error("'dose_gy_max' must exceed 'dose_gy'")
        targets.append(
            Target(
                role,
                dose,
                tt.get("source", str),
                dose_max,
                cite(tt, sources, "source", "verification"),
            )
        )
        tt.finish()
    pres = Prescription(
        fractions=fractions,
        source=t.get("source", str),
        targets=tuple(targets),
        allow_eqd2_conversion=t.get("allow_eqd2_conversion", bool, False),
        note=t.get("note", str, ""),
        verification=verification,
    )
    t.finish()
    return pres


def _parse_constraint(i: int, data: Any, sources: dict[str, Source], path: str) -> Constraint:
    ident = data.get("id", f"#{i + 1}") if isinstance(data, dict) else f"#{i + 1}"
    t = Table(data, f"[[constraints]] '{ident}'", path)
    try:
        c = Constraint(
            id=t.get("id", str),
            structure=t.get("structure", str),
            metric=t.get("metric", str),
            comparison=t.get("comparison", str),
            limit=t.get("limit", float),
            unit=t.get("unit", str),
            priority=t.get("priority", str),
            source=t.get("source", str),
            acceptable=t.get("acceptable", float, None),
            dose_basis=t.get("dose_basis", str, "physical"),
            reference_fractions=t.get("reference_fractions", int, None),
            note=t.get("note", str, ""),
            verification=cite(t, sources, "source", "verification"),
        )
    except InputError as exc:
        if exc.path:
            raise
        raise InputError(exc.problem, path=path or None) from None
    t.finish()
    return c


def parse_protocol(data: dict[str, Any], *, path: str = "") -> Protocol:
    """Validate the parsed TOML of a protocol file and build a :class:`Protocol`.

    Parameters
    ----------
    data : dict
        The TOML document (``tomllib.loads`` output).
    path : str
        Where it came from, for error messages.

    Returns
    -------
    Protocol

    Raises
    ------
    InputError
        One line naming the file, the table and the problem: missing or mistyped keys,
        unknown keys, undefined structure roles or sources, a number citing a source that is
        not verified without saying so, or such a number in a protocol not marked template.
    """
    top = Table(data, "protocol file", path)
    version = top.get("schema_version", int)
    if version != SCHEMA_VERSION:
        raise top.error(
            f"schema_version {version} is not supported (this rtplan reads {SCHEMA_VERSION})"
        )

    raw_sources = top.get("sources", dict)
    sources = {k: _parse_source(k, v, path) for k, v in raw_sources.items()}
    if not sources:
        raise top.error("[sources] is empty: every number needs a source")

    raw_roles = top.get("structures", dict)
    roles = {k: _parse_role(k, v, sources, path) for k, v in raw_roles.items()}
    prescription = _parse_prescription(top.get("prescription", dict), roles, sources, path)

    constraints = _parse_constraints(top, sources, roles, prescription, path)

    meta = Table(top.get("protocol", dict), "[protocol]", path)
    protocol = Protocol(
        name=meta.get("name", str),
        title=meta.get("title", str),
        status=meta.get("status", str, choices=STATUSES),
        description=meta.get("description", str, ""),
        template_note=meta.get("template_note", str, ""),
        prescription=prescription,
        structures=roles,
        constraints=constraints,
        sources=sources,
        extra={k: v for k, v in data.items() if k not in _KNOWN_TOP},
        path=path,
    )
    meta.finish()
    require_template(protocol, protocol.numbers(), meta)
    if protocol.is_template and not protocol.template_note.strip():
        raise meta.error("a template protocol needs a 'template_note' saying what is not verified")
    return protocol


def _parse_constraints(
    top: Table,
    sources: dict[str, Source],
    roles: dict[str, StructureRole],
    prescription: Prescription,
    path: str,
) -> tuple[Constraint, ...]:
    """``[[constraints]]``: each parsed, ids unique, each on a role, and an alpha/beta for
    every structure whose constraints may be converted to EQD2."""
    raw_constraints = top.data.get("constraints", [])
    top.used.add("constraints")
    if not isinstance(raw_constraints, list):
        raise top.error("'constraints' must be an array of tables ([[constraints]])")
    constraints = tuple(
        _parse_constraint(i, c, sources, path) for i, c in enumerate(raw_constraints)
    )
    ids = [c.id for c in constraints]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise top.error(f"duplicate constraint id(s) {', '.join(dupes)}")
    for c in constraints:
        if c.structure not in roles:
            raise top.error(
                f"constraint '{c.id}': structure '{c.structure}' is not a [structures] role"
            )
        needs_ab = c.is_absolute and (
            c.dose_basis == "eqd2"
            or prescription.allow_eqd2_conversion
            or c.reference_fractions is not None
        )
        if needs_ab and roles[c.structure].alpha_beta_gy is None:
            raise top.error(
                f"constraint '{c.id}' may be EQD2-converted, but structure '{c.structure}' "
                "has no alpha_beta_gy"
            )
    return constraints
