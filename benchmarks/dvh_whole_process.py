"""Benchmark: ``rtplan dvh`` as a whole process against a dicompyler-core process.

What a user waits for: start the interpreter, import, read the files, compute every
structure's DVH and its metrics, print.  Two synthetic plans, written by rtplan's synthetic
DICOM tools into a temporary directory (not kept):

* small: 5 structures (BODY and four solids), a 256 x 256 CT of 150 slices;
* large: 30 structures (BODY and 29 solids from 5 mm spheres to 12 cm cylinders, axial,
  lying and tilted; those of ``benchmarks/dvh_vs_dicompyler.py``), a 512 x 512 CT of 150
  slices;

each with a 2.5 mm RTDOSE (a linear dose) and an RTSTRUCT on the CT.  On the same files,
alternating, ``--repeat`` times:

* rtplan: ``rtplan dvh PLAN --json`` (the folder: discovery, reading, the DVH of every
  structure, the default metrics ``Dmean, Dmin, Dmax, D0.03cc, D98%, D95%, D50%, D2%``);
* dicompyler-core 0.5.6 (its own virtual environment with pydicom < 3, which it needs:
  ``benchmarks/_work/venv_dicompyler``, made on first use): a driver script that reads the
  RTSTRUCT and RTDOSE, runs ``dvhcalc.get_dvh`` with its defaults for every structure and
  computes the same metrics, printing JSON.

Wall time of each whole process; the median, the best, and the ratio dicompyler / rtplan of
the medians are printed with the load average (other work on the machine slows both), and
the median CPU time (user + system) of each.
Targets (issue 14): rtplan faster on the small plan, at least 5 times faster on the large.

Bytecode: both run with their modules' bytecode cached, as installed packages are (pip
compiles it at install): ``PYTHONDONTWRITEBYTECODE`` is removed from the processes'
environment and ``PYTHONPYCACHEPREFIX`` points into the temporary directory, so the
warm-up run of each writes it there (not into the source tree); a source checkout run
with ``PYTHONDONTWRITEBYTECODE=1`` would otherwise compile rtplan on every run (~0.05-0.1 s).

Run:  python benchmarks/dvh_whole_process.py [--repeat 5] [--profile]
(``--profile``: one rtplan run of each plan under pyinstrument, if installed.)
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dvh_vs_dicompyler as anchor  # noqa: E402  (the plan's solids, dicompyler's venv)

METRICS = ["Dmean", "Dmin", "Dmax", "D0.03cc", "D98%", "D95%", "D50%", "D2%"]
SMALL = ["BODY", "Sphere_30", "Cylinder_20x60", "Cone_15x40", "TiltCylinder_15x60"]

DRIVER = textwrap.dedent(
    """
    import json, sys
    import pydicom
    from dicompylercore import dicomparser, dvhcalc
    folder, metrics = sys.argv[1], json.loads(sys.argv[2])
    rtss = pydicom.dcmread(folder + "/rtstruct.dcm")
    rtdose = pydicom.dcmread(folder + "/rtdose.dcm")
    stats = {"Dmean": "mean", "Dmin": "min", "Dmax": "max"}
    out = {}
    for number, roi in dicomparser.DicomParser(rtss).GetStructures().items():
        dvh = dvhcalc.get_dvh(rtss, rtdose, number)
        vals = {"volume_cc": float(dvh.volume)}
        for m in metrics:
            if m in stats:
                vals[m] = float(getattr(dvh, stats[m]))
            else:
                vals[m] = float(dvh.statistic(m.replace("%", "")).value)
        out[roi["name"]] = vals
    print(json.dumps(out))
    """
)


def write_plan(folder: Path, names: list[str], ct_side: int) -> None:
    """CT (``ct_side`` squared pixels over 500 mm, the solids' slices), RTSTRUCT, RTDOSE."""
    from rtplan.grid import Grid
    from rtplan.testing.dvh_phantoms import LinearDose
    from rtplan.testing.synthetic import (
        SyntheticROI,
        ct_series_datasets,
        rtdose_dataset,
        rtstruct_dataset_from_contours,
        write_datasets,
    )

    structures = {k: v for k, v in anchor._structures().items() if k in names}
    slices, spacing, z0 = anchor.CT_SLICES, anchor.CT_SPACING, anchor.Z0
    pixel = 500.0 / ct_side
    half = 0.5 * (ct_side - 1) * pixel
    ct_grid = Grid((slices, ct_side, ct_side), (-half, -half, z0), (spacing, pixel, pixel))
    cts = ct_series_datasets(np.zeros(ct_grid.shape, dtype=np.int16), ct_grid,
                             patient_id="BENCH02", patient_name="Bench^Process")  # fmt: skip
    write_datasets(cts, folder / "CT", [f"ct{n:03d}.dcm" for n in range(len(cts))])
    rois = [
        SyntheticROI(name, [c.points_mm for c in s.contours],
                     interpreted_type="EXTERNAL" if name == "BODY" else "ORGAN")
        for name, s in structures.items()
    ]  # fmt: skip
    rs = rtstruct_dataset_from_contours(rois, ct_datasets=cts, label="BENCH")
    write_datasets([rs], folder, ["rtstruct.dcm"])
    n = (int(np.ceil((slices * spacing + 8) / 2.5)), 100, 148)
    dose_grid = Grid(n, (-182.3, -122.9, z0 - 3.7), (anchor.DOSE_SPACING_MM,) * 3)
    values = LinearDose(**anchor.LINEAR).on_grid(dose_grid).values_gy
    ds = rtdose_dataset(values, dose_grid, frame_of_reference_uid=cts[0].FrameOfReferenceUID,
                        study_uid=cts[0].StudyInstanceUID, patient_id="BENCH02", bits=32)  # fmt: skip
    write_datasets([ds], folder, ["rtdose.dcm"])


def rtplan_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("rtplan")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "rtplan.cli"]


