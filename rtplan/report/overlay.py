"""Contour and isodose overlays: axial, coronal and sagittal views through one point.

:func:`plane_views` draws the CT (or a blank background), each structure's outline in its
ROI colour and the dose's isodose lines on three orthogonal planes through one point, with a
legend; :func:`check_overlay` does it for a protocol check (the protocol's structures, isodose
levels relative to the prescription).  Figures are drawn with matplotlib's Agg canvas (no
display needed); :func:`figure_png` renders one as PNG bytes.

Conventions
-----------
Orientation
    Every view is resampled on a plane of DICOM patient coordinates (LPS, mm), so the
    picture does not depend on how the patient lay on the table (any of the eight cardinal
    positions, or an oblique image grid): the image grid's direction cosines map each
    drawn point to the voxel it comes from.  Display follows the radiological convention:
    axial views show the patient's right on the viewer's left and anterior up; coronal
    views the right on the left and superior up; sagittal views anterior on the left and
    superior up.  Axes are labelled in mm (LPS coordinates) and each panel carries the
    patient direction letters (R/L, A/P, S/I) at its edges.
Planes
    The views cross at ``centre_mm``, by default the centroid of the first target structure
    drawn (interpreted type PTV, then CTV, then GTV; :func:`centroid_mm`), else the
    position of the dose maximum, else the middle of the background.  Each plane is moved
    to the nearest CT voxel centre, so the axial view shows a true CT slice; without a CT,
    the axial plane is moved to the nearest contour plane of the structures drawn.
Extent
    The background is the CT's extent (voxel edges), else the dose grid's, else the
    structures' bounding box.  The views are cropped to the bounding box of the structures
    drawn and of the patient outline (any structure of interpreted type EXTERNAL, drawn or
    not), widened by :data:`MARGIN_MM` (within the background); a panel narrower than
    :data:`MIN_ASPECT` (width / height) is widened on both sides.
Image
    CT numbers are sampled trilinearly (``scipy.ndimage.map_coordinates``, ``order=1``) on
    a plane lattice of at most 1 mm spacing and shown in the window :data:`WINDOW_HU`,
    :data:`LEVEL_HU` (W400 / L40); outside the CT is black.
Structures
    Axial view: the structure's planar contours of the contour plane whose slab holds the
    axial plane (slab convention of :mod:`rtplan.structure`; a structure that does not
    reach the plane is not drawn), verbatim.  Coronal and sagittal views: the 0.5 iso-line
    of the structure's partial-volume occupancy (:meth:`rtplan.structure.Structure.fraction_mask`)
    on a one-row grid along the plane (the slab convention gives the superior and inferior
    ends; in-plane, the iso-line runs where the plane crosses the contours).
Dose
    Sampled trilinearly on the same lattice through ``dose.grid.world_to_index``; points
    outside the hull of the dose grid's voxel centres have no dose (no isodose line is
    drawn there).  The legend gives each level in Gy and in % of the prescription (or of
    the dose maximum when no prescription is given).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib import colormaps, patheffects
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from scipy import ndimage

from rtplan.check import PlanCheck
from rtplan.constraints import format_number
from rtplan.dose import Dose
from rtplan.errors import ContourError, GeometryError, InputError, RtplanError
from rtplan.grid import Grid
from rtplan.image import Image
from rtplan.polygon import nesting_depths
from rtplan.report.plots import DPI, check_colours, structure_colour
from rtplan.sanitize import plot_text
from rtplan.structure import Structure, names_hint

#: CT display window width and level (HU).
WINDOW_HU = 400.0
LEVEL_HU = 40.0
#: Default isodose levels, % of the prescription.
ISODOSE_PCT = (95.0, 50.0, 20.0)
#: Interpreted types that make a structure a target, in order of preference for the centre.
TARGET_TYPES = ("PTV", "CTV", "GTV")
#: Margin (mm) around the structures drawn when cropping the views.
MARGIN_MM = 15.0
#: Narrowest panel drawn (width / height); narrower views are widened on both sides.
MIN_ASPECT = 0.65
#: Finest and coarsest lattice of the resampled planes: at most 1 mm, at most this many
#: samples along a side.
MAX_STEP_MM = 1.0
MAX_SAMPLES = 1200
#: Height (inches) of the panels; their widths follow the extent drawn.
PANEL_HEIGHT_IN = 4.5
#: Isodose colours, highest level first (picked evenly when there are fewer levels).
ISODOSE_COLOURS = ("#ff3b30", "#ff9500", "#ffd60a", "#34c759", "#40c8e0", "#4d8dff")
#: Dose colour wash (optional): colour map, opacity, and the lowest level washed (% of the
#: reference dose).
WASH_CMAP = "jet"
WASH_ALPHA = 0.35
WASH_FROM_PCT = 20.0
_BACKGROUND = "#000000"
_AXES = "xyz"


@dataclass(frozen=True)
class _View:
    """One panel: LPS axes drawn horizontally (increasing to the right) and vertically."""

    title: str
    h: int
    v: int
    v_down: bool  # True: v grows downwards (axial: anterior, smaller y, at the top)
    labels: tuple[str, str, str, str]  # patient directions at the left, right, top, bottom

    @property
    def n(self) -> int:
        """The LPS axis normal to the plane."""
        return 3 - self.h - self.v


#: Radiological display: R on the viewer's left (x grows to the right), anterior up
#: (y grows downwards), superior up (z grows upwards), sagittal anterior on the left.
VIEWS = (
    _View("Axial", 0, 1, True, ("R", "L", "A", "P")),
    _View("Coronal", 0, 2, False, ("R", "L", "S", "I")),
    _View("Sagittal", 1, 2, False, ("A", "P", "S", "I")),
)


@dataclass(frozen=True)
class _Frame:
    """The background: LPS box (mm), voxel-centre coordinates per axis, finest spacing."""

    lo: np.ndarray
    hi: np.ndarray
    centres: tuple[np.ndarray, ...] | None
    step_mm: float


def centroid_mm(structure: Structure) -> np.ndarray:
    """Centroid (LPS mm) of the volume a structure's contours stand for.

    Each plane's polygons are combined by the even-odd rule and weighted by their area
    times the plane's slab (slab convention of :mod:`rtplan.structure`, with end caps).

    Parameters
    ----------
    structure : Structure
        A structure with closed planar contours.

    Returns
    -------
    numpy.ndarray
        ``(x, y, z)`` in mm.

    Raises
    ------
    ContourError
        The structure encloses no volume.

    Example
    -------
    >>> from rtplan.structure import Contour
    >>> sq = np.array([[0, 0], [20, 0], [20, 10], [0, 10]], dtype=float)
    >>> s = Structure("box", tuple(Contour(np.c_[sq, np.full(4, z)]) for z in (0.0, 2.0)))
    >>> centroid_mm(s).tolist()
    [10.0, 5.0, 1.0]
    """
    moments = np.zeros(4)  # weight, weight * (x, y, z)
    if structure.is_volume:
        for polys, (lo, hi) in zip(structure.planes.values(), structure.slabs_mm(), strict=True):
            for poly, depth in zip(polys, nesting_depths(polys), strict=True):
                x, y = poly[:, 0], poly[:, 1]
                xn, yn = np.roll(x, -1), np.roll(y, -1)
                cross = x * yn - xn * y
                area2 = cross.sum()  # twice the signed area
                if area2 == 0:
                    continue
                cx = np.sum((x + xn) * cross) / (3 * area2)
                cy = np.sum((y + yn) * cross) / (3 * area2)
                w = (-1) ** depth * abs(area2) / 2 * (hi - lo)
                moments += w * np.array([1.0, cx, cy, (lo + hi) / 2])
    if moments[0] <= 0:
        raise ContourError(
            "encloses no volume, so it has no centroid",
            path=structure.source or None,
            structure=structure.name,
        )
    return moments[1:] / moments[0]


def _grid_frame(grid: Grid, snap: bool) -> _Frame:
    """A grid's extent (voxel edges, LPS axis-aligned box) and voxel-centre coordinates."""
    d = grid.direction_matrix
    positions = grid.axis_coordinates_mm()
    lo, hi = grid.world_bounds_mm()
    half, centres = np.zeros(3), []
    for p in range(3):
        a = int(np.argmax(np.abs(d[p])))  # the array axis closest to LPS axis p
        half[p] = grid.spacing_mm[a] / 2
        centres.append(np.sort(grid.origin_mm[p] + d[p, a] * positions[a]))
    return _Frame(lo - half, hi + half, tuple(centres) if snap else None, min(grid.spacing_mm))


