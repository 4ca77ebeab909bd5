"""Masks to planar contours: the geometry behind writing structures to an RTSTRUCT.

A mask on a CT grid becomes, on every slice, one closed polygon per connected component
and one per hole (holes are separate contours nested inside their outline, to be combined
by the even-odd rule).  Two kinds of mask are handled, chosen by ``method``:

``"edges"`` (binary masks)
    The polygon runs along the pixel **edges**: its area is exactly the pixel count times
    the pixel area, so rasterising it again (exact coverage, voxel centres, or
    ``fraction >= 0.5``) gives back the same pixels.  Built with marching squares at level
    0.5 (``contourpy``), which puts vertices on pixel-edge midpoints and cuts each pixel
    corner with a 45-degree chamfer; every chamfer is then replaced by the two pixel edges
    it cut.  Where two pixels touch only diagonally (a saddle), the corner point is pulled
    ``SADDLE_INSET`` pixels towards its own polygon so that the two boundaries never touch;
    this removes 0.0055 pixel area per saddle passage.  Diagonal neighbours are
    therefore separate components (4-connectivity of the structure).
``"isoline"`` (partial-volume masks, values in [0, 1])
    The polygon follows the 0.5 level of the fractions (marching squares, vertices on the
    lines between pixel centres).  Along each such line the crossing is interpolated after
    the monotone remap :func:`edge_remap`, which makes it exact for a straight boundary
    parallel to the pixel rows or columns (there the fractions are a unit ramp: a boundary
    at distance ``x0`` from a pixel centre gives that pixel ``0.5 + x0`` and its neighbours
    0 or 1, and plain linear interpolation would be off by up to 0.09 pixel).  On curved
    boundaries the polygon still runs slightly inside the true edge (the chords between
    vertices), losing up to about a pixel of area per closed loop whatever its size.  The
    loops are simplified (Douglas-Peucker, ``SIMPLIFY_PX`` = 0.05 pixel by default: a
    disc of radius 15 pixels keeps half its vertices), then all loops of the slice are
    moved along their outward normals by one common distance (at most
    ``MAX_AREA_OFFSET`` pixel) that makes their net area equal the sum of the fractions
    on the slice (the move is skipped when it would make edges cross).
    Against a disc of radius 3 / 5 / 8 pixels the result has Dice 0.995 / 0.998 / 0.999.
    Slices where no fraction exceeds 0.5 get no contour (the nearest planar-contour
    representation of a sliver thinner than half a voxel is none).

``"auto"`` uses ``"edges"`` when every value is 0 or 1, else ``"isoline"``.

Coordinates: a polygon in slice ``k`` is first found in continuous pixel indices
``(i, j)`` = (column, row) and then mapped to LPS mm with :meth:`Grid.index_to_world`, so
its z is exactly the slice position.  Polygons are returned without the first point
repeated (DICOM ContourData order), collinear vertices removed.  Outlines are
counter-clockwise and holes clockwise in ``(i, j)`` index space (``j`` pointing along the
column direction); the even-odd rule does not depend on this.
"""

from __future__ import annotations

import contourpy
import numpy as np

from rtplan.errors import ContourError, GeometryError
from rtplan.grid import Grid
from rtplan.polygon import signed_area

#: Distance (pixels) a saddle corner point is moved towards its own polygon ("edges").
SADDLE_INSET = 1.0 / 64.0
#: Largest distance (pixels) an iso-line is moved to match the mask's area ("isoline").
MAX_AREA_OFFSET = 0.5
#: Default Douglas-Peucker tolerance (pixels) for iso-lines ("isoline").
SIMPLIFY_PX = 0.05

METHODS = ("auto", "edges", "isoline")


