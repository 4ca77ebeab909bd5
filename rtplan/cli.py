"""The ``rtplan`` command line: a thin layer over the Python API.

Each subcommand lives in ``rtplan/commands/<name>.py`` and provides ``add_parser(subparsers)``
(which registers its arguments and sets ``func``) and a ``run(args) -> int`` function.

Exit codes, every command:

* 0 success (for ``check``: every mandatory constraint evaluated and passed, prescription and
  fractionation as the protocol's);
* 1 a constraint failed or could not be judged (``check``), a cohort member failed;
* 2 bad input or usage (an :class:`rtplan.errors.RtplanError`, or an argparse usage error),
  printed as one line on stderr;
* 3 internal error (any other exception, i.e. a bug): one line on stderr naming the exception
  and the file holding the full traceback (:func:`write_traceback`); ``--debug`` prints the
  traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import tempfile
import threading
import traceback
import warnings
from pathlib import Path

from rtplan import __version__, caches
from rtplan.errors import RtplanError, RtplanWarning
from rtplan.sanitize import TerminalStream, terminal

#: Longest error line printed (characters); longer messages are cut.
MAX_ERROR_CHARS = 2000
#: Subcommand modules under ``rtplan.commands``, in the order ``rtplan --help`` lists them.
COMMANDS = ["info", "dvh", "check", "agree", "expand", "volumes"]


class Parser(argparse.ArgumentParser):
    """argparse with usage errors as one line on stderr (exit 2), like every other bad
    input: ``rtplan expand: error: argument --margin: ... (see rtplan expand --help)``."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {terminal(message)} (see {self.prog} --help)\n")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser.  When ``argv`` names a subcommand, only that subcommand's
    module is imported (so ``rtplan info`` does not pay for importing the DVH engine);
    otherwise every subcommand is registered (for ``--help`` and error messages)."""
    parser = Parser(
        prog="rtplan",
        description="Radiotherapy contour-and-dose toolkit (DICOM-RT; LPS mm, Gy, cc).",
    )
    parser.add_argument("--version", action="version", version=f"rtplan {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="on an internal error (exit 3) print the traceback (accepted after the command too)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    chosen = [a for a in (argv or []) if a in COMMANDS][:1]
    if not chosen and "--version" in (argv or []) and not {"-h", "--help"} & set(argv):
        return parser  # nothing else to parse: argparse prints the version and exits
    for name in chosen or COMMANDS:
        importlib.import_module(f"rtplan.commands.{name}").add_parser(sub)
    return parser


def crash_dir() -> Path:
    """Where tracebacks of internal errors go: ``$XDG_CACHE_HOME/rtplan/crash`` (default
    ``~/.cache/rtplan/crash``), created private (mode 0700); the system temporary folder when
    that cannot be created."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = Path(base) / "rtplan" / "crash"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK):
            raise PermissionError(folder)
    except OSError:
        return Path(tempfile.gettempdir())
    return folder


def write_traceback(exc: BaseException, argv: list[str]) -> Path | None:
    """Write the traceback of ``exc`` (and the command line) to a new private file
    (``rtplan-crash-*.txt``, created exclusively with mode 0600, never overwriting one) in
    :func:`crash_dir`; returns its path, or ``None`` when no file could be written."""
    text = f"rtplan {__version__}\ncommand: rtplan {' '.join(argv)}\n\n" + "".join(
        traceback.format_exception(type(exc), exc, exc.__traceback__)
    )
    for folder in (crash_dir(), Path(tempfile.gettempdir())):
        try:
            fd, name = tempfile.mkstemp(prefix="rtplan-crash-", suffix=".txt", dir=folder)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            return Path(name)
        except OSError:
            continue
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (module docstring).

    Run as the program (``argv`` None), Ctrl-C and SIGTERM are ignored once the command has
    finished: the interpreter's clean-up that follows cannot be interrupted into a traceback
    or a different exit code."""
    program = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    previous = _terminate_as_exception()  # from the start: an early Ctrl-C is one line too
    streams = sys.stdout, sys.stderr
    try:
        caches.configure_matplotlib()  # a writable directory for plots when there is no home
        parser = build_parser(argv)
        args = parser.parse_args(argv)
        # text from DICOM never reaches the terminal raw (rtplan.sanitize)
        sys.stdout, sys.stderr = TerminalStream(sys.stdout), TerminalStream(sys.stderr)
        return _run(args, argv, debug)
    except KeyboardInterrupt:  # before the command ran (_run handles it from there)
        print("rtplan: interrupted", file=streams[1])
        return 130
    finally:
        sys.stdout, sys.stderr = streams
        if program and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        elif previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _terminate_as_exception():
    """SIGTERM raises SystemExit(143) in the main thread, so ``finally`` blocks (temporary
    output files, rtplan.io.output) run as they do on Ctrl-C.  Returns the old handler."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def terminated(signum, frame):
        raise SystemExit(128 + signum)

    return signal.signal(signal.SIGTERM, terminated)


def _run(args, argv, debug) -> int:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", RtplanWarning)  # _kept_warnings keeps one of each
            # pydicom's remarks on values (lengths, VRs) are not the user's: the accessors of
            # rtplan.io.dicom_file turn a value that matters into one error line
            warnings.filterwarnings("ignore", module=r"pydicom(\.|$)")
            warnings.showwarning, kept = _kept_warnings(warnings.showwarning)
            code = int(args.func(args))
        for text in kept:
            print(f"rtplan {args.command}: warning: {terminal(text)}", file=sys.stderr)
        return code
    except RtplanError as exc:
        line = terminal(exc)
        if len(line) > MAX_ERROR_CHARS:  # values are shortened where they are read; a net
            line = line[: MAX_ERROR_CHARS - 3] + "..."
        print(f"rtplan {args.command}: error: {line}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("rtplan: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: exit 3, one line, the traceback in a file
        interrupted = _interruption(exc)
        if interrupted is not None:
            return interrupted
        if debug:
            traceback.print_exc(file=sys.stderr)
        where = None if debug else write_traceback(exc, argv)
        kind = type(exc).__name__
        message = str(exc).replace("\n", " ")[:200]
        tail = (
            "traceback above"
            if debug
            else f"traceback in {where}"
            if where
            else "no traceback file could be written; rerun with --debug"
        )
        print(
            f"rtplan {args.command}: internal error {kind}: {message} ({tail}); please report it",
            file=sys.stderr,
        )
        return 3


def _interruption(exc: BaseException) -> int | None:
    """130 or 143 when ``exc`` wraps a Ctrl-C or SIGTERM (Python wraps what is raised while a
    class body is set up, e.g. during an import, in a RuntimeError); else None."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            print("rtplan: interrupted", file=sys.stderr)
            return 130
        if isinstance(seen, SystemExit) and seen.code == 128 + signal.SIGTERM:
            return seen.code
        seen = seen.__cause__ or seen.__context__
    return None


def _kept_warnings(other):
    """The one place the command line takes a :class:`~rtplan.errors.RtplanWarning`: each
    message is kept once, in order, and :func:`_run` prints them as ``rtplan COMMAND: warning:
    ...`` on stderr after the command's own output; a command that fails prints only its one
    error line.  Other warnings go to ``other`` (Python's default display).  Returns the
    ``showwarning`` function and the list it fills."""
    kept: list[str] = []

    def show(message, category, filename, lineno, file=None, line=None):
        if not issubclass(category, RtplanWarning):
            return other(message, category, filename, lineno, file, line)
        if str(message) not in kept:
            kept.append(str(message))

    return show, kept


if __name__ == "__main__":
    sys.exit(main())
