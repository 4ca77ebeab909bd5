"""Check: the wheel builds, installs into a clean virtual environment (runtime only), and a
read-only installation works for a user with no writable home.

Steps, all in a new temporary directory (removed at the end unless ``--keep``):

1. ``python -m build --wheel`` on this checkout (the ``build`` package must be installed:
   ``pip install build``);
2. a new virtual environment, ``pip install <the wheel>`` (runtime dependencies only), and
   its size on disk (MB, with the largest packages);
3. the bundled ``sample_dicom/`` copied to a folder everybody can read, and an output folder
   owned by the unprivileged user;
4. every command run by that user (``--user``, default ``nobody``; this script must run as
   root, which owns the installation) with ``HOME=/nonexistent`` and nothing else from the
   caller's environment: ``--help``, ``--version``, ``info``, ``dvh``, ``check`` (JUnit and
   HTML reports), ``expand``, ``volumes`` (PNG overlays: matplotlib without a home) and
   ``agree`` (CSV and plots), each with its exit code, wall time and the last line of its
   standard error, next to the exit code of the same command run by the owner (the user's
   ``TMPDIR`` is a new folder of theirs: the kernels are compiled by the first of ``expand``
   and ``volumes``); then ``rtplan volumes`` once more with no usable kernel cache (no home,
   and the user's ``rtplan-numba-<uid>`` in ``TMPDIR`` owned by root, which rtplan refuses):
   the kernels are compiled in memory;
5. that nothing was written into the installation.

The check fails (exit 1) when a command's exit code differs from the owner's, a command
exits 2 or 3, or the installation changed.

Run (as root):  python benchmarks/install_check.py [--user nobody] [--keep]
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def size_mb(path: Path) -> float:
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            p = Path(dirpath) / f
            if not p.is_symlink():
                total += p.stat().st_size
    return total / 1e6


def snapshot(path: Path) -> dict:
    """Every file of ``path`` with its size and modification time."""
    out = {}
    for dirpath, _, files in os.walk(path):
        for f in files:
            st = (Path(dirpath) / f).lstat()
            out[str(Path(dirpath) / f)] = (st.st_size, st.st_mtime_ns)
    return out


def commands(data: Path, out: Path) -> list[tuple[str, list[str]]]:
    rps, ext = str(data / "rps_01"), str(data / "extremity_01")
    return [
        ("--help", ["--help"]),
        ("--version", ["--version"]),
        ("info", ["info", rps]),
        ("dvh", ["dvh", rps, "--json"]),
        ("check", ["check", rps, "--protocol", "rps-preop", "--junit", str(out / "check.xml"),
                   "--html", str(out / "check.html")]),
        ("expand", ["expand", ext, "--structure", "GTV", "--name", "CTV2", "--margin",
                    "radial=15,longitudinal=35", "--avoid", "Femur_R", "--within", "BODY:-3",
                    "--out", str(out / "expand")]),
        ("volumes", ["volumes", ext, "--protocol", "extremity-preop", "--out",
                     str(out / "volumes"), "--png", str(out / "volumes")]),
        ("agree", ["agree", ext, "--csv", str(out / "agree.csv"), "--plots",
                   str(out / "plots")]),
    ]  # fmt: skip


def run(cmd: list[str], env: dict, cwd: Path, user: str | None) -> tuple[int, float, str]:
    if user is not None:
        ent = pwd.getpwnam(user)
        prefix = ["setpriv", f"--reuid={ent.pw_uid}", f"--regid={ent.pw_gid}", "--clear-groups"]
        cmd = prefix + cmd
    t = time.perf_counter()
    res = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    return res.returncode, time.perf_counter() - t, lines[-1] if lines else ""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--user", default="nobody", help="the unprivileged user (default nobody)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("install_check: run as root (root owns the installation)", file=sys.stderr)
        return 2
    ent = pwd.getpwnam(args.user)
    print(f"load average {', '.join(f'{v:.2f}' for v in os.getloadavg())} (1, 5, 15 min)")
    # a PYTHONPATH (a checkout's) would make pip see rtplan as installed and skip the wheel
    os.environ.pop("PYTHONPATH", None)
    tmp = Path(tempfile.mkdtemp(prefix="rtplan-install-"))
    try:
        tmp.chmod(0o755)
        wheels = tmp / "dist"
        subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(wheels),
                        str(ROOT)], check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        wheel = next(wheels.glob("rtplan-*.whl"))
        print(f"built {wheel.name} ({wheel.stat().st_size / 1e3:.0f} kB)")
        venv = tmp / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], check=True)
        site = next((venv / "lib").glob("python*/site-packages"))
        sizes = sorted(((size_mb(p), p.name) for p in site.iterdir() if p.is_dir()),
                       reverse=True)  # fmt: skip
        print(f"runtime venv {size_mb(venv):.0f} MB; largest: "
              + ", ".join(f"{name} {mb:.0f}" for mb, name in sizes[:6]))  # fmt: skip
        data, out = tmp / "data", tmp / "out"
        shutil.copytree(ROOT / "sample_dicom", data)
        for d, _, files in os.walk(tmp):
            os.chmod(d, 0o755)
            for f in files:
                p = Path(d) / f
                p.chmod(p.stat().st_mode & ~0o022 | 0o444)
        out.mkdir()
        os.chown(out, ent.pw_uid, ent.pw_gid)
        before = snapshot(venv)
        path = f"{venv / 'bin'}:/usr/bin:/bin"
        user_tmp = tmp / "user-tmp"  # the user's temporary directory: nothing left in /tmp
        user_tmp.mkdir()
        os.chown(user_tmp, ent.pw_uid, ent.pw_gid)
        user_env = {"HOME": "/nonexistent", "PATH": path, "LANG": "C.UTF-8",
                    "TMPDIR": str(user_tmp)}  # fmt: skip
        owner_out = tmp / "owner"
        owner_out.mkdir()
        owner_env = dict(os.environ, PATH=path)
        rt = str(venv / "bin" / "rtplan")
        failed = False
        print(
            f"\nas {args.user} (uid {ent.pw_uid}), HOME=/nonexistent, PATH=venv/bin:/usr/bin:/bin"
        )
        print(f"{'command':10s} {'exit':>4s} {'owner':>5s} {'wall (s)':>8s}  last stderr line")
        for name, cmd in commands(data, out):
            code, wall, last = run([rt] + cmd, user_env, out, args.user)
            owner_cmd = [str(owner_out / c.removeprefix(str(out) + "/")) if c.startswith(
                str(out)) else c for c in cmd]  # fmt: skip
            owner_code, _, _ = run([rt] + owner_cmd, owner_env, owner_out, None)
            bad = code != owner_code or code >= 2
            failed |= bad
            print(f"{name:10s} {code:4d} {owner_code:5d} {wall:8.2f}  {last[:90]}"
                  + ("   <- FAILED" if bad else ""))  # fmt: skip
        # no cache possible: the user's kernel cache directory belongs to somebody else
        # (refused: cache files are pickles) and HOME does not exist
        other_tmp = tmp / "user-tmp-2"
        other_tmp.mkdir()
        os.chown(other_tmp, ent.pw_uid, ent.pw_gid)
        (other_tmp / f"rtplan-numba-{ent.pw_uid}").mkdir(mode=0o755)  # root's
        env = dict(user_env, TMPDIR=str(other_tmp))
        shutil.rmtree(out / "volumes", ignore_errors=True)
        code, wall, last = run([rt] + commands(data, out)[6][1], env, out, args.user)
        written = any((other_tmp / f"rtplan-numba-{ent.pw_uid}").iterdir())
        failed |= code != 0 or written
        print(f"{'volumes':10s} {code:4d} {'':5s} {wall:8.2f}  (no usable kernel cache: "
              f"compiled in memory; cache files written: {written}) {last[:40]}")  # fmt: skip
        changed = sorted(set(snapshot(venv).items()) ^ set(before.items()))
        print(
            f"\ninstallation unchanged: {not changed}"
            + (f" ({len(changed)} files differ, e.g. {changed[0][0]})" if changed else "")
        )
        failed |= bool(changed)
        print(f"result: {'FAILED' if failed else 'every command works'}")
        return 1 if failed else 0
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