def slice_polygons(
    values: np.ndarray, method: str = "auto", simplify_px: float = SIMPLIFY_PX
) -> list[np.ndarray]:
    """Closed polygons around the pixels of one 2-D mask slice.

    Parameters
    ----------
    values : numpy.ndarray, shape (rows, columns)
        Binary mask (bool or 0/1) or occupancy fractions in [0, 1].
    method : {"auto", "edges", "isoline"}
        See the module docstring.
    simplify_px : float
        Douglas-Peucker tolerance (pixels) for iso-lines, applied before the area match
        (0: keep every marching-squares vertex).  Pixel-edge outlines are never simplified
        beyond removing collinear vertices.

    Returns
    -------
    list of numpy.ndarray, each (N, 2)
        Polygons in continuous pixel indices ``(i, j)`` (column, row; pixel centres at
        integers), first point not repeated, N >= 3.  Outlines counter-clockwise, holes
        clockwise (in ``(i, j)``).

    Examples
    --------
    >>> m = np.zeros((4, 5), bool); m[1:3, 1:4] = True
    >>> [p.tolist() for p in slice_polygons(m)]
    [[[0.5, 0.5], [3.5, 0.5], [3.5, 2.5], [0.5, 2.5]]]
    >>> float(signed_area(slice_polygons(m)[0]))
    6.0
    """
    v = np.asarray(values)
    if v.ndim != 2:
        raise GeometryError(f"a mask slice must be 2-D, got shape {v.shape}")
    method = _resolve_method(v, method)
    z = np.pad(v.astype(float), 1)  # zero border: every contour closes inside the grid
    if not np.any(z > 0.5):
        return []
    level = 0.5
    if method == "isoline":
        z, level = edge_remap(z), float(edge_remap(0.5))
    gen = contourpy.contour_generator(z=z, name="serial", line_type="SeparateCode")
    lines, _codes = gen.lines(level)
    loops = [_drop_repeats(np.asarray(line, dtype=float)[:-1] - 1.0) for line in lines]
    loops = [xy for xy in loops if len(xy) >= 3]
    if method == "edges":
        binary = np.asarray(v, dtype=bool)
        loops = [_restore_pixel_corners(xy, binary) for xy in loops]
    else:
        if simplify_px > 0:
            simpler = [simplify(xy, simplify_px) for xy in loops]
            loops = loops if edges_meet(*simpler) else simpler
        loops = _match_area(loops, float(np.sum(v, dtype=float)))
    polygons = [remove_collinear(xy) for xy in loops]
    polygons = [p for p in polygons if len(p) >= 3]
    return polygons


def mask_contours(
    mask: np.ndarray, grid: Grid, method: str = "auto", simplify_px: float = SIMPLIFY_PX
) -> list[np.ndarray]:
    """Planar contours (LPS mm) of a 3-D mask on an axial grid, slice by slice.

    Parameters
    ----------
    mask : numpy.ndarray
        Binary mask or occupancy fractions, indexed ``[k, j, i]`` like ``grid``.
    grid : Grid
        An axial grid (slice normal along patient z); non-uniform slices are allowed.
    method : {"auto", "edges", "isoline"}
        See the module docstring; ``"auto"`` decides once for the whole mask.
    simplify_px : float
        Iso-line simplification tolerance in pixels (see :func:`slice_polygons`).

    Returns
    -------
    list of numpy.ndarray, each (N, 3)
        Closed planar contours in LPS mm, ordered by slice, every point of a contour at
        the z of its slice.

    Examples
    --------
    >>> g = Grid(shape=(2, 4, 4), origin_mm=(0.0, 0.0, 10.0), spacing_mm=(3.0, 2.0, 2.0))
    >>> m = np.zeros(g.shape, bool); m[1, 1:3, 1:3] = True
    >>> mask_contours(m, g)[0].tolist()
    [[1.0, 1.0, 13.0], [5.0, 1.0, 13.0], [5.0, 5.0, 13.0], [1.0, 5.0, 13.0]]
    """
    m = np.asarray(mask)
    if m.shape != tuple(grid.shape):
        raise GeometryError(f"mask shape {m.shape} does not match grid shape {grid.shape}")
    if not grid.is_axial:
        raise GeometryError("contours can only be made on axial slices (slice normal along z)")
    method = _resolve_method(m, method)
    occupied = m if m.dtype == bool else m > 0.5
    contours = []
    for k in np.flatnonzero(occupied.any(axis=(1, 2))):
        for xy in slice_polygons(m[k], method, simplify_px):
            idx = np.column_stack([np.full(len(xy), float(k)), xy[:, 1], xy[:, 0]])
            pts = grid.index_to_world(idx)
            pts[:, 2] = grid.index_to_world([[float(k), 0.0, 0.0]])[0, 2]  # exact plane z
            contours.append(pts)
    return contours


