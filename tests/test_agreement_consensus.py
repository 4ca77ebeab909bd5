"""Multi-observer consensus: STAPLE against an independent EM, conformity index and
majority vote against hand counts."""

import numpy as np
import pytest
from scipy import ndimage

from rtplan.agreement import (
    generalised_conformity_index,
    jaccard,
    majority_vote,
    staple,
)
from rtplan.errors import InputError


def _staple_em(votes: np.ndarray, max_iter=10000):
    """Binary STAPLE written from Warfield et al. 2004's equations.

    votes: (n_observers, n_voxels) of 0/1.  Start from W = mean vote (as ITK does),
    prior g = mean of that W; M-step p_j = sum W D_j / sum W,
    q_j = sum (1-W)(1-D_j) / sum (1-W); E-step
    W = g prod p^D (1-p)^(1-D) / (that + (1-g) prod q^(1-D) (1-q)^D); stop when no p or
    q moves by more than 1e-7 (ITK's squared-change test at 1e-14).
    """
    x = votes.astype(float)
    w = x.mean(axis=0)
    g = w.mean()
    p = q = np.full(len(x), -10.0)
    for _ in range(max_iter):
        p_new = (w * x).sum(axis=1) / w.sum()
        q_new = ((1 - w) * (1 - x)).sum(axis=1) / (1 - w).sum()
        a = g * np.prod(np.where(x > 0, p_new[:, None], 1 - p_new[:, None]), axis=0)
        b = (1 - g) * np.prod(np.where(x > 0, 1 - q_new[:, None], q_new[:, None]), axis=0)
        w = a / (a + b)
        converged = max(np.abs(p_new - p).max(), np.abs(q_new - q).max()) <= 1e-7
        p, q = p_new, q_new
        if converged:
            break
    return w, p, q, g


def _observers(seed=0):
    rng = np.random.default_rng(seed)
    truth = np.zeros((14, 40, 40), bool)
    truth[3:11, 8:30, 10:32] = True
    truth = ndimage.binary_opening(truth, iterations=3)
    out = {}
    for name, (grow, noise) in {"A": (0, 0.02), "B": (1, 0.05), "C": (-1, 0.1)}.items():
        m = truth.copy()
        if grow > 0:
            m = ndimage.binary_dilation(m, iterations=grow)
        elif grow < 0:
            m = ndimage.binary_erosion(m, iterations=-grow)
        flip = ndimage.binary_dilation(rng.random(m.shape) < noise / 20) & (
            rng.random(m.shape) < 0.5
        )
        out[name] = m ^ flip
    return out


def test_staple_equals_independent_em_on_the_documented_box():
    masks = _observers()
    r = staple(masks, margin_voxels=3)
    (k0, j0, i0), (k1, j1, i1) = r.box
    box = np.array([m[k0:k1, j0:j1, i0:i1].ravel() for m in masks.values()])
    w, p, q, g = _staple_em(box)
    np.testing.assert_allclose(r.probability[k0:k1, j0:j1, i0:i1].ravel(), w, atol=1e-9)
    np.testing.assert_allclose(list(r.sensitivity.values()), p, atol=1e-12)
    np.testing.assert_allclose(list(r.specificity.values()), q, atol=1e-12)
    assert r.prior == pytest.approx(g, rel=1e-12)
    # the box is the joint bounding box + 3 voxels (clipped to the grid)
    nz = np.argwhere(np.any(list(masks.values()), axis=0))
    assert r.box[0] == tuple(np.maximum(nz.min(axis=0) - 3, 0))
    assert r.box[1] == tuple(np.minimum(nz.max(axis=0) + 4, masks["A"].shape))
    # outside the box every observer says "outside": same posterior as such voxels inside
    inside_box_background = r.probability[k0:k1, j0:j1, i0:i1][
        ~box.any(axis=0).reshape(k1 - k0, j1 - j0, i1 - i0)
    ]
    outside = np.ones(r.probability.shape, bool)
    outside[k0:k1, j0:j1, i0:i1] = False
    if outside.any():
        np.testing.assert_allclose(r.probability[outside], inside_box_background[0], rtol=1e-9)
    assert (r.consensus == (r.probability >= 0.5)).all()
    # the tight, noiseless observer is rated most sensitive/specific
    assert r.specificity["A"] > r.specificity["B"] and r.sensitivity["A"] > r.sensitivity["C"]


def test_staple_needs_two_observers_and_some_voxels():
    a = np.zeros((3, 4, 5), bool)
    with pytest.raises(InputError):
        staple({"A": a})
    with pytest.raises(InputError):
        staple({"A": a, "B": a})


def test_generalised_conformity_index_hand_counts():
    """Three 1-D 'delineations' with hand-counted pairwise intersections and unions."""
    a = np.zeros((1, 1, 10), bool)
    b, c = a.copy(), a.copy()
    a[..., 0:4] = True  # {0..3}
    b[..., 2:6] = True  # {2..5}
    c[..., 3:9] = True  # {3..8}
    # pairs: AB 2/6, AC 1/9, BC 3/7  ->  (2+1+3)/(6+9+7)
    assert generalised_conformity_index({"A": a, "B": b, "C": c}) == pytest.approx(6 / 22)
    # two observers: the GCI is their Jaccard index
    assert generalised_conformity_index([a, c]) == pytest.approx(jaccard(a, c))
    assert generalised_conformity_index([a, a, a]) == 1.0
    assert np.isnan(generalised_conformity_index([a & False, a & False]))


def test_majority_vote_is_strict_majority():
    rng = np.random.default_rng(3)
    masks = [rng.random((4, 6, 6)) < 0.5 for _ in range(4)]
    votes = np.sum(masks, axis=0)
    np.testing.assert_array_equal(majority_vote(masks), votes >= 3)
