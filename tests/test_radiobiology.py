"""BED / EQD2 against the worked table of the project reference and closed-form identities.

Truths:
* the table "Radiobiology formulas (standard LQ)" of the project clinical reference (LQ: BED = nd(1 + d/(alpha/beta)))
  (values rounded to 0.1 Gy, so each computed value must lie within 0.05 Gy of the cell), and
  the exact values the reference lists at the rounding ties;
* LQ identities: 30 Gy / 5 fx and 50 Gy / 25 fx have the same BED (75 Gy) at alpha/beta = 4 Gy;
  a schedule of 2 Gy fractions has EQD2 equal to its physical dose for every alpha/beta;
  :func:`physical_dose_for_eqd2` inverts :func:`eqd2`.
"""

from __future__ import annotations

import numpy as np
import pytest

from rtplan.dose import Dose
from rtplan.dvh.radiobiology import bed, eqd2, eqd2_dose, physical_dose_for_eqd2
from rtplan.errors import InputError
from rtplan.grid import Grid

# (total Gy, fractions) -> {alpha/beta Gy: (BED, EQD2)}, transcribed from the reference table.
REFERENCE_TABLE = {
    (50.0, 25): {4: (75.0, 50.0), 3: (83.3, 50.0), 10: (60.0, 50.0)},
    (50.4, 28): {4: (73.1, 48.7), 3: (80.6, 48.4), 10: (59.5, 49.6)},
    (25.0, 5): {4: (56.2, 37.5), 3: (66.7, 40.0), 10: (37.5, 31.2)},
    (30.0, 5): {4: (75.0, 50.0), 3: (90.0, 54.0), 10: (48.0, 40.0)},
    (35.0, 5): {4: (96.2, 64.2), 3: (116.7, 70.0), 10: (59.5, 49.6)},
    (36.0, 18): {4: (54.0, 36.0), 3: (60.0, 36.0), 10: (43.2, 36.0)},
    (57.5, 25): {4: (90.6, 60.4), 3: (101.6, 61.0), 10: (70.7, 58.9)},
    (39.0, 13): {4: (68.2, 45.5), 3: (78.0, 46.8), 10: (50.7, 42.2)},
}
CASES = [
    (total, n, ab, b, e)
    for (total, n), row in REFERENCE_TABLE.items()
    for ab, (b, e) in row.items()
]


@pytest.mark.parametrize("total, n, ab, bed_ref, eqd2_ref", CASES)
def test_reference_table(total, n, ab, bed_ref, eqd2_ref):
    # Cells are rounded to 0.1 Gy: the exact value lies within half a unit of the last digit.
    assert abs(bed(total, n, alpha_beta_gy=ab) - bed_ref) <= 0.05 + 1e-9
    assert abs(eqd2(total, n, alpha_beta_gy=ab) - eqd2_ref) <= 0.05 + 1e-9


@pytest.mark.parametrize(
    "func, total, n, ab, exact",
    [
        (bed, 25.0, 5, 4, 56.25),
        (eqd2, 25.0, 5, 10, 31.25),
        (bed, 35.0, 5, 4, 96.25),
        (bed, 39.0, 13, 4, 68.25),
        (eqd2, 39.0, 13, 10, 42.25),
    ],
)
def test_exact_values_at_rounding_ties(func, total, n, ab, exact):
    assert func(total, n, alpha_beta_gy=ab) == pytest.approx(exact, rel=1e-12)


def test_30_in_5_equals_50_in_25_at_alpha_beta_4():
    assert bed(30.0, 5, alpha_beta_gy=4.0) == pytest.approx(75.0, rel=1e-12)
    assert bed(50.0, 25, alpha_beta_gy=4.0) == pytest.approx(75.0, rel=1e-12)
    assert eqd2(30.0, 5, alpha_beta_gy=4.0) == pytest.approx(50.0, rel=1e-12)


@pytest.mark.parametrize("ab", [0.4, 2.0, 3.0, 4.0, 10.0])
def test_two_gray_fractions_are_their_own_eqd2(ab):
    for total in (2.0, 20.0, 50.0, 70.0):
        assert eqd2(total, total / 2.0, alpha_beta_gy=ab) == pytest.approx(total, rel=1e-12)


@pytest.mark.parametrize("ab, n", [(0.4, 5), (3.0, 28), (10.0, 1)])
def test_inverse_round_trip(ab, n):
    doses = np.linspace(0.0, 80.0, 17)
    back = physical_dose_for_eqd2(eqd2(doses, n, alpha_beta_gy=ab), n, alpha_beta_gy=ab)
    np.testing.assert_allclose(back, doses, rtol=1e-12, atol=1e-12)


def test_alpha_beta_has_no_default():
    with pytest.raises(TypeError):
        eqd2(50.0, 25)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        bed(50.0, 25)  # type: ignore[call-arg]


@pytest.mark.parametrize("ab", [0.0, -3.0, float("nan"), float("inf"), "3", True])
def test_bad_alpha_beta_is_input_error(ab):
    with pytest.raises(InputError):
        eqd2(50.0, 25, alpha_beta_gy=ab)


@pytest.mark.parametrize("n", [0, -5, float("nan")])
def test_bad_fractions_is_input_error(n):
    with pytest.raises(InputError):
        bed(50.0, n, alpha_beta_gy=3.0)


def test_negative_or_nan_dose_is_input_error():
    with pytest.raises(InputError):
        eqd2([10.0, -1.0], 5, alpha_beta_gy=3.0)
    with pytest.raises(InputError):
        eqd2([10.0, np.nan], 5, alpha_beta_gy=3.0)


def test_scalar_in_scalar_out_array_in_array_out():
    assert isinstance(eqd2(25.0, 5, alpha_beta_gy=3.0), float)
    out = eqd2(np.full((2, 3), 25.0), 5, alpha_beta_gy=3.0)
    assert out.shape == (2, 3)
    np.testing.assert_allclose(out, 40.0)


def test_voxelwise_grid_conversion_matches_scalar_formula():
    # Each voxel: EQD2 = D (D/n + ab) / (2 + ab) with its own D; e.g. 25 Gy / 5 fx at 3 Gy -> 40.
    grid = Grid(shape=(2, 2, 3), origin_mm=(0.0, 0.0, 0.0), spacing_mm=(3.0, 2.0, 2.0))
    values = np.arange(12, dtype=float).reshape(2, 2, 3) * 2.5  # 0 .. 27.5 Gy
    dose = Dose(values_gy=values, grid=grid, sop_instance_uid="1.2.3")
    out = eqd2_dose(dose, 5, alpha_beta_gy=3.0)
    expected = values * (values / 5 + 3.0) / 5.0
    np.testing.assert_allclose(out.values_gy, expected, rtol=1e-12)
    assert out.values_gy[1, 1, 1] == pytest.approx(40.0)  # the 25 Gy voxel
    assert out.grid is grid and out.sop_instance_uid == "1.2.3"
    assert "EQD2" in out.dose_type and "3" in out.dose_type
    np.testing.assert_array_equal(dose.values_gy, values)  # input untouched
