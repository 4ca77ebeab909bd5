"""Benchmark: start-up of every ``rtplan`` command against ``python -c "import numpy"``.

Each command is a new process, timed wall-clock from start to exit, the runs of all commands
alternating (round-robin), ``--repeat`` rounds; the median and the best of each are printed
with the ratio of the median to the anchor's median.  Target (issue 14): ``rtplan --help``,
``--version`` and ``rtplan CMD --help`` at most 1.5 times ``import numpy``.

``--volumes`` also times the first ``rtplan volumes`` after a fresh installation (an empty
kernel cache: ``NUMBA_CACHE_DIR`` pointing to a new directory, so numba compiles the margin
kernels) against a warm run with that cache right after it (target: at most 3 s more), in
pairs, on the bundled ``sample_dicom/extremity_01`` with the ``extremity-preop`` recipe; the
CPU time of each run is printed too (less sensitive to the load than wall time).

The load average is printed: other work on the machine slows every process.

Run:  python benchmarks/startup.py [--repeat 7] [--volumes]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ["info", "dvh", "check", "agree", "expand", "volumes"]


def rtplan_cmd() -> list[str]:
    """The ``rtplan`` console script beside this interpreter (as a user runs it)."""
    exe = Path(sys.executable).with_name("rtplan")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "rtplan.cli"]


def wall_s(cmd: list[str], env=None) -> float:
    t = time.perf_counter()
    res = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    elapsed = time.perf_counter() - t
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {res.returncode}: {res.stderr.decode()[-2000:]}")
    return elapsed


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f} (1, 5, 15 min)"


def startup(repeat: int) -> None:
    rt = rtplan_cmd()
    cases = {'python -c "import numpy"': [sys.executable, "-c", "import numpy"]}
    cases["rtplan --help"] = rt + ["--help"]
    cases["rtplan --version"] = rt + ["--version"]
    for name in COMMANDS:
        cases[f"rtplan {name} --help"] = rt + [name, "--help"]
    for cmd in cases.values():  # warm the file-system cache once
        wall_s(cmd)
    times = {k: [] for k in cases}
    for _ in range(repeat):
        for k, cmd in cases.items():
            times[k].append(wall_s(cmd))
    anchor = statistics.median(times['python -c "import numpy"'])
    print(f"start-up, {repeat} alternating rounds; wall time of the whole process")
    print(f"{'command':30s} {'median (s)':>10s} {'best (s)':>9s} {'median / import numpy':>22s}")
    worst = 0.0
    for k, ts in times.items():
        ratio = statistics.median(ts) / anchor
        if k.startswith("rtplan"):
            worst = max(worst, ratio)
        print(f"{k:30s} {statistics.median(ts):10.3f} {min(ts):9.3f} {ratio:22.2f}")
    verdict = "met" if worst <= 1.5 else "NOT met"
    print(f"largest ratio {worst:.2f} (target <= 1.5: {verdict})")


def cpu_wall_s(cmd: list[str], env=None) -> tuple[float, float]:
    """Wall time and CPU time (user + system, of the process and its children) of ``cmd``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = wall_s(cmd, env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def volumes_first_run(repeat: int) -> None:
    rt = rtplan_cmd()
    firsts, warms = [], []
    for _ in range(repeat):  # pairs: a first run on an empty cache, then a warm run
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out"
            cmd = rt + ["volumes", str(ROOT / "sample_dicom" / "extremity_01"), "--protocol",
                        "extremity-preop", "--out", str(out)]  # fmt: skip
            env = dict(os.environ, NUMBA_CACHE_DIR=str(Path(tmp) / "kernels"))
            firsts.append(cpu_wall_s(cmd, env))
            shutil.rmtree(out, ignore_errors=True)
            warms.append(cpu_wall_s(cmd, env))
    extra = [f[0] - w[0] for f, w in zip(firsts, warms, strict=True)]
    med = statistics.median
    verdict = "met" if med(extra) <= 3.0 else "NOT met"
    print("\nrtplan volumes sample_dicom/extremity_01 --protocol extremity-preop")
    print(f"{repeat} pairs: first run on an empty kernel cache (compiles), then a warm run")
    print(
        f"first runs: wall median {med([f[0] for f in firsts]):.2f} s (best "
        f"{min(f[0] for f in firsts):.2f}), CPU median {med([f[1] for f in firsts]):.2f} s"
    )
    print(
        f"warm runs:  wall median {med([w[0] for w in warms]):.2f} s (best "
        f"{min(w[0] for w in warms):.2f}), CPU median {med([w[1] for w in warms]):.2f} s"
    )
    print(
        f"first - warm per pair: {', '.join(f'{e:.2f}' for e in extra)} s; median "
        f"{med(extra):.2f} s (target <= 3 s: {verdict}); CPU first - warm median "
        f"{med([f[1] - w[1] for f, w in zip(firsts, warms, strict=True)]):.2f} s"
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--volumes", action="store_true", help="also time the first rtplan volumes")
    args = ap.parse_args(argv)
    print(f"machine: {os.cpu_count()} CPUs, load average {load()}; {' '.join(rtplan_cmd())}")
    startup(args.repeat)
    if args.volumes:
        volumes_first_run(max(3, args.repeat))
    print(f"load average at the end: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
