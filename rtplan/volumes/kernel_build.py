"""The settle kernel compiled in a separate process while a command reads its input.

numba compiles the two margin kernels the first time they run after rtplan is installed:
:mod:`rtplan.volumes.refine`'s settle kernel (about 2.5 s of CPU with the helpers compiled
into it) and :mod:`rtplan.volumes.nearest_seed`'s envelope kernel (about 0.4 s), plus about
0.4 s to start numba's compiler.  Most of it is Python (type inference, lowering) holding
the GIL, so a thread of the command's own process overlaps little of it with the command's
own work.  ``rtplan expand`` and ``rtplan volumes`` run their work inside :func:`building`,
first thing:

* when the kernel cache (:mod:`rtplan.volumes.compiled`) is writable and holds no build of
  the current sources (no matching *mark*, below), a second Python process compiles the
  settle kernel into it, on another CPU, while the command imports its libraries, reads the
  DICOM files, compiles the envelope kernel on a thread and computes the first distances.
  Before its first settle step :func:`rtplan.volumes.margins.apply_margin` calls
  :func:`wait`, which returns when that process has ended (or after
  :data:`BUILD_TIMEOUT_S`); the kernel then loads from the cache (about 0.1 s);
* otherwise (a build is marked, the JIT is off with ``NUMBA_DISABLE_JIT``, fewer than 2
  CPUs, no writable cache directory to hand the machine code over, or the process cannot be
  started) a thread loads or compiles both kernels in the command's process
  (:func:`rtplan.volumes.margins.compile_in_background`), as before.

The mark is the file ``rtplan-kernels.key`` in the cache directory, written by the build
process when it succeeded: a hash of the kernels' source files, their location, the Python
build, the numba installation and the machine.  It only decides whether to start a build;
numba checks its cache itself, so a wrong mark costs time (a build not needed, or compiling
in the command's process), never a result.  A build that fails, hangs or is killed only
means the command compiles the kernel itself, as without it.

The build process prints nothing (its output goes to the null device) and does not outlive
the command: leaving :func:`building` (the command's end, an error, Ctrl-C, SIGTERM) kills
and reaps it if it still runs, and it exits by itself when its parent is gone (checked every
0.2 s).  On a 2-CPU machine at load 0.6-1 the first ``rtplan volumes`` after installing took
2.3 s more than a warm run instead of 3.4 s (``python benchmarks/startup.py --volumes``);
the CPU time is the same (docs/install.md).

Standard library only: ``import rtplan.volumes`` loads no other submodule, so the build
starts before the command loads numpy and numba.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import platform
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from rtplan import caches

#: Longest wait (s) for the build process before compiling in the command's own process.
BUILD_TIMEOUT_S = 60.0
#: Files (in this folder) the kernels' machine code is built from.
_SOURCES = ("compiled.py", "refine.py", "nearest_seed.py")
_MARK = "rtplan-kernels.key"
#: The build process's program: this module's :func:`build`, imported from the same folder
#: as the command's (numba's cache is keyed by the path of the source files).
_PROGRAM = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from rtplan.volumes.kernel_build import build; build(sys.argv[2], int(sys.argv[3]))"
)
_lock = threading.Lock()
_build: subprocess.Popen | None = None


def cache_dir() -> Path | None:
    """The kernels' cache directory (:func:`rtplan.caches.cache_dir`), or ``None``."""
    return caches.cache_dir("numba", setting="NUMBA_CACHE_DIR")


def mark() -> str | None:
    """The mark of a build of the current kernels (hex digest), or ``None`` without numba
    or without readable sources."""
    spec = importlib.util.find_spec("numba")
    if spec is None or not spec.origin:
        return None
    here = Path(__file__).parent
    try:
        st = os.stat(spec.origin)
        digest = hashlib.sha256(
            f"{here}|{sys.version}|{platform.machine()}|{spec.origin}|{st.st_mtime_ns}|"
            f"{st.st_size}".encode()
        )
        for name in _SOURCES:
            digest.update((here / name).read_bytes())
    except OSError:
        return None
    return digest.hexdigest()


@contextmanager
def building():
    """Build the kernels while the body runs (module docstring): the settle kernel in a
    separate process when the cache needs a build and can receive it, with the envelope
    kernel on a thread, or both on a thread.  On leaving, a build process still running is
    killed and reaped."""
    started = _start()  # before numpy and numba load
    from rtplan.volumes.margins import compile_in_background

    compile_in_background(settle_too=not started)
    try:
        yield
    finally:
        _stop()


def _start() -> bool:
    """Start the build process when it is worth it; whether one runs."""
    global _build
    jit_off = os.environ.get("NUMBA_DISABLE_JIT", "0").strip() not in ("", "0")
    if jit_off or (os.cpu_count() or 1) < 2 or not sys.executable:
        return False
    where, key = cache_dir(), mark()
    if where is None or key is None:
        return False
    try:
        if (where / _MARK).read_text() == key:
            return False
    except OSError:  # no mark yet
        pass
    with _lock:
        if _build is not None:
            return True
        try:
            _build = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _PROGRAM,
                    str(Path(__file__).parents[2]),
                    key,
                    str(os.getpid()),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=dict(os.environ, NUMBA_CACHE_DIR=str(where)),
            )
        except (OSError, ValueError):
            return False
    return True


def wait() -> None:
    """Wait for the build process, if one runs (at most :data:`BUILD_TIMEOUT_S`), and end
    it; then the kernel loads from the cache, or, had the build failed, compiles here."""
    process = _build
    if process is None:
        return
    try:
        process.wait(timeout=BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pass
    finally:
        _stop()


def _stop() -> None:
    """End a build process not waited for (the command failed, was stopped, or needed no
    settle step)."""
    global _build
    with _lock:
        if _build is not None:
            _end(_build)
            _build = None


def _end(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
    process.wait()  # reaped: no zombie


def build(key: str, parent: int) -> None:
    """The build process: compile the settle kernel into the cache (``NUMBA_CACHE_DIR``, set
    by the command) with the argument types of every margin, then write the mark ``key``.
    Exits at once when its parent process (``parent``, the command's process id) is gone."""

    def watch():
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()
    from rtplan.volumes.margins import tiny_settle

    tiny_settle()
    where = Path(os.environ["NUMBA_CACHE_DIR"])
    partial = where / f"{_MARK}.{os.getpid()}"
    partial.write_text(key)
    os.replace(partial, where / _MARK)