def timed(cmd: list[str], env: dict) -> tuple[float, float]:
    """(wall s, CPU s: user + system) of one run of ``cmd``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    res = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    elapsed = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode not in (0, 1):  # 1: a structure could not be judged (still timed)
        raise SystemExit(f"{' '.join(cmd[:3])} exited {res.returncode}: {res.stderr[-2000:]}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return elapsed, cpu


def load() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg()) + " (1, 5, 15 min)"


def compare(label: str, folder: Path, dcp_python: Path, driver: Path, repeat: int, env) -> None:
    import json

    ours = rtplan_cmd() + ["dvh", str(folder), "--json"]
    theirs = [str(dcp_python), str(driver), str(folder), json.dumps(METRICS)]
    timed(ours, env), timed(theirs, env)  # warm the file-system cache and the bytecode
    runs = {"ours": [], "theirs": []}
    for _ in range(repeat):
        runs["ours"].append(timed(ours, env))
        runs["theirs"].append(timed(theirs, env))
    print(f"\n{label}; load average {load()}")
    wall = {}
    for who, name in (("ours", "rtplan dvh --json"), ("theirs", "dicompyler-core driver")):
        w, c = zip(*runs[who], strict=True)
        wall[who] = statistics.median(w)
        print(f"  {name:24s} median {wall[who]:6.2f} s  best {min(w):6.2f} s  "
              f"CPU median {statistics.median(c):6.2f} s")  # fmt: skip
    print(f"  ratio dicompyler / rtplan (medians): {wall['theirs'] / wall['ours']:.2f}")


def profile(folder: Path) -> None:
    cmd = [sys.executable, "-m", "pyinstrument", "-m", "rtplan.cli", "dvh", str(folder), "--json"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    print(res.stderr[-6000:] if res.stderr else res.stdout[-6000:])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args(argv)
    work = anchor.HERE / "_work"
    dcp_python = anchor.ensure_dicompyler(work)
    print(f"machine: {os.cpu_count()} CPUs, load average {load()}")
    print(f"rtplan: {' '.join(rtplan_cmd())}; dicompyler-core 0.5.6 ({dcp_python})")
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        driver = Path(tmp) / "dicompyler_dvh.py"
        driver.write_text(DRIVER)
        plans = {
            "small plan: 5 structures, CT 150 x 256 x 256": (SMALL, 256),
            "large plan: 30 structures, CT 150 x 512 x 512": (None, 512),
        }
        for i, (label, (names, side)) in enumerate(plans.items()):
            folder = Path(tmp) / f"plan{i}"
            write_plan(folder, names or list(anchor._structures()), side)
            if args.profile:
                profile(folder)
            compare(label, folder, dcp_python, driver, args.repeat, env)
    print("\ntargets: faster than dicompyler-core on the small plan, >= 5x on the large one")
    return 0


if __name__ == "__main__":
    sys.exit(main())
