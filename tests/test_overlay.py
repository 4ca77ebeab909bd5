"""Contour and isodose overlays (``rtplan.report.overlay``) and their place in ``rtplan check``.

Truths:

* Orientation, from the definition of DICOM patient coordinates (LPS: +x patient left, +y
  posterior, +z superior) and the radiological display convention: a bright marker placed at
  a known LPS point left, anterior and superior of the centre must appear, for every one of
  the eight cardinal patient positions, on the side of the panel whose direction letter is
  L, A or S; the letters themselves must read R-L / A-P (axial), R-L / S-I (coronal) and
  A-P / S-I (sagittal).
* Geometry, closed form: a sphere of radius 30 mm drawn on planes 3 mm apart has, on the
  plane through its centre, the contour of radius 30 mm; under the slab convention it reaches
  the last plane + 1.5 mm along z; a dose ``60 exp(-(r/40 mm)^2)`` Gy has its 30 Gy
  isodose on the sphere ``r = 40 sqrt(ln 2) mm`` (sampled from an FFS dose grid, so the dose
  is looked up through a different orientation than the CT's).
* Reports: the HTML is parsed with ``html.parser`` and each embedded image is decoded as a
  PNG (signature and ``matplotlib.image.imread``).
"""

from __future__ import annotations

import base64
import io
import math
from html.parser import HTMLParser

import numpy as np
import pytest
from matplotlib.collections import LineCollection
from matplotlib.image import AxesImage, imread

