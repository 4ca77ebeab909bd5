"""Default values the command line shows in its help, kept where importing them costs
nothing (no numpy, no pydicom): the modules that use them import them from here, so each
value is written once.  Units are in the names.
"""

#: How a DoseSummationType FRACTION RTDOSE is read (:mod:`rtplan.io.rtdose`).
FRACTION_DOSE_MODES = ("per_fraction", "group_total")
#: End-cap conventions of ``rtplan dvh`` and ``rtplan check`` (``--end-cap``) and the default:
#: ``auto`` picks the one of :data:`rtplan.structure.END_CAPS` whose volumes match the
#: planning system's DVHs in the RTDOSE, else slab (:func:`rtplan.dvh.embedded.choose_end_cap`).
END_CAP_MODES = ("auto", "slab", "none")
DEFAULT_END_CAP = "auto"
#: Where a cumulative volume of the planning system's DVHs sits in its bin
#: (``rtplan dvh --embedded-bin-point``): ``auto`` takes the one the header mean doses match
#: (:func:`rtplan.dvh.embedded.choose_bin_point`).
BIN_POINT_MODES = ("auto", "lower", "centre", "upper")
DEFAULT_BIN_POINT = "auto"
#: Metrics of ``rtplan dvh`` when none are asked for (:mod:`rtplan.dvh.compute`).
DEFAULT_METRICS = ("Dmean", "Dmin", "Dmax", "D0.03cc", "D98%", "D95%", "D50%", "D2%")
#: Part of a structure allowed outside the dose grid with its dose metrics still computed:
#: at most this fraction of its volume and at most this many cc
#: (:class:`rtplan.dvh.compute.OutsideTolerance`).
OUTSIDE_TOLERANCE_FRACTION = 0.001
OUTSIDE_TOLERANCE_CC = 1.0
#: Largest margin (mm) either way of ``expand``/``volumes`` margins and crops
#: (:class:`rtplan.volumes.margins.Margins`): half a metre is beyond any patient.
MAX_MARGIN_MM = 500.0
#: Fine grid spacing (mm) of the margin workspace (:mod:`rtplan.volumes.workspace`).
FINE_MM = 1.0
#: Tolerance (mm) of surface Dice and added path length (:mod:`rtplan.agreement.pairwise`).
DEFAULT_TOLERANCE_MM = 3.0
#: Seconds a Dask scheduler has to answer (:mod:`rtplan.workflows.execution`).
DEFAULT_TIMEOUT_S = 10.0
