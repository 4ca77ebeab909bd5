"""Protocol files: every shipped protocol loads, every number has a source, bad files are errors.

Truths: the schema rules written in :mod:`rtplan.protocols.schema` (every number cites a source;
numbers that are not verified are marked next to them and only allowed in templates).  The
numbers themselves are checked against the bibliography in tests/test_protocol_sources.py.
"""

from __future__ import annotations

import copy

import pytest

from rtplan.errors import InputError
from rtplan.protocols import available_protocols, load_protocol, parse_protocol, protocol_path

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib

SHIPPED = [
    "rps-preop",
    "rps-preop-sib",
    "rps-preop-sib-63",
    "extremity-preop",
    "extremity-postop",
    "extremity-hypo-5x5",
    "myxoid-36x18",
]


def test_the_required_protocols_are_shipped():
    assert set(SHIPPED) <= set(available_protocols())


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_protocol_loads_and_every_number_has_a_source(name):
    p = load_protocol(name)
    assert p.name == name
    numbers = p.numbers()
    # fractions, at least one target dose, and each constraint's limit are numbers
    assert len(numbers) >= 2 + len(p.constraints)
    for where, value, source, verification in numbers:
        assert source in p.sources, where
        s = p.sources[source]
        assert s.author and s.journal and 1900 < s.year < 2100 and s.citation, where
        assert verification in ("verified", "partial", "not verified")
        assert value == value  # not NaN


@pytest.mark.parametrize("name", SHIPPED)
def test_unverified_numbers_only_in_templates_that_say_so(name):
    p = load_protocol(name)
    text = protocol_path(name).read_text()
    if any(n[3] == "not verified" for n in p.numbers()):
        assert p.is_template and p.template_note
    if p.is_template:
        header = text.split("schema_version")[0]
        assert "TEMPLATE" in header and "NOT VERIFIED" in header


def test_rps_preop_holds_the_numbers_of_the_brief():
    p = load_protocol("rps-preop")
    assert (p.prescription.total_gy, p.prescription.fractions) == (50.4, 28)
    by_id = {c.id: c for c in p.constraints}
    bb = by_id["bowel_bag_v45gy"]
    assert (bb.metric, bb.comparison, bb.limit, bb.unit) == ("V45Gy", "<", 195.0, "cc")
    assert p.structures[bb.structure].names[0] == "Bag_Bowel"
    sb = by_id["small_bowel_v15gy"]
    assert (sb.metric, sb.limit, sb.unit) == ("V15Gy", 120.0, "cc")
    assert p.sources[bb.source].year == 2010 and "Kavanagh" in p.sources[bb.source].author
    organs = {p.structures[c.structure].names[0] for c in p.constraints}
    assert {"Kidneys", "SpinalCord", "Stomach", "Bag_Bowel", "Bowel_Small"} <= organs
    assert any("Liver" in n for n in organs)


def test_extremity_preop_femur_limits_of_casey_2021():
    p = load_protocol("extremity-preop")
    femur = {
        c.metric: (c.comparison, c.limit, c.unit) for c in p.constraints if c.structure == "femur"
    }
    assert femur == {
        "Dmean": ("<", 37.0, "Gy"),
        "V40Gy%": ("<", 64.0, "%"),
        "Dmax": ("<", 59.0, "Gy"),
    }
    assert all(
        p.sources[c.source].author.startswith("Casey")
        for c in p.constraints
        if c.structure == "femur"
    )
    assert p.structures["femur"].alpha_beta_gy == 3.0


@pytest.mark.parametrize(
    "name, fractions, doses",
    [
        ("rps-preop-sib", 25, [45.0, 57.5]),
        ("rps-preop-sib-63", 28, [50.4, 63.0]),
        ("extremity-preop", 25, [50.0]),
        ("extremity-postop", 25, [50.0, 60.0]),
        ("extremity-hypo-5x5", 5, [25.0]),
        ("myxoid-36x18", 18, [36.0]),
    ],
)
def test_prescriptions(name, fractions, doses):
    p = load_protocol(name).prescription
    assert p.fractions == fractions
    assert [t.dose_gy for t in p.targets] == doses


def test_postop_boost_is_a_range_of_60_to_70_gy():
    boost = load_protocol("extremity-postop").prescription.targets[1]
    assert (boost.dose_gy, boost.dose_gy_max) == (60.0, 70.0)


# ------------------------------------------------------------------ validation of bad files
MINIMAL = """
schema_version = 1
[protocol]
name = "mini"
title = "Minimal"
status = "clinical"
[prescription]
fractions = 25
source = "s"
[[prescription.targets]]
structure = "ptv"
dose_gy = 50.0
source = "s"
[structures.ptv]
names = ["PTV"]
kind = "target"
required = true
[structures.bowel_bag]
names = "Bag_Bowel"
[[constraints]]
id = "bb"
structure = "bowel_bag"
metric = "V45Gy"
comparison = "<"
limit = 195.0
unit = "cc"
priority = "mandatory"
source = "s"
[sources.s]
author = "Kavanagh BD"
year = 2010
journal = "Int J Radiat Oncol Biol Phys"
citation = "Kavanagh BD, IJROBP 2010"
verification = "verified"
"""


