"""Every number of every shipped protocol against the bibliography ``rtplan/protocols/sources.toml``.

Truth: the bibliography, whose numbers were copied from the project's clinical reference (each
``verified`` number appears in the cited section).  A protocol number must be listed under the
source the protocol cites, with the same value, unit and verification status; a typo in either
file (159 cc for 195 cc, Gy for %, a number marked verified that its source does not verify)
fails here.  No test is skipped: the bibliography ships inside the package.
"""

from __future__ import annotations

import pytest

from rtplan.protocols import available_protocols, load_protocol
from rtplan.protocols.sources import load_sources, protocol_numbers

SOURCES = load_sources()
STATUSES = ("verified", "partial", "not verified")


@pytest.mark.parametrize("name", available_protocols())
def test_every_protocol_number_is_in_the_bibliography(name):
    protocol = load_protocol(name)
    for where, value, unit, source, status in protocol_numbers(protocol):
        assert source in SOURCES, f"{name}: {where} cites '{source}', not in sources.toml"
        listed = {(n.value, n.unit, n.status) for n in SOURCES[source].numbers}
        assert (value, unit, status) in listed, (
            f"{name}: {where} = {value} {unit} ({status}) is not a number of '{source}' "
            f"in sources.toml: {sorted(listed)}"
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
            assert n.unit in ("Gy", "cc", "%", "%Rx", "fx", "1"), (key, n)
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
