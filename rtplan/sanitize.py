"""Text from DICOM (structure, patient, plan names) is data: helpers that keep it so.

A name in a DICOM file is written by whoever made the file.  Before it reaches another
program it passes through one of these:

* :func:`terminal` for what rtplan prints: control characters (ESC sequences, NUL, CR,
  ...) and undecodable file-name bytes are shown as escapes (``\\x1b``), never sent raw;
  :class:`TerminalStream` does the same for everything written to stdout and stderr.
* :func:`csv_cell` for CSV cells: control characters escaped, and a cell a spreadsheet
  would run as a formula (first character ``=``, ``+``, ``-``, ``@``, tab or CR) is
  prefixed with ``'`` (the OWASP "CSV injection" rule).  Numbers are left alone.
* :func:`xml_text` for XML and HTML: characters XML 1.0 forbids (C0 controls other than
  tab, LF and CR; lone surrogates; U+FFFE, U+FFFF) are shown as escapes; markup escaping
  is the XML writer's job.
* :func:`plot_text` for matplotlib labels: ``$`` is escaped so a name is never read as
  mathtext, and control characters are shown as escapes; every function that builds a
  figure runs under :func:`without_mathtext`, so no text in it is parsed as mathtext.
"""

from __future__ import annotations

import functools
import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]")
_STREAM = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_XML_BAD = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _escape(match: re.Match) -> str:
    code = ord(match.group(0))
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte of a file name (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal(text: object) -> str:
    """``text`` safe to print: control characters and undecodable bytes escaped.

    >>> terminal("PTV\\x1b[31m")
    'PTV\\\\x1b[31m'
    """
    return _CONTROL.sub(_escape, str(text))


def csv_cell(value: object) -> object:
    """A CSV cell that a spreadsheet shows as text (numbers and ``None`` unchanged).

    >>> csv_cell("=HYPERLINK(1)"), csv_cell("-1"), csv_cell(-1.5), csv_cell("PT\\rV")
    ("'=HYPERLINK(1)", "'-1", -1.5, 'PT\\\\x0dV')
    """
    if not isinstance(value, str):
        return value
    text = value
    if text.startswith(_FORMULA_START):
        text = "'" + text
    return _CONTROL.sub(_escape, text)


def xml_text(text: object) -> str:
    """``text`` with the characters XML 1.0 cannot hold shown as escapes.

    >>> xml_text("PTV\\x00\\x1b")
    'PTV\\\\x00\\\\x1b'
    """
    return _XML_BAD.sub(_escape, str(text))


def plot_text(text: object) -> str:
    """A label for matplotlib: ``$`` escaped (no mathtext), control characters escaped.

    >>> plot_text("$x^2$ PTV")
    '\\\\$x^2\\\\$ PTV'
    """
    return _CONTROL.sub(_escape, str(text)).replace("$", r"\$")


class TerminalStream:
    """A text stream that escapes control characters (except newline, tab and carriage
    return, which progress bars use) and undecodable file-name bytes before they reach the
    wrapped stream; everything else is delegated.  The command line wraps stdout and
    stderr in it, so no ESC sequence from a DICOM name reaches the terminal."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(_STREAM.sub(_escape, text))
        return len(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def without_mathtext(function):
    """Decorator: every matplotlib text created while ``function`` runs is drawn as plain
    text (``text.parse_math`` off), so a ``$`` in a DICOM name is never mathtext."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        import matplotlib  # noqa: PLC0415 - only figure code needs it

        with matplotlib.rc_context({"text.parse_math": False}):
            return function(*args, **kwargs)

    return wrapper
