"""Test data for rtplan's tests, benchmarks and sample data: not used by the library itself.

* :mod:`rtplan.testing.synthetic` - valid CT, RTDOSE, RTPLAN and RTSTRUCT datasets built from
  numbers (DS values of at most 16 characters), and whole phantom patients written to a folder.
* :mod:`rtplan.testing.dvh_phantoms` - analytic DVH phantoms and their exact DVHs.
* :mod:`rtplan.testing.agreement_phantoms` - observers' ellipsoids written as RTSTRUCTs.

Like ``numpy.testing`` and ``nibabel.testing``, the package ships with rtplan so that anyone can
rebuild the sample data and run the benchmarks; nothing under ``rtplan`` outside it imports it.
"""