def _frame(image, dose, drawn) -> _Frame:
    if image is not None:
        return _grid_frame(image.grid, snap=True)
    if dose is not None:
        return _grid_frame(dose.grid, snap=False)
    box = _bounds(drawn)
    if box is not None:
        return _Frame(box[0], box[1], None, MAX_STEP_MM)
    raise InputError("nothing to draw: no image, no dose and no structure with contours")


def _bounds(structures: Sequence[Structure]) -> tuple[np.ndarray, np.ndarray] | None:
    """LPS box of the structures that can be measured (``None`` if none can; one that
    cannot is reported in the legend when it is drawn)."""
    boxes = []
    for s in structures:
        try:
            boxes.append(s.bounds_mm())
        except RtplanError:
            continue
    if not boxes:
        return None
    return np.min([b[0] for b in boxes], axis=0), np.max([b[1] for b in boxes], axis=0)


def _default_centre(drawn: Sequence[Structure], dose: Dose | None, frame: _Frame) -> np.ndarray:
    targets = [s for s in drawn if s.interpreted_type.upper() in TARGET_TYPES]
    if targets:
        first = min(targets, key=lambda s: TARGET_TYPES.index(s.interpreted_type.upper()))
        return centroid_mm(first)
    if dose is not None and dose.values_gy.size:
        k = np.unravel_index(int(np.argmax(dose.values_gy)), dose.grid.shape)
        return dose.grid.index_to_world(np.asarray(k, dtype=float))
    return (frame.lo + frame.hi) / 2


