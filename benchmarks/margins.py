"""Benchmark: exact margins against SimpleITK's BinaryDilate with an ellipsoidal kernel.

A ~300 cc GTV - a cylinder of radius 35 mm drawn as 26 planar contours 3 mm apart (the slab
convention makes it 78 mm long) - expanded by 15 mm radial / 35 mm longitudinal on one 1 mm
grid (the fine grid of rtplan's workspace: slabs end on voxel faces), by

* rtplan: the partial-volume mask -> sub-voxel planes -> exact Minkowski sum
  (:func:`rtplan.volumes.margins.apply_margin`), volume from the planes;
* SimpleITK ``BinaryDilate`` with a ``sitkBall`` kernel of radius (15, 15, 35) voxels on
  the binary mask (fraction >= 0.5) of the same grid, volume = voxel count.

Truth: the Minkowski sum of the cylinder (radius R, height H) with the ellipsoid (r, r, l),
``pi (R + r)^2 H + 2 pi R^2 l + pi^2 R r l + 4/3 pi r^2 l`` (cross-sections along z).
Times are wall-clock, the best of ``--repeat`` runs, on the same machine and grid (rtplan's
time includes building the sub-voxel planes from the fractions; rasterising the contours,
needed by both, is not timed).  Also timed: the same GTV with asymmetric margins (SimpleITK
has no kernel for it), and the whole extremity recipe on the sample patient (reading the
DICOM files, CTV, crops, PTV, writing the RTSTRUCT).

Part 2 (``--accuracy``): the accuracy table of docs/volumes.md - structures drawn on CT
slices (boxes, cylinders) expanded with ``rtplan.volumes.expand_structure`` and compared with
their closed-form Minkowski sums, both on the fine grid and as written contours (slab
convention), with the extents.

Both are timed with their default number of threads and with one thread (``--threads N``:
only N for both); the load average is printed, since other work on the machine slows both.
rtplan's kernels are compiled by numba once per installation (cached on disk); the first
call in the process is reported separately and not counted in the best-of times.

Run:  python benchmarks/margins.py [--repeat 5] [--threads N] [--accuracy]
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from rtplan.grid import Grid
from rtplan.structure import Contour, Structure
from rtplan.volumes import margins as margins_module
from rtplan.volumes.margins import Margins, apply_margin
from rtplan.volumes.subvoxel import SubvoxelMask

RADIUS, SLAB, PLANES = 35.0, 3.0, 26
R_MM, L_MM = 15.0, 35.0


def cylinder_sum_mm3(radius, height, r, l_sup, l_inf):
    """Volume of a z-cylinder plus the ellipsoid (r, r, superior / inferior semi-axes)."""
    cap = math.pi * radius**2 + math.pi**2 / 2 * radius * r + 2 / 3 * math.pi * r**2
    return math.pi * (radius + r) ** 2 * height + (l_sup + l_inf) * cap


def gtv_and_grid():
    t = np.linspace(0, 2 * np.pi, 1440, endpoint=False)
    poly = np.c_[RADIUS * np.cos(t) + 0.31, RADIUS * np.sin(t) - 0.17]
    gtv = Structure(
        "GTV",
        tuple(Contour(np.c_[poly, np.full(len(poly), k * SLAB)]) for k in range(PLANES)),
        slice_spacing_mm=SLAB,
    )
    lo, hi = gtv.bounds_mm()
    pad = np.array([R_MM + 3, R_MM + 3, L_MM + 3])
    shape = tuple(int(v) for v in np.ceil(hi - lo + 2 * pad)[::-1])
    grid = Grid(shape, tuple(lo - pad + 0.5), (1.0, 1.0, 1.0))  # slab ends on voxel faces
    return gtv, grid


def best_of(fn, repeat):
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def best_of_alternating(fns, repeat):
    """Best wall-clock time and last result of each function, run in turn ``repeat`` times
    (so that both see the same changes in the machine's load)."""
    times = [[] for _ in fns]
    results = [None] * len(fns)
    for _ in range(repeat):
        for n, fn in enumerate(fns):
            t0 = time.perf_counter()
            results[n] = fn()
            times[n].append(time.perf_counter() - t0)
    return [(min(t), r) for t, r in zip(times, results, strict=True)]


def box_sum_mm3(a, b, c, m: Margins):
    """Box a (x) x b (y) x c (z) plus the octant-wise ellipsoid of ``m``: faces, quarter
    elliptic cylinders along the edges, ellipsoid octants at the corners."""
    x, y, z = m.left + m.right, m.anterior + m.posterior, m.superior + m.inferior
    return (
        a * b * c + a * b * z + a * c * y + b * c * x
        + math.pi / 4 * (a * y * z + b * x * z + c * x * y) + math.pi / 6 * x * y * z
    )  # fmt: skip


def accuracy_table() -> None:
    from rtplan.volumes.builder import expand_structure

    def prism(poly, planes, slab):
        return Structure(
            "GTV",
            tuple(
                Contour(np.c_[poly, np.full(len(poly), 1.234 + k * slab)]) for k in range(planes)
            ),
            slice_spacing_mm=slab,
        )

    t = np.linspace(0, 2 * np.pi, 1440, endpoint=False)
    rows = []
    cases = [
        ("box 40.3 x 30.6 x 36", "radial=15,longitudinal=35", 3.0, "box"),
        ("box 40.3 x 30.6 x 35", "radial=15,longitudinal=35", 2.5, "box"),
        ("box 40.3 x 30.6 x 36", "radial=5,longitudinal=5", 3.0, "box"),
        ("box 40.3 x 30.6 x 35", "radial=5,longitudinal=5", 2.5, "box"),
        ("box 40.3 x 30.6 x 36", "right=5,left=12,anterior=8,posterior=3,superior=21,inferior=9", 3.0, "box"),
        ("box 20.2 x 17.5 x 15", "radial=5,longitudinal=10", 5.0, "box"),
        ("cylinder R 20 x 40", "radial=15,longitudinal=30", 2.5, "cyl"),
        ("cylinder R 20 x 40", "radial=10,superior=20,inferior=0", 2.5, "cyl"),
        ("cylinder R 12 x 12", "radial=5,longitudinal=5", 2.0, "cyl"),
        ("box 40.3 x 30.6 x 36", "-5", 3.0, "box"),
    ]  # fmt: skip
    for label, spec, slab, kind in cases:
        m = Margins.parse(spec)
        dims = [float(v) for v in label.split(maxsplit=1)[1].replace("R ", "").split(" x ")]
        planes = int(round(dims[-1] / slab))
        height = planes * slab
        if kind == "box":
            a, b = dims[0], dims[1]
            poly = np.array([[0, 0], [a, 0], [a, b], [0, b]]) + [0.37, 0.61]
            if m.is_expansion:
                truth = box_sum_mm3(a, b, height, m)
            else:
                truth = (
                    (a + m.left + m.right)
                    * (b + m.anterior + m.posterior)
                    * (height + m.superior + m.inferior)
                )
        else:
            radius = dims[0]
            poly = np.c_[radius * np.cos(t) + 0.3, radius * np.sin(t) - 0.2]
            cap = (
                math.pi * radius**2
                + math.pi**2 / 2 * radius * m.right
                + 2 / 3 * math.pi * m.right**2
            )
            truth = math.pi * (radius + m.right) ** 2 * height + (m.superior + m.inferior) * cap
        gtv = prism(poly, planes, slab)
        res = expand_structure([gtv], "GTV", m, name="NEW")
        fine = res.steps[-1].after_cc
        lo, hi = res.structure.bounds_mm()
        glo, ghi = gtv.bounds_mm()
        want_lo = np.array([m.right, m.anterior, m.inferior])
        want_hi = np.array([m.left, m.posterior, m.superior])
        ext = np.abs(np.r_[glo - lo - want_lo, hi - ghi - want_hi])
        rows.append((label, f"{spec} (slice {slab:g} mm)", truth / 1000, fine, res.volume_cc,
                     max(ext[[0, 1, 3, 4]]), max(ext[[2, 5]])))  # fmt: skip
    print("| GTV (mm) | margins | truth (cc) | fine grid | contours | in-plane extent | z extent |")
    print("|---|---|---|---|---|---|---|")
    for label, spec, truth, fine, cont, exy, ez in rows:
        print(f"| {label} | {spec} | {truth:.2f} | {100 * (fine / truth - 1):+.2f}% | "
              f"{100 * (cont / truth - 1):+.2f}% | {exy:.2f} mm | {ez:.2f} mm |")  # fmt: skip


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--accuracy", action="store_true", help="print the accuracy table only")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads for both (default: time each library's default, then 1 thread)",
    )
    args = ap.parse_args(argv)
    if args.accuracy:
        accuracy_table()
        return
    default_rtplan = margins_module._THREADS
    default_sitk = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    settings = (
        [(args.threads, args.threads)] if args.threads else [(default_sitk, default_rtplan), (1, 1)]
    )
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"machine: {os.cpu_count()} CPUs, load average {load} (1, 5, 15 min); "
          f"SimpleITK {sitk.Version.VersionString()}")  # fmt: skip

    gtv, grid = gtv_and_grid()
    fraction = gtv.fraction_mask(grid)
    height = PLANES * SLAB
    print(f"GTV: cylinder R = {RADIUS} mm, H = {height} mm, {gtv.volume_cc:.2f} cc; grid "
          f"{grid.shape} = {np.prod(grid.shape) / 1e6:.2f} M voxels of 1 mm")  # fmt: skip
    m = Margins.parse(f"radial={R_MM:g},longitudinal={L_MM:g}")
    truth = cylinder_sum_mm3(RADIUS, height, R_MM, L_MM, L_MM) / 1000

    def ours():
        region = SubvoxelMask.from_fraction(fraction, grid.spacing_mm, slabs=True)
        return apply_margin(region, m, grid.direction_matrix)

    t0 = time.perf_counter()
    ours()
    print(f"first rtplan margin in this process (numba kernels loaded from the on-disk cache, "
          f"or compiled if there is none): {time.perf_counter() - t0:.2f} s")  # fmt: skip

    binary = grid.to_sitk((fraction >= 0.5).astype(np.uint8))
    radius_vox = [int(round(R_MM)), int(round(R_MM)), int(round(L_MM))]  # (i, j, k)

    def theirs():
        return sitk.BinaryDilate(binary, radius_vox, sitk.sitkBall, 0, 1)

    print(f"\n15 mm radial / 35 mm longitudinal, closed form {truth:.2f} cc; best of "
          f"{args.repeat}, the two methods run alternately")  # fmt: skip
    print(f"{'method':<34}{'threads':>8}{'time (s)':>10}{'volume (cc)':>14}{'error':>10}")
    for sitk_threads, rtplan_threads in settings:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(sitk_threads)
        margins_module._THREADS = rtplan_threads
        (t_ours, out), (t_sitk, dilated) = best_of_alternating((ours, theirs), args.repeat)
        v_ours = out.volume_cc
        v_sitk = float(sitk.GetArrayViewFromImage(dilated).sum()) * grid.voxel_volume_cc
        for name, th, t, v in (
            ("rtplan exact margins", rtplan_threads, t_ours, v_ours),
            ("SimpleITK BinaryDilate (ball)", sitk_threads, t_sitk, v_sitk),
        ):
            print(f"{name:<34}{th:>8}{t:>10.3f}{v:>14.2f}{100 * (v / truth - 1):>9.2f}%")
        print(f"time ratio SimpleITK / rtplan: {t_sitk / t_ours:.2f}")
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(default_sitk)
    margins_module._THREADS = default_rtplan

    asym = Margins.parse("radial=15,superior=35,inferior=20")
    truth_a = cylinder_sum_mm3(RADIUS, height, 15, 35, 20) / 1000

    def ours_asym():
        region = SubvoxelMask.from_fraction(fraction, grid.spacing_mm, slabs=True)
        return apply_margin(region, asym, grid.direction_matrix)

    t_a, out_a = best_of(ours_asym, args.repeat)
    print(f"\nasymmetric {asym} (no SimpleITK kernel): rtplan {t_a:.3f} s, "
          f"{out_a.volume_cc:.2f} cc vs {truth_a:.2f} cc "
          f"({100 * (out_a.volume_cc / truth_a - 1):.2f}%)")  # fmt: skip

    sample = Path(__file__).resolve().parents[1] / "sample_dicom" / "extremity_01"
    if sample.exists():
        from rtplan.workflows.volumes import volumes_folder

        with tempfile.TemporaryDirectory() as tmp:
            counter = iter(range(args.repeat))

            def recipe():
                return volumes_folder(
                    sample, protocol="extremity-preop", out=Path(tmp) / str(next(counter))
                )

            t_r, res = best_of(recipe, min(args.repeat, 3))
        vols = ", ".join(f"{k} {v:.1f} cc" for k, v in res.volumes_cc.items())
        print(f"\nwhole extremity-preop recipe on sample_dicom/extremity_01 (read, CTV, crops, "
              f"PTV, RTSTRUCT written): {t_r:.2f} s ({vols})")  # fmt: skip


if __name__ == "__main__":
    main()
