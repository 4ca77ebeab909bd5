"""Structure-name matching: the rule order of :mod:`rtplan.matching` on hand-made name lists.

Truths: the order documented in the module (mapping, TG-263 name, alias, normalised name),
and difflib's similarity ranking for the closest names in error messages.
"""

from __future__ import annotations

import numpy as np
import pytest

from rtplan.errors import InputError, StructureNotFoundError
from rtplan.matching import match_role, match_structures, normalise_name
from rtplan.protocols import load_protocol, load_structure_mapping
from rtplan.protocols.schema import StructureRole
from rtplan.structure import closest_names

BOWEL = StructureRole(
    "bowel_bag", ("Bag_Bowel",), aliases=("Bowel_Bag", "Spc_Bowel"), required=True
)
LIVER = StructureRole("liver", ("Liver-GTV", "Liver"))
FEMUR = StructureRole(
    "femur", ("Femur_L", "Femur_R"), aliases=("Femur_Lt", "Femur_Rt"), multiple=True
)


@pytest.mark.parametrize(
    "name", ["Bowel bag", "BowelBag", "Bowel_Bag", "BOWEL BAG", "bowel-bag", " Bowel  Bag "]
)
def test_spelling_variants_of_the_bowel_bag_are_found(name):
    m = match_role(BOWEL, ["PTV", name, "Kidneys"])
    assert m.structures == (name,)


def test_variants_normalise_to_one_key():
    assert (
        len({normalise_name(n) for n in ["Bowel bag", "BowelBag", "Bowel_Bag", "BOWEL-BAG"]}) == 1
    )
    assert normalise_name("PTV_50.4") == "ptv50.4"  # dots are kept (dose levels)


def test_exact_tg263_name_beats_alias_and_variants():
    m = match_role(BOWEL, ["Bowel_Bag", "Bag_Bowel", "bowel bag"])
    assert (m.structures, m.how) == (("Bag_Bowel",), "TG-263 name")


def test_exact_alias_beats_normalised_variants():
    m = match_role(BOWEL, ["bag bowel", "Bowel_Bag"])
    assert (m.structures, m.how) == (("Bowel_Bag",), "alias")


def test_tg263_names_are_tried_in_order():
    assert match_role(LIVER, ["Liver", "Liver-GTV"]).structures == ("Liver-GTV",)
    assert match_role(LIVER, ["Liver", "PTV"]).structures == ("Liver",)


def test_optional_absent_role_is_reported_absent():
    m = match_role(LIVER, ["PTV", "Bag_Bowel"])
    assert (m.found, m.structures, m.how) == (False, (), "absent")


def test_multiple_role_collects_every_side_across_rules():
    m = match_role(FEMUR, ["Femur_L", "femur rt", "PTV"])
    assert m.structures == ("Femur_L", "femur rt")


def test_ambiguous_variants_ask_for_a_mapping():
    with pytest.raises(InputError, match="'Bowel bag', 'BOWEL_BAG' all match"):
        match_role(BOWEL, ["Bowel bag", "BOWEL_BAG"])


def test_duplicate_exact_names_are_ambiguous():
    with pytest.raises(InputError, match="all match 'Bag_Bowel'"):
        match_role(BOWEL, ["Bag_Bowel", "Bag_Bowel"])


def test_missing_required_structure_lists_the_closest_names():
    present = ["PTV", "Bowel_Bg_opt", "Kidney_L", "SpinalCord", "Bowels"]
    with pytest.raises(StructureNotFoundError) as info:
        match_role(BOWEL, present, source="RS.dcm")
    msg = str(info.value)
    assert msg.startswith("RS.dcm: required structure 'Bag_Bowel'")
    assert "'Bowel_Bg_opt'" in msg and "'Kidney_L'" not in msg and "\n" not in msg
    # the closest candidate is listed first
    assert closest_names(["Bag_Bowel", "Bowel_Bag"], present)[0] == "Bowel_Bg_opt"


def test_missing_required_with_nothing_similar_lists_what_is_there():
    with pytest.raises(StructureNotFoundError, match="names present: 'PTV', 'Lung_L'"):
        match_role(BOWEL, ["PTV", "Lung_L"])


