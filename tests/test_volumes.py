"""Structure-level volumes (rtplan.volumes.builder / workspace / booleans).

Truths: closed-form Minkowski sums of slab-convention boxes and cylinders (prisms drawn on
CT slices), exact set identities for the crops (overlap with an avoided structure, volume
outside a ``within`` structure), and the slab convention for extents (a structure reaches
half a slice beyond its outermost contour).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import box_sum_volume

from rtplan.errors import InputError, StructureNotFoundError
from rtplan.grid import Grid
from rtplan.structure import Contour, Structure
from rtplan.volumes.builder import Crop, VolumeBuilder, expand_structure
from rtplan.volumes.margins import Margins
from rtplan.volumes.workspace import Workspace


def prism(name, poly_xy, z_first, n_planes, slab, kind="ORGAN"):
    """A structure drawn as the same polygon on ``n_planes`` CT slices ``slab`` mm apart."""
    poly = np.asarray(poly_xy, float)
    contours = tuple(
        Contour(np.c_[poly, np.full(len(poly), z_first + k * slab)]) for k in range(n_planes)
    )
    return Structure(name, contours, interpreted_type=kind, slice_spacing_mm=slab)


def rectangle(x0, y0, a, b):
    return [[x0, y0], [x0 + a, y0], [x0 + a, y0 + b], [x0, y0 + b]]


def circle(cx, cy, r, n=720):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.c_[cx + r * np.cos(t), cy + r * np.sin(t)]


def cylinder_sum(radius, height, r, l_sup, l_inf):
    """Cylinder (axis z) plus ellipsoid: radial r, superior / inferior semi-axes."""
    return math.pi * (radius + r) ** 2 * height + (l_sup + l_inf) * (
        math.pi * radius**2 + math.pi**2 / 2 * radius * r + 2 / 3 * math.pi * r**2
    )


# ----------------------------------------------------------------------------- accuracy
@pytest.mark.parametrize("slab", [2.5, 3.0])
def test_box_ctv_volume_and_extents(slab):
    """The issue's box: volume abc + 2(ab l + ac r + bc r) + pi(a r l + b r l + c r^2)
    + 4/3 pi r^2 l; extents GTV + margin within half a slice (z) and 1 mm in-plane."""
    a, b, n = 40.3, 30.6, int(round(36 / slab))
    gtv = prism("GTV", rectangle(-20.15, 4.4, a, b), 1.234, n, slab, "GTV")
    m = Margins.parse("radial=15,longitudinal=35")
    res = expand_structure([gtv], "GTV", m, name="CTV")
    truth_cc = box_sum_volume(a, b, n * slab, m) / 1000
    assert res.source_volume_cc == pytest.approx(a * b * n * slab / 1000, rel=1e-9)
    assert res.steps[-1].after_cc == pytest.approx(truth_cc, rel=0.005)  # fine grid
    assert res.volume_cc == pytest.approx(truth_cc, rel=0.015)  # contours, slab convention
    lo, hi = res.structure.bounds_mm()
    glo, ghi = gtv.bounds_mm()
    assert np.all(np.abs((glo - lo)[:2] - 15) <= 1.0) and np.all(np.abs((hi - ghi)[:2] - 15) <= 1)
    assert abs(glo[2] - lo[2] - 35) <= slab / 2 and abs(hi[2] - ghi[2] - 35) <= slab / 2
    assert res.structure.interpreted_type == "CTV"
    steps = (res.structure.plane_z_mm - 1.234) / slab  # every contour on a CT slice
    assert np.allclose(steps, np.round(steps), atol=1e-6)


@pytest.mark.parametrize(
    "margins",
    ["radial=15,longitudinal=30", "radial=5,superior=20,inferior=10", "radial=10,longitudinal=0"],
)
def test_cylinder_ctv_volume(margins):
    m = Margins.parse(margins)
    gtv = prism("GTV", circle(3.3, -7.1, 20.0), -40.0, 16, 2.5, "GTV")
    res = expand_structure([gtv], "GTV", m, name="CTV")
    truth_cc = cylinder_sum(20.0, 40.0, m.right, m.superior, m.inferior) / 1000
    assert res.steps[-1].after_cc == pytest.approx(truth_cc, rel=0.005)
    assert res.volume_cc == pytest.approx(truth_cc, rel=0.015)


def test_asymmetric_box_and_directions():
    m = Margins.parse("right=5,left=12,anterior=8,posterior=3,superior=20,inferior=10")
    gtv = prism("GTV", rectangle(0.3, 0.6, 30.0, 25.0), 0.0, 10, 3.0, "GTV")
    res = expand_structure([gtv], "GTV", m, name="CTV_asym")
    assert res.volume_cc == pytest.approx(box_sum_volume(30, 25, 30, m) / 1000, rel=0.015)
    lo, hi = res.structure.bounds_mm()
    glo, ghi = gtv.bounds_mm()
    # right = -x, anterior = -y, inferior = -z; left, posterior, superior the other way
    assert np.allclose(glo - lo, [5, 8, 10], atol=[1, 1, 1.5])
    assert np.allclose(hi - ghi, [12, 3, 20], atol=[1, 1, 1.5])


def test_shrinking_box():
    gtv = prism("GTV", rectangle(0.3, 0.6, 30.0, 25.0), 0.0, 10, 3.0, "GTV")
    res = expand_structure([gtv], "GTV", "-3", name="GTV_shrunk")
    assert res.volume_cc == pytest.approx(24 * 19 * 24 / 1000, rel=0.015)


# ----------------------------------------------------------------------------- crops
@pytest.fixture(scope="module")
def thigh():
    """A GTV beside a bone, inside a body outline and a muscle compartment (slab 3 mm)."""
    slab = 3.0
    gtv = prism("GTV", circle(20.0, 0.0, 15.0), -15.0, 11, slab, "GTV")
    bone = prism("Femur_R", circle(-8.0, 0.0, 12.0), -90.0, 61, slab)
    body = prism("BODY", circle(0.0, 0.0, 50.0), -90.0, 61, slab, "EXTERNAL")
    compartment = prism("Musc_Quad_R", rectangle(-30.0, -45.0, 75.0, 90.0), -60.0, 41, slab)
    return {s.name: s for s in (gtv, bone, body, compartment)}


def pixel_fractions(a: Structure, b: Structure, pixel_mm=0.2):
    """Exact in-plane coverage of ``a`` and ``b`` on 0.2 mm pixels, one slab per plane."""
    lo = np.minimum(a.bounds_mm()[0], b.bounds_mm()[0])
    hi = np.maximum(a.bounds_mm()[1], b.bounds_mm()[1])
    z = np.union1d(a.plane_z_mm, b.plane_z_mm)
    slab = a.slab_thickness_mm
    shape = (len(z), int((hi[1] - lo[1]) / pixel_mm) + 2, int((hi[0] - lo[0]) / pixel_mm) + 2)
    grid = Grid(shape, (lo[0], lo[1], z[0]), (slab, pixel_mm, pixel_mm))
    return a.fraction_mask(grid), b.fraction_mask(grid), grid.voxel_volume_cc


def overlap_cc(a: Structure, b: Structure) -> float:
    """Volume (cc) common to two structures: per pixel at least ``fa + fb - 1``, which is
    exact where one straight boundary crosses the pixel (0.2 mm pixels)."""
    fa, fb, vox = pixel_fractions(a, b)
    return float(np.sum(np.clip(fa + fb - 1.0, 0, None))) * vox


def outside_cc(a: Structure, b: Structure) -> float:
    """Volume (cc) of ``a`` outside ``b`` (per pixel ``fa - fb``, as for overlap_cc)."""
    fa, fb, vox = pixel_fractions(a, b)
    return float(np.sum(np.clip(fa - fb, 0, None))) * vox


def test_avoid_leaves_no_overlap(thigh):
    plain = expand_structure(thigh, "GTV", "radial=15,longitudinal=30", name="CTV")
    res = expand_structure(thigh, "GTV", "radial=15,longitudinal=30", name="CTV", avoid=["Femur_R"])
    assert overlap_cc(plain.structure, thigh["Femur_R"]) > 5.0  # the crop matters
    assert overlap_cc(res.structure, thigh["Femur_R"]) < 0.1
    # with a 5 mm margin around the bone (radius 12 + 5 = 17, a prism like the bone)
    res5 = expand_structure(
        thigh, "GTV", "radial=15,longitudinal=30", name="CTV", avoid=[Crop("Femur_R", 5.0)]
    )
    grown = prism("Femur_R5", circle(-8.0, 0.0, 17.0), -90.0, 61, 3.0)
    assert overlap_cc(res5.structure, grown) < 0.1
    assert overlap_cc(res.structure, grown) > 1.0
    assert res5.volume_cc < res.volume_cc < plain.volume_cc


def test_within_leaves_nothing_outside(thigh):
    res = expand_structure(
        thigh,
        "GTV",
        "radial=15,longitudinal=30",
        name="CTV",
        within=["BODY:-3", "Musc_Quad_R"],
    )
    inner_body = prism("BODY_3mm", circle(0.0, 0.0, 47.0), -90.0, 61, 3.0)
    assert outside_cc(res.structure, inner_body) < 0.05
    assert outside_cc(res.structure, thigh["Musc_Quad_R"]) < 0.05
    plain = expand_structure(thigh, "GTV", "radial=15,longitudinal=30", name="CTV")
    assert outside_cc(plain.structure, inner_body) > 1.0  # the crop matters
    # GTV + 15 mm reaches x = 50; the compartment ends at 45, the skin strip at 47
    lo, hi = res.structure.bounds_mm()
    assert hi[0] == pytest.approx(45.0, abs=0.1)


def test_keep_source_where_the_gtv_invades(thigh):
    """A GTV overlapping the bone: avoiding the bone cuts the GTV unless it is kept."""
    gtv = prism("GTV", circle(0.0, 0.0, 15.0), -15.0, 11, 3.0, "GTV")
    structures = {**thigh, "GTV": gtv}
    cut = expand_structure(structures, "GTV", "10", name="CTV", avoid=["Femur_R"])
    kept = expand_structure(
        structures, "GTV", "10", name="CTV", avoid=["Femur_R"], keep_source=True
    )
    assert outside_cc(gtv, cut.structure) > 2.0
    assert outside_cc(gtv, kept.structure) < 0.05
    assert [s.action for s in kept.steps] == ["from", "margin", "avoid", "keep"]


def test_steps_log_volumes(thigh):
    res = expand_structure(
        thigh, "GTV", "radial=15,longitudinal=30", name="CTV", avoid=["Femur_R"], within=["BODY"]
    )
    first, margin, avoid, within = res.steps
    assert first.action == "from" and first.before_cc == pytest.approx(
        thigh["GTV"].volume_cc, rel=1e-4
    )
    assert margin.before_cc == first.after_cc and margin.after_cc > 3 * margin.before_cc
    assert avoid.other == "Femur_R" and avoid.after_cc < avoid.before_cc
    assert within.after_cc <= within.before_cc
    assert "CTV: avoid Femur_R (0 mm)" in str(avoid)


# ----------------------------------------------------------------------------- errors
def test_negative_margin_larger_than_structure(thigh):
    with pytest.raises(InputError, match="shrinking 'GTV' .* by .* leaves nothing"):
        expand_structure(thigh, "GTV", "-16", name="GTV_small")


def test_unknown_structure_names_the_closest(thigh):
    with pytest.raises(
        StructureNotFoundError, match="no structure 'Femur'; closest names present: 'Femur_R'"
    ):
        expand_structure(thigh, "GTV", "5", name="CTV", avoid=["Femur"])
    with pytest.raises(StructureNotFoundError, match="'GVT'"):
        expand_structure(thigh, "GVT", "5", name="CTV")


def test_existing_name_is_refused(thigh):
    with pytest.raises(InputError, match="'BODY' exists already"):
        expand_structure(thigh, "GTV", "5", name="BODY")


@pytest.mark.parametrize(
    "text, crop",
    [("BODY", Crop("BODY", 0)), ("BODY:-3", Crop("BODY", -3)), ("F_R: 5mm", Crop("F_R", 5))],
)
def test_crop_syntax(text, crop):
    assert Crop.parse(text) == crop


@pytest.mark.parametrize("text", ["BODY:", "BODY:x", ":3", ""])
def test_crop_syntax_errors(text):
    with pytest.raises(InputError):
        Crop.parse(text)


def test_builder_chains_volumes(thigh):
    ws = Workspace.around(
        [thigh["GTV"]], reach_lo_mm=(20, 20, 40), reach_hi_mm=(20, 20, 40), fine_mm=1.0
    )
    b = VolumeBuilder(thigh, ws)
    b.build("CTV", "GTV", margins="radial=15,longitudinal=30", avoid=["Femur_R"])
    b.build("PTV", "CTV", margins="5", within=["BODY"])
    ptv = b.structure("PTV")
    assert ptv.interpreted_type == "PTV"
    assert b.region("PTV").volume_cc > b.region("CTV").volume_cc > b.region("GTV").volume_cc
    # PTV contours on the CT slices (slab 3 mm) and its volume that of the fine region
    assert ptv.slab_thickness_mm == 3.0
    assert ptv.volume_cc == pytest.approx(b.region("PTV").volume_cc, rel=0.01)


# ------------------------------------------------- recipes: invaded organs, missing structures
def _recipe(unless_invaded: bool):
    """A one-step recipe: CTV = GTV + 10 mm, 0 mm into the kidney (unless invaded), within the
    body, near the optional great vessels (to see the missing-structure note)."""
    import dataclasses

    from rtplan.protocols import load_protocol
    from rtplan.protocols.recipe import recipe_from_protocol

    base = load_protocol("rps-preop")
    kidney_rule = {"structure": "kidney", "unless_invaded": True} if unless_invaded else "kidney"
    volumes = {
        "structures": {
            "gtv": {"names": ["GTV"], "required": True},
            "body": {"names": ["BODY"], "required": True},
            "kidney": {"names": ["Kidney_R"]},
            "great_vessels": {"names": ["A_Aorta"]},
        },
        "steps": [
            {
                "name": "CTV",
                "from": "gtv",
                "margin": {"all": 10.0},
                "avoid": [kidney_rule],
                "within": ["body"],
                "source": "baldini2015",
                "verification": "not verified",
            },
            {
                "name": "CTV_Post",
                "from": "gtv",
                "near": {"structures": ["kidney", "great_vessels"], "distance_mm": 5.0},
                "source": "baldini2015",
                "verification": "not verified",
            },
        ],
    }
    return recipe_from_protocol(dataclasses.replace(base, extra={"volumes": volumes}))


@pytest.fixture(scope="module")
def invaded_kidney():
    """GTV (radius 15 mm at x = 20) overlapping a kidney (radius 12 mm at x = 0): centres
    20 mm apart, less than 15 + 12, so the GTV invades the kidney; slab 3 mm, 11 planes."""
    slab = 3.0
    gtv = prism("GTV", circle(20.0, 0.0, 15.0), -15.0, 11, slab, "GTV")
    kidney = prism("Kidney_R", circle(0.0, 0.0, 12.0), -30.0, 21, slab)
    body = prism("BODY", circle(0.0, 0.0, 80.0), -60.0, 41, slab, "EXTERNAL")
    return {s.name: s for s in (gtv, kidney, body)}


def lens_area_mm2(r1: float, r2: float, d: float) -> float:
    """Area (mm^2) common to two circles of radii r1, r2 whose centres are d apart."""
    a1 = r1**2 * math.acos((d**2 + r1**2 - r2**2) / (2 * d * r1))
    a2 = r2**2 * math.acos((d**2 + r2**2 - r1**2) / (2 * d * r2))
    return a1 + a2 - 0.5 * math.sqrt((-d + r1 + r2) * (d + r1 - r2) * (d - r1 + r2) * (d + r1 + r2))


def test_recipe_does_not_crop_inside_an_invaded_organ_and_says_so(invaded_kidney):
    # Truth: the GTV-kidney overlap is the circles' lens (closed form) times 11 slabs of 3 mm
    # (within 2 %: the overlap is measured on the workspace's sub-voxel masks);
    # with unless_invaded the CTV's 10 mm margin enters the kidney, without it the CTV stays
    # out of the kidney entirely (Baldini 2015: 0 mm into kidney unless invaded).
    from rtplan.volumes.recipes import run_recipe
    from rtplan.workflows.volumes import recipe_roles

    def run(recipe):
        return run_recipe(recipe, invaded_kidney, recipe_roles(recipe, list(invaded_kidney), {}))

    lens_cc = lens_area_mm2(15.0, 12.0, 20.0) * 33.0 / 1000.0
    kept = run(_recipe(True))
    note = next(n for n in kept.notes if "not cropped inside Kidney_R" in n)
    assert float(note.split("overlaps it by ")[1].split(" cc")[0]) == pytest.approx(
        lens_cc, rel=0.02
    )
    ctv = next(s for s in kept.structures if s.name == "CTV")
    assert overlap_cc(ctv, invaded_kidney["Kidney_R"]) > lens_cc + 1.0
    cropped = run(_recipe(False))
    assert not any("not cropped" in n for n in cropped.notes)
    ctv = next(s for s in cropped.structures if s.name == "CTV")
    assert overlap_cc(ctv, invaded_kidney["Kidney_R"]) < 0.1  # as test_avoid_leaves_no_overlap
    # the optional great vessels are absent: the recipe says so
    assert "CTV_Post: near 'great_vessels' skipped (no such structure)" in kept.notes
