"""Target volumes: exact margins, booleans and cropping, and protocol recipes.

* :mod:`rtplan.volumes.margins` - expand or shrink by per-direction margins (Minkowski sum
  with an octant-wise ellipsoid), on masks or :class:`SubvoxelMask` regions.
* :mod:`rtplan.volumes.subvoxel` - regions with their boundary placed inside the voxels.
* :mod:`rtplan.volumes.booleans` - union, intersection, subtraction, ``avoid``, ``within``.
* :mod:`rtplan.volumes.workspace` - the fine grid tied to the CT slices; contours out.
* :mod:`rtplan.volumes.builder` - structures in, logged operations, structures out.
* :mod:`rtplan.volumes.recipes` - running the ``[volumes]`` recipes of the protocol files
  (read by :mod:`rtplan.protocols.recipe`).

``rtplan expand`` and ``rtplan volumes`` on DICOM folders: :mod:`rtplan.workflows.volumes`.
Conventions and accuracy: ``docs/volumes.md``.
"""

from rtplan.volumes.booleans import avoid, intersection, subtract, union, within
from rtplan.volumes.builder import Crop, Step, VolumeBuilder, expand_structure
from rtplan.volumes.margins import Margins, apply_margin, expand_mask
from rtplan.volumes.subvoxel import SubvoxelMask
from rtplan.volumes.workspace import Workspace

__all__ = [
    "Crop",
    "Margins",
    "Step",
    "SubvoxelMask",
    "VolumeBuilder",
    "Workspace",
    "apply_margin",
    "avoid",
    "expand_mask",
    "expand_structure",
    "intersection",
    "subtract",
    "union",
    "within",
]
