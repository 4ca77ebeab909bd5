"""Contour agreement: overlap and surface metrics, consensus, cohort runs.

Masks are boolean numpy arrays in array order ``[k, j, i]`` with an explicit
``spacing_mm`` in the same order.  The conventions of every number are in the docstring
of the module that computes it; :data:`CONVENTION` names them in result files.
"""

from rtplan.agreement.consensus import (
    StapleResult,
    generalised_conformity_index,
    majority_vote,
    staple,
)
from rtplan.agreement.overlap import centroid_distance_mm, dice, jaccard, volume_cc
from rtplan.agreement.pairwise import (
    CONVENTION,
    DEFAULT_TOLERANCE_MM,
    MaskSet,
    PairMetrics,
    common_grid,
    compare_masks,
    compare_structures,
    structure_masks,
)
from rtplan.agreement.pathlength import AddedPathLength, added_path_length
from rtplan.agreement.surface import (
    SurfaceDistances,
    assd,
    hausdorff_distance,
    hd95,
    hd95_pooled,
    masd,
    mean_surface_distances,
    surface_dice,
    surface_distances,
)
from rtplan.agreement.surfels import surface_elements

__all__ = [
    "CONVENTION",
    "DEFAULT_TOLERANCE_MM",
    "AddedPathLength",
    "MaskSet",
    "PairMetrics",
    "StapleResult",
    "SurfaceDistances",
    "added_path_length",
    "assd",
    "centroid_distance_mm",
    "common_grid",
    "compare_masks",
    "compare_structures",
    "dice",
    "generalised_conformity_index",
    "hausdorff_distance",
    "hd95",
    "hd95_pooled",
    "jaccard",
    "majority_vote",
    "masd",
    "mean_surface_distances",
    "staple",
    "structure_masks",
    "surface_dice",
    "surface_distances",
    "surface_elements",
    "volume_cc",
]
