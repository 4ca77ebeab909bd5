"""CT images (a series of slices stacked into a 3-D volume)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rtplan.grid import Grid


@dataclass(frozen=True, eq=False)
class Image:
    """A CT series as a 3-D array of Hounsfield units on a :class:`~rtplan.grid.Grid`.

    ``values_hu[k, j, i]``: slices sorted by position along the slice normal (never by
    InstanceNumber), RescaleSlope and RescaleIntercept applied.  ``sop_instance_uids[k]``
    is the SOPInstanceUID of slice ``k`` (what an RTSTRUCT's ContourImageSequence refers to).
    """

    values_hu: np.ndarray
    grid: Grid
    series_instance_uid: str = ""
    study_instance_uid: str = ""
    frame_of_reference_uid: str = ""
    sop_class_uid: str = "1.2.840.10008.5.1.4.1.1.2"
    sop_instance_uids: tuple[str, ...] = field(default_factory=tuple)
    patient_id: str = ""
    patient_name: str = ""
    patient_position: str = ""
    source: str = ""
    #: Problems found while reading that did not stop it (e.g. a missing slice; each also
    #: emitted as an :class:`~rtplan.errors.RtplanWarning` when found).
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def slice_z_mm(self) -> np.ndarray:
        """Patient z (mm) of every slice, in array order."""
        k = np.arange(self.grid.shape[0], dtype=float)
        return self.grid.index_to_world(np.stack([k, 0 * k, 0 * k], axis=1))[:, 2]
