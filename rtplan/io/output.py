"""Writing output files safely: checked paths, sanitised names, atomic and complete writes.

Rules every file rtplan writes follows (RTSTRUCT, reports, plots, tables, synthetic DICOM):

* **Checked before any work.**  Commands call :func:`check_output_file` /
  :func:`check_output_folder` on every output path before reading inputs: the target must
  be a new path or an existing regular file (never a device such as ``/dev/null``, a
  folder, a pipe or a socket), must not be one of the inputs (a DICOM file under an input
  folder, or an input file given by name), and its folder must exist (or be creatable),
  be a folder and be writable.  Any problem is one :class:`~rtplan.errors.InputError`.
* **Atomic.**  :func:`write_atomic` writes the bytes to a uniquely named temporary file
  (``.tmp-*``) in the target folder and moves it into place with :func:`os.replace`, so a
  reader never sees a partial file.  The temporary file is removed on every way out:
  an error, Ctrl-C (``KeyboardInterrupt``) or SIGTERM (the command line turns it into an
  exception, see :func:`rtplan.cli.main`).
* **Never overwrite, where promised.**  :func:`write_new` links the finished temporary
  file to the target (:func:`os.link`, which fails when the name exists), so of two runs
  writing one name, one writes and the other reports that the file exists.
* **All or nothing.**  :class:`OutputSet` stages several files and moves them into place
  only when all are written; if anything fails, the new ones already moved are removed.

File names built from DICOM strings (UIDs, labels, ROI names) pass through
:func:`safe_filename` first.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

from rtplan.errors import InputError, NotDicomError
from rtplan.io.dicom_file import read_dataset

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


def _is_dicom(path: Path) -> bool:
    """True when ``path`` starts like a DICOM file (preamble + ``DICM``, or a readable
    dataset with a SOP Class UID)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    if head[128:132] == b"DICM":
        return True
    try:
        read_dataset(path, stop_before_pixels=True, defer_size=256)
    except NotDicomError:
        return False
    except Exception:  # noqa: BLE001 - a damaged DICOM file is still an input
        return True
    return True


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except (ValueError, OSError, RuntimeError):
        return False
    return True


def check_output_file(
    path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike] = (), what: str = "output"
) -> Path:
    """Refuse an output file path that could destroy something (module docstring).

    Parameters
    ----------
    path : path
        Where the file will be written.
    inputs : paths
        The command's inputs: folders (a DICOM file under them is an input) and files.
    what : str
        The option, for the message (e.g. ``"--csv"``).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    InputError
        The path is a folder, a device or another non-regular file; an input; or its
        folder is missing and cannot be created, is a file, or is not writable.
    """
    target = Path(path)
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        raise InputError(f"{what}: a folder on the path is a file", path=target) from None
    except OSError as exc:
        raise InputError(f"{what}: cannot use this path ({exc.strerror})", path=target) from None
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise InputError(f"{what}: is a folder, not a file", path=target)
        if not stat.S_ISREG(st.st_mode):
            raise InputError(
                f"{what}: not a regular file (a device, pipe or socket); rtplan writes only "
                "new or regular files",
                path=target,
            )
        for source in inputs:
            source = Path(source)
            same = source.is_file() and os.path.samefile(source, target)
            if same or (source.is_dir() and _inside(target, source) and _is_dicom(target)):
                raise InputError(
                    f"{what}: is an input file; rtplan never writes onto its inputs", path=target
                )
    _check_folder_writable(target.parent, what)
    return target


def check_output_folder(
    path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike] = (), what: str = "output"
) -> Path:
    """Refuse an output folder that is a file or cannot be created or written (nothing is
    created here)."""
    folder = Path(path)
    _check_folder_writable(folder, what)
    for source in inputs:
        if Path(source).is_file() and os.path.samefile(source, folder):
            raise InputError(f"{what}: is an input file", path=folder)
    return folder


