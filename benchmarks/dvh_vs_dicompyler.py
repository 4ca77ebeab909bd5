"""Benchmark: rtplan's DVH engine against dicompyler-core on one realistic plan.

One command::

    python benchmarks/dvh_vs_dicompyler.py            # builds, installs, runs, prints

What it does
------------
1. Builds a plan in ``benchmarks/_work/plan`` (gitignored): a 512 x 512 CT of 150 slices
   (0.977 mm pixels, 2.5 mm slices), an RTSTRUCT with 30 structures from 0.5 cc spheres to
   a 22 L BODY (spheres, cylinders and cones, axial, lying along y and tilted, as in
   Nelms et al. 2015), and a 2.5 mm RTDOSE holding a linear dose (32-bit), so that every
   structure has an exact DVH (:class:`rtplan.testing.dvh_phantoms.SlabTruth`, slab convention).
2. Installs dicompyler-core 0.5.6 in its own virtual environment
   (``benchmarks/_work/venv_dicompyler``, reused on later runs; with pydicom < 3, which the
   released dicompyler-core needs), as a user would.
3. Runs, each in its own process, pinned to one CPU (``os.sched_setaffinity``) with BLAS
   and OpenMP threads limited to one, on the same files:

   * rtplan: ``rtplan.dvh.compute`` and the metrics, one structure after the other
     (reading the RTSTRUCT and RTDOSE is timed separately);
   * dicompyler-core ``get_dvh`` in the configurations of ``DICOMPYLER_CONFIGS``: its
     defaults; its defaults except ``interpolation_resolution`` = dose spacing / 4 (the
     comparison the issue asks for); and the latter with ``use_structure_extents=True``
     (its fastest interpolated setting, shown so the comparison is not one-sided).

4. Prints per-structure CPU times and ratios, wall and CPU totals, peak memory, a check
   of the speed targets, and each tool's errors against the exact values (volume,
   Dmean, Dmin, Dmax, D99%, D95%, D50%, D5%, D1%, D0.03cc, D2cc).

A full run takes about 3 minutes on one core, nearly all of it in dicompyler-core with
interpolation; ``--skip-interpolated`` leaves those two runs out.  CPU times
(``time.process_time``) are the figures to compare on a shared machine: they count only
the tool's own work; wall times also count waiting for the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
METRICS = ["Dmean", "Dmin", "Dmax", "D99%", "D95%", "D50%", "D5%", "D1%", "D0.03cc", "D2cc"]
DOSE_SPACING_MM = 2.5
CT_SLICES, CT_SPACING, CT_PIXEL = 150, 2.5, 500.0 / 512
Z0 = -0.5 * (CT_SLICES - 1) * CT_SPACING
LINEAR = dict(value_gy=40.0, gradient_gy_per_mm=(0.06, 0.04, 0.05), center_mm=(0.0, 0.0, 0.0))
DICOMPYLER = "dicompyler-core==0.5.6"
#: dicompyler-core runs: label -> keyword arguments of ``dvhcalc.get_dvh`` (all others
#: at their defaults: calculate_full_volume=True, use_structure_extents=False,
#: interpolation_resolution=None, interpolation_segments_between_planes=0)
DICOMPYLER_CONFIGS = {
    "dcp default": {},
    "dcp interp": {"interpolation_resolution": DOSE_SPACING_MM / 4},
    "dcp interp+ext": {
        "interpolation_resolution": DOSE_SPACING_MM / 4,
        "use_structure_extents": True,
    },
}


def _shapes():
    """The 29 analytic solids (name -> Shape); BODY is added separately."""
    from rtplan.testing.dvh_phantoms import Shape

    rng = np.random.default_rng(7)
    out = {}

    def put(name, kind, radius, length=0.0, axis=(0.0, 0.0, 1.0)):
        c = (rng.uniform(-80, 80), rng.uniform(-50, 50), rng.uniform(-90, 90))
        out[name] = Shape(kind, c, radius, length, axis)

    for d in (10, 11, 12, 16, 20, 25, 30, 40, 50, 70, 100, 150):
        put(f"Sphere_{d}", "sphere", d / 2)
    for r, h in ((5, 20), (10, 30), (20, 60), (40, 100), (60, 200)):
        put(f"Cylinder_{r}x{h}", "cylinder", r, h)
    for r, h in ((8, 20), (15, 40), (30, 80)):
        put(f"Cone_{r}x{h}", "cone", r, h)
    for r, h in ((6, 30), (12, 50), (25, 100)):
        put(f"RtCylinder_{r}x{h}", "cylinder", r, h, (0.0, 1.0, 0.0))
    for r, h in ((10, 30), (20, 60)):
        put(f"RtCone_{r}x{h}", "cone", r, h, (0.0, 1.0, 0.0))
    for r, h in ((8, 40), (15, 60)):
        put(f"TiltCylinder_{r}x{h}", "cylinder", r, h, (0.0, 1.0, 1.0))
    for r, h in ((12, 40), (25, 80)):
        put(f"TiltCone_{r}x{h}", "cone", r, h, (1.0, 0.0, 1.0))
    return out


def _structures():
    """Name -> rtplan Structure (contours on the CT slices), BODY first."""
    from rtplan.structure import Contour, Structure
    from rtplan.testing.dvh_phantoms import shape_structure

    t = np.linspace(0, 2 * np.pi, 400, endpoint=False)
    ellipse = np.c_[170 * np.cos(t), 110 * np.sin(t)]
    zs = Z0 + CT_SPACING * np.arange(CT_SLICES)
    body = Structure(
        "BODY",
        tuple(Contour(np.c_[ellipse, np.full(len(t), z)]) for z in zs),
        slice_spacing_mm=CT_SPACING,
    )
    out = {"BODY": body}
    for name, shape in _shapes().items():
        out[name] = shape_structure(shape, CT_SPACING, z_offset_mm=Z0, name=name)
    return out


def build(work: Path) -> dict:
    """Write CT, RTSTRUCT and RTDOSE; return the exact metrics of every structure."""
    from rtplan.grid import Grid
    from rtplan.testing.dvh_phantoms import LinearDose, SlabTruth
    from rtplan.testing.synthetic import (
        SyntheticROI,
        ct_series_datasets,
        rtdose_dataset,
        rtstruct_dataset_from_contours,
        write_datasets,
    )

    plan = work / "plan"
    structures = _structures()
    lin = LinearDose(**LINEAR)
    truth = {}
    for name, s in structures.items():
        st = SlabTruth(s, lin)
        truth[name] = {"volume_cc": st.volume_cc}
        for m in METRICS:
            if m == "D2cc" and st.volume_cc < 2:
                continue
            truth[name][m] = st.metric(m)
    if (plan / "done").exists():
        return truth
    plan.mkdir(parents=True, exist_ok=True)
    half = 0.5 * (512 - 1) * CT_PIXEL
    ct_grid = Grid((CT_SLICES, 512, 512), (-half, -half, Z0), (CT_SPACING, CT_PIXEL, CT_PIXEL))
    cts = ct_series_datasets(np.zeros(ct_grid.shape, dtype=np.int16), ct_grid,
                             patient_id="BENCH01", patient_name="Bench^DVH")  # fmt: skip
    write_datasets(cts, plan / "CT", [f"ct{n:03d}.dcm" for n in range(len(cts))])
    rois = [
        SyntheticROI(name, [c.points_mm for c in s.contours],
                     interpreted_type="EXTERNAL" if name == "BODY" else "ORGAN")
        for name, s in structures.items()
    ]  # fmt: skip
    rs = rtstruct_dataset_from_contours(rois, ct_datasets=cts, label="BENCH")
    write_datasets([rs], plan, ["rtstruct.dcm"])
    # dose grid: 2.5 mm, not aligned with the CT, covering the BODY with a margin
    origin = (-182.3, -122.9, Z0 - 3.7)
    n = (int(np.ceil((CT_SLICES * CT_SPACING + 8) / 2.5)), 100, 148)
    dose_grid = Grid(n, origin, (DOSE_SPACING_MM,) * 3)
    values = lin.on_grid(dose_grid).values_gy
    ds = rtdose_dataset(values, dose_grid, frame_of_reference_uid=cts[0].FrameOfReferenceUID,
                        study_uid=cts[0].StudyInstanceUID, patient_id="BENCH01", bits=32)  # fmt: skip
    write_datasets([ds], plan, ["rtdose.dcm"])
    (plan / "done").write_text("ok")
    return truth


def run_rtplan(work: Path) -> dict:
    """rtplan in this process: read, then one DVH and its metrics per structure."""
    from rtplan.dosefield import axial_field
    from rtplan.dvh import compute
    from rtplan.io import read_rtdose, read_rtstruct

    t, c = time.perf_counter(), time.process_time()
    ss = read_rtstruct(work / "plan" / "rtstruct.dcm")
    dose = read_rtdose(work / "plan" / "rtdose.dcm")
    field = axial_field(dose)
    out = {"read_s": time.perf_counter() - t, "read_cpu_s": time.process_time() - c}
    out["structures"] = {}
    for s in ss:
        t, c = time.perf_counter(), time.process_time()
        dvh = compute(s, dose, field=field)
        vals = {"volume_cc": dvh.volume_cc}
        for m in METRICS:
            vals[m] = dvh.metric(m)
        out["structures"][s.name] = {
            "time_s": time.perf_counter() - t,
            "cpu_s": time.process_time() - c,
            "values": vals,
        }
    out["peak_rss_mb"] = _peak_rss_mb()
    return out


def _peak_rss_mb() -> float:
    """Peak resident memory of this process (VmHWM; getrusage would include the parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


DICOMPYLER_RUNNER = textwrap.dedent(
    """
    import json, sys, time
    t, c = time.perf_counter(), time.process_time()
    import pydicom
    from dicompylercore import __version__, dicomparser, dvhcalc
    work, kw, metrics = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
    rtss = pydicom.dcmread(work + "/plan/rtstruct.dcm")
    rtdose = pydicom.dcmread(work + "/plan/rtdose.dcm")
    rois = dicomparser.DicomParser(rtss).GetStructures()
    out = {"version": __version__, "read_s": time.perf_counter() - t,
           "read_cpu_s": time.process_time() - c, "structures": {}}
    stats = {"Dmean": "mean", "Dmin": "min", "Dmax": "max"}
    for number, roi in rois.items():
        t, c = time.perf_counter(), time.process_time()
        try:
            dvh = dvhcalc.get_dvh(rtss, rtdose, number, **kw)
            vals = {"volume_cc": float(dvh.volume)}
            for m in metrics:
                if m in stats:
                    vals[m] = float(getattr(dvh, stats[m]))
                else:
                    vals[m] = float(dvh.statistic(m.replace("%", "")).value)
        except Exception as exc:
            vals = {"error": f"{type(exc).__name__}: {exc}"}
        out["structures"][roi["name"]] = {"time_s": time.perf_counter() - t,
                                          "cpu_s": time.process_time() - c, "values": vals}
    hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")]
    out["peak_rss_mb"] = int(hwm[0].split()[1]) / 1024 if hwm else float("nan")
    print(json.dumps(out))
    """
)


def ensure_dicompyler(work: Path) -> Path:
    """A virtual environment with dicompyler-core (pydicom < 3), created on first use."""
    venv = work / "venv_dicompyler"
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import dicompylercore, skimage, shapely"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", DICOMPYLER, "pydicom<3",
         "scikit-image", "shapely", "matplotlib"],
        check=True,
    )  # fmt: skip
    return python