def _snap(centre: np.ndarray, frame: _Frame, drawn: Sequence[Structure]) -> np.ndarray:
    """Move each plane to the nearest CT voxel centre (without a CT: the axial plane to the
    nearest contour plane of the structures drawn)."""
    c = np.array(centre, dtype=float)
    if frame.centres is not None:
        for p in range(3):
            coords = frame.centres[p]
            c[p] = coords[np.argmin(np.abs(coords - c[p]))]
    else:
        planes = np.concatenate([s.plane_z_mm for s in drawn]) if drawn else np.zeros(0)
        if planes.size:
            c[2] = planes[np.argmin(np.abs(planes - c[2]))]
    return c


def _crop(frame: _Frame, drawn: Sequence[Structure]) -> tuple[np.ndarray, np.ndarray]:
    """The structures' box plus the margin, inside the background."""
    box = _bounds(drawn)
    if box is None:
        return frame.lo.copy(), frame.hi.copy()
    lo, hi = box
    lo, hi = np.maximum(lo - MARGIN_MM, frame.lo), np.minimum(hi + MARGIN_MM, frame.hi)
    empty = hi <= lo
    lo[empty], hi[empty] = frame.lo[empty], frame.hi[empty]
    return lo, hi


def _sample(values: np.ndarray, grid: Grid, points: np.ndarray, tolerance: float) -> np.ndarray:
    """Trilinear samples of ``values`` (on ``grid``) at LPS ``points`` (..., 3); NaN outside
    the hull of the voxel centres widened by ``tolerance`` voxels."""
    idx = grid.world_to_index(points.reshape(-1, 3))
    upper = np.asarray(grid.shape) - 1
    inside = np.all((idx >= -tolerance) & (idx <= upper + tolerance), axis=1)
    out = ndimage.map_coordinates(values, idx.T, output=np.float32, order=1, mode="nearest")
    out[~inside] = np.nan
    return out.reshape(points.shape[:-1])


