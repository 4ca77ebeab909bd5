"""Constraint evaluation and plan checking against hand-computed DVHs.

Truths: DVHs built from uniform dose intervals, whose metrics follow by hand (a structure of
V cc uniform between a and b Gy has mean (a+b)/2, V_x = V (b-x)/(b-a), D_p% = b - p/100 (b-a));
uniform dose boxes, whose DVH is a single dose; and the LQ formula EQD2 = D (D/n + a/b)/(2 + a/b).
"""

from __future__ import annotations

import numpy as np
import pytest

from rtplan.check import check_plan
from rtplan.constraints import Constraint, evaluate_constraint
from rtplan.dose import Dose
from rtplan.dvh import DVH
from rtplan.errors import InputError, StructureNotFoundError
from rtplan.grid import Grid
from rtplan.plan import DoseReference, FractionGroup, Plan
from rtplan.protocols import load_protocol
from rtplan.structure import Contour, Structure


def uniform(name: str, *parts: tuple[float, float, float]) -> DVH:
    """DVH of parts ``(volume_cc, low_gy, high_gy)``, each uniform over its dose interval."""
    v = [p[0] for p in parts]
    mid = [(p[1] + p[2]) / 2 for p in parts]
    half = [(p[2] - p[1]) / 2 for p in parts]
    return DVH(mid, v, half, name=name)


# Hand-computed DVHs of an RPS plan, 50.4 Gy prescribed (values worked out in the table below).
RPS_DVHS = {
    "PTV": uniform("PTV", (500.0, 48.0, 52.0)),
    "Bowel bag": uniform("Bowel bag", (300.0, 0.0, 20.0), (200.0, 20.0, 40.0), (100.0, 40.0, 50.0)),
    "Small bowel": uniform("Small bowel", (150.0, 10.0, 20.0)),
    "Kidneys": uniform("Kidneys", (300.0, 10.0, 22.0)),
    "Spinal cord": uniform("Spinal cord", (40.0, 25.0, 35.0)),
    "Liver": uniform("Liver", (1500.0, 0.0, 40.0)),
    "Stomach": uniform("Stomach", (200.0, 44.0, 48.0)),
    "Kidney_Contralat": uniform("Kidney_Contralat", (150.0, 2.0, 22.0)),
}
ROLE_TO_NAME = {
    "ptv": "PTV",
    "bowel_bag": "Bowel bag",
    "small_bowel": "Small bowel",
    "kidneys": "Kidneys",
    "spinal_cord": "Spinal cord",
    "liver": "Liver",
    "stomach": "Stomach",
    "kidney_contralateral": "Kidney_Contralat",
}
# constraint id -> (value, verdict, margin), by hand:
EXPECTED = {
    # D95% of U[48, 52] = 52 - 0.95 * 4 = 48.2 Gy = 95.635 % of 50.4 Gy
    "ptv_d95": (48.2 / 50.4 * 100, "pass", 48.2 / 50.4 * 100 - 95),
    # 107 % of 50.4 = 53.93 Gy > 52 Gy: no volume
    "ptv_v107": (0.0, "pass", 2.0),
    # half of the 100 cc between 40 and 50 Gy
    "bowel_bag_v45gy": (50.0, "pass", 145.0),
    # half of U[10, 20]
    "small_bowel_v15gy": (75.0, "pass", 45.0),
    # mean of U[10, 22] = 16 Gy: misses 15 Gy, within the acceptable 18 Gy
    "kidneys_dmean": (16.0, "acceptable", -1.0),
    # (22 - 12) / 12 of the volume
    "kidneys_v12gy": (100 * 10 / 12, "fail", 55 - 100 * 10 / 12),
    "kidneys_v20gy": (100 * 2 / 12, "pass", 32 - 100 * 2 / 12),
    "kidneys_v23gy": (0.0, "pass", 30.0),
    "kidneys_v28gy": (0.0, "pass", 20.0),
    "spinal_cord_dmax": (35.0, "pass", 15.0),
    "liver_dmean": (20.0, "pass", 10.0),
    # D100% = Dmin = 44 Gy
    "stomach_d100": (44.0, "pass", 1.0),
    # remaining kidney U[2, 22]: mean 12 Gy; V18Gy = 4 / 20 = 20 % (optimal miss)
    "kidney_contralateral_dmean": (12.0, "pass", 3.0),
    "kidney_contralateral_v18gy": (20.0, "fail", -5.0),
}


def test_every_rps_preop_constraint_against_hand_computed_dvhs():
    protocol = load_protocol("rps-preop")
    assert {c.id for c in protocol.constraints} == set(EXPECTED)
    for c in protocol.constraints:
        name = ROLE_TO_NAME[c.structure]
        r = evaluate_constraint(c, RPS_DVHS[name], prescription_gy=50.4)
        value, verdict, margin = EXPECTED[c.id]
        assert r.value == pytest.approx(value, abs=1e-9), c.id
        assert r.verdict == verdict, c.id
        assert r.margin == pytest.approx(margin, abs=1e-9), c.id
        assert r.structure_name == name and r.unit == c.unit and r.basis == "physical"