def structure_from_mask(
    mask: np.ndarray,
    grid: Grid,
    name: str,
    *,
    interpreted_type: str = "ORGAN",
    number: int | None = None,
    color: tuple[int, int, int] | None = None,
    frame_of_reference_uid: str = "",
    method: str = "auto",
    simplify_px: float = SIMPLIFY_PX,
):
    """A :class:`~rtplan.structure.Structure` whose contours outline ``mask``.

    Parameters
    ----------
    mask, grid, method, simplify_px
        As for :func:`mask_contours`.
    name : str
        ROI name (AAPM TG-263 names are recommended).
    interpreted_type : str
        DICOM RTROIInterpretedType: EXTERNAL, GTV, CTV, PTV, ORGAN, AVOIDANCE, ...
    number, color, frame_of_reference_uid
        ROINumber, ROIDisplayColor (RGB 0-255) and FrameOfReferenceUID.

    Returns
    -------
    Structure
        Closed planar contours on the slices of ``grid``, ``slice_spacing_mm`` set to the
        grid's slice spacing (the slab each contour stands for).

    Raises
    ------
    ContourError
        If the mask is empty.
    """
    from rtplan.structure import Contour, Structure

    contours = mask_contours(mask, grid, method, simplify_px)
    if not contours:
        raise ContourError("mask is empty: no contour to write", structure=name)
    return Structure(
        name=name,
        contours=tuple(Contour(points_mm=c) for c in contours),
        number=number,
        interpreted_type=interpreted_type,
        color=color,
        frame_of_reference_uid=frame_of_reference_uid,
        slice_spacing_mm=float(grid.spacing_mm[0]) if grid.is_uniform else None,
    )


def edge_remap(fraction):
    """Monotone remap of pixel fractions under which linear interpolation finds the edge.

    ``g(f) = 2 - 1 / (0.5 + f)`` for ``f <= 0.5`` and ``g(f) = 1 / (1.5 - f)`` above, so
    ``g(0) = 0``, ``g(0.5) = 1``, ``g(1) = 2``, continuous slope.  For a straight edge along
    the pixel grid at distance ``x0`` (|x0| <= 0.5) from a pixel centre, that pixel holds
    ``f = 0.5 + x0`` and its neighbours 0 and 1; interpolating ``g`` linearly to the level
    ``g(0.5) = 1`` between neighbouring centres lands exactly on the edge.

    Examples
    --------
    >>> g = edge_remap(np.array([0.0, 0.25, 0.5, 1.0]))
    >>> g.tolist()
    [0.0, 0.6666666666666667, 1.0, 2.0]
    >>> round(float((g[1] - 1) / (g[1] - g[3])), 12)  # from pixel f=0.25 to its neighbour
    0.25
    """
    f = np.asarray(fraction, dtype=float)
    low = 2.0 - 1.0 / (0.5 + np.minimum(f, 0.5))
    high = 1.0 / (1.5 - np.maximum(f, 0.5))
    return np.where(f <= 0.5, low, high)


def remove_collinear(xy: np.ndarray, tolerance: float = 1e-9) -> np.ndarray:
    """Drop vertices that lie on the straight line through their neighbours.

    A vertex is dropped when the path continues forward through it (no reversal) and the
    cross product of the two edges at it is at most ``tolerance`` times their lengths'
    product.  All such vertices can be dropped at once: a run of collinear vertices lies on
    one line, so its end points span the same segment.

    Examples
    --------
    >>> remove_collinear(np.array([[0, 0], [1, 0], [2, 0], [2, 2], [0, 2], [0, 1.0]])).tolist()
    [[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0]]
    """
    p = np.asarray(xy, dtype=float)
    if len(p) < 3:
        return p
    a = p - np.roll(p, 1, axis=0)
    b = np.roll(p, -1, axis=0) - p
    cross = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]
    dot = np.sum(a * b, axis=1)
    scale = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    keep = (np.abs(cross) > tolerance * scale) | (dot <= 0)
    return p[keep]


