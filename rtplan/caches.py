"""Where rtplan keeps its caches: writable directories chosen so that no installation
(read-only, shared, run by a user without a home) fails for want of one.

A cache of kind ``K`` (``numba`` for the compiled margin kernels, ``matplotlib`` for
matplotlib's configuration and font cache) lives in the first usable directory of

1. an explicit setting (``NUMBA_CACHE_DIR``, ``MPLCONFIGDIR``), when given;
2. the user cache directory: ``$XDG_CACHE_HOME/rtplan/K`` (``~/.cache/rtplan/K``;
   ``~/Library/Caches/rtplan/K`` on macOS, ``%LOCALAPPDATA%\\rtplan\\K`` on Windows);
3. ``<system temporary directory>/rtplan-K-<uid>``, created mode 0700 and used only when it
   belongs to the current user and nobody else can write to it (numba's cache files are
   pickles: loading somebody else's would run their code).

Only standard-library imports: the command line calls this before anything heavy.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from pathlib import Path


def user_cache_dir() -> Path:
    """The platform's per-user cache directory for rtplan (need not exist)."""
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = str(Path.home() / "Library" / "Caches")
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rtplan"


def candidates(kind: str, setting: str | None = None) -> list[tuple[Path, bool]]:
    """Directories tried for the cache ``kind``, in order, each with whether it must be
    private (owned by the current user, closed to others); ``setting``: an environment
    variable naming an explicit directory, tried first when set."""
    out = []
    if setting and os.environ.get(setting):
        out.append((Path(os.environ[setting]), False))
    try:
        out.append((user_cache_dir() / kind, False))
    except RuntimeError:  # Path.home(): no home directory can be determined
        pass
    uid = os.getuid() if hasattr(os, "getuid") else "user"  # Windows: the temp dir is per user
    out.append((Path(tempfile.gettempdir()) / f"rtplan-{kind}-{uid}", True))
    return out


def usable(path: Path, private: bool = False) -> bool:
    """Whether ``path`` is (or can be made) a directory this process can write files in;
    ``private``: it must also belong to the current user and be closed to others."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700 if private else 0o777)
        if private and hasattr(os, "getuid"):
            st = path.lstat()
            if (
                not stat.S_ISDIR(st.st_mode)
                or st.st_uid != os.getuid()
                or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
            ):
                return False
        tempfile.TemporaryFile(dir=path).close()
    except OSError:
        return False
    return True


def cache_dir(kind: str, setting: str | None = None) -> Path | None:
    """The first usable directory of :func:`candidates`, or ``None`` (no cache possible)."""
    for path, private in candidates(kind, setting):
        if usable(path, private):
            return path
    return None


def configure_matplotlib() -> None:
    """Give matplotlib a writable configuration directory when its own default is not
    usable (no writable home): ``MPLCONFIGDIR`` is set to :func:`cache_dir` ``("matplotlib")``.
    Otherwise matplotlib makes a new temporary one in every process and warns on stderr.
    Nothing changes when ``MPLCONFIGDIR`` is set or the default works; matplotlib is not
    imported."""
    if os.environ.get("MPLCONFIGDIR"):
        return
    try:
        if sys.platform.startswith(("linux", "freebsd")):
            base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
            default = Path(base) / "matplotlib"
        else:
            default = Path.home() / ".matplotlib"
    except RuntimeError:
        default = None
    if default is not None and usable(default):
        return
    chosen = cache_dir("matplotlib")
    if chosen is not None:
        os.environ["MPLCONFIGDIR"] = str(chosen)
