"""Benchmark: cohort runs at scale (``agree``, ``dvh``, ``check``), wall time and peak memory.

Cohorts are generated in a temporary folder with the repository's synthetic tools:

* agree: N patients x 3 observers (one RTSTRUCT each) x 5 structures (the RPS set of
  :mod:`rtplan.testing.agreement_phantoms` scaled to 40 %, perturbed per observer), no CT:
  contour-plane grid with 1 mm pixels;
* dvh: N copies of :func:`rtplan.testing.synthetic.write_phantom_patient` (CT 10 x 32 x 32,
  RTSTRUCT, RTPLAN, RTDOSE), each with its own PatientID;
* check: N small RPS-like patients (the ``write_rps_patient`` of tests/test_check_cli.py,
  CT 16 x 48 x 64) checked against ``rps-preop``.

Each run happens in a fresh Python process (so its peak memory is its own): in-process
(1 worker), a local pool of 2 workers, and a Dask LocalCluster of 2 worker processes.
Peak memory = the largest sum of resident memory of the run's process and all its
descendants (pool workers, fork server, Dask nannies and workers), sampled every 0.2 s
with psutil.  Wall time includes starting the pool or the cluster.  The result rows of every
configuration are hashed and must be identical.

Run:  python benchmarks/cohort_scale.py [--patients 100] [--only agree,dvh,check]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODES = ("1 worker", "2 workers", "Dask LocalCluster (2)")


def make_agree(folder: Path, n: int) -> None:
    from rtplan.testing.agreement_phantoms import (
        RPS_STRUCTURES,
        observer_structures,
        write_observer_patient,
    )

    small = [
        replace(s, centre_mm=tuple(0.4 * c for c in s.centre_mm),
                radii_mm=tuple(0.4 * r for r in s.radii_mm))
        for s in RPS_STRUCTURES
    ]  # fmt: skip
    planes = [float(z) for z in range(-60, 61, 3)]
    for i in range(n):
        observers = observer_structures(small, ["obs1", "obs2", "obs3"], seed=i, shift_mm=1.0)
        write_observer_patient(folder / f"P{i:03d}", f"P{i:03d}", observers, plane_z_mm=planes)


def make_dvh(folder: Path, n: int) -> None:
    from rtplan.testing.synthetic import write_phantom_patient

    for i in range(n):
        write_phantom_patient(folder / f"P{i:03d}", patient_id=f"PH{i:03d}")


def make_check(folder: Path, n: int) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from test_check_cli import write_rps_patient

    for i in range(n):
        write_rps_patient(folder / f"P{i:03d}", f"RPS{i:03d}", bowel_gy=30.0 + (i % 20))


def run_one(part: str, folder: str, mode: str, out: str) -> None:
    """One configuration in this process; prints a JSON line (wall s, rows hash)."""
    import threading

    import psutil

    peak = [0.0]
    done = threading.Event()

    def sample():  # resident memory of this process and all its descendants, every 0.2 s
        me = psutil.Process()
        while not done.wait(0.2):
            total = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            peak[0] = max(peak[0], total / 2**20)

    threading.Thread(target=sample, daemon=True).start()
    jobs, cluster = (1, None) if mode == MODES[0] else (2, None)
    if mode == MODES[2]:
        import distributed

        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True)
    scheduler = cluster.scheduler_address if cluster else None
    start = time.perf_counter()
    if part == "agree":
        from rtplan.report.agreement import to_csv
        from rtplan.workflows.agree import AgreementOptions, columns, run_cohort

        result = run_cohort([folder], AgreementOptions(), jobs=jobs, scheduler=scheduler)
        assert not result.failures, result.failures[:2]
        text = to_csv(result.rows, columns())
        n_rows = len(result.rows)
    elif part == "dvh":
        from rtplan.workflows.dvh_cohort import dvh_cohort

        result = dvh_cohort([folder], csv_path=out, curves_path=out + ".curves",
                            jobs=jobs, scheduler=scheduler)  # fmt: skip
        assert not result.failures, result.failures[:2]
        text = Path(out).read_text() + Path(out + ".curves").read_text()
        n_rows = result.rows
    else:
        from rtplan.protocols import load_protocol
        from rtplan.report import to_csv
        from rtplan.workflows.check import check_folder

        protocol = load_protocol("rps-preop")
        outcomes = check_folder(folder, protocol, jobs=jobs, scheduler=scheduler)
        import csv

        table = list(csv.DictReader(to_csv(outcomes, protocol).splitlines()))
        for row in table:  # drop the time of the check (differs between any two runs)
            row.pop("checked_at")
        text = json.dumps(table)
        n_rows = len(table)
    wall = time.perf_counter() - start
    done.set()
    if cluster is not None:
        cluster.close()
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    print(json.dumps({"wall_s": wall, "peak_mb": peak[0], "rows": n_rows, "digest": digest}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--patients", type=int, default=100)
    ap.add_argument("--only", default="agree,dvh,check")
    ap.add_argument("--_run", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._run:
        run_one(*args._run)
        return
    print(f"{'part':<6} {'configuration':<22} {'patients':>8} {'rows':>8} {'wall s':>8} "
          f"{'peak MB':>8}  rows hash")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for part in args.only.split(","):
            folder = Path(tmp) / part
            t = time.perf_counter()
            {"agree": make_agree, "dvh": make_dvh, "check": make_check}[part](folder, args.patients)
            print(f"# {part}: cohort written in {time.perf_counter() - t:.0f} s", flush=True)
            digests = set()
            for mode in MODES:
                proc = subprocess.run(
                    [sys.executable, __file__, "--_run", part, str(folder), mode,
                     str(Path(tmp) / f"{part}.csv")],
                    capture_output=True, text=True, cwd=ROOT, check=False,
                )  # fmt: skip
                if proc.returncode != 0:
                    print(f"{part:<6} {mode:<22} FAILED: {proc.stderr.strip().splitlines()[-1:]}")
                    continue
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                digests.add(r["digest"])
                print(f"{part:<6} {mode:<22} {args.patients:>8} {r['rows']:>8} {r['wall_s']:>8.1f} "
                      f"{r['peak_mb']:>8.0f}  {r['digest']}", flush=True)  # fmt: skip
            print(f"# {part}: rows identical in every configuration: {len(digests) == 1}")


if __name__ == "__main__":
    main()
