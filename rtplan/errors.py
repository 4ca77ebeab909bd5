"""Errors raised by rtplan.

Every user-facing failure is an :class:`RtplanError`.  Its message is one line that
names the file, the structure (where there is one) and the problem; the command line
prints it on stderr and exits with code 2.

Every error class rtplan raises is defined here, with :class:`RtplanWarning` and :func:`warn`,
the one way a problem that does not stop the work reaches the caller.  The subclasses describe bad input (a file,
a structure, an option) and so also derive from :class:`ValueError`: code that catches
``ValueError`` around a call keeps working (as ``nibabel.affines.AffineError`` does).
"""

from __future__ import annotations

import warnings


class RtplanError(Exception):
    """Base class of every error rtplan reports to a user.

    Parameters
    ----------
    message : str
        What is wrong, in one line.
    path : str, optional
        The file (or folder) the problem was found in.
    structure : str, optional
        The structure concerned.
    """

    def __init__(self, message: str, *, path: object = None, structure: str | None = None):
        self.problem = message
        self.path = None if path is None else str(path)
        self.structure = structure
        parts = []
        if self.path:
            parts.append(self.path)
        if structure:
            parts.append(f"structure '{structure}'")
        parts.append(message)
        super().__init__(": ".join(parts).replace("\n", " "))


class DicomReadError(RtplanError, ValueError):
    """A file is not DICOM, is truncated, or lacks a tag rtplan needs."""


class GeometryError(RtplanError, ValueError):
    """Inconsistent geometry: frames of reference, orientations, slice positions, grids."""


class ContourError(RtplanError, ValueError):
    """A contour cannot stand for a volume: empty, too few points, self-intersecting."""


class StructureNotFoundError(RtplanError, ValueError):
    """A structure name that is not present (the message lists the closest names)."""


class DoseCoverageError(RtplanError, ValueError):
    """A dose grid does not cover what a computation needs."""


class InputError(RtplanError, ValueError):
    """Malformed user input: metric strings, margins, protocol files, options."""


class NotDicomError(DicomReadError):
    """The file is not a DICOM dataset at all (discovery skips these with a note)."""


class AmbiguousInputError(InputError):
    """Several objects fit and the references do not decide; the message says how to choose."""


class PatientIdentityError(InputError):
    """Objects tied by UID references carry different PatientID or PatientName."""


class RtplanWarning(Warning):
    """A problem rtplan noticed that does not stop the work (a CT that cannot be shown, a
    contour off the CT slices, ...), emitted with :func:`warnings.warn` so that Python callers
    see it too.  The command line prints each once, as ``rtplan COMMAND: warning: ...``.

    It derives from :class:`Warning`, not :class:`UserWarning`, so that silencing the
    UserWarnings of other libraries (pydicom's value checks) does not silence it.
    """


def warn(problem: str, *, path: object = None, stacklevel: int = 2) -> str:
    """Emit ``problem`` (found in the file ``path``) as a :class:`RtplanWarning`; return it.

    Readers call it where they notice a problem and keep the returned text on the object they
    build (``StructureSet.warnings``, ``Dose.warnings``, ``Image.warnings``, which ``rtplan
    info`` lists per object): the warning a Python caller sees and that record come from this
    one call.  The message is ``"path: problem"``, as for an :class:`RtplanError`.

    Examples
    --------
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     kept = warn("two ROIs named 'GTV'", path="RS.dcm")
    >>> kept, str(caught[0].message), caught[0].category.__name__
    ("two ROIs named 'GTV'", "RS.dcm: two ROIs named 'GTV'", 'RtplanWarning')
    """
    where = f"{path}: " if path else ""
    warnings.warn(f"{where}{problem}", RtplanWarning, stacklevel=stacklevel + 1)
    return problem
