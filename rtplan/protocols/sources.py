"""The bibliography of the shipped protocols (``sources.toml`` beside them).

Each source (by the key the protocol files cite) has its citation, DOI and PubMed ID where
known, its verification status (``verified``, ``partial``, ``not verified``: how far the
numbers were checked against the primary publication), the section of the project's clinical
reference it was taken from, and every number it supports with its unit and what it is.

:func:`protocol_numbers` and :func:`recipe_numbers` list every number of a protocol and of its
``[volumes]`` recipe with its unit; the tests check each against this bibliography (value,
unit, source, status).  A recipe number that its cited source does not state (a crop that is
rtplan's own choice) is listed under ``[[unsourced]]`` (:func:`load_unsourced`), marked
``not verified``, with the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from rtplan.protocols.recipe import Recipe
from rtplan.protocols.schema import Protocol

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib


@dataclass(frozen=True)
class SupportedNumber:
    """One number a source supports: ``value`` in ``unit``, what it is, its status."""

    value: float
    unit: str
    what: str
    status: str


@dataclass(frozen=True)
class BibliographyEntry:
    """One source of ``sources.toml``."""

    key: str
    citation: str
    status: str
    section: str
    doi: str | None
    pmid: str | None
    numbers: tuple[SupportedNumber, ...]


def load_sources() -> dict[str, BibliographyEntry]:
    """The bibliography, by source key."""
    data = _bibliography()["sources"]
    return {
        key: BibliographyEntry(
            key=key,
            citation=d["citation"],
            status=d["status"],
            section=d["section"],
            doi=d.get("doi"),
            pmid=d.get("pmid"),
            numbers=tuple(SupportedNumber(**n) for n in d.get("numbers", [])),
        )
        for key, d in data.items()
    }


@dataclass(frozen=True)
class UnsourcedNumber:
    """A number of a shipped file that no source states: where it stands and why."""

    protocol: str
    where: str
    value: float
    unit: str
    cited: str
    status: str
    reason: str


def _bibliography() -> dict:
    text = resources.files("rtplan.protocols").joinpath("sources.toml").read_text("utf-8")
    return tomllib.loads(text)


def load_unsourced() -> list[UnsourcedNumber]:
    """The ``[[unsourced]]`` numbers of the bibliography."""
    return [UnsourcedNumber(**u) for u in _bibliography().get("unsourced", [])]


def _metric_unit(metric: str, number: float) -> str:
    """Unit of the number inside a metric string: ``Gy`` (V45Gy), ``%`` (D95%), ``cc``."""
    m = re.search(r"(\d+(?:\.\d+)?)\s*(Gy|%|cc)", metric)
    return m.group(2) if m and float(m.group(1)) == number else "1"


def protocol_numbers(protocol: Protocol) -> list[tuple[str, float, str, str, str]]:
    """Every number of ``protocol`` as ``(where, value, unit, source key, verification)``
    (the numbers of :meth:`~rtplan.protocols.schema.Protocol.numbers`, with units)."""
    units = {"prescription.fractions": "fx"}
    for r in protocol.structures.values():
        units[f"structure {r.key} alpha_beta_gy"] = "Gy"
    for t in protocol.prescription.targets:
        units[f"target {t.structure} dose_gy"] = units[f"target {t.structure} dose_gy_max"] = "Gy"
    by_id = {c.id: c for c in protocol.constraints}
    out = []
    for where, value, source, status in protocol.numbers():
        if where.startswith("constraint "):
            c = by_id[where.split()[1]]
            unit = _metric_unit(c.metric, value) if where.endswith(" metric") else c.unit
        else:
            unit = units[where]
        out.append((where, value, unit, source, status))
    return out


def recipe_numbers(recipe: Recipe) -> list[tuple[str, float, str, str, str]]:
    """Every number of ``recipe`` as ``(where, value, unit, source key, verification)``
    (:meth:`~rtplan.protocols.recipe.Recipe.numbers`: all in mm)."""
    return [(where, v, "mm", source, status) for where, v, source, status in recipe.numbers()]