def simplify(xy: np.ndarray, tolerance: float) -> np.ndarray:
    """Douglas-Peucker simplification of a closed polygon: every dropped vertex lies within
    ``tolerance`` of the kept edge that replaces it.

    The two anchors are vertex 0 and the vertex farthest from it; then, round by round, each
    open span between kept vertices keeps its farthest vertex when that is farther than
    ``tolerance`` from the span's chord (all spans of a round at once).

    Examples
    --------
    >>> t = np.linspace(0, 2 * np.pi, 400, endpoint=False)
    >>> circle = 100 * np.column_stack([np.cos(t), np.sin(t)])
    >>> len(simplify(circle, 0.1))  # spans halve until their sagitta is <= 0.1
    128
    """
    p = np.asarray(xy, dtype=float)
    n = len(p)
    if n <= 4 or tolerance <= 0:
        return p
    far = int(np.argmax(np.sum((p - p[0]) ** 2, axis=1)))
    ring = np.concatenate([p, p[:1]])  # vertex n is vertex 0 again
    kept = np.zeros(n + 1, dtype=bool)
    kept[[0, far, n]] = True
    index = np.arange(n + 1)
    while True:
        start = np.maximum.accumulate(np.where(kept, index, 0))
        end = np.minimum.accumulate(np.where(kept, index, n)[::-1])[::-1]
        a, b = ring[start], ring[end]
        ab = b - a
        length2 = np.sum(ab * ab, axis=1)
        t = np.clip(np.sum((ring - a) * ab, axis=1) / np.where(length2 > 0, length2, 1), 0, 1)
        dist = np.linalg.norm(ring - (a + t[:, None] * ab), axis=1)
        dist[kept] = -1.0
        candidates = np.flatnonzero(dist > tolerance)
        if candidates.size == 0:
            break
        span = start[candidates]
        order = np.lexsort((-dist[candidates], span))  # by span, farthest first
        _, first = np.unique(span[order], return_index=True)
        kept[candidates[order[first]]] = True
    return p[kept[:-1]]


def decimate(xy: np.ndarray, max_points: int) -> np.ndarray:
    """Reduce a closed polygon to at most ``max_points`` vertices (Visvalingam-Whyatt).

    Vertices whose triangle with their two neighbours has the smallest area go first; each
    round drops only vertices whose triangle is smaller than both neighbours' (so no two
    neighbours go in the same round) and recomputes.  Used only when a contour is too long
    for one DICOM element.

    Parameters
    ----------
    xy : numpy.ndarray, shape (N, 2) or (N, 3)
        Closed polygon, first point not repeated (only the first two columns are used for
        areas; a planar contour's z is constant).
    max_points : int
        At least 3.

    Returns
    -------
    numpy.ndarray
        The kept vertices, in their original order.
    """
    p = np.asarray(xy, dtype=float)
    if max_points < 3:
        raise ContourError(f"cannot decimate a contour to {max_points} points")
    while len(p) > max_points:
        prev, nxt = np.roll(p, 1, axis=0), np.roll(p, -1, axis=0)
        area = 0.5 * np.abs(
            (p[:, 0] - prev[:, 0]) * (nxt[:, 1] - prev[:, 1])
            - (nxt[:, 0] - prev[:, 0]) * (p[:, 1] - prev[:, 1])
        )
        local_min = (area < np.roll(area, 1)) & (area <= np.roll(area, -1))
        candidates = np.flatnonzero(local_min)
        if candidates.size == 0:  # all equal (regular polygon): take every other vertex
            candidates = np.arange(0, len(p) - 1, 2)
        excess = len(p) - max_points
        drop = candidates[np.argsort(area[candidates], kind="stable")[:excess]]
        p = np.delete(p, drop, axis=0)
    return p


