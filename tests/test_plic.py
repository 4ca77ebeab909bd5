"""Box/plane volume and its inverse (rtplan.volumes.plic).

Truths used here
----------------
* A plane normal to an axis: the fraction is linear in the offset.
* Brute force: the fraction of a voxel box on the inner side of a plane, counted on a
  regular 80^3 lattice of points in the box (error below 1/80 of a face per face cut).
* The offset is the inverse of the fraction: ``fraction(offset(f)) = f`` for every
  normal (axis-aligned, diagonal, nearly degenerate) and every ``f`` in [0, 1], and the
  offsets of 0 and 1 are the box's support ``-/+ sum(|n| h) / 2``.
"""

from __future__ import annotations

import numpy as np
import pytest

from rtplan.volumes.plic import box_plane_fraction, box_plane_offset

SPACING = np.array([3.0, 1.0, 1.2])


def random_normals(n, seed):
    rng = np.random.default_rng(seed)
    normals = rng.normal(size=(n, 3))
    special = [
        [0, 0, 1], [0, -1, 0], [1, 0, 0], [0, 0.6, 0.8], [0.6, 0, -0.8],
        [1e-9, 1, 1e-9], [1, 1, 1], [-1, 1, 1e-7],
    ]  # fmt: skip
    normals[: len(special)] = special
    return normals / np.linalg.norm(normals, axis=1, keepdims=True)


def test_fraction_matches_brute_force():
    normals = random_normals(40, seed=1)[8:]  # generic planes (a lattice steps on the others)
    rng = np.random.default_rng(2)
    support = 0.5 * np.abs(normals) @ SPACING
    offsets = rng.uniform(-1, 1, len(normals)) * support
    k = 80
    axes = [((np.arange(k) + 0.5) / k - 0.5) * h for h in SPACING]
    pts = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    brute = np.array([np.mean(pts @ n <= d) for n, d in zip(normals, offsets, strict=True)])
    got = box_plane_fraction(normals, offsets, SPACING)
    np.testing.assert_allclose(got, brute, atol=1e-3)


def test_fraction_of_axis_aligned_planes_is_linear():
    """A plane normal to an axis cuts ``(offset + h / 2) / h`` of the box."""
    offsets = np.linspace(-0.6, 0.6, 13)
    for ax, h in enumerate(SPACING):
        n = np.zeros((len(offsets), 3))
        n[:, ax] = 1.0
        want = np.clip((offsets * h + h / 2) / h, 0, 1)
        np.testing.assert_allclose(box_plane_fraction(n, offsets * h, SPACING), want, atol=1e-5)


@pytest.mark.parametrize("spacing", [(3.0, 1.0, 1.2), (1.0, 1.0, 1.0), (0.5, 2.0, 2.0)])
def test_offset_inverts_fraction(spacing):
    normals = random_normals(200_000, seed=3)
    rng = np.random.default_rng(4)
    f = rng.random(len(normals))
    f[:50], f[50:100] = 0.0, 1.0
    f[100:1000] = rng.random(900) * 1e-7  # corner cuts
    f[1000:2000] = 1 - rng.random(1000) * 1e-7
    f[2000:3000] = 0.5
    offsets = box_plane_offset(normals, f, spacing)
    assert np.all(np.isfinite(offsets))
    np.testing.assert_allclose(box_plane_fraction(normals, offsets, spacing), f, atol=1e-12)
    support = 0.5 * np.abs(normals) @ np.asarray(spacing)
    np.testing.assert_allclose(offsets[:50], -support[:50], atol=1e-12)
    np.testing.assert_allclose(offsets[50:100], support[50:100], atol=1e-12)


def test_offset_is_monotone_in_the_fraction():
    n = np.tile([[0.2, 0.5, np.sqrt(1 - 0.29)]], (1001, 1))
    offsets = box_plane_offset(n, np.linspace(0, 1, 1001), SPACING)
    assert np.all(np.diff(offsets) > 0)
