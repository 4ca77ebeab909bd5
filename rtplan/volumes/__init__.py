"""Target volumes: exact margins, booleans and cropping, and protocol recipes.

* :mod:`rtplan.volumes.margins` - expand or shrink by per-direction margins (Minkowski sum
  with an octant-wise ellipsoid), on masks or :class:`SubvoxelMask` regions.
* :mod:`rtplan.volumes.subvoxel` - regions with their boundary placed inside the voxels.
"""

from rtplan.volumes.margins import Margins, apply_margin, expand_mask
from rtplan.volumes.subvoxel import SubvoxelMask

__all__ = ["Margins", "SubvoxelMask", "apply_margin", "expand_mask"]