def test_user_mapping_wins_and_accepts_role_keys_or_tg263_names():
    present = ["Bag_Bowel", "BB_eval", "PTV_final"]
    assert match_role(BOWEL, present, {"Bag_Bowel": "BB_eval"}).structures == ("BB_eval",)
    assert match_role(BOWEL, present, {"bowel_bag": "BB_eval"}).how == "mapping"
    with pytest.raises(StructureNotFoundError, match="sends 'Bag_Bowel' to 'BB_evl'.*'BB_eval'"):
        match_role(BOWEL, present, {"Bag_Bowel": "BB_evl"})


def test_protocol_roles_match_a_typical_rps_structure_set():
    p = load_protocol("rps-preop")
    present = ["BODY", "PTV_5040", "Bowel bag", "Small Bowel", "Kidneys", "Liver", "Spinal Cord"]
    m = match_structures(p.structures, present)
    got = {k: v.structures for k, v in m.items()}
    assert got == {
        "ptv": ("PTV_5040",),
        "bowel_bag": ("Bowel bag",),
        "small_bowel": ("Small Bowel",),
        "kidneys": ("Kidneys",),
        "liver": ("Liver",),
        "spinal_cord": ("Spinal Cord",),
        "stomach": (),
        "kidney_contralateral": (),
    }


def test_structure_mapping_file(tmp_path):
    f = tmp_path / "map.toml"
    f.write_text('[structures]\nBag_Bowel = "BB opt"\nfemur = ["Femur L", "Femur R"]\n')
    assert load_structure_mapping(f) == {"Bag_Bowel": "BB opt", "femur": ("Femur L", "Femur R")}
    f.write_text("[structures]\nBag_Bowel = 3\n")
    with pytest.raises(InputError, match="map.toml.*'Bag_Bowel' must be a name"):
        load_structure_mapping(f)
    f.write_text('[other]\nBag_Bowel = "x"\n')
    with pytest.raises(InputError, match=r"exactly one table, \[structures\]"):
        load_structure_mapping(f)
    with pytest.raises(InputError, match="not found"):
        load_structure_mapping(tmp_path / "nope.toml")


# ------------------------------------------------------------ combined structures (issue 12)
def test_missing_combined_role_is_the_union_of_its_parts():
    from rtplan.matching import match_role

    kidneys = StructureRole("kidneys", ("Kidneys",), aliases=("Kidney_Both",), required=True)
    m = match_role(kidneys, ["PTV", "Kidney_L", "Kidney_R"])
    assert (m.structures, m.how, m.parts) == (
        ("Kidney_L+Kidney_R",),
        "union of parts",
        ("Kidney_L", "Kidney_R"),
    )
    # common spellings of the parts, compared normalised
    m = match_role(kidneys, ["Lt Kidney", "KIDNEY_RIGHT"])
    assert m.parts == ("Lt Kidney", "KIDNEY_RIGHT")
    # a present combined structure wins; one part alone is no union (required -> error)
    assert match_role(kidneys, ["Kidneys", "Kidney_L", "Kidney_R"]).structures == ("Kidneys",)
    with pytest.raises(StructureNotFoundError):
        match_role(kidneys, ["Kidney_L"])


def _box(name, x0, x1, zs):
    from rtplan.structure import Contour, Structure

    rect = np.array([[x0, 0.0], [x1, 0.0], [x1, 10.0], [x0, 10.0]])
    return Structure(name, tuple(Contour(np.c_[rect, np.full(4, z)]) for z in zs))


def test_union_structure_volume_is_the_sum_and_overlap_is_refused():
    # Truth: two disjoint 10 x 10 mm boxes, 3 and 4 planes 2 mm apart (slab 2 mm): 0.6 + 0.8 cc.
    from rtplan.errors import ContourError
    from rtplan.matching import union_structure

    left, right = _box("L", 0, 10, [0, 2, 4]), _box("R", 20, 30, [2, 4, 6, 8])
    union = union_structure("L+R", [left, right])
    assert union.volume_cc == pytest.approx(0.6 + 0.8)
    assert union.volume_cc == pytest.approx(left.volume_cc + right.volume_cc)
    with pytest.raises(ContourError, match="may overlap on the plane z = 2 mm"):
        union_structure("L+R", [left, _box("R", 5, 30, [2, 4])])
