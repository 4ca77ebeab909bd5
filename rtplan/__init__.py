"""rtplan: radiotherapy contour-and-dose toolkit for soft-tissue sarcoma plans.

Coordinates are DICOM patient coordinates (LPS, mm) throughout; doses are in Gy,
volumes in cc (cm^3).
"""

__version__ = "0.1.0"
