"""The binless DVH (rtplan.dvh.histogram): curve and inverse against hand-computed values."""

import numpy as np
import pytest

from rtplan.dvh.histogram import DVH
from rtplan.errors import InputError


def test_uniform_samples_give_linear_curve():
    # truth: 1 cc uniform on [10, 20] Gy and 3 cc uniform on [20, 30] Gy (hand computed)
    dvh = DVH([25.0, 15.0], [3.0, 1.0], [5.0, 5.0])
    assert dvh.volume_cc == pytest.approx(4.0)
    assert dvh.mean_gy == pytest.approx((15 * 1 + 25 * 3) / 4)
    assert dvh.volume_at_dose_cc(15.0) == pytest.approx(3.5)
    assert dvh.volume_at_dose_cc(27.5) == pytest.approx(0.75)
    assert dvh.volume_at_dose_cc(5.0) == pytest.approx(4.0)
    assert dvh.volume_at_dose_cc(31.0) == 0.0
    assert dvh.dose_at_volume_gy(3.5) == pytest.approx(15.0)
    assert dvh.dose_at_volume_gy(0.75) == pytest.approx(27.5)
    assert dvh.min_gy == 10.0 and dvh.max_gy == 30.0


def test_point_masses_and_gaps():
    # truth: 1 cc at 10 Gy and 1 cc at 20 Gy: D50% is the upper end of the gap (20 Gy)
    dvh = DVH([10.0, 20.0], [1.0, 1.0])
    assert dvh.volume_at_dose_cc(10.0) == pytest.approx(2.0)
    assert dvh.volume_at_dose_cc(10.5) == pytest.approx(1.0)
    assert dvh.volume_at_dose_cc(20.0) == pytest.approx(1.0)
    assert dvh.dose_at_volume_gy(1.0) == pytest.approx(20.0)
    assert dvh.dose_at_volume_gy(1.5) == pytest.approx(10.0)
    assert dvh.dose_at_volume_gy(2.0) == pytest.approx(10.0)
    assert np.isnan(dvh.dose_at_volume_gy(2.5))


def test_curve_is_monotone_and_inverse_round_trips():
    # truth: V(D(v)) = v for a continuous curve
    rng = np.random.default_rng(0)
    dvh = DVH(rng.uniform(0, 50, 500), rng.uniform(0, 1, 500), rng.uniform(0.1, 3, 500))
    d, v = dvh.curve()
    assert np.all(np.diff(v) <= 1e-12)
    vols = np.linspace(0.01, dvh.volume_cc - 0.01, 50)
    np.testing.assert_allclose(dvh.volume_at_dose_cc(dvh.dose_at_volume_gy(vols)), vols, rtol=1e-9)


def test_extremes_confine_the_curve():
    # truth: with exact extremes [12, 18] the 10-20 Gy interval is squeezed, volume kept
    dvh = DVH([15.0], [2.0], [5.0], min_gy=12.0, max_gy=18.0)
    assert dvh.volume_at_dose_cc(12.0) == pytest.approx(2.0)
    assert dvh.volume_at_dose_cc(15.0) == pytest.approx(1.0)
    assert dvh.dose_at_volume_gy(0.0) == pytest.approx(18.0)


def test_bad_samples_raise():
    with pytest.raises(InputError):
        DVH([1.0, 2.0], [1.0])
    with pytest.raises(InputError):
        DVH([1.0], [-1.0])
    with pytest.raises(InputError):
        DVH([np.nan], [1.0])


def test_single_queries_without_sorting_match_brute_force():
    # truth: the volume below x summed sample by sample (uniform intervals clipped to the
    # extremes, point masses), and its inverse by bisection; the set has a point mass at
    # 32 Gy and a gap above it, so jumps and flat stretches are exercised
    rng = np.random.default_rng(5)
    n = 4000
    d = np.concatenate([rng.uniform(10, 30, n), np.full(500, 32.0), rng.uniform(40, 50, n)])
    s = np.concatenate([rng.uniform(0, 0.5, n), np.zeros(500), rng.uniform(0.01, 2, n)])
    v = rng.uniform(0.001, 0.01, len(d))
    dvh = DVH(d, v, s, min_gy=9.9, max_gy=50.5)
    lo, hi = np.clip(d - s, 9.9, 50.5), np.clip(d + s, 9.9, 50.5)
    w = hi - lo

    def below(x):
        ramp = np.clip((x - lo) / np.where(w > 0, w, 1.0), 0.0, 1.0)
        return np.sum(v * np.where(w > 0, ramp, lo < x))

    total = v.sum()
    for x in (9.0, 9.9, 15.3, 30.2, 32.0, 35.0, 40.0, 47.1, 50.5, 51.0):
        assert dvh.volume_at_dose_cc(x) == pytest.approx(total - below(x), abs=1e-9)
    upper = v[d >= 40].sum()
    for vol in (1e-4, 0.3, 0.5 * total, upper, upper + 0.5 * v[d == 32].sum(), total):
        a, b = 9.0, 51.0
        for _ in range(80):
            m = 0.5 * (a + b)
            a, b = (m, b) if below(m) <= total - vol else (a, m)
        assert dvh.dose_at_volume_gy(vol) == pytest.approx(a, abs=1e-7)
    assert dvh.dose_at_volume_gy(0.0) == hi.max()
    # many queries at once go through the sorted curve: the same answers
    many = np.linspace(0, total, 40)
    sorted_path = DVH(d, v, s, min_gy=9.9, max_gy=50.5).dose_at_volume_gy(many)
    np.testing.assert_allclose(sorted_path, [dvh.dose_at_volume_gy(x) for x in many], atol=1e-9)