@dataclass(frozen=True)
class _Plane:
    view: _View
    position_mm: float  # coordinate along the normal axis
    h_mm: np.ndarray  # sample coordinates along the horizontal axis
    v_mm: np.ndarray  # along the vertical axis
    step_mm: float

    def points(self) -> np.ndarray:
        """LPS positions (nv, nh, 3) of the samples."""
        vv, hh = np.meshgrid(self.v_mm, self.h_mm, indexing="ij")
        pts = np.empty(vv.shape + (3,))
        pts[..., self.view.h], pts[..., self.view.v] = hh, vv
        pts[..., self.view.n] = self.position_mm
        return pts

    def structure_grid(self) -> Grid:
        """A one-row axial grid along the plane: rows of samples along z (``v``), columns
        along ``h``, and a row thickness of half a step across the plane."""
        e = np.eye(3)
        direction = np.stack([e[2], e[self.view.n], e[self.view.h]], axis=1)
        origin = np.zeros(3)
        origin[self.view.h], origin[2] = self.h_mm[0], self.v_mm[0]
        origin[self.view.n] = self.position_mm
        return Grid(
            (len(self.v_mm), 1, len(self.h_mm)),
            tuple(origin),
            (self.step_mm, self.step_mm / 2, self.step_mm),
            tuple(map(tuple, direction)),
        )

    def extent(self) -> tuple[float, float, float, float]:
        """``imshow`` extent (left, right, bottom, top) of the sample lattice."""
        s = self.step_mm / 2
        h0, h1 = self.h_mm[0] - s, self.h_mm[-1] + s
        v0, v1 = self.v_mm[0] - s, self.v_mm[-1] + s
        return (h0, h1, v1, v0) if self.view.v_down else (h0, h1, v0, v1)


def _plane(view: _View, centre: np.ndarray, lo: np.ndarray, hi: np.ndarray, step0: float):
    lo, hi = lo.copy(), hi.copy()
    widen = MIN_ASPECT * (hi[view.v] - lo[view.v]) - (hi[view.h] - lo[view.h])
    if widen > 0:  # a tall, narrow panel: show more on either side
        lo[view.h] -= widen / 2
        hi[view.h] += widen / 2
    size = max(hi[view.h] - lo[view.h], hi[view.v] - lo[view.v])
    step = max(min(MAX_STEP_MM, step0), size / MAX_SAMPLES)

    def axis(p):
        n = max(int(np.floor((hi[p] - lo[p]) / step)), 1)
        return (lo[p] + hi[p]) / 2 + (np.arange(n) - (n - 1) / 2) * step

    return _Plane(view, float(centre[view.n]), axis(view.h), axis(view.v), step)


def _structure_colour(s: Structure, index: int) -> str:
    return structure_colour(s.color, index)


def _axial_polygons(s: Structure, z_mm: float) -> list[np.ndarray]:
    """The contours of the plane whose slab holds ``z_mm`` (nearest plane on a tie)."""
    z = s.plane_z_mm
    slabs = s.slabs_mm()
    tol = 1e-6
    inside = np.flatnonzero((slabs[:, 0] <= z_mm + tol) & (z_mm - tol <= slabs[:, 1]))
    if inside.size == 0:
        return []
    p = inside[np.argmin(np.abs(z[inside] - z_mm))]
    return [np.vstack([poly, poly[:1]]) for poly in s.planes[z[p]]]


def _isodose_colours(n: int) -> list[str]:
    """``n`` colours of :data:`ISODOSE_COLOURS`, evenly spread from the first (highest)."""
    picks = np.round(np.linspace(0, len(ISODOSE_COLOURS) - 1, n)).astype(int)
    return [ISODOSE_COLOURS[i] for i in picks]


