"""Subcommands of the ``rtplan`` command line, one module each (see :mod:`rtplan.cli`)."""