from rtplan.check import check_plan
from rtplan.cli import main
from rtplan.dose import Dose
from rtplan.errors import InputError
from rtplan.image import Image
from rtplan.plan import FractionGroup, Plan
from rtplan.protocols import load_protocol
from rtplan.report import to_html
from rtplan.report.overlay import (
    centroid_mm,
    check_overlay,
    figure_png,
    plane_views,
)
from rtplan.structure import Contour, Structure
from rtplan.testing.synthetic import (
    PATIENT_POSITION_IOP,
    SyntheticBeam,
    SyntheticROI,
    cardinal_grid,
    ct_series_datasets,
    rtdose_dataset,
    rtplan_dataset,
    rtstruct_dataset_from_contours,
    write_datasets,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LETTERS = set("RLAPSI")


def box_grid(lo, hi, spacing_xyz, position):
    """A cardinal grid of ``position`` whose voxel centres span the LPS box ``lo``..``hi``
    with spacing ``spacing_xyz`` (mm) along x, y and z."""
    probe = cardinal_grid((1, 1, 1), (0, 0, 0), (1, 1, 1), position).direction_matrix
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    lps_axis = np.argmax(np.abs(probe), axis=0)  # the LPS axis of each array axis
    spacing = [spacing_xyz[p] for p in lps_axis]
    shape = [int(round((hi[p] - lo[p]) / spacing_xyz[p])) + 1 for p in lps_axis]
    origin = np.where(probe.sum(axis=1) > 0, lo, hi)  # start at the low end of a + axis
    return cardinal_grid(shape, origin, spacing, position)


def axes_by_title(fig):
    return {ax.get_title().split()[0]: ax for ax in fig.axes if ax.get_title()}


def letters(ax):
    """Direction letters of a panel: {letter: (x, y) in axes fraction}."""
    return {t.get_text(): tuple(t.get_position()) for t in ax.texts if t.get_text() in LETTERS}


def with_gid(ax, gid):
    found = [a for a in ax.get_children() if a.get_gid() == gid]
    assert len(found) == 1, (gid, [a.get_gid() for a in ax.get_children() if a.get_gid()])
    return found[0]


def vertices(artist) -> np.ndarray:
    if isinstance(artist, LineCollection):
        return np.concatenate(artist.get_segments())
    return np.concatenate([p.vertices for p in artist.get_paths() if len(p.vertices)])


# ---------------------------------------------------------------------------- orientation
MARKER_MM = np.array([40.0, -30.0, 20.0])  # patient left, anterior, superior of the origin


def marker_ct(position: str) -> Image:
    grid = box_grid((-60, -60, -40), (60, 60, 40), (2.0, 2.0, 4.0), position)
    hu = np.zeros(grid.shape, dtype=np.int16)
    k, j, i = np.round(grid.world_to_index(MARKER_MM)).astype(int)
    hu[k - 1 : k + 2, j - 2 : j + 3, i - 2 : i + 3] = 1000
    assert np.allclose(grid.index_to_world([k, j, i]), MARKER_MM)
    return Image(hu, grid, patient_position=position)


def marker_fraction(ax) -> np.ndarray:
    """Axes-fraction position of the bright pixels' centre in a panel's image."""
    (img,) = [a for a in ax.get_children() if isinstance(a, AxesImage)]
    data = np.ma.filled(img.get_array(), -1000.0)
    rows, cols = np.nonzero(data > 500)
    left, right, bottom, top = img.get_extent()
    ny, nx = data.shape
    x = left + (cols.mean() + 0.5) * (right - left) / nx
    # origin "upper": row 0 at the top of the extent; "lower": at the bottom
    y0, y1 = (top, bottom) if img.origin == "upper" else (bottom, top)
    y = y0 + (rows.mean() + 0.5) * (y1 - y0) / ny
    return ax.transAxes.inverted().transform(ax.transData.transform((x, y)))


@pytest.mark.parametrize("position", list(PATIENT_POSITION_IOP))
def test_direction_letters_and_image_content_agree(position):
    fig = plane_views(marker_ct(position), centre_mm=MARKER_MM)
    panels = axes_by_title(fig)
    expected = {  # letter on the left, right, top and bottom of each panel
        "Axial": ("R", "L", "A", "P"),
        "Coronal": ("R", "L", "S", "I"),
        "Sagittal": ("A", "P", "S", "I"),
    }
    # the marker is Left (+x), Anterior (-y), Superior (+z) of the grid's middle
    marker_letters = {"Axial": ("L", "A"), "Coronal": ("L", "S"), "Sagittal": ("A", "S")}
    for name, (left, right, top, bottom) in expected.items():
        ax = panels[name]
        pos = letters(ax)
        assert set(pos) == {left, right, top, bottom}, name
        assert pos[left][0] < 0.5 < pos[right][0], name
        assert pos[bottom][1] < 0.5 < pos[top][1], name
        fx, fy = marker_fraction(ax)
        h_letter, v_letter = marker_letters[name]
        # the marker sits on the side of the letter naming its direction
        assert (fx > 0.5) == (pos[h_letter][0] > 0.5), (position, name, fx)
        assert (fy > 0.5) == (pos[v_letter][1] > 0.5), (position, name, fy)
        assert abs(fx - 0.5) > 0.1 and abs(fy - 0.5) > 0.1  # clearly off-centre


@pytest.mark.parametrize("position", [p for p in PATIENT_POSITION_IOP if p != "HFS"])
def test_same_anatomy_gives_the_same_picture_in_every_patient_position(position):
    """The same voxel centres and values in LPS, stored in another array order, must give
    the same panels as the head-first-supine storage."""

    def pictures(pos):
        fig = plane_views(marker_ct(pos), centre_mm=MARKER_MM)
        return {
            name: (img.get_extent(), img.origin, np.ma.filled(img.get_array(), np.nan))
            for name, ax in axes_by_title(fig).items()
            for img in ax.get_images()
        }

    reference, other = pictures("HFS"), pictures(position)
    assert set(other) == {"Axial", "Coronal", "Sagittal"}
    for name, (extent, origin, data) in reference.items():
        assert other[name][:2] == (extent, origin), name
        np.testing.assert_allclose(other[name][2], data, atol=1e-3, err_msg=name)


def test_marker_lands_on_its_lps_coordinates_for_a_prone_feet_first_ct():
    """Data coordinates of the marker in every view equal its LPS position (FFP: both
    in-plane axes and the slice axis run against the HFS directions)."""
    fig = plane_views(marker_ct("FFP"), centre_mm=MARKER_MM)
    panels = axes_by_title(fig)
    for name, (h, v) in {"Axial": (0, 1), "Coronal": (0, 2), "Sagittal": (1, 2)}.items():
        ax = panels[name]
        fx, fy = marker_fraction(ax)
        x, y = ax.transData.inverted().transform(ax.transAxes.transform((fx, fy)))
        assert x == pytest.approx(MARKER_MM[h], abs=0.6), name
        assert y == pytest.approx(MARKER_MM[v], abs=0.6), name


# ---------------------------------------------------------------------------- geometry
CENTRE = np.array([10.0, -20.0, 15.0])
RADIUS = 30.0
GAP = 3.0


def sphere() -> Structure:
    t = np.linspace(0, 2 * np.pi, 256, endpoint=False)
    contours = []
    for k in range(-9, 10):
        dz = GAP * k
        r = math.sqrt(RADIUS**2 - dz**2)
        pts = np.c_[CENTRE[0] + r * np.cos(t), CENTRE[1] + r * np.sin(t), np.full(t.size, 0.0)]
        pts[:, 2] = CENTRE[2] + dz
        contours.append(Contour(pts))
    return Structure(
        "Sphere", tuple(contours), interpreted_type="PTV", color=(255, 0, 255), slice_spacing_mm=GAP
    )


def sphere_ct() -> Image:
    lo, hi = CENTRE - [60, 60, 45], CENTRE + [60, 60, 45]
    grid = box_grid(lo, hi, (1.5, 1.5, GAP), "HFS")
    return Image(np.zeros(grid.shape, np.int16), grid)


def gaussian_dose(lo, hi, position="FFS") -> Dose:
    grid = box_grid(lo, hi, (2.5, 2.5, 2.5), position)
    pts = grid.index_to_world(np.indices(grid.shape).reshape(3, -1).T)
    r2 = np.sum((pts - CENTRE) ** 2, axis=1).reshape(grid.shape)
    return Dose(60.0 * np.exp(-r2 / 40.0**2), grid)


ISO_30_RADIUS = 40.0 * math.sqrt(math.log(2.0))


def test_centroid_of_sphere_and_of_a_box_with_a_hole():
    assert centroid_mm(sphere()) == pytest.approx(CENTRE, abs=1e-9)
    # a 20 x 20 square (centroid (10, 10)) minus a 9 x 10 hole (centroid (14.5, 10)) on two
    # planes 1 mm apart (slabs -0.5..1.5 mm)
    outer = np.array([[0, 0], [20, 0], [20, 20], [0, 20]], float)
    hole = np.array([[10, 5], [19, 5], [19, 15], [10, 15]], float)
    planes = [Contour(np.c_[p, np.full(4, z)]) for z in (0.0, 1.0) for p in (outer, hole)]
    c = centroid_mm(Structure("ring", tuple(planes)))
    area = 400 - 90
    assert c[0] == pytest.approx((400 * 10 - 90 * 14.5) / area)
    assert c[1] == pytest.approx(10.0) and c[2] == pytest.approx(0.5)
    # areas 400 at z = 0 and 100 at z = 1, each standing for a full 1 mm slab (end caps):
    # z = (400 * 0 + 100 * 1) / 500
    small = np.array([[5, 5], [15, 5], [15, 15], [5, 15]], float)
    cone = [Contour(np.c_[outer, np.zeros(4)]), Contour(np.c_[small, np.ones(4)])]
    assert centroid_mm(Structure("step", tuple(cone)))[2] == pytest.approx(0.2)


@pytest.fixture(scope="module")
def sphere_figure():
    dose = gaussian_dose(CENTRE - 70, CENTRE + [80, 90, 100])  # off-centre: no symmetry
    return plane_views(sphere_ct(), [sphere()], dose=dose, prescription_gy=60.0)


def test_sphere_contours_land_where_the_sphere_is(sphere_figure):
    panels = axes_by_title(sphere_figure)
    # default centre: the PTV's centroid, i.e. the sphere's centre (a CT slice)
    assert panels["Axial"].get_title().endswith(f"z = {CENTRE[2]:.1f} mm")
    ax_pts = vertices(with_gid(panels["Axial"], "structure:Sphere"))
    assert ax_pts[:, 0].min() == pytest.approx(CENTRE[0] - RADIUS, abs=1e-9)
    assert ax_pts[:, 0].max() == pytest.approx(CENTRE[0] + RADIUS, abs=1e-9)
    assert ax_pts[:, 1].min() == pytest.approx(CENTRE[1] - RADIUS, abs=0.01)
    assert ax_pts[:, 1].max() == pytest.approx(CENTRE[1] + RADIUS, abs=0.01)
    z_end = GAP * 9 + GAP / 2  # last plane + half a slab (slab convention)
    for name, h in (("Coronal", 0), ("Sagittal", 1)):
        pts = vertices(with_gid(panels[name], "structure:Sphere"))
        assert pts[:, 0].min() == pytest.approx(CENTRE[h] - RADIUS, abs=0.3), name
        assert pts[:, 0].max() == pytest.approx(CENTRE[h] + RADIUS, abs=0.3), name
        assert pts[:, 1].min() == pytest.approx(CENTRE[2] - z_end, abs=0.3), name
        assert pts[:, 1].max() == pytest.approx(CENTRE[2] + z_end, abs=0.3), name
        # the widest part is in the central slab
        mid = np.abs(pts[:, 1] - CENTRE[2]) < GAP / 2 - 0.5
        assert np.abs(pts[mid, 0] - CENTRE[h]).max() == pytest.approx(RADIUS, abs=0.3)


def test_off_centre_coronal_plane_cuts_the_sphere_on_its_chord():
    """A coronal plane 12 mm behind the centre meets the central slab's circle on the chord
    of half-width sqrt(30^2 - 12^2) mm, and the 30 Gy sphere on a circle of radius
    sqrt(r30^2 - 12^2) mm."""
    dose = gaussian_dose(CENTRE - 70, CENTRE + [80, 90, 100])
    fig = plane_views(
        sphere_ct(), [sphere()], centre_mm=CENTRE + [0, 12, 0], dose=dose, prescription_gy=60
    )
    ax = axes_by_title(fig)["Coronal"]
    assert ax.get_title().endswith(f"y = {CENTRE[1] + 12:.1f} mm")
    pts = vertices(with_gid(ax, "structure:Sphere"))
    mid = np.abs(pts[:, 1] - CENTRE[2]) < GAP / 2 - 0.5
    assert np.abs(pts[mid, 0] - CENTRE[0]).max() == pytest.approx(math.sqrt(30**2 - 12**2), abs=0.3)
    iso = vertices(with_gid(ax, "isodose:30"))
    r = np.hypot(iso[:, 0] - CENTRE[0], iso[:, 1] - CENTRE[2])
    assert np.abs(r - math.sqrt(ISO_30_RADIUS**2 - 12**2)).max() < 0.15


def test_isodose_lines_land_on_the_analytic_radius(sphere_figure):
    panels = axes_by_title(sphere_figure)
    for name, (h, v) in {"Axial": (0, 1), "Coronal": (0, 2), "Sagittal": (1, 2)}.items():
        pts = vertices(with_gid(panels[name], "isodose:30"))
        r = np.hypot(pts[:, 0] - CENTRE[h], pts[:, 1] - CENTRE[v])
        assert np.abs(r - ISO_30_RADIUS).max() < 0.15, name
    texts = [t.get_text() for lg in sphere_figure.legends for t in lg.get_texts()]
    assert "30 Gy (50%)" in texts and "57 Gy (95%)" in texts and "Sphere" in texts


def test_without_ct_the_views_span_the_dose_grid_around_the_structures():
    # dose voxel centres x, y: centre +- 50 mm (the sphere +- 15 mm margin fits);
    # z: centre +- 25 mm, narrower than the sphere: the views stop at the voxel edges
    lo, hi = CENTRE - [50, 50, 25], CENTRE + [50, 50, 25]
    fig = plane_views(None, [sphere()], dose=gaussian_dose(lo, hi, "HFS"), prescription_gy=60)
    panels = axes_by_title(fig)
    assert not any(isinstance(a, AxesImage) for ax in fig.axes for a in ax.get_children())
    want_x = (CENTRE[0] - RADIUS - 15, CENTRE[0] + RADIUS + 15)
    want_z = (CENTRE[2] - 25 - 1.25, CENTRE[2] + 25 + 1.25)
    assert sorted(panels["Axial"].get_xlim()) == pytest.approx(want_x, abs=1.0)
    assert sorted(panels["Coronal"].get_ylim()) == pytest.approx(want_z, abs=1.0)
    # the axial plane is the nearest contour plane to the centroid
    assert panels["Axial"].get_title().endswith(f"z = {CENTRE[2]:.1f} mm")
    assert "no CT" in " ".join(lg.get_title().get_text() for lg in fig.legends)


def test_structures_off_the_planes_are_listed_as_such_and_unknown_names_refused():
    far = Structure(
        "Far", tuple(Contour(c.points_mm + [0, 0, 200]) for c in sphere().contours),
        slice_spacing_mm=GAP,
    )  # fmt: skip
    fig = plane_views(sphere_ct(), [sphere(), far], names=["Sphere", "Far"])
    texts = [t.get_text() for lg in fig.legends for t in lg.get_texts()]
    assert texts[:2] == ["Sphere", "Far (not on these planes)"]
    with pytest.raises(InputError, match="no structure 'Sphre'.*'Sphere'"):
        plane_views(sphere_ct(), [sphere()], names=["Sphre"])


def test_views_take_in_the_patient_outline_even_when_it_is_not_drawn():
    """Crop: the sphere +- 15 mm would span x = -35..55 mm; the EXTERNAL box (x = -40..60 mm)
    + 15 mm reaches beyond the CT, whose voxel edges (x = -50.75..70.75 mm) then bound it."""
    square = np.array([[-50, -50], [50, -50], [50, 50], [-50, 50]], float) + CENTRE[:2]
    body = Structure(
        "BODY",
        tuple(Contour(np.c_[square, np.full(4, z)]) for z in CENTRE[2] + GAP * np.arange(-5, 6)),
        interpreted_type="EXTERNAL",
        slice_spacing_mm=GAP,
    )
    fig = plane_views(sphere_ct(), [sphere(), body], names=["Sphere"])
    assert sorted(axes_by_title(fig)["Axial"].get_xlim()) == pytest.approx(
        (CENTRE[0] - 60.75, CENTRE[0] + 60.75), abs=1.0
    )
    assert [t.get_text() for lg in fig.legends for t in lg.get_texts()] == ["Sphere"]


# ---------------------------------------------------------------------------- reports
class ImageSources(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.sources.append(dict(attrs)["src"])


def decoded_pngs(html: str) -> list[np.ndarray]:
    parser = ImageSources()
    parser.feed(html)
    images = []
    for src in parser.sources:
        head, data = src.split(",", 1)
        assert head == "data:image/png;base64"
        raw = base64.b64decode(data, validate=True)
        assert raw.startswith(PNG_SIGNATURE)
        images.append(imread(io.BytesIO(raw), format="png"))
    return images


def test_html_report_embeds_the_dvh_and_the_overlay():
    protocol = load_protocol("rps-preop")
    body = sphere()
    bowel = Structure(
        "Bowel bag",
        tuple(Contour(c.points_mm + [45, 0, 0]) for c in sphere().contours),
        slice_spacing_mm=GAP,
    )
    structures = [Structure("PTV", body.contours, interpreted_type="PTV"), bowel]
    dose = gaussian_dose(CENTRE - [60, 60, 45], CENTRE + [100, 60, 45], "HFS")
    plan = Plan("P", (FractionGroup(1, 28),), prescription_gy=50.4)
    check = check_plan(protocol, structures, dose, plan, patient="SPHERE")
    fig = check_overlay(check, structures, dose, sphere_ct())
    texts = [t.get_text() for lg in fig.legends for t in lg.get_texts()]
    assert texts[:2] == ["PTV", "Bowel bag"]
    assert "47.88 Gy (95%)" in texts and "25.2 Gy (50%)" in texts
    png = figure_png(fig)
    html = to_html([check], protocol, [png])
    images = decoded_pngs(html)
    assert len(images) == 2  # the DVH and the overlay
    width = fig.get_size_inches()[0] * fig.dpi
    assert images[1].shape[1] == pytest.approx(width, abs=1)


# ---------------------------------------------------------------------------- command line
def write_patient(folder, patient_id):
    """A small RPS-like patient: PTV and bowel bag boxes, dose falling off from the PTV."""
    grid = cardinal_grid((12, 40, 48), (-94.0, -78.0, 0.0), (5.0, 4.0, 4.0), "HFS")
    cts = ct_series_datasets(np.zeros(grid.shape), grid, patient_id=patient_id, patient_name="T^P")
    z = 5.0 * np.arange(12)

    def rect(x0, x1, y0, y1, zz):
        return np.array([[x0, y0, zz], [x1, y0, zz], [x1, y1, zz], [x0, y1, zz]], float)

    rois = [
        SyntheticROI(
            "PTV", [rect(-60, -20, -20, 20, zz) for zz in z[2:10]], interpreted_type="PTV"
        ),
        SyntheticROI("Bowel bag", [rect(20, 80, -30, 30, zz) for zz in z[2:10]]),
    ]
    rs = rtstruct_dataset_from_contours(rois, ct_datasets=cts, label="RPS")
    study, frame = cts[0].StudyInstanceUID, cts[0].FrameOfReferenceUID
    plan = rtplan_dataset(
        "RPS", 28, 50.4, [SyntheticBeam("AP", 0.9)], patient_id=patient_id,
        patient_name="T^P", study_uid=study, frame_of_reference_uid=frame,
        referenced_structure_set_uid=rs.SOPInstanceUID, target_roi_number=1,
    )  # fmt: skip
    x = grid.index_to_world(np.indices(grid.shape).reshape(3, -1).T)[:, 0].reshape(grid.shape)
    rd = rtdose_dataset(
        np.interp(x, [-10.0, 10.0], [50.4, 20.0]), grid, frame_of_reference_uid=frame,
        study_uid=study, patient_id=patient_id, referenced_plan_uid=plan.SOPInstanceUID,
    )  # fmt: skip
    write_datasets(cts, folder / "CT")
    write_datasets([rs, plan, rd], folder)


def test_check_command_writes_png_and_html(tmp_path, capsys):
    write_patient(tmp_path / "cohort" / "p1", "P1")
    html, png = tmp_path / "r.html", tmp_path / "o.png"
    # --relaxed: the patient has no small bowel, kidneys, cord, liver or stomach (strict: exit 1)
    argv = ["check", tmp_path / "cohort" / "p1", "--protocol", "rps-preop", "--relaxed"]
    code = main(list(map(str, [*argv, "--html", html, "--png", png])))
    assert code == 0, capsys.readouterr()
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    images = decoded_pngs(html.read_text())
    assert len(images) == 2
    assert images[1].shape == imread(png).shape  # the same overlay in both
    # a folder of two patients has no single overlay to write
    write_patient(tmp_path / "cohort" / "p2", "P2")
    capsys.readouterr()
    code = main(list(map(str, ["check", tmp_path / "cohort", "--protocol", "rps-preop",
                               "--png", png])))  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "--png needs one patient, the folder holds 2" in err


# ------------------------------------------------------------ pictures a physicist reads
def test_dvh_and_overlay_share_roi_colours_and_mark_the_constraints():
    # Truths: the ROI display colour (255, 0, 255) is the PTV's colour in both pictures; the
    # bowel bag's V45Gy marker sits on its own curve (x = 45 Gy, y = the curve's volume at
    # 45 Gy); the prescription isodose (95 % of 50.4 Gy) is drawn above the outlines; a
    # structure named with mathtext syntax is shown literally; PNGs are 150 dpi.
    from matplotlib.colors import to_hex

    from rtplan.report.plots import DPI, check_dvh_figure, figure_to_png

    protocol = load_protocol("rps-preop")
    ptv = Structure("PTV", sphere().contours, interpreted_type="PTV", color=(255, 0, 255))
    bowel = Structure(
        "Bowel bag",
        tuple(Contour(c.points_mm + [45, 0, 0]) for c in sphere().contours),
        color=(0, 200, 255),
        slice_spacing_mm=GAP,
    )
    odd = Structure(
        "$\\alpha$ kidneys",
        tuple(Contour(c.points_mm + [-45, 0, 0]) for c in sphere().contours),
        slice_spacing_mm=GAP,
    )
    structures = [ptv, bowel, odd]
    dose = gaussian_dose(CENTRE - [100, 60, 45], CENTRE + [100, 60, 45], "HFS")
    plan = Plan("P", (FractionGroup(1, 28),), prescription_gy=50.4)
    check = check_plan(
        protocol, structures, dose, plan, patient="SPHERE", mapping={"kidneys": odd.name}
    )
    fig = check_dvh_figure(check)
    ax = fig.axes[0]
    lines = {a.get_gid(): a for a in ax.get_lines()}
    assert to_hex(lines["dvh:PTV"].get_color()) == "#ff00ff"
    assert to_hex(lines["dvh:Bowel bag"].get_color()) == "#00c8ff"
    assert "rx:PTV" in lines and lines["rx:PTV"].get_xdata()[0] == pytest.approx(50.4)
    v45 = next(c for c in ax.collections if c.get_gid() == "constraint:Bowel bag:V45Gy")
    x, y = v45.get_offsets()[0]
    dvh = check.dvhs["Bowel bag"]
    assert x == pytest.approx(45.0)
    assert y == pytest.approx(float(dvh.volume_at_dose_cc(45.0)) / dvh.dosed_volume_cc * 100)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "\\$\\alpha\\$ kidneys" in legend  # escaped: drawn as the literal name
    png = figure_to_png(fig)
    width = int.from_bytes(png[16:20], "big")  # PNG IHDR width
    assert DPI >= 150 and width == round(fig.get_size_inches()[0] * DPI)

    over = check_overlay(check, structures, dose, sphere_ct(), dose_wash=True)
    axial = axes_by_title(over)["Axial"]
    outline = with_gid(axial, "structure:PTV")
    assert to_hex(outline.get_color()[0]) == "#ff00ff"
    rx_line = with_gid(axial, "isodose:47.88")
    low_line = with_gid(axial, "isodose:10.08")
    assert rx_line.get_zorder() > outline.get_zorder() > low_line.get_zorder()
    assert any(im.get_gid() == "dose-wash" for im in axial.get_images())
    assert over.dpi >= 150
    texts = [t.get_text() for lg in over.legends for t in lg.get_texts()]
    assert "\\$\\alpha\\$ kidneys" in texts
