"""Every number of every shipped protocol against the bibliography ``rtplan/protocols/sources.toml``.

Truth: the bibliography, whose numbers were copied from the project's clinical reference (each
``verified`` number appears in the cited section).  A protocol number must be listed under the
source the protocol cites, with the same value, unit and verification status; a typo in either
file (159 cc for 195 cc, Gy for %, a number marked verified that its source does not verify)
fails here.  The numbers of the ``[volumes]`` recipes (mm: margins, their ranges, crops, near
distances) are checked the same way; a recipe number that no source states must be listed under
``[[unsourced]]`` with its reason, so a new number with no entry fails.  No test is skipped: the
bibliography ships inside the package.
"""

from __future__ import annotations

import pytest

from rtplan.protocols import available_protocols, load_protocol
from rtplan.protocols.recipe import recipe_from_protocol
from rtplan.protocols.sources import load_sources, load_unsourced, protocol_numbers, recipe_numbers

SOURCES = load_sources()
UNSOURCED = {(u.protocol, u.where): u for u in load_unsourced()}
STATUSES = ("verified", "partial", "not verified")
RECIPES = [n for n in available_protocols() if "volumes" in load_protocol(n).extra]


@pytest.mark.parametrize("name", available_protocols())
def test_every_protocol_number_is_in_the_bibliography(name):
    protocol = load_protocol(name)
    for where, value, unit, source, status in protocol_numbers(protocol):
        _check_number(name, where, value, unit, source, status)


def _check_number(name, where, value, unit, source, status):
    assert source in SOURCES, f"{name}: {where} cites '{source}', not in sources.toml"
    listed = {(n.value, n.unit, n.status): n.what.split("; ") for n in SOURCES[source].numbers}
    assert (value, unit, status) in listed, (
        f"{name}: {where} = {value} {unit} ({status}) is not a number of '{source}' "
        f"in sources.toml: {sorted(listed)}"
    )
    assert f"{name}: {where}" in listed[value, unit, status], (
        f"{name}: {where} = {value} {unit} is a number of '{source}', but not for this item"
    )


@pytest.mark.parametrize("name", RECIPES)
def test_every_recipe_number_is_in_the_bibliography(name):
    recipe = recipe_from_protocol(load_protocol(name))
    for where, value, unit, source, status in recipe_numbers(recipe):
        u = UNSOURCED.get((name, where))
        if u is None:
            _check_number(name, f"recipe {where}", value, unit, source, status)
            continue
        # no source states it: the entry says so, with the number and the source the step cites
        assert (u.value, u.unit, u.cited) == (value, unit, source), (name, where, u)
        assert u.status == "not verified" and u.reason, (name, where, u)
        claimed = {w for n in SOURCES[source].numbers for w in n.what.split("; ")}
        assert f"{name}: recipe {where}" not in claimed, (name, where, "also listed as sourced")


def test_unsourced_entries_are_recipe_numbers():
    """No stale [[unsourced]] entry: each names a number that the recipe holds."""
    held = {
        (name, where)
        for name in RECIPES
        for where, *_ in recipe_numbers(recipe_from_protocol(load_protocol(name)))
    }
    assert UNSOURCED and set(UNSOURCED) <= held, sorted(set(UNSOURCED) - held)


def test_recipe_numbers_cover_margins_ranges_and_crops():
    """What the recipe check sees (truth: the rps-preop-sib file, read by eye): the CTV margin
    15 mm, the bowel margin -5 mm in -10..0, 0 mm into the vertebrae."""
    recipe = recipe_from_protocol(load_protocol("rps-preop-sib"))
    numbers = {w: (v, u) for w, v, u, *_ in recipe_numbers(recipe)}
    assert numbers["parameter ctv_mm"] == (15.0, "mm")
    assert numbers["parameter bowel_margin_mm"] == (-5.0, "mm")
    assert numbers["parameter bowel_margin_mm range low"] == (-10.0, "mm")
    assert numbers["step CTV avoid vertebrae"] == (0.0, "mm")


def test_a_changed_recipe_number_is_caught():
    """The check can fail: 15 mm radial (seed 003, 1.5 cm) is listed, 51 mm is not, nor 15 cm."""
    listed = {(n.value, n.unit) for n in SOURCES["seed003"].numbers}
    assert (15.0, "mm") in listed and (51.0, "mm") not in listed and (15.0, "cm") not in listed
    with pytest.raises(AssertionError, match="not a number of 'seed003'"):
        _check_number(
            "extremity-preop", "recipe parameter radial_mm", 51.0, "mm", "seed003", "verified"
        )
    with pytest.raises(AssertionError, match="not for this item"):  # 0 mm is a crop elsewhere
        _check_number(
            "rps-preop", "recipe step PTV avoid liver", 0.0, "mm", "baldini2015", "not verified"
        )


@pytest.mark.parametrize("name", available_protocols())
def test_protocol_citations_match_the_bibliography(name):
    protocol = load_protocol(name)
    for key, source in protocol.sources.items():
        assert key in SOURCES, f"{name}: source '{key}' missing from sources.toml"
        assert source.citation == SOURCES[key].citation, (name, key)
        assert source.verification == SOURCES[key].status, (name, key)


def test_bibliography_entries_are_complete():
    for key, entry in SOURCES.items():
        assert entry.citation and entry.section, key
        assert entry.status in STATUSES, key
        for n in entry.numbers:
            assert n.unit in ("Gy", "cc", "%", "%Rx", "fx", "mm", "1"), (key, n)
            assert n.status in STATUSES and n.what, (key, n)
            # a source cannot make a number more verified than the source itself is
            assert STATUSES.index(n.status) >= STATUSES.index(entry.status), (key, n)


def test_a_changed_number_is_caught():
    """The check can fail: 195 cc (QUANTEC bowel bag V45Gy) is listed, 159 cc is not."""
    listed = {(n.value, n.unit) for n in SOURCES["kavanagh2010"].numbers}
    assert (195.0, "cc") in listed and (159.0, "cc") not in listed


def test_identifiers_where_known():
    assert SOURCES["bonvalot2020"].pmid == "32941794"  # STRASS, Lancet Oncol 2020
    assert SOURCES["kavanagh2010"].pmid == "20171503"  # QUANTEC bowel
    assert SOURCES["tzeng2006"].doi == "10.1002/cncr.22005"
