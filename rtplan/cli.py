"""The ``rtplan`` command line: a thin layer over the Python API.

Each subcommand lives in ``rtplan/commands/<name>.py`` and provides ``add_parser(subparsers)``
(which registers its arguments and sets ``func``) and a ``run(args) -> int`` function.

Exit codes: 0 success (and every mandatory constraint passed), 1 a constraint or a cohort member
failed, 2 bad input (an :class:`rtplan.errors.RtplanError`, printed as one line on stderr).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from rtplan import __version__
from rtplan.errors import RtplanError

#: Subcommand modules under ``rtplan.commands``, in the order ``rtplan --help`` lists them.
COMMANDS = ["info", "dvh", "check", "agree", "expand", "volumes"]


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser.  When ``argv`` names a subcommand, only that subcommand's
    module is imported (so ``rtplan info`` does not pay for importing the DVH engine);
    otherwise every subcommand is registered (for ``--help`` and error messages)."""
    parser = argparse.ArgumentParser(
        prog="rtplan",
        description="Radiotherapy contour-and-dose toolkit (DICOM-RT; LPS mm, Gy, cc).",
    )
    parser.add_argument("--version", action="version", version=f"rtplan {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    chosen = [a for a in (argv or []) if a in COMMANDS][:1]
    for name in chosen or COMMANDS:
        importlib.import_module(f"rtplan.commands.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except RtplanError as exc:
        print(f"rtplan {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("rtplan: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