def _direction_labels(ax, labels) -> None:
    stroke = [patheffects.withStroke(linewidth=2.5, foreground="black")]
    style = dict(
        transform=ax.transAxes, color="white", fontsize=11, fontweight="bold",
        path_effects=stroke, zorder=10,
    )  # fmt: skip
    left, right, top, bottom = labels
    ax.text(0.02, 0.5, left, ha="left", va="center", **style)
    ax.text(0.98, 0.5, right, ha="right", va="center", **style)
    ax.text(0.5, 0.98, top, ha="center", va="top", **style)
    ax.text(0.5, 0.02, bottom, ha="center", va="bottom", **style)


def _select(structures: Sequence[Structure], names: Sequence[str] | None) -> list[Structure]:
    if names is None:
        return [s for s in structures if s.is_volume]
    by_name = {s.name: s for s in structures}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise InputError(
            f"no structure {missing[0]!r} to draw; {names_hint(missing, list(by_name))}"
        )
    return [by_name[n] for n in dict.fromkeys(names)]


def _check_frames(image, dose, structures) -> None:
    frames = {
        uid
        for uid in [getattr(image, "frame_of_reference_uid", "")]
        + [getattr(dose, "frame_of_reference_uid", "")]
        + [s.frame_of_reference_uid for s in structures]
        if uid
    }
    if len(frames) > 1:
        raise GeometryError(
            f"image, dose and structures are in {len(frames)} frames of reference "
            f"({', '.join(sorted(frames))}); overlays need one"
        )


