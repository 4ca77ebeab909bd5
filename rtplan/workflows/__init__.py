"""Every job that reads files and writes results: the Python API equal to the command line.

* :mod:`rtplan.workflows.inventory` - ``rtplan info``: what is in a folder of DICOM-RT files.
* :mod:`rtplan.workflows.dvh` and :mod:`~rtplan.workflows.dvh_cohort` - ``rtplan dvh``: one
  patient's DVH metrics, or a cohort's long CSV.
* :mod:`rtplan.workflows.check` - ``rtplan check``: plans in DICOM folders against a protocol.
* :mod:`rtplan.workflows.volumes` - ``rtplan expand`` and ``rtplan volumes``: new target volumes
  written into a new RTSTRUCT.
* :mod:`rtplan.workflows.agree` - ``rtplan agree``: observers compared over a cohort.

A workflow reads with :mod:`rtplan.io`, computes with the computation packages (``dvh``,
``volumes``, ``agreement``, :mod:`rtplan.check`), renders with :mod:`rtplan.report` and writes
through :mod:`rtplan.io.output`.  The commands (``rtplan.commands``) only parse arguments, call
one workflow, print and return the exit code.  Layers: ``docs/architecture.md``.
"""
