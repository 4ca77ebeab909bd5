"""rtplan: radiotherapy contour-and-dose toolkit for soft-tissue sarcoma plans.

Coordinates are DICOM patient coordinates (LPS, mm) throughout; doses are in Gy,
volumes in cc (cm^3).
"""

import importlib

__version__ = "0.1.0"


def lazy_exports(package: str, where: dict[str, str]):
    """A package's module ``__getattr__`` (PEP 562) that imports each public name from its
    submodule (``where``: name -> submodule of ``package``) when it is first used, so that
    importing one submodule does not import the others and their dependencies."""

    def __getattr__(name: str):
        if name in where:
            return getattr(importlib.import_module(f"{package}.{where[name]}"), name)
        raise AttributeError(f"module '{package}' has no attribute '{name}'")

    return __getattr__
