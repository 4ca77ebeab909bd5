"""Benchmark: contour-agreement metrics and cohort runs.

Part 1 - pairs of realistic structures (a ~300 cc GTV and a ~1.5 L liver, two observers
each, irregular shapes differing by a few mm) as masks on a 512 x 512 x 120 CT grid of
0.98 x 0.98 x 2.5 mm.  Times rtplan against DeepMind's ``surface-distance`` on the same
masks and spacing (and MedPy where installed, on the masks cropped to the structures, as
its users must) and checks that rtplan's values equal surface-distance's.

Part 2 - a synthetic cohort written as DICOM files: 20 patients x 3 observers (one
RTSTRUCT each) x 5 structures (GTV, CTV, liver, two kidneys), compared pairwise with
``run_cohort`` on a local process pool (and, with ``--dask``, on a Dask LocalCluster with
the same number of worker processes; rows must be identical).  No CT is written: the
comparison grid is the contour-plane grid with 0.98 mm pixels.

Run:  python benchmarks/agreement.py [--jobs 2] [--dask] [--patients 20]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from rtplan.agreement import PairMetrics, compare_masks, dice, surface_distances
from rtplan.testing.agreement_phantoms import (
    RPS_STRUCTURES,
    observer_structures,
    write_observer_patient,
)
from rtplan.workflows.agree import AgreementOptions, run_cohort

SPACING = (2.5, 0.98, 0.98)  # slice, row, column (mm)
SHAPE = (120, 512, 512)
TOLERANCE_MM = 3.0


def observer_pair(volume_cc, axes_ratio, seed, observer_noise, shift_mm):
    """Two observers' masks of one irregular structure of about ``volume_cc``.

    The structure is an ellipsoid whose level set is roughened by smooth noise shared by
    both observers; each observer adds independent smooth noise of ``observer_noise``
    (relative radius) and observer B is shifted by ``shift_mm`` (slice, row, column).
    """
    rng = np.random.default_rng(seed)
    a = np.asarray(axes_ratio, float)
    a = a * (volume_cc * 1000 / (4 / 3 * np.pi * np.prod(a))) ** (1 / 3)  # semi-axes, mm
    half = np.ceil(a * 1.4 / np.asarray(SPACING)).astype(int)
    k, j, i = np.ogrid[-half[0] : half[0] + 1, -half[1] : half[1] + 1, -half[2] : half[2] + 1]

    def smooth_noise():
        n = ndimage.gaussian_filter(rng.normal(size=(2 * half + 1)), sigma=(3, 8, 8))
        return n / n.std()

    shape_noise = 0.12 * smooth_noise()
    masks = []
    for shift in ((0.0, 0.0, 0.0), shift_mm):
        z = k * SPACING[0] - shift[0]
        y = j * SPACING[1] - shift[1]
        x = i * SPACING[2] - shift[2]
        level = np.sqrt((z / a[0]) ** 2 + (y / a[1]) ** 2 + (x / a[2]) ** 2)
        local = level + shape_noise + observer_noise * smooth_noise() < 1.0
        mask = np.zeros(SHAPE, bool)
        c = np.asarray(SHAPE) // 2
        mask[tuple(slice(cc - h, cc + h + 1) for cc, h in zip(c, half, strict=True))] = local
        masks.append(mask)
    return masks


def best_of(fn, repeat=3):
    """Smallest CPU time (s) of ``repeat`` calls (every contender runs single-threaded,
    so CPU time is what wall time would be on an idle machine), and the value."""
    times, value = [], None
    for _ in range(repeat):
        t = time.process_time()
        value = fn()
        times.append(time.process_time() - t)
    return min(times), value


def deepmind_metrics(sd, a, b):
    r = sd.compute_surface_distances(a, b, SPACING)
    return {
        "hausdorff_mm": sd.compute_robust_hausdorff(r, 100),
        "hd95_mm": sd.compute_robust_hausdorff(r, 95),
        "mean_a_to_b_mm": sd.compute_average_surface_distance(r)[0],
        "mean_b_to_a_mm": sd.compute_average_surface_distance(r)[1],
        "surface_dice": sd.compute_surface_dice_at_tolerance(r, TOLERANCE_MM),
        "dice": sd.compute_dice_coefficient(a, b),
    }


def rtplan_metrics(a, b):
    s = surface_distances(a, b, SPACING)
    mean_ab, mean_ba = s.directed_mean_mm()
    return {
        "hausdorff_mm": s.hausdorff_mm(),
        "hd95_mm": s.hd_percentile_mm(95),
        "mean_a_to_b_mm": mean_ab,
        "mean_b_to_a_mm": mean_ba,
        "surface_dice": s.surface_dice(TOLERANCE_MM),
        "dice": dice(a, b),
    }


def medpy_metrics(binary, a, b):
    nz = np.argwhere(a | b)
    box = tuple(slice(max(lo - 2, 0), hi + 3) for lo, hi in zip(nz.min(0), nz.max(0), strict=True))
    a, b = a[box], b[box]
    return {
        "hausdorff_mm": binary.hd(b, a, voxelspacing=SPACING),
        "hd95_mm (pooled, voxels)": binary.hd95(b, a, voxelspacing=SPACING),
        "assd_mm (pooled, voxels)": binary.assd(b, a, voxelspacing=SPACING),
        "dice": binary.dc(b, a),
    }


def part_pairs() -> bool:
    try:
        import surface_distance as sd
    except ImportError:
        print("surface-distance is not installed: pip install surface-distance")
        return False
    try:
        from medpy.metric import binary
    except ImportError:
        binary = None
    pairs = {
        "GTV ~300 cc": observer_pair(300, (1.0, 1.2, 1.1), 1, 0.06, (1.0, 1.5, -1.0)),
        "liver ~1.5 L": observer_pair(1500, (0.75, 1.0, 1.3), 2, 0.03, (1.0, -1.0, 1.0)),
    }
    identical = True
    print(f"Part 1: pairs on a {SHAPE[2]}x{SHAPE[1]}x{SHAPE[0]} grid, spacing "
          f"{SPACING[2]} x {SPACING[1]} x {SPACING[0]} mm (column x row x slice)")  # fmt: skip
    for label, (a, b) in pairs.items():
        va, vb = a.sum() * np.prod(SPACING) / 1000, b.sum() * np.prod(SPACING) / 1000
        rtplan_metrics(a, b)  # warm the lookup tables
        t_rt, ours = best_of(lambda a=a, b=b: rtplan_metrics(a, b))
        t_all, _ = best_of(lambda a=a, b=b: compare_masks(a, b, SPACING, TOLERANCE_MM))
        t_sd, theirs = best_of(lambda a=a, b=b: deepmind_metrics(sd, a, b))
        print(f"\n  {label}: observer volumes {va:.0f} / {vb:.0f} cc")
        print(f"  {'metric':<22}{'rtplan':>14}{'surface-distance':>18}{'rel. diff':>11}")
        for key in ours:
            rel = abs(ours[key] - theirs[key]) / max(abs(theirs[key]), 1e-300)
            identical &= rel <= 1e-6
            print(f"  {key:<22}{ours[key]:>14.6f}{theirs[key]:>18.6f}{rel:>11.1e}")
        print(f"  CPU time: rtplan {t_rt * 1000:.0f} ms (same metrics), "
              f"{t_all * 1000:.0f} ms (all {len(PairMetrics.metric_names())} PairMetrics values); "
              f"surface-distance {t_sd * 1000:.0f} ms  ->  {t_sd / t_rt:.1f}x faster")  # fmt: skip
        if binary is not None:
            t_mp, mp = best_of(lambda a=a, b=b: medpy_metrics(binary, a, b), repeat=1)
            shown = ", ".join(f"{k} {v:.3f}" for k, v in mp.items())
            print(f"  MedPy 0.5 (own conventions, cropped input): {t_mp * 1000:.0f} ms: {shown}")
    print(f"\n  values identical to surface-distance (<= 1e-6 relative): {identical}")
    return identical


def _children_cpu() -> float:
    """CPU seconds used by finished child processes (the pool's workers)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def part_cohort(patients: int, jobs: int, use_dask: bool) -> bool:
    observers = ["obs1", "obs2", "obs3"]
    planes = np.arange(-120.0, 120.0 + 1e-9, 2.5)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        for p in range(patients):
            shapes = observer_structures(RPS_STRUCTURES, observers, seed=p)
            write_observer_patient(root / f"P{p:02d}", f"P{p:02d}", shapes, plane_z_mm=planes)
        t_write = time.perf_counter() - t
        options = AgreementOptions(tolerance_mm=TOLERANCE_MM, in_plane_spacing_mm=0.98)
        t, cpu = time.perf_counter(), _children_cpu()
        result = run_cohort([root], options, jobs=jobs, progress=True)
        t_pool, cpu_pool = time.perf_counter() - t, _children_cpu() - cpu
        n = len(result.rows)
        print(f"\nPart 2: cohort of {patients} patients x {len(observers)} observers x "
              f"{len(RPS_STRUCTURES)} structures ({n} pair rows; files written in {t_write:.1f} s)")  # fmt: skip
        print(f"  local process pool, {jobs} workers: {t_pool:.1f} s wall "
              f"({t_pool / patients:.2f} s per patient), {cpu_pool:.1f} s CPU in the workers, "
              f"failures: {len(result.failures)}")  # fmt: skip
        ok = not result.failures and n == patients * len(RPS_STRUCTURES) * 3
        if use_dask:
            from dask.distributed import LocalCluster

            with LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True) as cluster:
                t = time.perf_counter()
                on_dask = run_cohort([root], options, scheduler=cluster.scheduler_address)
                t_dask = time.perf_counter() - t
            same = len(on_dask.rows) == n and all(
                all(
                    x[k] == y[k]
                    or (isinstance(x[k], float) and math.isnan(x[k]) and math.isnan(y[k]))
                    for k in x
                )
                for x, y in zip(result.rows, on_dask.rows, strict=True)
            )
            print(f"  Dask LocalCluster, {jobs} worker processes: {t_dask:.1f} s "
                  f"(after cluster start-up); rows identical to the local pool: {same}")  # fmt: skip
            ok &= same
    return ok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--patients", type=int, default=20)
    parser.add_argument("--dask", action="store_true", help="also run the cohort on Dask")
    parser.add_argument("--skip-pairs", action="store_true")
    parser.add_argument("--skip-cohort", action="store_true")
    args = parser.parse_args(argv)
    ok = True
    if not args.skip_pairs:
        ok &= part_pairs()
    if not args.skip_cohort:
        ok &= part_cohort(args.patients, args.jobs, args.dask)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
