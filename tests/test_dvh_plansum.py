"""Plan sums (rtplan.plansum) and embedded-DVH metrics (rtplan.dvh.embedded)."""

import numpy as np
import pytest

from rtplan.dose import Dose, EmbeddedDVH
from rtplan.dvh.embedded import embedded_metrics
from rtplan.errors import GeometryError
from rtplan.grid import Grid
from rtplan.plansum import sum_doses
from rtplan.testing.dvh_phantoms import LinearDose


def test_sum_on_common_grid_is_exact_for_linear_doses():
    # truth: trilinear resampling reproduces a linear dose exactly inside its grid
    g1 = Grid((10, 12, 14), (-7.0, -6.0, -5.0), (2.0, 1.0, 1.0))
    g2 = Grid((8, 9, 9), (-9.3, -8.1, -7.7), (3.0, 2.5, 2.5))
    a, b = LinearDose(40.0, (0.5, -0.2, 0.3)), LinearDose(10.0, (0.1, 0.4, -0.2))
    total = sum_doses([a.on_grid(g1), b.on_grid(g2)])
    assert total.grid.same_as(g1)
    pts = g1.index_to_world(np.indices(g1.shape).reshape(3, -1).T)
    np.testing.assert_allclose(total.values_gy.ravel(), a.at(pts) + b.at(pts), atol=1e-9)


def test_uncovered_part_is_nan_unless_told():
    g1 = Grid((4, 4, 20), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    g2 = Grid((4, 4, 5), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # covers x <= 4.5
    d1, d2 = Dose(np.full(g1.shape, 50.0), g1), Dose(np.full(g2.shape, 10.0), g2)
    nan_sum = sum_doses([d1, d2])
    assert np.all(np.isnan(nan_sum.values_gy[:, :, 5:]))
    assert np.all(nan_sum.values_gy[:, :, :5] == 60.0)
    zero = sum_doses([d1, d2], missing_gy=0.0)
    assert np.all(zero.values_gy[:, :, 5:] == 50.0)


def test_frames_must_match():
    g = Grid((2, 2, 2), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    with pytest.raises(GeometryError, match="frames of reference"):
        sum_doses(
            [
                Dose(np.ones(g.shape), g, frame_of_reference_uid="1.2"),
                Dose(np.ones(g.shape), g, frame_of_reference_uid="1.3"),
            ]
        )


def test_embedded_metrics_hand_computed():
    # cumulative, 10 Gy bins: 4 cc get >= 0 Gy, 2 cc >= 10 Gy, none >= 20 Gy; the curve is
    # linear between (0, 4), (10, 2), (20, 0); each bin's volume at its centre for Dmean
    e = EmbeddedDVH(1, np.array([10.0, 20.0, 30.0]), np.array([4.0, 2.0, 0.0]))
    m = embedded_metrics(e).values
    assert m["volume_cc"] == 4.0 and m["Dmax"] == 15.0  # centre of the last bin with volume
    assert m["Dmean"] == pytest.approx((2 * 5 + 2 * 15) / 4)
    assert m["D50%"] == pytest.approx(10.0) and m["D95%"] == pytest.approx(1.0)
    assert m["D2cc"] == pytest.approx(10.0)
    # the same as a differential DVH, and in PERCENT (no absolute volume)
    diff = EmbeddedDVH(1, np.array([10.0, 20.0, 30.0]), np.array([2.0, 2.0, 0.0]),
                       dvh_type="DIFFERENTIAL")  # fmt: skip
    assert embedded_metrics(diff).values == pytest.approx(m)
    pct = EmbeddedDVH(1, e.dose_gy, 25 * e.volume_cc, volume_units="PERCENT")
    assert np.isnan(embedded_metrics(pct).values["volume_cc"])
    assert np.isnan(embedded_metrics(pct).values["D2cc"])
    assert embedded_metrics(pct).values["D95%"] == pytest.approx(1.0)


def test_embedded_metrics_read_at_the_bin_centres():
    # 1 Gy bins read at their centres: 3 cc receive >= 0.5 Gy, 1 cc >= 1.5 Gy, none 2.5 Gy.
    # The curve does not start flat, so the volume below 0.5 Gy comes from DVHMeanDose
    # (1.0 Gy) with the curve linear from (0, V) to (0.5, 3): the area under the curve taken
    # flat below 0.5 Gy is 2 x 1 + 1 x 2 = 4 cc Gy, so V = (4 - 0.5 x 3 / 2) / (1 - 0.5 / 2)
    e = EmbeddedDVH(1, np.array([1.0, 2.0, 3.0]), np.array([3.0, 1.0, 0.0]), mean_dose_gy=1.0)
    m = embedded_metrics(e, point="centre")
    total = (4 - 0.75) / 0.75
    assert m.values["volume_cc"] == pytest.approx(total)
    assert m.values["Dmean"] == 1.0  # the header, which agrees with the curve
    # D50%: half the volume on the segment (0.5, 3) -> (1.5, 1)
    assert m.values["D50%"] == pytest.approx(0.5 + (3 - total / 2) / 2)
    assert m.values["Dmax"] == pytest.approx(2.0)  # centre of [1.5, 2.5]
    assert any("from DVHMeanDose" in n for n in m.notes)
    # read at the lower edges the first volume is the structure's
    assert embedded_metrics(e).values["volume_cc"] == 3.0
    # without a header mean the volume below is unknown: the first volume, with a note
    bare = EmbeddedDVH(1, e.dose_gy, e.volume_cc)
    m = embedded_metrics(bare, point="centre")
    assert m.values["volume_cc"] == 3.0 and "no DVHMeanDose" in m.notes[0]
    # a header outside [V_0, 2 V_0 - V_1] = [3, 5] cc is not used for the volume
    far = EmbeddedDVH(1, e.dose_gy, e.volume_cc, mean_dose_gy=0.5)
    assert embedded_metrics(far, point="centre").values["volume_cc"] == 3.0