def _one_core_env() -> dict:
    return dict(
        os.environ,
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        NUMEXPR_NUM_THREADS="1",
    )


def _run_pinned(cmd: list[str], cpu: int) -> dict:
    """Run ``cmd`` on CPU ``cpu`` only, one thread per library; its last stdout line (JSON)."""
    res = subprocess.run(cmd, capture_output=True, text=True, env=_one_core_env(),
                         preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))  # fmt: skip
    if res.returncode != 0:
        raise SystemExit(f"{cmd[1]} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def run_dicompyler(python: Path, work: Path, kwargs: dict, cpu: int) -> dict:
    script = work / "run_dicompyler.py"
    script.write_text(DICOMPYLER_RUNNER)
    return _run_pinned(
        [str(python), str(script), str(work), json.dumps(kwargs), json.dumps(METRICS)], cpu
    )


def _err(value, exact) -> str:
    if value is None or exact is None or not np.isfinite(value):
        return "   n/a"
    return f"{100 * (value - exact) / exact:+8.3f}"


def report(truth: dict, results: dict) -> None:
    tools = list(results)
    print("\nPer-structure CPU time (s) and ratio tool / rtplan (CPU)")
    head = f"{'structure':<20}{'volume cc':>10}" + "".join(f"{t:>15}" for t in tools)
    print(head + "".join(f"{'x ' + t:>17}" for t in tools[1:]))
    for name in truth:
        row = f"{name:<20}{truth[name]['volume_cc']:>10.2f}"
        cpu = {t: results[t]["structures"].get(name, {}).get("cpu_s", np.nan) for t in tools}
        row += "".join(f"{cpu[t]:>15.3f}" for t in tools)
        row += "".join(f"{cpu[t] / cpu['rtplan']:>17.1f}" for t in tools[1:])
        print(row)
    totals = {}
    for kind, key in (("wall", "time_s"), ("CPU", "cpu_s")):
        tot = {t: sum(v[key] for v in results[t]["structures"].values()) for t in tools}
        totals[kind] = tot
        print(f"{'TOTAL ' + kind:<30}" + "".join(f"{tot[t]:>15.2f}" for t in tools)
              + "".join(f"{tot[t] / tot['rtplan']:>17.1f}" for t in tools[1:]))  # fmt: skip
    for kind, key in (("wall", "read_s"), ("CPU", "read_cpu_s")):
        print(f"{'reading files, ' + kind:<30}"
              + "".join(f"{results[t][key]:>15.2f}" for t in tools))  # fmt: skip
    print(
        f"{'peak memory (MB)':<30}" + "".join(f"{results[t]['peak_rss_mb']:>15.0f}" for t in tools)
    )
    print(
        f"{'BODY, CPU':<30}"
        + "".join(f"{results[t]['structures']['BODY']['cpu_s']:>15.2f}" for t in tools)
    )

    print("\nSpeed targets (issue 4), CPU times")
    rt = totals["CPU"]["rtplan"]
    with_read = rt + results["rtplan"]["read_cpu_s"]
    wall = totals["wall"]["rtplan"] + results["rtplan"]["read_s"]
    ok = "met" if max(with_read, wall) < 10 else "NOT met"
    print(f"  all 30 DVHs on one core < 10 s: {rt:.2f} s CPU ({with_read:.2f} s with reading, "
          f"{wall:.2f} s wall with reading): {ok}")  # fmt: skip
    mem = results["rtplan"]["peak_rss_mb"]
    print(f"  peak memory < 2 GB: {mem:.0f} MB: {'met' if mem < 2048 else 'NOT met'}")
    for t, need in (("dcp default", 1.0), ("dcp interp", 20.0), ("dcp interp+ext", None)):
        if t not in results:
            continue
        r = totals["CPU"][t] / rt
        verdict = "" if need is None else (": met" if r >= need else ": NOT met")
        goal = "(not a target)" if need is None else f"(target >= {need:g}x)"
        print(f"  rtplan vs {t}: {r:.1f}x faster {goal}{verdict}")

    quantities = ["volume_cc", *METRICS]
    for t in tools:
        print(f"\nErrors of {t} against the exact DVH (%, value - exact)")
        print(
            f"{'structure':<20}"
            + "".join(f"{q.replace('volume_cc', 'Vol'):>9}" for q in quantities)
        )
        worst = dict.fromkeys(quantities, 0.0)
        fails = 0
        for name in truth:
            vals = results[t]["structures"][name]["values"]
            if "error" in vals:
                print(f"{name:<20} {vals['error'][:80]}")
                continue
            cells = []
            for q in quantities:
                exact = truth[name].get(q)
                cells.append(_err(vals.get(q), exact))
                if exact is not None and vals.get(q) is not None and np.isfinite(vals[q]):
                    e = abs(100 * (vals[q] - exact) / exact)
                    worst[q] = max(worst[q], e)
                    fails += e > 3.0
            print(f"{name:<20}" + "".join(f"{c:>9}" for c in cells))
        print(f"{'max |error|':<20}" + "".join(f"{worst[q]:>9.3f}" for q in quantities))
        print(f"  values beyond 3 %: {fails}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--work", default=str(HERE / "_work"), help="work folder (default: %(default)s)"
    )
    ap.add_argument("--skip-interpolated", action="store_true",
                    help="skip dicompyler-core with interpolation (slow)")  # fmt: skip
    ap.add_argument("--cpu", type=int, default=None,
                    help="CPU to pin every run to (default: the last one allowed)")  # fmt: skip
    ap.add_argument("--rtplan-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    work = Path(args.work).resolve()
    if args.rtplan_only:  # child process: clean memory accounting
        print(json.dumps(run_rtplan(work)))
        return 0
    cpu = max(os.sched_getaffinity(0)) if args.cpu is None else args.cpu
    t = time.perf_counter()
    truth = build(work)
    print(f"plan in {work / 'plan'} ({time.perf_counter() - t:.1f} s to build or check)")
    python = ensure_dicompyler(work)
    configs = {
        k: v
        for k, v in DICOMPYLER_CONFIGS.items()
        if k == "dcp default" or not args.skip_interpolated
    }
    print(f"every run pinned to CPU {cpu} of {os.cpu_count()}, one thread per library")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    results = {"rtplan": _run_pinned([sys.executable, __file__, "--work", str(work),
                                      "--rtplan-only"], cpu)}  # fmt: skip
    for label, kwargs in configs.items():
        results[label] = run_dicompyler(python, work, kwargs, cpu)
    print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    import numpy

    import rtplan

    print(f"rtplan {getattr(rtplan, '__version__', '?')} (numpy {numpy.__version__}); "
          f"dicompyler-core {results['dcp default'].get('version', '?')}")  # fmt: skip
    print("dicompyler-core settings (every argument not named is at its default):")
    for label, kwargs in configs.items():
        shown = "".join(f", {k}={v!r}" for k, v in kwargs.items())
        print(f"  {label:<15} dvhcalc.get_dvh(rtss, rtdose, roi{shown})")
    report(truth, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
