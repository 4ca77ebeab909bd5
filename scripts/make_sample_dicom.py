"""Generate the sample patients in ``sample_dicom/`` (deterministic: same bytes every run).

Usage::

    python scripts/make_sample_dicom.py            # writes sample_dicom/rps_01, extremity_01
    python scripts/make_sample_dicom.py --out DIR  # somewhere else

Each patient folder holds a CT series, the main RTSTRUCT (observer 1), an RTPLAN, an RTDOSE
with an embedded DVHSequence, and the RTSTRUCTs of observers 2 and 3.  Anatomy is built from
simple shapes (ellipsoids, elliptic cylinders, tubes along poly-lines) in DICOM patient
coordinates (LPS, mm; HFS), each given as an approximate signed distance function (SDF, mm,
negative inside).  A structure's mask on the CT grid is the partial-volume ramp
``clip(0.5 - sdf / pixel, 0, 1)``, outlined by :func:`rtplan.contouring.structure_from_mask`
and written by :func:`rtplan.io.rtstruct_writer.rtstruct_dataset`; CT, RTPLAN and RTDOSE come
from :mod:`rtplan.testing.synthetic`.  The dose is a model, not a calculation: a function of the
signed distance to the PTV (plateau inside, error-function penumbra, exponential low-dose
bath), zero outside the body.  The embedded DVHs are brute force: the written contours are
sampled on a 0.5 mm in-plane lattice and 4 sub-planes per slab (slab convention of
:mod:`rtplan.structure`), with trilinear dose interpolation, in 0.02 Gy bins.

docs/sample_data.md describes the patients; tests/test_sample_data.py checks the committed
files against :data:`PATIENTS` below.  UIDs are derived from fixed strings
(:func:`pydicom.uid.generate_uid` with ``entropy_srcs``) and dates are fixed, so a rerun
reproduces the committed files byte for byte.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.path import Path as MplPath
from pydicom.uid import generate_uid
from scipy import ndimage
from scipy.special import erfc

from rtplan.contouring import structure_from_mask
from rtplan.grid import Grid
from rtplan.io.ct import read_ct_series
from rtplan.io.rtstruct_writer import rtstruct_dataset
from rtplan.structure import Structure
from rtplan.testing import synthetic as syn

WHEN = datetime.datetime(2024, 3, 4, 9, 0, 0)
DVH_BIN_GY = 0.02
#: Low-dose bath of the model dose: fraction of the prescription at the PTV surface, and
#: its exponential fall-off length (mm).
BATH_FRACTION, BATH_LENGTH_MM = 0.36, 50.0
#: Bowel is displaced this far (mm) from the RPS tumour (retroperitoneal fat, colon).
BOWEL_CLEARANCE_MM = 17.0
#: A small-bowel loop curving around the front of the RPS tumour, its centre line this far
#: (mm) from the GTV surface (the loop wall, radius 11 mm, then lies just outside the PTV).
SMALL_BOWEL_NEAR_LOOP_MM = 31.0

#: What the generator makes; tests/test_sample_data.py checks the committed files against it.
PATIENTS = {
    "rps_01": {
        "patient_id": "RTPLAN-RPS-01",
        "patient_name": "Sample^Retroperitoneal",
        "plan_label": "RPS_PREOP",
        "fractions": 28,
        "prescription_gy": 50.4,
        "protocol": "rps-preop",
        "structures": {  # observer 1 (main RTSTRUCT): name -> RTROIInterpretedType
            "BODY": "EXTERNAL",
            "GTV": "GTV",
            "CTV": "CTV",
            "PTV": "PTV",
            "VBs": "ORGAN",
            "SpinalCord": "ORGAN",
            "Kidney_L": "ORGAN",
            "Kidney_R": "ORGAN",
            "Kidneys": "ORGAN",
            "Liver": "ORGAN",
            "Stomach": "ORGAN",
            "Duodenum": "ORGAN",
            "Bag_Bowel": "ORGAN",
            "Bowel_Small": "ORGAN",
            "Musc_Psoas_L": "ORGAN",
            "Musc_Psoas_R": "ORGAN",
        },
        "observer_structures": ["GTV", "Kidney_L", "Duodenum"],
        "embedded_dvhs": ["PTV", "GTV", "Bag_Bowel", "Bowel_Small", "Kidneys", "SpinalCord"],
    },
    "extremity_01": {
        "patient_id": "RTPLAN-EXT-01",
        "patient_name": "Sample^Thigh",
        "plan_label": "THIGH_PREOP",
        "fractions": 25,
        "prescription_gy": 50.0,
        "protocol": "extremity-preop",
        "structures": {
            "BODY": "EXTERNAL",
            "Skin": "ORGAN",
            "GTV": "GTV",
            "CTV": "CTV",
            "PTV": "PTV",
            "Femur_R": "ORGAN",
            "Femur_L": "ORGAN",
            "Musc_Quad_R": "ORGAN",
        },
        "observer_structures": ["GTV", "Femur_R", "Musc_Quad_R"],
        "embedded_dvhs": ["PTV", "GTV", "Femur_R"],
    },
}


# ------------------------------------------------------------------------------ shapes
#: SDF value (mm) given to voxels far outside a shape's bounding box (not computed there).
FAR_MM = 1000.0
#: Bounding boxes are padded by this much (mm) before evaluating a shape.
PAD_MM = 12.0


class Space:
    """Voxel-centre coordinates of an axial HFS grid, evaluated box by box for speed.

    ``x[i]``, ``y[j]``, ``z[k]`` are the LPS coordinates of the grid axes; a shape is computed
    only inside its padded bounding box and is ``FAR_MM`` elsewhere (so unions, intersections
    and differences of shapes keep the right sign everywhere).
    """

    def __init__(self, grid: Grid):
        self.grid = grid
        k, j, i = (np.arange(n, dtype=float) for n in grid.shape)
        self.z = grid.index_to_world(np.stack([k, 0 * k, 0 * k], 1))[:, 2].astype(np.float32)
        self.y = grid.index_to_world(np.stack([0 * j, j, 0 * j], 1))[:, 1].astype(np.float32)
        self.x = grid.index_to_world(np.stack([0 * i, 0 * i, i], 1))[:, 0].astype(np.float32)

    def box(self, lo, hi):
        """Slices of the grid inside the LPS box ``[lo, hi]`` (padded by ``PAD_MM``)."""
        out = []
        for axis, a, b in zip((self.z, self.y, self.x), lo[::-1], hi[::-1], strict=True):
            idx = np.flatnonzero((axis >= a - PAD_MM) & (axis <= b + PAD_MM))
            out.append(slice(int(idx[0]), int(idx[-1]) + 1) if len(idx) else slice(0, 0))
        return tuple(out)

    def evaluate(self, lo, hi, fn) -> np.ndarray:
        """``fn(x, y, z)`` (broadcast 3-D coordinates) inside the box, ``FAR_MM`` outside."""
        sdf = np.full(self.grid.shape, FAR_MM, dtype=np.float32)
        sk, sj, si = self.box(np.asarray(lo, float), np.asarray(hi, float))
        x = self.x[si][None, None, :]
        y = self.y[sj][None, :, None]
        z = self.z[sk][:, None, None]
        if x.size and y.size and z.size:
            sdf[sk, sj, si] = fn(x, y, z)
        return sdf


def _ellipse_distance(p, q, a, b):
    """Approximate signed distance of ``(p, q)`` to the ellipse ``(p/a)^2 + (q/b)^2 = 1``
    (``k0 (k0 - 1) / k1`` with ``k0 = |(p/a, q/b)|``, ``k1 = |(p/a^2, q/b^2)|``)."""
    k0 = np.sqrt((p / a) ** 2 + (q / b) ** 2)
    k1 = np.maximum(np.sqrt((p / (a * a)) ** 2 + (q / (b * b)) ** 2), 1e-6)
    return k0 * (k0 - 1.0) / k1


def ellipsoid(space: Space, centre, semi) -> np.ndarray:
    """Approximate signed distance (mm) to an axis-aligned ellipsoid (negative inside)."""
    c, r = np.asarray(centre, dtype=np.float32), np.asarray(semi, dtype=np.float32)

    def fn(x, y, z):
        p, q, s = (x - c[0]) / r[0], (y - c[1]) / r[1], (z - c[2]) / r[2]
        k0 = np.sqrt(p * p + q * q + s * s)
        k1 = np.sqrt((p / r[0]) ** 2 + (q / r[1]) ** 2 + (s / r[2]) ** 2)
        return k0 * (k0 - 1.0) / np.maximum(k1, 1e-6)

    return space.evaluate(c - r, c + r, fn)


def elliptic_cylinder(space: Space, centre_xy, semi_xy, z_range=(-1e4, 1e4)) -> np.ndarray:
    """Approximate signed distance (mm) to an elliptic cylinder along z, cut at ``z_range``.

    ``semi_xy`` may be a callable of z (a tapering shape); its bounding box then uses the
    largest semi-axes over the grid."""
    cx, cy = (np.float32(v) for v in centre_xy)
    zlo, zhi = max(z_range[0], float(space.z.min())), min(z_range[1], float(space.z.max()))
    if callable(semi_xy):
        a_max, b_max = (float(np.max(v)) for v in semi_xy(space.z))
    else:
        a_max, b_max = semi_xy

    def fn(x, y, z):
        a, b = semi_xy(z) if callable(semi_xy) else semi_xy
        d_xy = _ellipse_distance(x - cx, y - cy, np.float32(a), np.float32(b))
        return np.maximum(d_xy, np.maximum(z_range[0] - z, z - z_range[1]))

    return space.evaluate((cx - a_max, cy - b_max, zlo), (cx + a_max, cy + b_max, zhi), fn)


def tube(space: Space, points, radius: float) -> np.ndarray:
    """Signed distance (mm) to a tube of ``radius`` around a poly-line (exact)."""
    pts = np.asarray(points, dtype=np.float32)
    best = np.full(space.grid.shape, FAR_MM, dtype=np.float32)
    for a, b in zip(pts[:-1], pts[1:], strict=True):
        ab = b - a
        denom = float(ab @ ab)

        def fn(x, y, z, a=a, ab=ab, denom=denom):
            t = ((x - a[0]) * ab[0] + (y - a[1]) * ab[1] + (z - a[2]) * ab[2]) / denom
            t = np.clip(t, 0.0, 1.0)
            dx, dy, dz = x - a[0] - t * ab[0], y - a[1] - t * ab[1], z - a[2] - t * ab[2]
            return np.sqrt(dx * dx + dy * dy + dz * dz) - radius

        seg = space.evaluate(np.minimum(a, b) - radius, np.maximum(a, b) + radius, fn)
        np.minimum(best, seg, out=best)
    return best


def union(*sdfs):
    return np.minimum.reduce(sdfs)


def intersect(*sdfs):
    return np.maximum.reduce(sdfs)


def subtract(a, *others):
    return np.maximum(a, -union(*others)) if others else a


def fraction(sdf: np.ndarray, pixel_mm: float) -> np.ndarray:
    """Partial-volume ramp of an SDF: 1 inside, 0 outside, linear over one pixel."""
    return np.clip(0.5 - sdf / pixel_mm, 0.0, 1.0).astype(np.float32)


def margin_sdf(inside: np.ndarray, grid: Grid, reach_mm: float, scale=(1.0, 1.0, 1.0)):
    """Signed Euclidean distance (mm) to a binary mask on ``grid`` (negative inside).

    Computed on the mask's bounding box padded by ``reach_mm`` (``FAR_MM`` beyond).  ``scale``
    divides the axes ``(k, j, i)``: an anisotropic margin of ``m * scale[a]`` along axis
    ``a`` becomes the isotropic distance ``m``."""
    sampling = np.asarray(grid.spacing_mm) / np.asarray(scale)
    pad = np.ceil(reach_mm / sampling).astype(int) + 1
    nz = np.nonzero(inside)
    lo = [max(int(v.min()) - p, 0) for v, p in zip(nz, pad, strict=True)]
    hi = [min(int(v.max()) + p + 1, n) for v, p, n in zip(nz, pad, grid.shape, strict=True)]
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    sub = inside[box]
    out = np.full(grid.shape, FAR_MM, dtype=np.float32)
    out[box] = ndimage.distance_transform_edt(~sub, sampling=sampling) - (
        ndimage.distance_transform_edt(sub, sampling=sampling)
    )
    return out


# ------------------------------------------------------------------------------ patients
@dataclass
class Patient:
    """Everything needed to write one sample patient."""

    key: str
    grid: Grid
    hu: np.ndarray
    sdfs: dict  # structure name -> SDF on the CT grid (observer 1)
    observers: dict  # observer label -> {name: SDF}
    ptv_sdf: np.ndarray
    body_sdf: np.ndarray
    dose_spacing_mm: float
    isocenter_mm: tuple
    beams: list
    dose_shape: dict = field(default_factory=dict)


def _world(grid: Grid) -> np.ndarray:
    k, j, i = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in grid.shape], indexing="ij")
    return grid.index_to_world(np.stack([k, j, i], axis=-1)).astype(np.float32)


def _ct_grid(n_pixels: int, pixel_mm: float, z_lo: float, z_hi: float, dz: float) -> Grid:
    half = (n_pixels - 1) / 2 * pixel_mm
    n_slices = int(round((z_hi - z_lo) / dz)) + 1
    return syn.cardinal_grid(
        (n_slices, n_pixels, n_pixels), (-half, -half, z_lo), (dz, pixel_mm, pixel_mm)
    )


def _paint(hu: np.ndarray, sdf: np.ndarray, value: float, pixel: float) -> None:
    f = fraction(sdf, pixel)
    hu *= 1.0 - f
    hu += f * value


def rps_patient() -> Patient:
    """Left retroperitoneal sarcoma (dedifferentiated liposarcoma-like mass) in an abdomen."""
    pixel = 500.0 / 256
    grid = _ct_grid(256, pixel, -170.0, 170.0, 4.0)
    sp = Space(grid)
    y = np.broadcast_to(sp.y[None, :, None], grid.shape)
    z = np.broadcast_to(sp.z[:, None, None], grid.shape)
    body = elliptic_cylinder(sp, (0.0, 10.0), lambda zz: (165 + 0.04 * zz, 112 + 0.03 * zz))
    inner = body + 22.0  # peritoneal side of the abdominal wall
    discs = [elliptic_cylinder(sp, (0.0, 48.0), (30.0, 30.0), (zc - 4.0, zc + 4.0))
             for zc in np.arange(-155.0, 170.0, 36.0)]  # fmt: skip
    vb = subtract(elliptic_cylinder(sp, (0.0, 48.0), (22.0, 18.0)), *discs)
    canal = elliptic_cylinder(sp, (0.0, 80.0), (9.0, 8.0))
    cord = elliptic_cylinder(sp, (0.0, 80.0), (5.0, 4.0), (-60.0, 200.0))
    arch = subtract(elliptic_cylinder(sp, (0.0, 88.0), (20.0, 20.0)), canal)
    gtv = ellipsoid(sp, (95.0, 22.0, -62.0), (46.0, 40.0, 56.0))
    kidney_l = ellipsoid(sp, (78.0, 58.0, 56.0), (27.0, 24.0, 52.0))
    kidney_r = ellipsoid(sp, (-72.0, 56.0, 48.0), (27.0, 24.0, 52.0))
    liver = intersect(ellipsoid(sp, (-72.0, 8.0, 112.0), (88.0, 78.0, 70.0)), inner)
    stomach = ellipsoid(sp, (58.0, -38.0, 112.0), (42.0, 32.0, 54.0))
    duodenum_path = [
        (-2.0, -32.0, 84.0), (-30.0, -12.0, 80.0), (-44.0, 4.0, 62.0), (-44.0, 6.0, 36.0),
        (-22.0, 6.0, 26.0), (10.0, 4.0, 26.0), (26.0, -6.0, 40.0),
    ]  # fmt: skip
    duodenum = tube(sp, duodenum_path, 11.0)

    def psoas(side):
        return elliptic_cylinder(
            sp,
            (side * 40.0, 52.0),
            lambda zz: (12.0 + 0.06 * (70.0 - zz), 10.0 + 0.045 * (70.0 - zz)),
            (-200.0, 70.0),
        )

    psoas_l, psoas_r = subtract(psoas(1), gtv), psoas(-1)
    aorta = elliptic_cylinder(sp, (14.0, 24.0), (11.0, 11.0))
    ivc = elliptic_cylinder(sp, (-20.0, 26.0), (12.0, 10.0))
    gtv_in = gtv <= 0
    displaced = margin_sdf(gtv_in, grid, 40.0) - BOWEL_CLEARANCE_MM  # tumour + retroperitoneal fat
    bag = subtract(
        intersect(inner, y - 24.0, z - 56.0),
        liver, stomach, duodenum, kidney_l, kidney_r, displaced, vb, psoas_l, psoas_r, aorta, ivc,
    )  # fmt: skip
    loops = [tube(sp, [(-112.0, -64.0 + 18.0 * (n % 2), zc), (-40.0, -42.0 + 18.0 * (n % 2), zc + 6.0),
                       (28.0, -64.0 + 18.0 * (n % 2), zc)], 11.0)
             for n, zc in enumerate(np.arange(-150.0, 40.0, 26.0))]  # fmt: skip
    theta = np.radians(np.linspace(195.0, 285.0, 10))
    near = [(95.0 + (46.0 + SMALL_BOWEL_NEAR_LOOP_MM) * np.cos(t),
             22.0 + (40.0 + SMALL_BOWEL_NEAR_LOOP_MM) * np.sin(t),
             -62.0 + 8.0 * np.sin(3 * t)) for t in theta]  # fmt: skip
    loops.append(tube(sp, near, 11.0))  # a loop in front of the tumour
    loops.append(
        tube(sp, [(30.0, -12.0, -152.0), (95.0, -6.0, -156.0), (140.0, 0.0, -150.0)], 11.0)
    )
    small_bowel = intersect(union(*loops), bag + 2.0)
    ctv = intersect(margin_sdf(gtv_in, grid, 30.0) - 15.0, body + 5.0, -vb, -kidney_l)
    ptv = intersect(margin_sdf(ctv <= 0, grid, 70.0) - 5.0, body + 5.0)

    hu = np.full(grid.shape, -1000.0, dtype=np.float32)
    for sdf, value in (
        (body, -100.0),
        (subtract(body + 10.0, body + 24.0), 40.0),  # abdominal wall muscles
        (elliptic_cylinder(sp, (36.0, 100.0), (26.0, 18.0)), 45.0),  # erector spinae
        (elliptic_cylinder(sp, (-36.0, 100.0), (26.0, 18.0)), 45.0),
        (arch, 500.0),
        (canal, 10.0),
        (cord, 35.0),
        (vb, 700.0),
        (vb + 2.0, 250.0),  # cancellous core inside the cortical rim
        (psoas_l, 45.0),
        (psoas_r, 45.0),
        (aorta, 45.0),
        (ivc, 40.0),
        (kidney_l, 30.0),
        (kidney_r, 30.0),
        (liver, 60.0),
        (stomach, 40.0),
        (stomach + 4.0, 15.0),  # gastric content
        (ellipsoid(sp, (58.0, -58.0, 128.0), (22.0, 10.0, 20.0)), -1000.0),  # gas cap
        (duodenum, 35.0),
        (small_bowel, 30.0),
        (intersect(small_bowel, elliptic_cylinder(sp, (-60.0, -50.0), (14.0, 9.0))), -1000.0),
        (gtv, 35.0),
        (ellipsoid(sp, (105.0, 10.0, -50.0), (20.0, 16.0, 24.0)), -60.0),  # fatty component
    ):
        _paint(hu, sdf, value, pixel)

    sdfs = {
        "BODY": body,
        "GTV": gtv,
        "CTV": ctv,
        "PTV": ptv,
        "VBs": vb,
        "SpinalCord": cord,
        "Kidney_L": kidney_l,
        "Kidney_R": kidney_r,
        "Kidneys": union(kidney_l, kidney_r),
        "Liver": liver,
        "Stomach": stomach,
        "Duodenum": duodenum,
        "Bag_Bowel": bag,
        "Bowel_Small": small_bowel,
        "Musc_Psoas_L": psoas_l,
        "Musc_Psoas_R": psoas_r,
    }
    shifted = [(p[0] + 3.0, p[1] - 2.0, p[2] + 4.0) for p in duodenum_path]
    observers = {
        "observer2": {  # GTV drawn larger and shifted; kidney and duodenum slightly off
            "GTV": ellipsoid(sp, (98.0, 20.0, -58.0), (49.0, 43.0, 60.0)),
            "Kidney_L": ellipsoid(sp, (80.0, 60.0, 60.0), (28.0, 25.0, 54.0)),
            "Duodenum": tube(sp, shifted, 13.0),
        },
        "observer3": {  # GTV drawn tighter; duodenum starting lower, thinner
            "GTV": ellipsoid(sp, (92.0, 24.0, -66.0), (43.0, 38.0, 52.0)),
            "Kidney_L": ellipsoid(sp, (76.0, 57.0, 64.0), (26.0, 23.0, 50.0)),
            "Duodenum": tube(sp, duodenum_path[1:], 10.0),
        },
    }
    beams = [syn.SyntheticBeam(f"G{a:03d}", round(1.8 / 7, 4), float(a))
             for a in (180, 230, 280, 330, 30, 80, 130)]  # fmt: skip
    return Patient("rps_01", grid, hu, sdfs, observers, ptv, body, 3.0, (95.0, 22.0, -62.0), beams)


def extremity_patient() -> Patient:
    """Right anterior thigh sarcoma (vastus lateralis / intermedius)."""
    pixel = 400.0 / 256
    grid = _ct_grid(256, pixel, -150.0, 150.0, 5.0)
    sp = Space(grid)

    def thigh(side):
        return elliptic_cylinder(
            sp, (side * 100.0, 0.0), lambda zz: (76.0 + 0.08 * zz, 70.0 + 0.07 * zz)
        )

    body = union(thigh(-1), thigh(1))
    femur_c = {-1: (-106.0, 8.0), 1: (106.0, 8.0)}
    femur = {s: elliptic_cylinder(sp, femur_c[s], (14.0, 14.0)) for s in (-1, 1)}
    marrow = {s: elliptic_cylinder(sp, femur_c[s], (8.0, 8.0)) for s in (-1, 1)}
    muscle = body + 12.0  # beneath 12 mm of subcutaneous fat
    # the quadriceps (anterior) compartment of the right thigh: the muscle within the wedge
    # from 150 deg to 320 deg around the femur (0 deg = patient left, 90 deg = posterior)
    cx, cy = femur_c[-1]
    px = np.broadcast_to(sp.x[None, None, :] - cx, grid.shape)
    py = np.broadcast_to(sp.y[None, :, None] - cy, grid.shape)
    a1, a2 = np.radians(150.0), np.radians(320.0)
    d1 = (np.sin(a1) * px - np.cos(a1) * py).astype(np.float32)  # <= 0 beyond the 150 deg ray
    d2 = (np.cos(a2) * py - np.sin(a2) * px).astype(np.float32)  # <= 0 before the 320 deg ray
    wedge = np.maximum(d1, d2)
    along1 = (np.cos(a1) * px + np.sin(a1) * py).astype(np.float32)  # >= 0 on the 150 deg ray
    along2 = (np.cos(a2) * px + np.sin(a2) * py).astype(np.float32)
    quad = subtract(intersect(muscle, wedge, -thigh(1)), femur[-1] - 3.0)
    gtv_centre = (-100.0 + 38.0 * np.cos(np.radians(-125.0)) - 6.0,
                  8.0 + 38.0 * np.sin(np.radians(-125.0)), 10.0)  # fmt: skip
    gtv = ellipsoid(sp, gtv_centre, (24.0, 21.0, 62.0))
    # CTV: 15 mm radial and 40 mm longitudinal, kept in the compartment (not into bone) and
    # 3 mm under the skin; PTV = CTV + 7 mm, 3 mm under the skin
    grown = margin_sdf(gtv <= 0, grid, 50.0, scale=(40.0 / 15.0, 1.0, 1.0)) - 15.0
    ctv = union(gtv, intersect(grown, quad + 1.0, body + 3.0))
    ptv = intersect(margin_sdf(ctv <= 0, grid, 40.0) - 7.0, body + 3.0)
    skin = subtract(body, body + 3.0)

    hu = np.full(grid.shape, -1000.0, dtype=np.float32)
    for sdf, value in (
        (body, -100.0),
        (muscle, 45.0),
        (intersect(muscle, np.abs(d1) - 0.8, -along1, -thigh(1)), -80.0),  # fascia planes
        (intersect(muscle, np.abs(d2) - 0.8, -along2, -thigh(1)), -80.0),
        (femur[-1], 900.0),
        (femur[1], 900.0),
        (marrow[-1], -40.0),
        (marrow[1], -40.0),
        (elliptic_cylinder(sp, (-88.0, 30.0), (5.0, 5.0)), 40.0),  # femoral vessels
        (elliptic_cylinder(sp, (88.0, 30.0), (5.0, 5.0)), 40.0),
        (gtv, 35.0),
        (ellipsoid(sp, np.add(gtv_centre, (4.0, -3.0, 10.0)), (10.0, 9.0, 20.0)), 10.0),  # necrosis
    ):
        _paint(hu, sdf, value, pixel)
    sdfs = {
        "BODY": body,
        "Skin": skin,
        "GTV": gtv,
        "CTV": ctv,
        "PTV": ptv,
        "Femur_R": femur[-1],
        "Femur_L": femur[1],
        "Musc_Quad_R": quad,
    }
    observers = {
        "observer2": {  # GTV larger and shifted cranially; femur and compartment slightly off
            "GTV": ellipsoid(sp, np.add(gtv_centre, (-2.0, -2.0, 6.0)), (26.0, 23.0, 66.0)),
            "Femur_R": elliptic_cylinder(sp, (femur_c[-1][0] + 1.0, 8.5), (15.0, 15.0)),
            "Musc_Quad_R": quad + 2.0,
        },
        "observer3": {  # GTV tighter and shifted caudally; compartment drawn wider
            "GTV": ellipsoid(sp, np.add(gtv_centre, (2.0, 1.0, -5.0)), (22.0, 20.0, 58.0)),
            "Femur_R": elliptic_cylinder(sp, (femur_c[-1][0] - 0.5, 7.5), (13.5, 13.5)),
            "Musc_Quad_R": quad - 2.5,
        },
    }
    beams = [syn.SyntheticBeam(f"G{a:03d}", 0.4, float(a)) for a in (300, 340, 20, 60, 220)]
    isocenter = tuple(round(float(v), 1) for v in gtv_centre)
    return Patient("extremity_01", grid, hu, sdfs, observers, ptv, body, 3.0, isocenter, beams)


# ------------------------------------------------------------------------------ dose
def model_dose(ptv_distance_mm: np.ndarray, inside_body: np.ndarray, rx_gy: float, w) -> np.ndarray:
    """Plausible conformal dose (Gy) from the signed distance ``d`` (mm) to the PTV surface.

    ``rx * [h(d) + (1 - h(d) / A) * b(d)]`` inside the body, 0 outside, with the high-dose
    part ``h(d) = A * Phi((8 - d) / 5)`` (50% level 8 mm outside the PTV, penumbra sigma 5 mm,
    ``A = 1.02`` times a smooth +-1.2% modulation) and the low-dose bath
    ``b(d) = BATH_FRACTION exp(-max(d, 0) / BATH_LENGTH_MM)``.
    """
    d = ptv_distance_mm
    modulation = 1.02 + 0.012 * np.sin(w[..., 0] / 23.0) * np.cos(
        w[..., 1] / 31.0 + w[..., 2] / 41.0
    )
    high = modulation * 0.5 * erfc((d - 8.0) / (5.0 * np.sqrt(2.0)))
    bath = BATH_FRACTION * np.exp(-np.maximum(d, 0.0) / BATH_LENGTH_MM)
    dose = rx_gy * (high + (1.0 - high / modulation) * bath)
    return np.where(inside_body, dose, 0.0)


def dose_grid_for(patient: Patient) -> Grid:
    """A 3 mm (axial HFS) dose grid over the body's bounding box and the CT's z range."""
    inside = patient.body_sdf <= 0
    k_any = np.flatnonzero(inside.any(axis=(1, 2)))
    w = patient.grid.index_to_world(
        np.array([[k, j, i] for k in (k_any[0], k_any[-1])
                  for j in np.flatnonzero(inside.any(axis=(0, 2)))[[0, -1]]
                  for i in np.flatnonzero(inside.any(axis=(0, 1)))[[0, -1]]], dtype=float)
    )  # fmt: skip
    lo, hi = w.min(axis=0) - 3.0, w.max(axis=0) + 3.0
    s = patient.dose_spacing_mm
    shape = tuple(int(np.ceil((hi[a] - lo[a]) / s)) + 1 for a in (2, 1, 0))
    return syn.cardinal_grid(shape, tuple(np.round(lo, 1)), (s, s, s))


def sample_on(values: np.ndarray, source: Grid, target: Grid) -> np.ndarray:
    """``values`` on ``source`` trilinearly interpolated at the voxel centres of ``target``."""
    w = _world(target).reshape(-1, 3)
    idx = source.world_to_index(w).T
    out = ndimage.map_coordinates(values, idx, order=1, mode="nearest")
    return out.reshape(target.shape)


# ------------------------------------------------------------------------------ DVH
def brute_force_dvh(structure: Structure, dose: np.ndarray, dose_grid: Grid, roi_number: int):
    """Cumulative DVH of a structure by brute-force sampling of its contours.

    Each contour plane stands for its slab (slab convention of :mod:`rtplan.structure`),
    sampled on 4 sub-planes; each sub-plane on a 0.5 mm square lattice (cell centres)
    shifted by a low-discrepancy offset (R2 sequence) so that lattices of successive
    sub-planes do not repeat; even-odd inside test (matplotlib); dose by trilinear
    interpolation.  The samples of a plane share its exact area x slab thickness (even-odd
    polygon area), so the total is the contour volume.  Bins of ``DVH_BIN_GY``; volume
    ``V_n`` (cc) is the volume receiving at least the upper edge of bin ``n`` (the bin point
    ``upper`` of :mod:`rtplan.dvh.embedded`, which ``auto`` recognises from DVHMeanDose).
    """
    step, subplanes = 0.5, 4
    t = structure.slab_thickness_mm
    g = 1.32471795724474602596  # plastic number: R2 sequence offsets
    alpha = np.array([1 / g, 1 / g**2])
    doses, weights = [], []
    n = 0
    for (z, polys), area_mm2 in zip(
        structure.planes.items(), structure.plane_areas_mm2, strict=True
    ):
        xy = np.concatenate(polys)
        lo, hi = xy.min(axis=0) - step, xy.max(axis=0) + step
        for m in range(subplanes):
            n += 1
            off = np.mod(0.5 + n * alpha, 1.0) * step
            gx = np.arange(np.floor(lo[0] / step) * step + off[0], hi[0], step)
            gy = np.arange(np.floor(lo[1] / step) * step + off[1], hi[1], step)
            px, py = np.meshgrid(gx, gy)
            pts = np.column_stack([px.ravel(), py.ravel()])
            count = np.zeros(len(pts), dtype=int)
            for poly in polys:
                count += MplPath(poly).contains_points(pts)
            pts = pts[count % 2 == 1]
            if len(pts) == 0:
                continue
            zz = z + t * ((m + 0.5) / subplanes - 0.5)
            idx = dose_grid.world_to_index(np.column_stack([pts, np.full(len(pts), zz)])).T
            doses.append(ndimage.map_coordinates(dose, idx, order=1, mode="nearest"))
            weights.append(np.full(len(pts), area_mm2 * t / subplanes / len(pts) / 1000.0))
    d, w = np.concatenate(doses), np.concatenate(weights)
    n_bins = int(np.ceil(d.max() / DVH_BIN_GY)) + 1
    edges = np.arange(1, n_bins + 1) * DVH_BIN_GY
    per_bin = np.histogram(d, bins=np.concatenate([[0.0], edges]), weights=w)[0]
    at_least_upper = w.sum() - np.cumsum(per_bin)  # cc receiving >= upper edge of each bin
    return syn.SyntheticDVH(
        roi_number=roi_number,
        bin_widths=np.full(n_bins, DVH_BIN_GY),
        volumes=np.round(np.maximum(at_least_upper, 0.0), 4),
        min_dose=round(float(d.min()), 4),
        max_dose=round(float(d.max()), 4),
        mean_dose=round(float(np.sum(d * w) / w.sum()), 4),
    )


# ------------------------------------------------------------------------------ writing
def _uid(*parts) -> str:
    return generate_uid(entropy_srcs=["rtplan sample_dicom", *map(str, parts)])


def write_patient(patient: Patient, folder: Path) -> dict:
    """Write one patient into ``folder`` (which must be empty); returns summary numbers."""
    spec = PATIENTS[patient.key]
    pid, pname = spec["patient_id"], spec["patient_name"]
    study, frame = _uid(pid, "study"), _uid(pid, "frame")
    grid, pixel = patient.grid, patient.grid.spacing_mm[2]

    cts = syn.ct_series_datasets(
        np.round(patient.hu), grid, patient_id=pid, patient_name=pname, study_uid=study,
        frame_of_reference_uid=frame, series_uid=_uid(pid, "ct series"), when=WHEN,
    )  # fmt: skip
    for k, ds in enumerate(cts):
        ds.SOPInstanceUID = _uid(pid, "ct", k)
        ds.PatientBirthDate = "19650412"
        ds.PatientSex = "O"
        ds.StudyDescription = "rtplan sample patient (synthetic)"
        ds.SeriesDescription = "CT planning (synthetic)"
    syn.write_datasets(cts, folder, names=[f"CT.{k + 1:03d}.dcm" for k in range(len(cts))])
    image = read_ct_series(folder)

    def structure_set(label, sdfs, types, number_of):
        structures = [
            structure_from_mask(
                fraction(sdf, pixel),
                grid,
                name,
                interpreted_type=types[name],
                number=number_of[name],
            )  # fmt: skip
            for name, sdf in sdfs.items()
        ]
        ds = rtstruct_dataset(
            structures, image, cts[0], label=label, name=f"{label} ({pid})",
            interpreter=f"{label.capitalize()}^Sample", generation_algorithm="MANUAL", series_number=2,
            series_description=f"Structures {label}", series_instance_uid=_uid(pid, label, "series"),
            sop_instance_uid=_uid(pid, label, "rtstruct"), when=WHEN,
        )  # fmt: skip
        return ds, {s.name: s for s in structures}

    types = spec["structures"]
    numbers = {name: n for n, name in enumerate(types, start=1)}
    rs, structures = structure_set("observer1", patient.sdfs, types, numbers)
    datasets, names = [rs], ["RS.observer1.dcm"]
    for label, sdfs in patient.observers.items():
        ds, _ = structure_set(label, sdfs, types, numbers)
        datasets.append(ds)
        names.append(f"RS.{label}.dcm")

    plan = syn.rtplan_dataset(
        spec["plan_label"], spec["fractions"], spec["prescription_gy"], patient.beams,
        patient_id=pid, patient_name=pname, study_uid=study, frame_of_reference_uid=frame,
        referenced_structure_set_uid=rs.SOPInstanceUID, target_roi_number=numbers["PTV"],
        plan_name=f"{spec['prescription_gy']:g} Gy in {spec['fractions']} fx",
        isocenter_mm=patient.isocenter_mm, series_uid=_uid(pid, "plan series"), when=WHEN,
    )  # fmt: skip
    plan.SOPInstanceUID = _uid(pid, "plan")
    plan.DoseReferenceSequence[0].DoseReferenceUID = _uid(pid, "dose reference")

    dgrid = dose_grid_for(patient)
    ptv_distance = margin_sdf(patient.ptv_sdf <= 0, grid, 1e4)  # whole grid, not a box
    ptv_d = sample_on(ptv_distance, grid, dgrid)
    body_d = sample_on(patient.body_sdf, grid, dgrid) <= 0
    dose = model_dose(ptv_d, body_d, spec["prescription_gy"], _world(dgrid))
    dose = np.round(dose / 1e-4) * 1e-4
    dvhs = [
        brute_force_dvh(structures[name], dose, dgrid, numbers[name])
        for name in spec["embedded_dvhs"]
    ]
    rd = syn.rtdose_dataset(
        dose, dgrid, frame_of_reference_uid=frame, study_uid=study, patient_id=pid,
        patient_name=pname, referenced_plan_uid=plan.SOPInstanceUID, dvhs=dvhs,
        referenced_structure_set_uid=rs.SOPInstanceUID, series_uid=_uid(pid, "dose series"),
        when=WHEN,
    )  # fmt: skip
    rd.SOPInstanceUID = _uid(pid, "dose")
    datasets += [plan, rd]
    names += ["RP.plan.dcm", "RD.dose.dcm"]
    for ds in datasets:
        ds.PatientBirthDate = "19650412"
        ds.StudyDescription = "rtplan sample patient (synthetic)"
    syn.write_datasets(datasets, folder, names=names)
    return {name: dvh for name, dvh in zip(spec["embedded_dvhs"], dvhs, strict=True)}


def dvh_metric(dvh: syn.SyntheticDVH, kind: str, value: float) -> float:
    """``("V", dose_gy)`` -> cc receiving at least dose; ``("D", percent)`` -> Gy."""
    upper = np.cumsum(dvh.bin_widths)
    vols = np.asarray(dvh.volumes, dtype=float)
    total = vols[0]
    if kind == "V":
        return float(np.interp(value, upper, vols))
    target = total * value / 100.0
    return float(np.interp(-target, -vols, upper))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "sample_dicom"))
    parser.add_argument("--only", choices=sorted(PATIENTS), help="make one patient only")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    makers = {"rps_01": rps_patient, "extremity_01": extremity_patient}
    for key, make in makers.items():
        if args.only and key != args.only:
            continue
        work = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=out))
        try:
            dvhs = write_patient(make(), work)
            mask = os.umask(0)
            os.umask(mask)
            for path in [work, *work.iterdir()]:  # temporary files and folders are 0600/0700
                path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)
            target = out / key
            if target.exists():
                shutil.rmtree(target)
            os.replace(work, target)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        print(f"{key}: {sum(f.stat().st_size for f in target.iterdir()) / 1e6:.1f} MB")
        for name, dvh in dvhs.items():
            print(
                f"  {name:12s} {dvh.volumes[0]:9.1f} cc  mean {dvh.mean_dose:6.2f}  "
                f"max {dvh.max_dose:6.2f}  D95% {dvh_metric(dvh, 'D', 95):6.2f} Gy"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