def plane_views(
    image: Image | None,
    structures: Sequence[Structure] = (),
    *,
    centre_mm: Sequence[float] | None = None,
    dose: Dose | None = None,
    isodose_levels_gy: Sequence[float] | None = None,
    prescription_gy: float | None = None,
    names: Sequence[str] | None = None,
    title: str = "",
    colours: Mapping[str, str] | None = None,
    dose_wash: bool = False,
) -> Figure:
    """Axial, coronal and sagittal views through one point: CT, contours and isodose lines.

    Conventions (orientation, planes, extent, sampling, what is drawn where): see the module
    docstring.

    Parameters
    ----------
    image : Image or None
        The CT.  ``None`` draws on a black background over the dose grid's extent (or the
        structures' when there is no dose either).
    structures : sequence of Structure
        The structures; every one with closed contours is drawn unless ``names`` says which.
    centre_mm : (x, y, z), optional
        LPS point (mm) the three planes go through.  Default: the centroid of the first
        target structure drawn (PTV, then CTV, then GTV by interpreted type), else the
        dose maximum, else the middle of the background.
    dose : Dose, optional
        Dose in Gy, for isodose lines.
    isodose_levels_gy : sequence of float, optional
        Isodose levels (Gy).  Default :data:`ISODOSE_PCT` of ``prescription_gy`` (of the
        dose maximum without a prescription).
    prescription_gy : float, optional
        The dose the legend's percentages are relative to.
    names : sequence of str, optional
        Names of the structures to draw, in legend order.
    title : str
        Figure title (text, never mathtext).
    colours : mapping, optional
        Colour per structure name (default: the ROI display colour, else a fallback
        colour); :func:`check_overlay` passes the DVH plot's.
    dose_wash : bool
        Also paint the dose as a translucent colour wash (from :data:`WASH_FROM_PCT` % of the
        reference dose up, colour bar in Gy) under the outlines.

    Isodose lines at or above 95 % of ``prescription_gy`` (the prescription isodoses) are
    drawn solid and above the structure outlines; lower levels dashed, below them.

    Returns
    -------
    matplotlib.figure.Figure
        Three panels (axes titled ``Axial``, ``Coronal``, ``Sagittal``) and a legend panel.
        Structure outlines carry the gid ``structure:<name>`` and isodose lines
        ``isodose:<level in Gy>``.

    Raises
    ------
    InputError
        A name in ``names`` is not among the structures, or there is nothing to draw.
    GeometryError
        Image, dose and structures are in different frames of reference.

    Example
    -------
    ::

        fig = plane_views(image, ss.structures, dose=dose, prescription_gy=50.4)
        png = figure_png(fig)  # bytes
    """
    drawn = _select(structures, names)
    _check_frames(image, dose, drawn)
    frame = _frame(image, dose, drawn)
    centre = (
        _default_centre(drawn, dose, frame)
        if centre_mm is None
        else np.asarray(centre_mm, dtype=float).reshape(3)
    )
    centre = _snap(centre, frame, drawn)
    outline = [s for s in structures if s.interpreted_type.upper() == "EXTERNAL" and s.is_volume]
    lo, hi = _crop(frame, [*drawn, *outline])

    reference, levels = _isodose_levels(dose, isodose_levels_gy, prescription_gy)
    iso_colours = _isodose_colours(len(levels))
    given = dict(colours or {})
    colours = {s.name: given.get(s.name) or _structure_colour(s, i) for i, s in enumerate(drawn)}
    rx_levels = {lv for lv in levels if prescription_gy and lv >= 0.95 * prescription_gy - 1e-9}

    planes = [_plane(view, centre, lo, hi, frame.step_mm) for view in VIEWS]
    aspects = [(p.h_mm[-1] - p.h_mm[0]) / (p.v_mm[-1] - p.v_mm[0]) for p in planes]
    fig = Figure(
        figsize=(PANEL_HEIGHT_IN * sum(aspects) + 1.8, PANEL_HEIGHT_IN + 2.0),
        dpi=DPI,
        layout="constrained",
    )
    FigureCanvasAgg(fig)
    gs = fig.add_gridspec(1, 3, width_ratios=aspects)
    shown: dict[str, bool] = dict.fromkeys(colours, False)
    problems: dict[str, str] = {}
    wash_image = None
    cmap = colormaps["gray"].with_extremes(bad=_BACKGROUND)
    for col, plane in enumerate(planes):
        ax = fig.add_subplot(gs[0, col])
        ax.set_facecolor(_BACKGROUND)
        pts = plane.points()
        if image is not None:
            _draw_ct(ax, image, plane, pts, cmap)
        for s in drawn:
            try:
                shown[s.name] |= _draw_structure(ax, s, plane, colours[s.name])
            except RtplanError as exc:
                problems[s.name] = exc.problem
        if dose is not None and (levels or dose_wash):
            isodoses = list(zip(levels, iso_colours, strict=True))
            wash = _draw_dose(ax, dose, plane, pts, isodoses, rx_levels, reference, dose_wash)
            if wash is not None:
                wash_image = wash
        _label_panel(ax, plane)
    _legends(
        fig, drawn, colours, shown, problems, levels, iso_colours, reference, prescription_gy,
        rx_levels,
    )  # fmt: skip
    if wash_image is not None:
        bar = fig.colorbar(wash_image, ax=fig.axes[:3], shrink=0.8, pad=0.01)
        bar.set_label("Dose (Gy)", fontsize=9)
        bar.ax.tick_params(labelsize=8)
    _titles(fig, title, image is not None)
    return fig


def _isodose_levels(dose, isodose_levels_gy, prescription_gy):
    """The reference dose (the prescription, else the dose maximum) and the isodose levels
    (Gy, highest first): those given, else :data:`ISODOSE_PCT` of the reference."""
    reference = prescription_gy
    if reference is None and dose is not None:
        reference = dose.max_gy
    if isodose_levels_gy is None:
        levels = (
            [reference * p / 100 for p in ISODOSE_PCT] if dose is not None and reference else []
        )
    else:
        levels = [float(v) for v in isodose_levels_gy]
    return reference, sorted(set(levels), reverse=True)


