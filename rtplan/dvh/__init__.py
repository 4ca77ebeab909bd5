"""Dose-volume histograms: computation, metrics, plan sums.

``compute(structure, dose)`` returns a :class:`DVH`; ``DVH.metric("D95%")`` evaluates a
metric string (grammar in :mod:`rtplan.dvh.metrics`).
"""

from rtplan.dvh.histogram import DVH

__all__ = ["DVH"]
