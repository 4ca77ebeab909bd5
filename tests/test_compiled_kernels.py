"""The compiled kernels (numba) can neither crash an installation nor hide behind the JIT.

Truths checked: the cache directory is the first usable one in the documented order
(``NUMBA_CACHE_DIR``, the user cache directory, a private temporary directory), unusable ones
are skipped, a temporary directory others can write to is refused, with no usable
directory the kernels still run (compiled in memory), the chosen directory really receives
the cache and a second process loads from it, and the kernels' own tests pass as plain
Python (``NUMBA_DISABLE_JIT=1``, on small inputs).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from rtplan import caches
from rtplan.volumes import compiled

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


def test_unusable_directories_are_skipped(monkeypatch, tmp_path):
    """A directory that cannot be created (its parent is a regular file: true even for
    root) is skipped; the private temporary directory is then chosen."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(blocker / "numba"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker / "xdg"))
    monkeypatch.setenv("HOME", str(blocker))
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