def _draw_ct(ax, image: Image, plane: _Plane, pts, cmap) -> None:
    """The CT on a panel, in the window of :data:`WINDOW_HU` / :data:`LEVEL_HU`."""
    hu = _sample(image.values_hu, image.grid, pts, tolerance=0.5)
    ax.imshow(
        np.ma.masked_invalid(hu), cmap=cmap, vmin=LEVEL_HU - WINDOW_HU / 2,
        vmax=LEVEL_HU + WINDOW_HU / 2, extent=plane.extent(),
        origin="upper" if plane.view.v_down else "lower", interpolation="nearest",
    )  # fmt: skip


def _draw_dose(ax, dose: Dose, plane: _Plane, pts, isodoses, rx_levels, reference, dose_wash):
    """The dose on a panel: the colour wash (returned, for the colour bar) and the isodose
    lines ``isodoses`` ((level, colour) pairs), prescription levels solid and on top."""
    wash = None
    view = plane.view
    d = np.ma.masked_invalid(_sample(dose.values_gy, dose.grid, pts, tolerance=1e-6))
    if dose_wash and d.count() and reference:
        low = reference * WASH_FROM_PCT / 100.0
        wash = ax.imshow(
            np.ma.masked_less(d, low), cmap=WASH_CMAP, alpha=WASH_ALPHA, vmin=low,
            vmax=max(float(d.max()), reference), extent=plane.extent(),
            origin="upper" if view.v_down else "lower", interpolation="nearest",
            zorder=2,
        )  # fmt: skip
        wash.set_gid("dose-wash")
    if d.count():
        dmin, dmax = float(d.min()), float(d.max())
        for level, colour in isodoses:
            if dmin < level < dmax:
                rx_line = level in rx_levels
                cs = ax.contour(
                    plane.h_mm, plane.v_mm, d, levels=[level], colors=[colour],
                    linewidths=2.0 if rx_line else 1.3,
                    linestyles=["solid" if rx_line else (0, (5, 2))],
                    zorder=5 if rx_line else 3,
                )  # fmt: skip
                cs.set_gid(f"isodose:{level:g}")
    return wash