def edges_meet(*polygons: np.ndarray) -> bool:
    """True when two edges of the given closed polygons cross or touch.

    Stricter than :func:`rtplan.polygon.self_intersection` (which allows touching, as in
    keyhole contours): this is the guarantee the writer gives for contours it makes.

    Edges that follow each other in one polygon may share their common vertex; any other
    contact (a crossing, a vertex on another edge, a polygon doubling back on itself, two
    polygons touching) counts.  Candidate pairs come from a k-d tree of edge midpoints
    (two edges can only meet if their midpoints are closer than the longest edge), and
    are decided with exact orientation tests.

    Parameters
    ----------
    *polygons : numpy.ndarray, each (N, 2) or (N, 3)
        Closed polygons, first point not repeated (only the first two columns are used).

    Examples
    --------
    >>> edges_meet(np.array([[0, 0], [2, 0], [0, 2], [2, 2.0]]))  # bow tie
    True
    >>> square = np.array([[0, 0], [2, 0], [2, 2], [0, 2.0]])
    >>> edges_meet(square), edges_meet(square, square + 3), edges_meet(square, square + 1)
    (False, False, True)
    """
    from scipy.spatial import cKDTree

    polys = [np.asarray(p, dtype=float)[:, :2] for p in polygons if len(p)]
    if not polys:
        return False
    a = np.concatenate(polys)
    b = np.concatenate([np.roll(p, -1, axis=0) for p in polys])
    sizes = np.array([len(p) for p in polys])
    start = np.repeat(np.cumsum(sizes) - sizes, sizes)
    size = np.repeat(sizes, sizes)
    local = np.arange(len(a)) - start
    nxt = start + (local + 1) % size  # index of the following edge in the same polygon
    if np.any(np.all(a == b, axis=1)):
        return True  # zero-length edge: a repeated vertex
    longest = float(np.max(np.linalg.norm(b - a, axis=1)))
    pairs = cKDTree(0.5 * (a + b)).query_pairs(longest * (1 + 1e-9), output_type="ndarray")
    if len(pairs) == 0:
        return False
    i, j = pairs[:, 0], pairs[:, 1]
    adjacent = (nxt[i] == j) | (nxt[j] == i)
    cross = _segments_cross(a[i], b[i], a[j], b[j])
    if np.any(cross & ~adjacent):
        return True
    # adjacent edges (sharing one vertex) meet elsewhere only if the path doubles back
    ia, ja = i[adjacent], j[adjacent]
    e1, e2 = b[ia] - a[ia], b[ja] - a[ja]
    collinear = (e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]) == 0
    two_edge_loop = (nxt[ia] == ja) & (nxt[ja] == ia)
    return bool(np.any((collinear & (np.sum(e1 * e2, axis=1) < 0)) | two_edge_loop))


# ---------------------------------------------------------------------------- helpers
def _resolve_method(values: np.ndarray, method: str) -> str:
    if method not in METHODS:
        raise GeometryError(f"contouring method must be one of {METHODS}, got {method!r}")
    if method != "auto":
        return method
    if values.dtype == bool:
        return "edges"
    v = np.asarray(values, dtype=float)
    if np.any((v < 0) | (v > 1)) or np.any(~np.isfinite(v)):
        raise GeometryError("mask values must be booleans or fractions in [0, 1]")
    return "edges" if np.all((v == 0) | (v == 1)) else "isoline"


def _drop_repeats(xy: np.ndarray) -> np.ndarray:
    """Remove vertices equal to their predecessor (marching squares repeats a vertex where
    a pixel value equals the level exactly)."""
    if len(xy) < 2:
        return xy
    return xy[np.any(xy != np.roll(xy, 1, axis=0), axis=1)]


def _match_area(loops: list[np.ndarray], target: float) -> list[np.ndarray]:
    """Move iso-line loops along their outward normals so their net area is ``target``.

    One offset ``d`` (pixels, at most ``MAX_AREA_OFFSET``) for every loop of the slice;
    outlines are counter-clockwise and holes clockwise, so the right-hand normal of every
    edge points out of the structure.  Vertices move by the mitre vector (``d`` from both
    adjacent edges; mitre length capped at 2 ``d``).  The area is nearly linear in ``d``
    (slope = perimeter), so two secant steps suffice.  If the moved loops would cross or
    touch, the loops are returned unmoved.
    """
    if not loops:
        return loops

    def moved(d):
        out = []
        for p in loops:
            e = np.roll(p, -1, axis=0) - p
            n = np.column_stack([e[:, 1], -e[:, 0]]) / np.linalg.norm(e, axis=1)[:, None]
            n_prev = np.roll(n, 1, axis=0)
            denom = np.maximum(1.0 + np.sum(n * n_prev, axis=1), 0.5)[:, None]
            out.append(p + d * (n + n_prev) / denom)
        return out

    def area(ls):
        return sum(signed_area(p) for p in ls)

    perimeter = sum(float(np.sum(np.linalg.norm(np.roll(p, -1, 0) - p, axis=1))) for p in loops)
    a0 = area(loops)
    d = float(np.clip((target - a0) / perimeter, -MAX_AREA_OFFSET, MAX_AREA_OFFSET))
    if d == 0.0:
        return loops
    a1 = area(moved(d))
    if a1 != a0:
        d = float(np.clip(d * (target - a0) / (a1 - a0), -MAX_AREA_OFFSET, MAX_AREA_OFFSET))
    result = moved(d)
    return loops if edges_meet(*result) else result


