"""Metric grammar and evaluation (rtplan.dvh.metrics), values computed by hand."""

import numpy as np
import pytest

from rtplan.dvh.histogram import DVH
from rtplan.dvh.metrics import evaluate, parse
from rtplan.errors import InputError

# 10 cc uniform on [0, 50] Gy: V(D) = 10 (1 - D/50) cc, D(v) = 50 (1 - v/10) Gy
UNIFORM = DVH([25.0], [10.0], [25.0], name="U", prescription_gy=40.0)


@pytest.mark.parametrize(
    "text,expected,unit",
    [
        ("Dmean", 25.0, "Gy"),
        ("Dmin", 0.0, "Gy"),
        ("Dmax", 50.0, "Gy"),
        ("D95%", 2.5, "Gy"),
        ("D2cc", 40.0, "Gy"),
        ("D0.03cc", 49.85, "Gy"),
        ("d50%", 25.0, "Gy"),
        ("V20Gy", 6.0, "cc"),
        ("V20Gy%", 60.0, "%"),
        ("V20Gycc", 6.0, "cc"),
        ("V50%Rx", 60.0, "%"),
        ("V50%Rxcc", 6.0, "cc"),
        ("D50%Rx", 62.5, "%Rx"),
        ("Dmax%Rx", 125.0, "%Rx"),
        ("D2cc%Rx", 100.0, "%Rx"),
        ("HI", (49.0 - 1.0) / 25.0, "1"),
    ],
)
def test_metric_values(text, expected, unit):
    mv = evaluate(UNIFORM, text)
    assert mv.value == pytest.approx(expected)
    assert mv.unit == unit
    assert mv.note is None


@pytest.mark.parametrize(
    "bad", ["D95", "V20", "Dmean%", "D101%", "X", "", "V20 Gy", "D-5%", "D95%%%", "Vmean"]
)
def test_malformed_metrics_raise_one_line(bad):
    with pytest.raises(InputError) as e:
        parse(bad)
    assert "\n" not in str(e.value) and "malformed metric" in str(e.value)


def test_relative_metric_without_prescription_is_an_error():
    with pytest.raises(InputError, match="prescription"):
        evaluate(DVH([25.0], [10.0], [25.0]), "V95%Rx")


def test_paddick_ci():
    # TV = 10 cc, TV_PIV = V40Gy = 2 cc, PIV = 5 cc -> 4 / 50
    piv = {40.0: 5.0, 20.0: 8.0}
    assert evaluate(UNIFORM, "PaddickCI", isodose_volume_cc=piv.get).value == pytest.approx(0.08)
    # at 20 Gy: TV_PIV = 6 cc, PIV 8 cc -> 36 / 80
    v = evaluate(UNIFORM, "PaddickCI20Gy", isodose_volume_cc=piv.get).value
    assert v == pytest.approx(36 / 80)
    assert evaluate(UNIFORM, "PaddickCI50%Rx", isodose_volume_cc=piv.get).value == pytest.approx(
        36 / 80
    )
    with pytest.raises(InputError, match="isodose"):
        evaluate(UNIFORM, "PaddickCI")


def test_outside_dose_flags_instead_of_zero_gy():
    part = DVH([25.0], [10.0], [25.0], outside_dose_cc=2.0)
    mv = evaluate(part, "D95%")
    assert np.isnan(mv.value) and "outside the dose grid" in mv.note
    # over the dosed part only, when asked
    assert evaluate(part, "D95%", allow_outside=True).value == pytest.approx(2.5)


def test_volume_larger_than_structure_is_nan_with_note():
    mv = evaluate(UNIFORM, "D20cc")
    assert np.isnan(mv.value) and "smaller than 20 cc" in mv.note
