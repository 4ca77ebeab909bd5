"""Dose distributions on a voxel grid."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rtplan.errors import GeometryError
from rtplan.grid import Grid


@dataclass(frozen=True, eq=False)
class EmbeddedDVH:
    """A DVH stored by the planning system in an RTDOSE DVHSequence.

    ``dose_gy`` are the bin upper edges (Gy; DVHDoseScaling applied; in % of the
    prescription when ``dose_units`` is ``"PERCENT"``, DICOM RELATIVE) and ``volume_cc``
    the volumes as stored (cc, or % when ``volume_units`` is ``"PERCENT"``); how they make
    a curve is in :mod:`rtplan.dvh.embedded`.  The header statistics are as stated in the
    item's dose units (cGy converted to Gy); :mod:`rtplan.dvh.embedded` uses them only
    when they agree with the curve.
    """

    roi_number: int
    dose_gy: np.ndarray
    volume_cc: np.ndarray
    dvh_type: str = "CUMULATIVE"
    volume_units: str = "CM3"
    dose_units: str = "GY"
    min_dose_gy: float | None = None
    max_dose_gy: float | None = None
    mean_dose_gy: float | None = None


@dataclass(frozen=True, eq=False)
class Dose:
    """A 3-D dose distribution in Gy on a :class:`~rtplan.grid.Grid`.

    Parameters
    ----------
    values_gy : numpy.ndarray
        Dose in Gy, indexed ``[k, j, i]`` like ``grid`` (DoseGridScaling already applied,
        FRACTION doses already multiplied by the number of fractions).
    grid : Grid
        Where the values sit (voxel centres, LPS mm).
    frame_of_reference_uid : str
        FrameOfReferenceUID of the RTDOSE.
    summation_type : str
        DICOM DoseSummationType of the *source* file(s) (PLAN, FRACTION, BEAM, ...).
    fraction_scaling : int
        The factor applied to the stored dose (the planned fractions for FRACTION and
        FRACTION_SESSION and BEAM_SESSION doses, else 1).
    source : str
        File(s) the dose was read from, for messages.
    """

    values_gy: np.ndarray
    grid: Grid
    frame_of_reference_uid: str = ""
    summation_type: str = "PLAN"
    dose_type: str = "PHYSICAL"
    source: str = ""
    sop_instance_uid: str = ""
    referenced_plan_uid: str = ""
    embedded_dvhs: tuple[EmbeddedDVH, ...] = field(default_factory=tuple)
    #: Factor the stored dose was multiplied by (planned fractions for FRACTION doses).
    fraction_scaling: int = 1
    #: BEAM doses: the ReferencedBeamNumber(s) the values cover.
    referenced_beam_numbers: tuple[int, ...] = field(default_factory=tuple)
    #: Problems found while reading that did not stop it (each also emitted as an
    #: :class:`~rtplan.errors.RtplanWarning` when found: :func:`rtplan.errors.warn`).
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self):
        if tuple(np.shape(self.values_gy)) != tuple(self.grid.shape):
            raise GeometryError(
                f"dose array shape {np.shape(self.values_gy)} does not match grid {self.grid.shape}",
                path=self.source or None,
            )

    @property
    def kind(self) -> str:
        """How the values are to be read, for reports: ``"physical"`` (DoseType PHYSICAL),
        ``"RBE-weighted"`` (EFFECTIVE: physical dose times the RBE, Gy(RBE)), otherwise the
        DoseType in lower case.

        >>> import numpy as np
        >>> from rtplan.grid import Grid
        >>> grid = Grid((1, 1, 1), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
        >>> Dose(np.zeros((1, 1, 1)), grid, dose_type="EFFECTIVE").kind
        'RBE-weighted'
        """
        return {"PHYSICAL": "physical", "EFFECTIVE": "RBE-weighted"}.get(
            self.dose_type, self.dose_type.lower()
        )

    @property
    def max_gy(self) -> float:
        """Largest dose value on the grid (Gy)."""
        return float(np.max(self.values_gy))
