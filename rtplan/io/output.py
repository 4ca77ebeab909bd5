"""Writing output files safely: sanitised names, atomic replacement.

Every file rtplan writes (RTSTRUCT, reports, plots, tables, synthetic DICOM) goes through
:func:`write_atomic`: the bytes go to a temporary file in the target folder, which is then
moved into place with :func:`os.replace`, so a reader never sees a partial file and a failed
write leaves nothing behind.  File names built from DICOM strings (UIDs, labels, ROI names)
pass through :func:`safe_filename` first.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from rtplan.errors import InputError

_UNSAFE = re.compile(r"[^0-9A-Za-z._-]+")


def safe_filename(text: str, default: str = "file") -> str:
    """``text`` reduced to a safe file name (letters, digits, ``.``, ``_``, ``-``; no path).

    >>> safe_filename("../../etc/passwd")
    'etc_passwd'
    >>> safe_filename("PTV 50.4/28")
    'PTV_50.4_28'
    """
    name = re.sub(r"\.{2,}", ".", _UNSAFE.sub("_", str(text))).strip("._-")
    return name[:128] or default


def write_atomic(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` (text is UTF-8 encoded) to ``path`` atomically; returns the path.

    The file gets the usual permissions (``0o666`` less the umask).  An ``OSError`` (missing
    folder, no permission, full disk) becomes a one-line :class:`~rtplan.errors.InputError`
    naming the path.
    """
    target = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=target.suffix, dir=target.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except OSError as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        raise InputError(f"cannot write file: {exc.strerror or exc}", path=target) from None
    return target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