def test_failing_bowel_bag_reports_by_how_much():
    # 400 cc between 40 and 50 Gy: V45Gy = 200 cc, 5 cc (2.56 %) over the 195 cc limit.
    c = next(c for c in load_protocol("rps-preop").constraints if c.id == "bowel_bag_v45gy")
    r = evaluate_constraint(c, uniform("BB", (200.0, 0.0, 40.0), (400.0, 40.0, 50.0)))
    assert (r.verdict, r.failed) == ("fail", True)
    assert r.value == pytest.approx(200.0)
    assert r.margin == pytest.approx(-5.0)
    assert r.margin_pct == pytest.approx(-5.0 / 195 * 100)


@pytest.mark.parametrize(
    "comparison, limit, verdict",
    [("<", 16.0, "fail"), ("<=", 16.0, "pass"), (">", 16.0, "fail"), (">=", 16.0, "pass")],
)
def test_strict_and_non_strict_comparisons_at_the_limit(comparison, limit, verdict):
    dvh = uniform("K", (300.0, 10.0, 22.0))  # Dmean exactly 16 Gy
    c = Constraint("k", "kidneys", "Dmean", comparison, limit, "Gy", "mandatory", "s")
    r = evaluate_constraint(c, dvh)
    assert r.verdict == verdict and r.margin == pytest.approx(0.0, abs=1e-12)


def test_margin_sign_for_lower_limits():
    c = Constraint("d95", "ptv", "D95%Rx", ">=", 95.0, "%Rx", "mandatory", "s")
    r = evaluate_constraint(c, uniform("PTV", (100.0, 40.0, 50.0)), prescription_gy=50.0)
    # D95% = 50 - 0.95 * 10 = 40.5 Gy = 81 %: 14 points short
    assert (r.verdict, r.value, r.margin) == ("fail", pytest.approx(81.0), pytest.approx(-14.0))


def test_optimal_failure_does_not_fail_the_plan():
    c = Constraint("v12", "kidneys", "V12Gy%", "<", 55.0, "%", "optimal", "s")
    r = evaluate_constraint(c, uniform("K", (300.0, 10.0, 22.0)))
    assert r.verdict == "fail" and not r.failed


def test_relative_constraint_without_prescription_is_an_error():
    c = Constraint("d95", "ptv", "D95%Rx", ">=", 95.0, "%Rx", "mandatory", "s")
    with pytest.raises(InputError, match="prescription"):
        evaluate_constraint(c, uniform("PTV", (100.0, 40.0, 50.0)))


def test_structure_partly_outside_the_dose_is_not_evaluated_never_guessed():
    dvh = DVH([50.0], [100.0], [0.0], name="BB", outside_dose_cc=20.0)
    c = Constraint("bb", "bowel_bag", "V45Gy", "<", 195.0, "cc", "mandatory", "s")
    r = evaluate_constraint(c, dvh)
    assert r.verdict == "not evaluated" and r.value is None and "outside the dose grid" in r.reason


def test_dose_to_basis_maps_thresholds_and_limits():
    # EQD2 of 45 Gy in 28 fx at a/b 3 Gy: 45 (45/28 + 3) / 5 = 41.464 Gy
    c = Constraint("bb", "bowel_bag", "V45Gy", "<", 195.0, "cc", "mandatory", "s")
    dvh = uniform("BB", (100.0, 40.0, 50.0))
    to_eqd2 = lambda x: x * (x / 28 + 3.0) / 5.0  # noqa: E731
    r = evaluate_constraint(c, dvh, dose_to_basis=to_eqd2, basis="EQD2")
    threshold = 45 * (45 / 28 + 3) / 5
    assert r.queried_metric == f"V{threshold:.6f}".rstrip("0") + "Gy"
    assert r.value == pytest.approx(100.0 * (50 - threshold) / 10, rel=1e-6)
    d = Constraint("dm", "femur", "Dmean", "<", 37.0, "Gy", "mandatory", "s")
    r = evaluate_constraint(d, dvh, dose_to_basis=to_eqd2)
    assert r.limit == pytest.approx(37 * (37 / 28 + 3) / 5)


# ------------------------------------------------------------------ check_plan orchestration
def _stub_dvh(structure, dose):
    return RPS_DVHS[structure.name]


def _names(*names):
    square = np.array([[0, 0, 0], [10, 0, 0], [10, 10, 0]], float)
    return [Structure(n, (Contour(square),), number=i + 1) for i, n in enumerate(names)]