def _check_folder_writable(folder: Path, what: str) -> None:
    """``folder`` (or, when missing, its nearest existing ancestor) is a writable folder."""
    probe = folder if str(folder) else Path(".")
    while True:
        try:
            st = os.stat(probe)
            break
        except FileNotFoundError:
            if probe.parent == probe:
                raise InputError(f"{what}: no existing folder on the path", path=folder) from None
            probe = probe.parent
        except NotADirectoryError:
            raise InputError(f"{what}: a folder on the path is a file", path=folder) from None
        except OSError as exc:
            raise InputError(
                f"{what}: cannot use this path ({exc.strerror})", path=folder
            ) from None
    if not stat.S_ISDIR(st.st_mode):
        raise InputError(f"{what}: {probe} is a file, not a folder", path=folder)
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(f"{what}: folder {probe} is not writable", path=folder)


def _stage(target: Path, payload: bytes) -> Path:
    """Write ``payload`` to a new uniquely named temporary file beside ``target``."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=target.suffix, dir=target.parent)
    tmp = Path(tmp)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        os.chmod(tmp, 0o666 & ~_umask())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _refuse_special(target: Path) -> None:
    try:
        st = os.lstat(target)
    except OSError:
        return
    if not stat.S_ISREG(st.st_mode):
        raise InputError("not a regular file; rtplan writes only new or regular files", path=target)


def _payload(data: bytes | str) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else bytes(data)


def write_atomic(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` (text is UTF-8 encoded) to ``path`` atomically; returns the path.

    An existing regular file is replaced; anything else at ``path`` (a device, a folder,
    a link) is refused.  The file gets the usual permissions (``0o666`` less the umask).
    An ``OSError`` (missing folder, no permission, full disk) becomes a one-line
    :class:`~rtplan.errors.InputError` naming the path; the temporary file is removed on
    every way out (module docstring).
    """
    target = Path(path)
    _refuse_special(target)
    tmp = None
    try:
        tmp = _stage(target, _payload(data))
        os.replace(tmp, target)
        tmp = None
    except OSError as exc:
        raise InputError(f"cannot write file: {exc.strerror or exc}", path=target) from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    return target


def write_new(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` only if no file of that name exists, atomically.

    The complete temporary file is linked to ``path`` (:func:`os.link` fails when the
    name exists, so two concurrent writers cannot both succeed); returns the path.

    Raises
    ------
    InputError
        ``path`` exists ("rtplan never overwrites a file"), or the write failed.
    """
    target = Path(path)
    tmp = None
    try:
        tmp = _stage(target, _payload(data))
        os.link(tmp, target)
    except FileExistsError:
        raise InputError(
            "output file exists; rtplan never overwrites a file", path=target
        ) from None
    except OSError as exc:
        raise InputError(f"cannot write file: {exc.strerror or exc}", path=target) from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    return target


class OutputSet:
    """Several output files written completely or not at all.

    Example::

        with OutputSet() as outputs:
            outputs.add("report.csv", csv_text)
            outputs.add("report.xml", xml_text)
        # both files are in place here, or (after an exception) neither new file is

    :meth:`add` stages each file as a temporary file at once; leaving the ``with`` block
    normally moves them all into place; leaving it by an exception (including Ctrl-C)
    removes the temporary files.  If a move fails, the files this set already created are
    removed again.
    """

    def __init__(self):
        self._staged: list[tuple[Path, Path]] = []

    def __enter__(self) -> OutputSet:
        return self

    def add(self, path: str | os.PathLike, data: bytes | str) -> Path:
        target = Path(path)
        if any(t == target for t, _ in self._staged):
            raise InputError("the same output path is given twice", path=target)
        _refuse_special(target)
        try:
            self._staged.append((target, _stage(target, _payload(data))))
        except OSError as exc:
            raise InputError(f"cannot write file: {exc.strerror or exc}", path=target) from None
        return target

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self._discard()
            return
        created = []
        try:
            for target, tmp in self._staged:
                existed = target.exists()
                os.replace(tmp, target)
                if not existed:
                    created.append(target)
        except BaseException as error:
            for target in created:
                with contextlib.suppress(OSError):
                    target.unlink()
            self._discard()
            if isinstance(error, OSError):
                raise InputError(f"cannot write file: {error.strerror or error}") from None
            raise
        self._staged.clear()

    def _discard(self) -> None:
        for _, tmp in self._staged:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
        self._staged.clear()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