def _segments_cross(a, b, c, d) -> np.ndarray:
    """Per row: do segments ``a-b`` and ``c-d`` cross or touch (2-D)?"""

    def orient(p, q, r):
        return np.sign(
            (q[:, 0] - p[:, 0]) * (r[:, 1] - p[:, 1]) - (q[:, 1] - p[:, 1]) * (r[:, 0] - p[:, 0])
        )

    def on_segment(p, q, r):  # r collinear with p-q: inside its bounding box?
        return (
            (np.minimum(p[:, 0], q[:, 0]) <= r[:, 0])
            & (r[:, 0] <= np.maximum(p[:, 0], q[:, 0]))
            & (np.minimum(p[:, 1], q[:, 1]) <= r[:, 1])
            & (r[:, 1] <= np.maximum(p[:, 1], q[:, 1]))
        )

    o1, o2, o3, o4 = orient(a, b, c), orient(a, b, d), orient(c, d, a), orient(c, d, b)
    proper = (o1 * o2 < 0) & (o3 * o4 < 0)
    touch = (
        ((o1 == 0) & on_segment(a, b, c))
        | ((o2 == 0) & on_segment(a, b, d))
        | ((o3 == 0) & on_segment(c, d, a))
        | ((o4 == 0) & on_segment(c, d, b))
    )
    return proper | touch


def _restore_pixel_corners(xy: np.ndarray, binary: np.ndarray) -> np.ndarray:
    """Replace the 45-degree chamfers of a marching-squares loop by pixel edges.

    On a 0/1 image at level 0.5 every vertex is a pixel-edge midpoint (one coordinate
    half-integer); a step changing both coordinates cuts the pixel corner at the centre of
    its marching-squares cell, which is inserted (pulled ``SADDLE_INSET`` towards the chord
    in saddle cells, where two boundaries pass the same corner).
    """
    q = np.roll(xy, -1, axis=0)
    diagonal = (xy[:, 0] != q[:, 0]) & (xy[:, 1] != q[:, 1])
    p_on_vertical_edge = np.isclose(np.mod(xy[:, 0], 1.0), 0.5)
    corner = np.where(
        p_on_vertical_edge[:, None],
        np.column_stack([xy[:, 0], q[:, 1]]),
        np.column_stack([q[:, 0], xy[:, 1]]),
    )
    # saddle test on the 2x2 pixels around each corner (corner at half-integers)
    padded = np.pad(binary, 1)
    ci = np.floor(corner[:, 0]).astype(int) + 1  # padded index of the left/upper pixel
    cj = np.floor(corner[:, 1]).astype(int) + 1
    ci = np.clip(ci, 0, padded.shape[1] - 2)
    cj = np.clip(cj, 0, padded.shape[0] - 2)
    ul, ur = padded[cj, ci], padded[cj, ci + 1]
    ll, lr = padded[cj + 1, ci], padded[cj + 1, ci + 1]
    saddle = (ul == lr) & (ur == ll) & (ul != ur)
    mid = 0.5 * (xy + q)
    towards = mid - corner
    norm = np.linalg.norm(towards, axis=1, keepdims=True)
    corner = np.where(
        saddle[:, None], corner + SADDLE_INSET * towards / np.maximum(norm, 1e-12), corner
    )
    out = np.empty((len(xy) * 2, 2))
    out[0::2] = xy
    out[1::2] = corner
    keep = np.ones(len(out), bool)
    keep[1::2] = diagonal
    return out[keep]
