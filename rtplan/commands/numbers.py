"""Numeric command-line options, checked when the command line is parsed.

Each option takes an argparse ``type`` from here: a value that is not a number, not finite
or outside the option's documented range is a usage error (exit 2, one line on stderr)
before any file is read, so no computation ever sees ``inf``, ``nan`` or ``1e308``.  The
ranges (also in ``docs/io.md``, *Hostile and broken input*):

=========================  ==============  =====================================
option                     range           commands
=========================  ==============  =====================================
``--jobs``                 1 to 1024       dvh, check, agree
``--scheduler-timeout``    > 0 to 3600 s   dvh, check, agree
``--curve-step``           > 0 to 100 Gy   dvh
``--outside-tolerance-pct`` 0 to 100 %     dvh
``--outside-tolerance-cc`` 0 to 100000 cc  dvh
``--fine-mm``              0.1 to 10 mm    expand, volumes
``--tolerance-mm``         > 0 to 100 mm   agree
``--in-plane-mm``          > 0 to 100 mm   agree
=========================  ==============  =====================================

Margins (``expand --margin``, ``--avoid S:MM``, ``--within S:MM``) are checked by
:class:`rtplan.volumes.margins.Margins` (at most :data:`~rtplan.volumes.margins.MAX_MARGIN_MM`
either way) before any file is read.
"""

from __future__ import annotations

import argparse
import math


class Number:
    """An argparse ``type``: a finite number (an integer when ``integer``) in
    ``[low, high]`` (``(low, high]`` when ``low_open``), in ``unit``.

    >>> Number(0, 10, unit="mm", low_open=True)("2.5")
    2.5
    >>> Number(0, 10, unit="mm", low_open=True)("1e308")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: 1e308 is outside the range > 0 to 10 mm
    """

    def __init__(self, low, high, *, unit: str = "", integer: bool = False, low_open=False):
        self.low, self.high, self.unit = low, high, unit
        self.integer, self.low_open = integer, low_open
        self.__name__ = "integer" if integer else "number"  # argparse's message names it

    @property
    def range(self) -> str:
        """The range as the help and the errors give it: ``> 0 to 100 mm``."""
        low = f"> {self.low:g}" if self.low_open else f"{self.low:g}"
        return f"{low} to {self.high:g}" + (f" {self.unit}" if self.unit else "")

    def __call__(self, text: str):
        shown = text if len(text) <= 40 else text[:37] + "..."
        try:
            value = int(text) if self.integer else float(text)
        except ValueError:
            kind = "an integer" if self.integer else "a number"
            raise argparse.ArgumentTypeError(f"{shown!r} is not {kind}") from None
        low_ok = value > self.low if self.low_open else value >= self.low
        if not (math.isfinite(value) and low_ok and value <= self.high):
            raise argparse.ArgumentTypeError(f"{shown} is outside the range {self.range}")
        return value


JOBS = Number(1, 1024, integer=True)
SCHEDULER_TIMEOUT_S = Number(0, 3600, unit="s", low_open=True)
CURVE_STEP_GY = Number(0, 100, unit="Gy", low_open=True)
OUTSIDE_TOLERANCE_PCT = Number(0, 100, unit="%")
OUTSIDE_TOLERANCE_CC = Number(0, 100_000, unit="cc")
FINE_GRID_MM = Number(0.1, 10, unit="mm")
DISTANCE_MM = Number(0, 100, unit="mm", low_open=True)


def margin(text: str) -> str:
    """``--margin``: the text, once :meth:`rtplan.volumes.margins.Margins.parse` accepts it
    (syntax, finite, within the largest margin); kept as text for the workflow."""
    from rtplan.volumes.margins import Margins

    return _accepted(Margins.parse, text)


def crop(text: str) -> str:
    """``--avoid``/``--within``: the text, once :meth:`rtplan.volumes.builder.Crop.parse`
    accepts it."""
    from rtplan.volumes.builder import Crop

    return _accepted(Crop.parse, text)


def _accepted(parse, text: str) -> str:
    from rtplan.errors import InputError

    try:
        parse(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text
