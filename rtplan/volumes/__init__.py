"""Target volumes: exact margins, booleans and cropping, and protocol recipes.

* :mod:`rtplan.volumes.margins` - expand or shrink by per-direction margins (Minkowski sum
  with an octant-wise ellipsoid), on masks or :class:`SubvoxelMask` regions.
* :mod:`rtplan.volumes.subvoxel` - regions with their boundary placed inside the voxels.
* :mod:`rtplan.volumes.booleans` - union, intersection, subtraction, ``avoid``, ``within``.
* :mod:`rtplan.volumes.workspace` - the fine grid tied to the CT slices; contours out.
* :mod:`rtplan.volumes.builder` - structures in, logged operations, structures out.
* :mod:`rtplan.volumes.recipes` - running the ``[volumes]`` recipes of the protocol files
  (read by :mod:`rtplan.protocols.recipe`).
* :mod:`rtplan.volumes.kernel_build` - the compiled margin kernels built in a separate
  process while a command reads its input.

``rtplan expand`` and ``rtplan volumes`` on DICOM folders: :mod:`rtplan.workflows.volumes`.
Conventions and accuracy: ``docs/volumes.md``.

The names below are loaded when first used (``rtplan.volumes.Margins`` imports
:mod:`~rtplan.volumes.margins`), so that importing a submodule that needs neither numpy nor
numba (:mod:`~rtplan.volumes.kernel_build`, first thing in ``rtplan expand`` and ``rtplan
volumes``) does not load them.
"""

import rtplan

#: public name -> the submodule defining it
_WHERE = {
    "avoid": "booleans",
    "intersection": "booleans",
    "subtract": "booleans",
    "union": "booleans",
    "within": "booleans",
    "Crop": "builder",
    "Step": "builder",
    "VolumeBuilder": "builder",
    "expand_structure": "builder",
    "Margins": "margins",
    "apply_margin": "margins",
    "expand_mask": "margins",
    "SubvoxelMask": "subvoxel",
    "Workspace": "workspace",
}

__all__ = sorted(_WHERE)


__getattr__ = rtplan.lazy_exports(__name__, _WHERE)
