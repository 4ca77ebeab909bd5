"""The compiled kernels (numba) can neither crash an installation nor hide behind the JIT.

Truths checked: the cache directory is the first usable one in the documented order
(``NUMBA_CACHE_DIR``, the user cache directory, a private temporary directory), unusable ones
are skipped, a temporary directory others can write to is refused, with no usable
directory the kernels still run (compiled in memory), the chosen directory really receives
the cache and a second process loads from it, the kernels' own tests pass as plain Python
(``NUMBA_DISABLE_JIT=1``, on small inputs), and the separate build process of the settle
kernel (rtplan.volumes.kernel_build) fills the cache the margins then load, leaves the
results unchanged, starts only where it can help, and neither prints nor outlives its
command when it fails, hangs, the command fails or its parent is killed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from rtplan import caches
from rtplan.volumes import compiled, kernel_build

ROOT = Path(__file__).resolve().parents[1]


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def test_candidates_in_documented_order(monkeypatch, tmp_path):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    paths = [p for p, _ in caches.candidates("numba", "NUMBA_CACHE_DIR")]
    assert paths[0] == tmp_path / "numba"
    if sys.platform.startswith("linux"):
        assert paths[1] == tmp_path / "xdg" / "rtplan" / "numba"
    assert paths[-1].parent == tmp_path / "tmp" and paths[-1].name.startswith("rtplan-numba-")
    assert [private for _, private in caches.candidates("numba", "NUMBA_CACHE_DIR")] == [
        False,
        False,
        True,
    ]


def _block_home_and_setting(monkeypatch, tmp_path) -> Path:
    """``NUMBA_CACHE_DIR``, ``XDG_CACHE_HOME`` and ``HOME`` below a regular file (unusable,
    even for root); returns that file."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(blocker / "numba"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker / "xdg"))
    monkeypatch.setenv("HOME", str(blocker))
    return blocker