def minimal() -> dict:
    return tomllib.loads(MINIMAL)


def test_minimal_protocol_parses():
    p = parse_protocol(minimal(), path="mini.toml")
    assert p.structures["bowel_bag"].names == ("Bag_Bowel",)
    assert p.constraints[0].text() == "V45Gy < 195 cc"


def test_unknown_top_level_tables_are_kept_for_their_owner():
    d = minimal()
    d["volumes"] = {"ctv": {"from": "gtv", "margin_mm": 15}}
    p = parse_protocol(d, path="mini.toml")
    assert p.extra == {"volumes": {"ctv": {"from": "gtv", "margin_mm": 15}}}


def _break(mutate):
    d = copy.deepcopy(minimal())
    mutate(d)
    with pytest.raises(InputError) as info:
        parse_protocol(d, path="mini.toml")
    message = str(info.value)
    assert "mini.toml" in message and "\n" not in message
    return message


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda d: d["prescription"].pop("fractions"), "missing 'fractions'"),
        (lambda d: d["prescription"].update(fractions="28"), "'fractions' must be an integer"),
        (lambda d: d["prescription"].update(fractions=0), "'fractions' must be positive"),
        (lambda d: d["constraints"][0].update(limt=3), "unknown key(s) 'limt'"),
        (lambda d: d["constraints"][0].update(source="nope"), "not a key of [sources]"),
        (lambda d: d["constraints"][0].update(structure="liver"), "not a [structures] role"),
        (
            lambda d: d["constraints"][0].update(metric="V45"),
            "constraint 'bb': malformed metric 'V45'",
        ),
        (lambda d: d["constraints"][0].update(unit="Gy"), "does not fit metric"),
        (lambda d: d["constraints"][0].update(comparison="=<"), "comparison must be one of"),
        (lambda d: d["constraints"][0].update(priority="high"), "priority must be one of"),
        (lambda d: d["constraints"][0].update(acceptable=150.0), "looser than the limit"),
        (lambda d: d["constraints"].append(dict(d["constraints"][0])), "duplicate constraint id"),
        (
            lambda d: d["sources"]["s"].update(verification="not verified"),
            "say so next to the number",
        ),
        (lambda d: d["sources"]["s"].pop("year"), "missing 'year'"),
        (lambda d: d["protocol"].update(status="draft"), "'status' must be one of"),
        (lambda d: d.update(schema_version=2), "schema_version 2 is not supported"),
        (
            lambda d: d["prescription"]["targets"][0].update(structure="bowel_bag"),
            "of kind 'target'",
        ),
        (lambda d: d["prescription"].update(allow_eqd2_conversion=True), "has no alpha_beta_gy"),
        (
            lambda d: d["structures"]["bowel_bag"].update(
                alpha_beta_gy=-3.0, alpha_beta_source="s"
            ),
            "must be positive",
        ),
        (lambda d: d["structures"]["bowel_bag"].update(names=[]), "'names' must not be empty"),
        (lambda d: d.pop("sources"), "missing 'sources'"),
    ],
)
def test_malformed_protocols_are_one_line_input_errors(mutate, expected):
    assert expected in _break(mutate)


def test_unverified_number_needs_a_template():
    def mutate(d):
        d["sources"]["s"]["verification"] = "not verified"
        d["constraints"][0]["verification"] = "not verified"
        d["prescription"]["verification"] = "not verified"
        d["prescription"]["targets"][0]["verification"] = "not verified"

    assert 'status = "template"' in _break(mutate)

    def as_template(d):
        mutate(d)
        d["protocol"]["status"] = "template"

    assert "template_note" in _break(as_template)
    d = minimal()
    as_template(d)
    d["protocol"]["template_note"] = "limits not verified"
    assert len(parse_protocol(d).unverified()) == 4


def test_an_item_cannot_claim_more_than_its_source():
    def mutate(d):
        d["sources"]["s"]["verification"] = "partial"
        d["prescription"]["verification"] = "partial"
        d["prescription"]["targets"][0]["verification"] = "partial"
        d["constraints"][0]["verification"] = "verified"

    assert "stronger than source" in _break(mutate)


def test_load_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("schema_version = 1\n[protocol\n")
    with pytest.raises(InputError, match="bad.toml.*not valid TOML"):
        load_protocol(bad)
    with pytest.raises(InputError, match="protocol file not found"):
        load_protocol(tmp_path / "missing.toml")
    with pytest.raises(InputError, match="unknown protocol 'rps-postop'.*rps-preop"):
        load_protocol("rps-postop")


def test_user_file_is_loaded_by_path(tmp_path):
    f = tmp_path / "mine.toml"
    f.write_text(MINIMAL + "\n[volumes]\nnote = 'kept'\n")
    p = load_protocol(f)
    assert p.name == "mini" and p.path == str(f) and p.extra["volumes"]["note"] == "kept"