DUMMY_DOSE = Dose(np.zeros((2, 2, 2)), Grid((2, 2, 2), (0, 0, 0), (1, 1, 1)))


def test_check_plan_matches_names_and_collects_every_verdict():
    plan = Plan("RPS", (FractionGroup(1, 28),), prescription_gy=50.4)
    result = check_plan(
        load_protocol("rps-preop"),
        _names("BODY", *RPS_DVHS),
        DUMMY_DOSE,
        plan,
        dvh_function=_stub_dvh,
        patient="rps_x",
    )
    verdicts = {r.constraint.id: r.verdict for r in result.results}
    assert verdicts == {k: v[1] for k, v in EXPECTED.items()}
    assert result.status == "pass" and not result.failed  # kidneys V12 is optimal
    assert result.notes == () and not result.fractionation.converted
    assert result.prescriptions["ptv"].used_gy == 50.4


def test_check_plan_fails_on_mandatory_failure_and_reports_absent_optional():
    dvhs = dict(RPS_DVHS, **{"Bowel bag": uniform("Bowel bag", (400.0, 40.0, 50.0))})
    names = ["PTV", "Bowel bag", "Kidneys"]
    result = check_plan(
        load_protocol("rps-preop"),
        _names(*names),
        DUMMY_DOSE,
        None,
        dvh_function=lambda s, d: dvhs[s.name],
    )
    assert result.status == "fail"
    assert [r.constraint.id for r in result.failed] == ["bowel_bag_v45gy"]
    absent = [r for r in result.results if r.verdict == "not evaluated"]
    assert {r.constraint.structure for r in absent} == {
        "small_bowel",
        "spinal_cord",
        "liver",
        "stomach",
        "kidney_contralateral",
    }
    assert any("fractions are assumed" in n for n in result.notes)
    assert any("no plan prescription" in n for n in result.notes)


def test_check_plan_missing_required_structure():
    with pytest.raises(StructureNotFoundError, match="Bag_Bowel.*closest names present: 'Bowels'"):
        check_plan(
            load_protocol("rps-preop"), _names("PTV", "Bowels"), DUMMY_DOSE, dvh_function=_stub_dvh
        )


def test_sib_prescriptions_from_dose_references():
    protocol = load_protocol("rps-preop-sib")
    refs = (
        DoseReference(1, "TARGET", "VOLUME", roi_number=2, prescription_gy=57.5),
        DoseReference(2, "TARGET", "VOLUME", prescription_gy=45.0),
    )
    plan = Plan("SIB", (FractionGroup(1, 25),), prescription_gy=57.5, dose_references=refs)
    rx = {}
    dvhs = {
        "PTV_Low": uniform("PTV_Low", (500.0, 44.0, 46.0)),
        "PTV_High": uniform("PTV_High", (80.0, 57.0, 58.0)),
    }
    dvhs["Bowel_Bag"] = RPS_DVHS["Bowel bag"]
    result = check_plan(
        protocol,
        _names("PTV_Low", "PTV_High", "Bowel_Bag"),
        DUMMY_DOSE,
        plan,
        dvh_function=lambda s, d: dvhs[s.name],
    )
    rx = {k: (v.used_gy, v.how) for k, v in result.prescriptions.items()}
    assert rx == {"ptv": (45.0, "nearest plan level"), "ptv_high": (57.5, "dose reference ROI")}
    by_id = {r.constraint.id: r for r in result.results}
    # D95% of U[57, 58] = 57.05 Gy = 99.22 % of 57.5 Gy
    assert by_id["ptv_high_d95"].value == pytest.approx(57.05 / 57.5 * 100)


# ------------------------------------------------------------------ EQD2 with real DVHs
def box(name: str, number: int) -> Structure:
    square = np.array([[-10, -10], [10, -10], [10, 10], [-10, 10]], float)
    contours = tuple(Contour(np.c_[square, np.full(4, z)]) for z in np.arange(-9.0, 10.0, 2.0))
    return Structure(name, contours, number=number, slice_spacing_mm=2.0)


def uniform_dose(value_gy: float) -> Dose:
    grid = Grid((15, 15, 15), (-28.0, -28.0, -28.0), (4.0, 4.0, 4.0))
    return Dose(np.full(grid.shape, value_gy), grid)


def femur_results(protocol_name: str, fractions: int, dose_gy: float) -> dict:
    # the plan prescribes the uniform dose it delivers (a plausible plan: issue 16 guards)
    plan = Plan("X", (FractionGroup(1, fractions),), prescription_gy=dose_gy)
    result = check_plan(
        load_protocol(protocol_name),
        [box("PTV", 1), box("Femur_L", 2)],
        uniform_dose(dose_gy),
        plan,
    )
    return result, {r.constraint.id: r for r in result.results if r.constraint.structure == "femur"}