def test_unusable_directories_are_skipped(monkeypatch, tmp_path):
    """A directory that cannot be created (its parent is a regular file: true even for
    root) is skipped; the private temporary directory is then chosen."""
    blocker = _block_home_and_setting(monkeypatch, tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    chosen = compiled.cache_dir()
    assert chosen is not None and chosen.parent == tmp_path / "tmp"
    if hasattr(os, "getuid"):
        assert chosen.stat().st_mode & 0o077 == 0  # created closed to group and others
    monkeypatch.setattr(tempfile, "tempdir", str(blocker / "tmp"))
    assert compiled.cache_dir() is None


def test_first_usable_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    assert compiled.cache_dir() == tmp_path / "numba"
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert compiled.cache_dir() == tmp_path / "xdg" / "rtplan" / "numba"


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_shared_temporary_directory_is_refused(tmp_path):
    """Cache files are pickles: a private directory others can write to is never used."""
    shared = tmp_path / "rtplan-numba-shared"
    shared.mkdir()
    shared.chmod(0o777)
    assert not caches.usable(shared, private=True)
    assert caches.usable(shared, private=False)
    shared.chmod(0o700)
    assert caches.usable(shared, private=True)


_RUN_KERNEL = """
import json, sys, tempfile
if len(sys.argv) > 1:
    tempfile.tempdir = sys.argv[1]
from rtplan import caches
caches.configure_matplotlib()  # as the command line does (matplotlib needs a directory too)
import numpy as np
from rtplan import caches
from rtplan.volumes import compiled
from rtplan.volumes.nearest_seed import _envelope_lines, nearest_seed
seeds = np.zeros((1, 1, 7), bool); seeds[0, 0, 3] = True
d, near = nearest_seed(seeds, (1, 1, 1), (1, 1, 2), (1, 1, 1), reach=1.5)
print(json.dumps({"dir": None if compiled._CACHE_DIR is None else str(compiled._CACHE_DIR),
                  "d": d[0, 0].tolist(), "hits": len(_envelope_lines.stats.cache_hits)}))
"""


def _run_kernel(env, *args):
    out = subprocess.run(
        [sys.executable, "-c", _RUN_KERNEL, *args], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


def test_kernel_runs_without_any_cache_directory(tmp_path):
    """No writable directory at all (HOME, XDG and the temporary directory unusable):
    the kernel is compiled in memory and gives the closed-form distances
    (|offset| / semi-axis: 1 mm right of the seed with a 2 mm semi-axis is 0.5)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = _env(HOME=str(blocker), XDG_CACHE_HOME=str(blocker / "xdg"))
    got = _run_kernel(env, str(blocker / "tmp"))
    assert got["dir"] is None
    inf = float("inf")
    assert got["d"] == [inf, inf, 1.0, 0.0, 0.5, 1.0, 1.5]


def test_cache_is_written_to_the_chosen_directory_and_reused(tmp_path):
    env = _env(NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    first = _run_kernel(env)
    assert first["dir"] == str(tmp_path / "cache")
    assert list((tmp_path / "cache").rglob("nearest_seed._envelope_lines-*.nbi"))
    second = _run_kernel(env)
    assert second["hits"] == 1  # loaded from the cache, not compiled again
    assert second["d"] == first["d"]


_BACKGROUND = """
import json, sys
import numpy as np
from rtplan.volumes import margins, nearest_seed, refine
m = np.zeros((14, 18, 20), np.float32); m[4:9, 6:12, 5:14] = 1.0; m[9, 8, 9] = 0.4
if sys.argv[1] == "background":
    margins.compile_in_background()  # the margin below runs while the thread compiles
out = margins.expand_mask(m, "right=4,left=2,anterior=3,posterior=5,superior=4,inferior=2",
                          spacing_mm=(2.0, 1.0, 1.0))
print(json.dumps({"inside": np.flatnonzero(out).tolist(),
                  "signatures": [len(refine._settle_kernel.signatures),
                                 len(nearest_seed._envelope_lines.signatures)]}))
"""


def test_background_compilation_changes_nothing(tmp_path):
    """``compile_in_background`` (rtplan expand / volumes) compiles the kernels for the
    argument types of every margin: a margin run while it compiles waits for it and
    compiles nothing else (one signature each) and gives the voxels of a process without
    it (here with an empty kernel cache each)."""
    got = {}
    for mode in ("background", "plain"):
        env = _env(NUMBA_CACHE_DIR=str(tmp_path / mode))
        out = subprocess.run([sys.executable, "-c", _BACKGROUND, mode], env=env,
                             capture_output=True, text=True)  # fmt: skip
        assert out.returncode == 0, out.stderr
        got[mode] = json.loads(out.stdout.splitlines()[-1])
    assert got["background"]["signatures"] == [1, 1]
    assert got["background"]["inside"] == got["plain"]["inside"]
    assert len(got["plain"]["inside"]) > 5 * 6 * 9


#: The kernels' tests, small inputs only, run as plain Python (NUMBA_DISABLE_JIT=1).
_NO_JIT_TESTS = [
    "tests/test_margins.py::test_single_voxel_row_asymmetric",
    "tests/test_margins.py::test_nearest_seed_matches_scipy_edt_for_symmetric_margins",
    "tests/test_margins.py::test_nearest_seed_matches_brute_force_for_asymmetric_margins",
    "tests/test_margins.py::test_binary_mask_matches_brute_force_minkowski_sum"
    "[9-radial=3,superior=0,inferior=0]",
    "tests/test_margins.py::test_binary_mask_matches_brute_force_minkowski_sum"
    "[9-right=2,left=5,anterior=0,posterior=3,superior=4,inferior=1]",
    "tests/test_margins.py::test_binary_mask_matches_brute_force_minkowski_sum[9--2]",
]


def test_matplotlib_gets_a_cache_directory_without_a_home(monkeypatch, tmp_path):
    """No usable home: MPLCONFIGDIR is set to rtplan's private temporary directory (so
    matplotlib does not warn); with a usable default or an explicit setting, nothing
    changes."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.delenv("MPLCONFIGDIR", raising=False)
    monkeypatch.setenv("HOME", str(blocker))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(blocker / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker / "cache"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    caches.configure_matplotlib()
    assert os.environ["MPLCONFIGDIR"].startswith(str(tmp_path / "tmp" / "rtplan-matplotlib-"))
    monkeypatch.setenv("MPLCONFIGDIR", "/somewhere/else")
    caches.configure_matplotlib()
    assert os.environ["MPLCONFIGDIR"] == "/somewhere/else"
    monkeypatch.delenv("MPLCONFIGDIR")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("HOME", str(tmp_path))
    caches.configure_matplotlib()
    assert "MPLCONFIGDIR" not in os.environ


def test_kernels_pass_their_tests_without_the_jit():
    """The kernels' Python source (what numba compiles) is itself correct: brute-force and
    scipy EDT truths of tests/test_margins.py, interpreted."""
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *_NO_JIT_TESTS],
        cwd=ROOT,
        env=_env(NUMBA_DISABLE_JIT="1"),
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout[-3000:]
    assert "8 passed" in out.stdout, out.stdout[-3000:]


# -------------------------------------------------------- the settle kernel built aside
_BUILD_ASIDE = """
import json, sys, time
from rtplan.volumes import kernel_build
mode = sys.argv[1]
if mode == "fails":
    kernel_build._PROGRAM = "raise SystemExit(1)"
elif mode == "hangs":
    kernel_build._PROGRAM = "import time; time.sleep(60)"
    kernel_build.BUILD_TIMEOUT_S = 0.5
with kernel_build.building():
    process = kernel_build._build
    import numpy as np
    from rtplan.volumes import margins, refine
    m = np.zeros((14, 18, 20), np.float32); m[4:9, 6:12, 5:14] = 1.0; m[9, 8, 9] = 0.4
    out = margins.expand_mask(m, "right=4,left=2,anterior=3,posterior=5,superior=4,inferior=2",
                              spacing_mm=(2.0, 1.0, 1.0))
print(json.dumps({"started": process is not None,
                  "returncode": None if process is None else process.returncode,
                  "inside": np.flatnonzero(out).tolist(),
                  "settle_hits": len(refine._settle_kernel.stats.cache_hits),
                  "settle_signatures": len(refine._settle_kernel.signatures)}))
"""


def _build_aside(cache, mode="real"):
    out = subprocess.run([sys.executable, "-c", _BUILD_ASIDE, mode], capture_output=True,
                         text=True, env=_env(NUMBA_CACHE_DIR=str(cache)))  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""  # the build process prints nothing, even when it fails
    return json.loads(out.stdout.splitlines()[-1])


def test_build_process_fills_the_cache_the_margins_load(tmp_path):
    """Empty cache: a separate process builds the settle kernel, the margin loads it from
    the cache (one signature, a cache hit: nothing compiled twice) and gives the voxels of
    a process without it; the mark is written, so the next run starts no build and loads
    both kernels."""
    first = _build_aside(tmp_path / "cache")
    assert first["started"] and first["returncode"] == 0
    assert first["settle_hits"] == 1 and first["settle_signatures"] == 1
    assert (tmp_path / "cache" / "rtplan-kernels.key").read_text() == kernel_build.mark()
    plain = _build_aside(tmp_path / "plain", "fails")  # compiled in the margin's process
    assert first["inside"] == plain["inside"] and len(plain["inside"]) > 5 * 6 * 9
    second = _build_aside(tmp_path / "cache")
    assert not second["started"] and second["settle_hits"] == 1
    assert second["inside"] == first["inside"]


@pytest.mark.parametrize("mode", ["fails", "hangs"])
def test_failed_or_hung_build_process_changes_nothing(tmp_path, mode):
    """A build process that exits with an error, or does not end before the timeout (then
    killed), leaves no mark and no process; the margin compiles its kernel itself."""
    got = _build_aside(tmp_path / "cache", mode)
    assert got["started"]
    assert got["returncode"] == (1 if mode == "fails" else -signal.SIGKILL)
    assert got["settle_hits"] == 0 and got["settle_signatures"] == 1
    assert not (tmp_path / "cache" / "rtplan-kernels.key").exists()


def test_build_process_is_killed_when_the_command_fails(monkeypatch, tmp_path):
    """An error inside ``building`` (a command failing before its first margin) kills and
    reaps the build process still running."""
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(kernel_build, "_PROGRAM", "import time; time.sleep(60)")
    with pytest.raises(ValueError, match="bad input"):
        with kernel_build.building():
            process = kernel_build._build
            raise ValueError("bad input")
    assert process is not None and process.returncode == -signal.SIGKILL
    assert kernel_build._build is None


def test_no_build_process_when_it_cannot_help(monkeypatch, tmp_path):
    """No build process without a writable cache directory, with the JIT off, or when the
    cache holds a marked build of the current sources."""
    blocker = _block_home_and_setting(monkeypatch, tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(blocker / "tmp"))
    assert not kernel_build._start()
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NUMBA_DISABLE_JIT", "1")
    assert not kernel_build._start()
    monkeypatch.delenv("NUMBA_DISABLE_JIT")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "rtplan-kernels.key").write_text(kernel_build.mark())
    assert not kernel_build._start()
    assert kernel_build._build is None


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
def test_build_process_ends_when_its_parent_is_killed(tmp_path):
    """Parent killed with SIGKILL (no clean-up runs): the build process notices and exits
    within a second or so instead of compiling on as an orphan."""
    parent = subprocess.Popen(
        [sys.executable, "-c", "from rtplan.volumes import kernel_build; import time; "
         "kernel_build._start(); print(kernel_build._build.pid, flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, env=_env(NUMBA_CACHE_DIR=str(tmp_path / "c")),
    )  # fmt: skip
    pid = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    status = Path(f"/proc/{pid}/status")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            state = status.read_text().split("State:")[1].split()[0]
        except (OSError, IndexError):
            state = "gone"
        if state in ("gone", "Z"):  # exited (a zombie until the adoptive parent reaps it)
            break
        time.sleep(0.1)
    assert state in ("gone", "Z")
    assert not (tmp_path / "c" / "rtplan-kernels.key").exists()