def _label_panel(ax, plane: _Plane) -> None:
    """A panel's extent, axis labels (mm), title and direction letters."""
    view = plane.view
    ext = plane.extent()
    ax.set_xlim(ext[0], ext[1])
    ax.set_ylim(ext[2], ext[3])
    ax.set_aspect("equal")
    ax.set_xlabel(f"{_AXES[view.h]} (mm)", fontsize=9)
    ax.set_ylabel(f"{_AXES[view.v]} (mm)", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.set_title(f"{view.title}   {_AXES[view.n]} = {plane.position_mm:.1f} mm", fontsize=10)
    _direction_labels(ax, view.labels)


def _titles(fig, title: str, has_ct: bool) -> None:
    """The figure's title (left) and the note on conventions (right)."""
    note = "radiological view; DICOM patient coordinates (LPS, mm)"
    if has_ct:
        note += f"; CT window W{WINDOW_HU:.0f} / L{LEVEL_HU:.0f} HU"
    else:
        note += "; no CT"
    if title:
        fig.suptitle(
            plot_text(title), fontsize=13, x=0.01, ha="left"
        )  # left: the note sits on the right
    fig.legend(
        handles=[], title=note, loc="outside upper right", frameon=False, title_fontsize=9
    ).get_title().set_color("#555555")


def _draw_structure(ax, s: Structure, plane: _Plane, colour: str) -> bool:
    """Draw one structure's outline on a panel; True when something was drawn."""
    if plane.view.n == 2:  # axial: the contours themselves
        polys = _axial_polygons(s, plane.position_mm)
        if not polys:
            return False
        lines = LineCollection(polys, colors=colour, linewidths=1.6, zorder=4)
        lines.set_gid(f"structure:{s.name}")
        ax.add_collection(lines)
        return True
    occupancy = s.fraction_mask(plane.structure_grid())[:, 0, :]
    if occupancy.max() < 0.5:
        return False
    cs = ax.contour(
        plane.h_mm, plane.v_mm, occupancy, levels=[0.5], colors=[colour], linewidths=1.6,
        zorder=4,
    )  # fmt: skip
    cs.set_gid(f"structure:{s.name}")
    return True


def _legends(
    fig, drawn, colours, shown, problems, levels, iso_colours, reference, rx, rx_levels=()
) -> None:
    """Structure and isodose legends below the panels (names as text, never mathtext)."""
    handles = []
    for s in drawn:
        label = plot_text(s.name)
        if s.name in problems:
            label += f" (not drawn: {plot_text(problems[s.name])})"
        elif not shown[s.name]:
            label += " (not on these planes)"
        handles.append(Line2D([], [], color=colours[s.name], lw=2.2, label=label))
    style = dict(fontsize=10, title_fontsize=10, frameon=False, alignment="left")
    if handles:
        fig.legend(
            handles=handles, title="Structures", loc="outside lower left",
            ncols=min(len(handles), 4), **style,
        )  # fmt: skip
    if levels:
        title = "Isodose"
        if reference:  # a percentage needs a positive reference dose
            title += " (% of " + (f"{format_number(round(reference, 2))} Gy)" if rx else "max)")
        iso = []
        for lv, c in zip(levels, iso_colours, strict=True):
            label = f"{format_number(round(lv, 2))} Gy"
            if reference:
                label += f" ({100 * lv / reference:.0f}%)"
            solid = lv in rx_levels
            iso.append(
                Line2D([], [], color=c, lw=2.4 if solid else 2,
                       ls="solid" if solid else (0, (5, 2)), label=label)
            )  # fmt: skip
        fig.legend(
            handles=iso, title=title, loc="outside lower right", ncols=min(len(iso), 3), **style
        )


def figure_png(fig: Figure, dpi: float | None = None) -> bytes:
    """A figure rendered as PNG bytes (at its own resolution, :data:`DPI`, by default)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def check_overlay(
    check: PlanCheck,
    structures: Sequence[Structure],
    dose: Dose,
    image: Image | None = None,
    *,
    isodose_pct: Sequence[float] = ISODOSE_PCT,
    dose_wash: bool = False,
) -> Figure:
    """:func:`plane_views` for a protocol check: the protocol's structures in the DVH plot's
    colours (:func:`rtplan.report.plots.check_colours`), isodose lines relative to the
    prescription (the prescription isodoses above the outlines), planes through the primary
    target's centroid, optionally a dose colour wash.

    Parameters
    ----------
    check : PlanCheck
        The check (:func:`rtplan.check.check_plan`): matched structures and prescriptions.
    structures, dose, image
        The objects the check was made on, and the CT (``None``: blank background).
    isodose_pct : sequence of float
        Levels in % of the primary target's prescription; the first one (95 % by default)
        is also drawn for every other target's prescription.

    Returns
    -------
    matplotlib.figure.Figure
    """
    protocol = check.protocol
    names = [n for m in check.matches.values() for n in m.structures]
    primary = protocol.prescription.primary.structure
    rx = check.prescriptions[primary].used_gy
    levels = {rx * p / 100 for p in isodose_pct}
    if isodose_pct:
        levels |= {p.used_gy * isodose_pct[0] / 100 for p in check.prescriptions.values()}
    target = check.matches[primary].structures
    by_name = {s.name: s for s in structures}
    centre = centroid_mm(by_name[target[0]]) if target and target[0] in by_name else None
    return plane_views(
        image,
        structures,
        centre_mm=centre,
        dose=dose,
        isodose_levels_gy=sorted(levels, reverse=True),
        prescription_gy=rx,
        names=list(dict.fromkeys(names)),
        title=f"{check.patient}: protocol {protocol.name}",
        colours=check_colours(check),
        dose_wash=dose_wash,
    )