def test_hypofractionated_plan_is_converted_when_the_protocol_allows_it():
    # extremity-preop (25 fx, conversion allowed, femur a/b 3 Gy); plan 5 fx, femur 25 Gy uniform:
    # EQD2 of the femur = 25 (5 + 3) / 5 = 40 Gy; Dmean limit 37 Gy in 25 fx -> 37 (1.48 + 3) / 5.
    result, r = femur_results("extremity-preop", 5, 25.0)
    assert result.fractionation.converted and any("EQD2" in n for n in result.notes)
    dmean = r["femur_dmean"]
    assert dmean.value == pytest.approx(40.0, rel=1e-6)
    assert dmean.limit == pytest.approx(37 * (37 / 25 + 3) / 5)
    assert dmean.verdict == "fail" and dmean.basis == "EQD2, α/β 3 Gy, limits of 25 fx"
    # V40Gy% threshold: 40 Gy in 25 fx -> 40 (1.6 + 3) / 5 = 36.8 Gy EQD2, all of the femur above
    assert r["femur_v40gy"].queried_metric == "V36.8Gy%"
    assert r["femur_v40gy"].value == pytest.approx(100.0)
    # Dmax limit 59 Gy in 25 fx -> 63.248 Gy EQD2; 40 Gy passes
    assert r["femur_dmax"].verdict == "pass"
    assert r["femur_dmax"].limit == pytest.approx(59 * (59 / 25 + 3) / 5)
    # coverage stays physical, relative to the plan's own 25 Gy: uniform 25 Gy is 100 %
    ptv = next(x for x in result.results if x.constraint.id == "ptv_d95")
    assert ptv.basis == "physical, plan Rx 25 Gy" and ptv.value == pytest.approx(100.0)
    # ... and against the protocol's 50 Gy: 25 Gy is 50 %Rx
    ptv_protocol = [x for x in result.results if x.constraint.id == "ptv_d95"][1]
    assert ptv_protocol.basis == "physical, protocol Rx 50 Gy"
    assert ptv_protocol.value == pytest.approx(50.0)


def test_same_fractionation_is_judged_on_physical_dose():
    result, r = femur_results("extremity-preop", 25, 25.0)
    assert not result.fractionation.converted
    assert r["femur_dmean"].value == pytest.approx(25.0) and r["femur_dmean"].verdict == "pass"
    assert r["femur_dmean"].basis == "physical"


def test_protocol_without_conversion_still_reads_the_femur_limits_in_25_fractions():
    # myxoid-36x18 does not allow another schedule (the Rx / fx line is a MISMATCH), but
    # Casey's femur limits are given for 25 fractions in every protocol: a 5-fraction plan's
    # femur is judged in EQD2 (25 Gy in 5 fx -> 40 Gy) against 37 Gy in 25 fx -> 33.152 Gy.
    result, r = femur_results("myxoid-36x18", 5, 25.0)
    assert not result.fractionation.converted
    assert any("without conversion" in n for n in result.notes)
    assert result.schedule[0].verdict == "mismatch"
    assert r["femur_dmean"].value == pytest.approx(40.0, rel=1e-6)
    assert r["femur_dmean"].limit == pytest.approx(37 * (37 / 25 + 3) / 5)


@pytest.mark.parametrize("fractions, dose_gy", [(5, 25.0), (18, 36.0), (28, 50.4), (25, 30.0)])
def test_one_eqd2_policy_for_the_femur_in_every_protocol(fractions, dose_gy):
    # Issue 12: extremity-preop read Casey's limits as 25-fraction physical doses and
    # extremity-hypo-5x5 as EQD2, so one plan scored differently.  Now every protocol reads
    # them as doses given in 25 fractions: the same plan gets the same femur values, limits
    # and verdicts under all three (extremity-postop too, but it needs a boost PTV), equal to
    # the closed form EQD2 = D (D/n + 3) / (2 + 3).
    names = ["extremity-preop", "extremity-hypo-5x5", "myxoid-36x18"]
    outcomes = {n: femur_results(n, fractions, dose_gy)[1] for n in names}
    if fractions == 25:
        value, limits = dose_gy, (37.0, 59.0)  # physical, as Casey states them
    else:
        value = dose_gy * (dose_gy / fractions + 3) / 5
        limits = tuple(x * (x / 25 + 3) / 5 for x in (37.0, 59.0))
    for name, r in outcomes.items():
        assert r["femur_dmean"].value == pytest.approx(value, rel=1e-6), name
        assert (r["femur_dmean"].limit, r["femur_dmax"].limit) == pytest.approx(limits), name
        ref = outcomes[names[0]]
        assert {k: (v.verdict, v.queried_metric, v.basis) for k, v in r.items()} == {
            k: (v.verdict, v.queried_metric, v.basis) for k, v in ref.items()
        }, name
