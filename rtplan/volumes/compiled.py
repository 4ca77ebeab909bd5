"""How the compiled kernels of the margins are built: numba, with a disk cache that cannot
break an installation.

:func:`kernel` is ``numba.njit(nogil=True)`` whose machine code is cached on disk (with
the :func:`helper` functions it calls) in the first usable directory of (:mod:`rtplan.caches`)

1. ``NUMBA_CACHE_DIR``, when set;
2. the user's cache directory: ``$XDG_CACHE_HOME/rtplan/numba`` (``~/.cache/rtplan/numba``;
   ``~/Library/Caches`` on macOS, ``%LOCALAPPDATA%`` on Windows);
3. a private directory in the system temporary directory (``rtplan-numba-<uid>``, created
   mode 0700 and used only when it belongs to the current user: numba's cache files are
   pickles, which must not be writable by anybody else).

When none is writable (a read-only installation run by a user with no home and no
temporary directory), the kernels are compiled in memory at their first call, as if no cache
existed: slower to start, never a failure.  numba's own default (the ``__pycache__`` beside
the source) is not used: in an installation owned by another user it is read-only, and
numba then raised ``cannot cache function ... no locator available`` at import time.

The cache is keyed by the source file's path, its stamp (numba 0.68: a hash of its contents) and
the CPU, so it survives a reinstall of the same source at the same path (``.ci/run``
recreates its virtual environment); a CI job can keep the directory between runs.
``NUMBA_DISABLE_JIT=1`` runs the kernels as plain Python (the tests do, on small inputs).
"""

from __future__ import annotations

import numba
from numba.core import config as numba_config

from rtplan.volumes.kernel_build import cache_dir


def kernel(fn=None, **options):
    """``numba.njit(nogil=True, **options)`` with the disk cache of this module (used as
    ``@kernel`` or ``@kernel(inline="always")``)."""
    if fn is None:
        return lambda f: kernel(f, **options)
    compiled = numba.njit(nogil=True, **options)(fn)
    if numba_config.DISABLE_JIT:
        return compiled
    where = _CACHE_DIR
    if where is not None:
        saved = numba_config.CACHE_DIR
        numba_config.CACHE_DIR = str(where)  # numba's first cache locator reads this
        try:
            compiled.enable_caching()
        except (RuntimeError, OSError):  # the directory went away since it was chosen
            pass
        finally:
            numba_config.CACHE_DIR = saved
    return compiled


def helper(fn):
    """``numba.njit(nogil=True)`` for a function called only by other kernels: numba builds
    no wrapper callable from Python for it and caches it only inside the kernels that call
    it (one cache file per kernel; about 12 % less to compile the first time)."""
    return numba.njit(nogil=True, no_cpython_wrapper=True, no_cfunc_wrapper=True)(fn)


#: Where this process caches the kernels (chosen once, at import).
_CACHE_DIR = cache_dir()
