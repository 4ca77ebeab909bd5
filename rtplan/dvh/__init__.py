"""Dose-volume histograms: computation, metrics, plan sums.

``rtplan.dvh.compute(structure, dose)`` returns a :class:`DVH`; ``DVH.metric("D95%")``
evaluates a metric string (grammar in :mod:`rtplan.dvh.metrics`); ``sum_doses`` adds
doses on one grid.  Conventions: docs/dvh.md and the module docstrings.
"""

from rtplan.dvh.compute import compute
from rtplan.dvh.histogram import DVH
from rtplan.dvh.metrics import evaluate, parse
from rtplan.plansum import sum_doses

__all__ = ["DVH", "compute", "evaluate", "parse", "sum_doses"]
