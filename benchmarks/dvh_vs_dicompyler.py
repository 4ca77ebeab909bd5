"""Benchmark: rtplan's DVH engine against dicompyler-core on one realistic plan.

One command::

    python benchmarks/dvh_vs_dicompyler.py            # builds, installs, runs, prints

What it does
------------
1. Builds a plan in ``benchmarks/_work/plan`` (gitignored): a 512 x 512 CT of 150 slices
   (0.977 mm pixels, 2.5 mm slices), an RTSTRUCT with 30 structures from 0.5 cc spheres to
   a 22 L BODY (spheres, cylinders and cones, axial, lying along y and tilted, as in
   Nelms et al. 2015), and a 2.5 mm RTDOSE holding a linear dose (32-bit), so that every
   structure has an exact DVH (:class:`rtplan.dvh.phantoms.SlabTruth`, slab convention).
2. Installs dicompyler-core in its own virtual environment (``benchmarks/_work/venv_dicompyler``,
   with pydicom < 3, which the released dicompyler-core needs), as a user would.
3. Runs, each in its own process on the same files: rtplan (``rtplan.dvh.compute`` and
   metrics; peak memory from ``getrusage``), dicompyler-core ``get_dvh`` with its defaults,
   and dicompyler-core with ``interpolation_resolution`` = dose spacing / 4 (and
   ``use_structure_extents=True``, which it needs to be usable at that resolution).
4. Prints per-structure times, totals and ratios, and each tool's errors against the
   exact values (volume, Dmean, Dmin, Dmax, D99%, D95%, D50%, D5%, D1%, D0.03cc, D2cc).

Options: ``--skip-interpolated`` (the slow dicompyler run), ``--work DIR``.
Timings are wall times (and process CPU times, which a busy machine disturbs less) of one
process per tool, BLAS threads limited to one.
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


def _shapes():
    """The 29 analytic solids (name -> Shape); BODY is added separately."""
    from rtplan.dvh.phantoms import Shape

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
    from rtplan.dvh.phantoms import shape_structure
    from rtplan.structure import Contour, Structure

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
    from rtplan.dvh.phantoms import LinearDose, SlabTruth
    from rtplan.grid import Grid
    from rtplan.synthetic import (
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
    from rtplan.dvh import compute
    from rtplan.dvh.dosefield import axial_field
    from rtplan.io import read_rtdose, read_rtstruct

    t0 = time.perf_counter()
    ss = read_rtstruct(work / "plan" / "rtstruct.dcm")
    dose = read_rtdose(work / "plan" / "rtdose.dcm")
    field = axial_field(dose)
    read_s = time.perf_counter() - t0
    out = {"read_s": read_s, "structures": {}}
    for s in ss:
        t, c = time.perf_counter(), time.process_time()
        dvh = compute(s, dose, field=field)
        vals = {"volume_cc": dvh.total_volume_cc}
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
    import pydicom
    from dicompylercore import dicomparser, dvhcalc
    work, resolution, metrics = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    rtss = pydicom.dcmread(work + "/plan/rtstruct.dcm")
    rtdose = pydicom.dcmread(work + "/plan/rtdose.dcm")
    rois = dicomparser.DicomParser(rtss).GetStructures()
    kw = {}
    if resolution != "none":
        kw = dict(interpolation_resolution=float(resolution), use_structure_extents=True)
    out = {"structures": {}}
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
        [str(python), "-m", "pip", "install", "-q", "dicompyler-core", "pydicom<3",
         "scikit-image", "shapely", "matplotlib"],
        check=True,
    )  # fmt: skip
    return python


def run_dicompyler(python: Path, work: Path, resolution: str) -> dict:
    script = work / "run_dicompyler.py"
    script.write_text(DICOMPYLER_RUNNER)
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    res = subprocess.run([str(python), str(script), str(work), resolution, json.dumps(METRICS)],
                         capture_output=True, text=True, env=env)  # fmt: skip
    if res.returncode != 0:
        raise SystemExit(f"dicompyler-core run failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _err(value, exact) -> str:
    if value is None or exact is None or not np.isfinite(value):
        return "   n/a"
    return f"{100 * (value - exact) / exact:+6.2f}"


def report(truth: dict, results: dict) -> None:
    tools = list(results)
    print("\nPer-structure DVH time (s) and ratio to rtplan")
    head = f"{'structure':<20}{'volume cc':>11}" + "".join(f"{t:>16}" for t in tools)
    print(head + "".join(f"{'x ' + t:>18}" for t in tools[1:]))
    totals = dict.fromkeys(tools, 0.0)
    for name in truth:
        row = f"{name:<20}{truth[name]['volume_cc']:>11.3f}"
        for t in tools:
            s = results[t]["structures"].get(name, {})
            totals[t] += s.get("time_s", 0.0)
            row += f"{s.get('time_s', float('nan')):>16.3f}"
        base = results[tools[0]]["structures"][name]["time_s"]
        for t in tools[1:]:
            row += f"{results[t]['structures'][name]['time_s'] / base:>18.1f}"
        print(row)
    print(f"{'TOTAL':<31}" + "".join(f"{totals[t]:>16.2f}" for t in tools)
          + "".join(f"{totals[t] / totals[tools[0]]:>18.1f}" for t in tools[1:]))  # fmt: skip
    cpu = {t: sum(v.get("cpu_s", 0.0) for v in results[t]["structures"].values()) for t in tools}
    print(f"{'TOTAL CPU':<31}" + "".join(f"{cpu[t]:>16.2f}" for t in tools)
          + "".join(f"{cpu[t] / cpu[tools[0]]:>18.1f}" for t in tools[1:]))  # fmt: skip
    for t in tools:
        extra = f", reading {results[t]['read_s']:.2f} s" if "read_s" in results[t] else ""
        print(f"  {t}: peak memory {results[t]['peak_rss_mb']:.0f} MB{extra}")

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
        print(f"{'max |error|':<20}" + "".join(f"{worst[q]:>9.2f}" for q in quantities))
        print(f"  values beyond 3 %: {fails}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--work", default=str(HERE / "_work"), help="work folder (default: %(default)s)"
    )
    ap.add_argument("--skip-interpolated", action="store_true",
                    help="skip dicompyler-core with interpolation (slow)")  # fmt: skip
    ap.add_argument("--rtplan-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    work = Path(args.work).resolve()
    if args.rtplan_only:  # child process: clean memory accounting
        print(json.dumps(run_rtplan(work)))
        return 0
    t = time.perf_counter()
    truth = build(work)
    print(f"plan in {work / 'plan'} ({time.perf_counter() - t:.1f} s to build or check)")
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    res = subprocess.run([sys.executable, __file__, "--work", str(work), "--rtplan-only"],
                         capture_output=True, text=True, env=env)  # fmt: skip
    if res.returncode != 0:
        raise SystemExit(res.stderr[-3000:])
    results = {"rtplan": json.loads(res.stdout.strip().splitlines()[-1])}
    python = ensure_dicompyler(work)
    results["dicompyler"] = run_dicompyler(python, work, "none")
    if not args.skip_interpolated:
        results["dicompyler_interp"] = run_dicompyler(python, work, str(DOSE_SPACING_MM / 4))
    report(truth, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
