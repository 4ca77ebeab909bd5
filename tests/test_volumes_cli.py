"""``rtplan expand`` / ``rtplan volumes`` and the protocol recipes, on the sample patients.

Truths: the written RTSTRUCT re-read by rtplan's reader has the volumes the command printed
(within 0.5%), holds the input's structures plus the new ones, and passes dciodvfy; the
recipe's volumes keep their set relations (GTV inside CTV inside PTV, CTV_High inside CTV,
PTV_High inside PTV); exit code 2 and one line for bad input.
"""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import dciodvfy

from rtplan.cli import main
from rtplan.errors import InputError
from rtplan.io.rtstruct import read_rtstruct
from rtplan.protocols import load_protocol
from rtplan.protocols.recipe import load_recipe, recipe_from_protocol
from rtplan.workflows.volumes import expand_folder

ROOT = Path(__file__).resolve().parents[1]
EXTREMITY = ROOT / "sample_dicom" / "extremity_01"
RPS = ROOT / "sample_dicom" / "rps_01"


def dciodvfy_errors(path: Path) -> list[str]:
    """dciodvfy's error lines for a file."""
    result = subprocess.run([dciodvfy(), str(path)], capture_output=True, text=True)
    return [line for line in result.stderr.splitlines() if line.startswith("Error")]


def printed_volumes(text: str) -> dict[str, float]:
    block = text.split("new structures")[1]
    return {m[0]: float(m[1]) for m in re.findall(r"^\s+(\S+)\s+([\d.]+) cc$", block, re.M)}


def inside_cc(a, b, grid_mm=0.5) -> float:
    """Volume (cc) of structure ``a`` outside ``b``: per pixel at least ``fa - fb``."""
    from rtplan.grid import Grid

    lo, hi = a.bounds_mm()
    z = a.plane_z_mm
    slab = a.slab_thickness_mm
    shape = (len(z), int((hi[1] - lo[1]) / grid_mm) + 3, int((hi[0] - lo[0]) / grid_mm) + 3)
    grid = Grid(shape, (lo[0] - grid_mm, lo[1] - grid_mm, z[0]), (slab, grid_mm, grid_mm))
    fa, fb = a.fraction_mask(grid), b.fraction_mask(grid)
    return float(np.clip(fa - fb, 0, None).sum()) * grid.voxel_volume_cc


# ----------------------------------------------------------------------------- commands
@pytest.mark.requires_tool("dciodvfy")
def test_volumes_extremity_preop_round_trip(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        ["volumes", str(EXTREMITY), "--protocol", "extremity-preop", "--out", str(out),
         "--png", str(out)]
    )  # fmt: skip
    text = capsys.readouterr().out
    assert code == 0
    assert "CTV: avoid Femur_R (0 mm)" in text and "CTV: within Musc_Quad_R (0 mm)" in text
    assert "'CTV' exists in the structure set: the new one is 'CTV_rtplan'" in text
    volumes = printed_volumes(text)
    assert set(volumes) == {"CTV_rtplan", "PTV_rtplan"}
    [rs] = out.glob("RS.*.dcm")
    assert len(list(out.glob("*.png"))) == 1
    ss = read_rtstruct(rs)
    original = read_rtstruct(EXTREMITY / "RS.observer1.dcm")
    assert ss.names == original.names + ["CTV_rtplan", "PTV_rtplan"]
    for name, cc in volumes.items():
        assert ss[name].volume_cc == pytest.approx(cc, rel=0.005)
        assert ss[name].interpreted_type == name[:3]
    gtv, ctv, ptv = ss["GTV"], ss["CTV_rtplan"], ss["PTV_rtplan"]
    assert inside_cc(gtv, ctv) < 0.1 and inside_cc(ctv, ptv) < 0.1
    assert inside_cc(ctv, ss["BODY"]) < 0.1
    assert dciodvfy_errors(rs) == []


@pytest.mark.slow
@pytest.mark.requires_tool("dciodvfy")
def test_volumes_rps_high_risk(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["volumes", str(RPS), "--protocol", "rps-preop-sib", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "CTV_High: near Musc_Psoas_L, Musc_Psoas_R, VBs (5 mm)" in text
    [rs] = out.glob("RS.*.dcm")
    ss = read_rtstruct(rs)
    volumes = printed_volumes(text)
    assert set(volumes) == {"CTV_rtplan", "PTV_rtplan", "CTV_High", "PTV_High"}
    for name, cc in volumes.items():
        assert ss[name].volume_cc == pytest.approx(cc, rel=0.005)
    assert 0 < volumes["CTV_High"] < volumes["CTV_rtplan"]
    assert inside_cc(ss["CTV_High"], ss["CTV_rtplan"]) < 0.1
    assert inside_cc(ss["PTV_High"], ss["PTV_rtplan"]) < 0.1
    assert inside_cc(ss["GTV"], ss["CTV_rtplan"]) < 0.1
    assert dciodvfy_errors(rs) == []


def test_expand_command_and_api_agree(tmp_path, capsys):
    args = ["--structure", "GTV", "--name", "CTV2", "--margin", "radial=15,longitudinal=35",
            "--avoid", "Femur_R", "--within", "BODY:-3"]  # fmt: skip
    assert main(["expand", str(EXTREMITY), *args, "--out", str(tmp_path / "a")]) == 0
    printed = printed_volumes(capsys.readouterr().out)
    api = expand_folder(
        EXTREMITY,
        structure="GTV",
        name="CTV2",
        margin="radial=15,longitudinal=35",
        avoid=["Femur_R"],
        within=["BODY:-3"],
        out=None,
    )
    assert api.rtstruct is None
    assert printed["CTV2"] == pytest.approx(api.volumes_cc["CTV2"], abs=0.006)
    assert [s.action for s in api.steps] == ["from", "margin", "avoid", "within"]


@pytest.mark.parametrize(
    "args, words",
    [
        (["--structure", "GTX", "--margin", "5"], r"no structure 'GTX' in structure set 'observer1'; closest names present: 'GTV'"),
        (["--structure", "GTV", "--margin", "radial=15,up=3"], "unknown margin direction 'up'"),
        (["--structure", "GTV", "--margin", "-40", "--structure-set", "observer1"],
         r"shrinking 'GTV' \(131.09 cc\) by .* leaves nothing"),
        (["--structure", "GTV", "--margin", "5", "--avoid", "BODY:x"], "must be a number of mm"),
        (["--structure", "GTV", "--margin", "5"], "3 structure sets hold what is needed"),
    ],
)  # fmt: skip
def test_expand_bad_input_exits_2_with_one_line(tmp_path, capsys, args, words):
    try:
        code = main(["expand", str(EXTREMITY), "--name", "NEW", *args, "--out", str(tmp_path)])
    except SystemExit as exc:  # margins and crops are checked when the options are parsed
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and re.search(words, err), err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "args, words",
    [
        (["--protocol", "extremity-hypo-5x5"], "has no \\[volumes\\] recipe"),
        (["--protocol", "extremity-preop", "--set", "longitudinal_mm=50"], "outside its range 30..40"),
        (["--protocol", "extremity-preop", "--set", "depth_mm=5"], "no parameter 'depth_mm'"),
        (["--protocol", "extremity-preop", "--gtv", "GTV9"], "GTV9"),
        (["--protocol", "extremity-preop", "--map", "bone"], "not KEY=VALUE"),
    ],
)  # fmt: skip
def test_volumes_bad_input_exits_2(tmp_path, capsys, args, words):
    code = main(["volumes", str(EXTREMITY), *args, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and re.search(words, err), err


# ----------------------------------------------------------------------------- recipes
@pytest.mark.parametrize(
    "name", ["extremity-preop", "extremity-postop", "rps-preop", "rps-preop-sib"]
)
def test_shipped_recipes_cite_a_source_for_every_number(name):
    recipe = load_recipe(name)
    assert recipe.numbers()
    for where, _value, source, verification in recipe.numbers():
        assert source in recipe.sources, where
        assert verification in ("verified", "partial", "not verified")
        if recipe.sources[source].verification != "verified":
            assert verification != "verified", where


def test_extremity_numbers_follow_the_reference():
    """The clinical reference (seed 003; rtplan/protocols/sources.toml): 1.5 cm radial, 3-4 cm longitudinal, PTV 5-10 mm."""
    r = load_recipe("extremity-preop")
    p = r.parameters
    assert (p["radial_mm"].value, p["longitudinal_mm"].value, p["ptv_mm"].value) == (15, 30, 5)
    assert p["longitudinal_mm"].range == (30, 40) and p["ptv_mm"].range == (5, 10)
    rps = load_recipe("rps-preop-sib")
    assert rps.parameters["ctv_mm"].value == 15 and rps.parameters["contact_mm"].value == 5
    assert rps.parameters["ctv_mm"].verification == "not verified"


def _broken(change):
    protocol = load_protocol("extremity-preop")
    extra = copy.deepcopy(protocol.extra)
    change(extra["volumes"])
    return recipe_from_protocol(type(protocol)(**{**protocol.__dict__, "extra": extra}))


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda v: v["steps"][0].update(margn={}), "unknown key\\(s\\) 'margn'"),
        (lambda v: v["steps"][0].update(source="nowhere"), "'nowhere' is not a key of \\[sources\\]"),
        (lambda v: v["steps"][0].update(avoid=["skull"]), "'skull' is neither a role"),
        (lambda v: v["steps"][0]["margin"].update(radial="wide_mm"), "unknown parameter 'wide_mm'"),
        (lambda v: v["parameters"]["ptv_mm"].update(value=12.0), "outside its range 5..10"),
        (lambda v: v["parameters"]["ptv_mm"].update(source="coverage"),
         "source 'coverage' is 'not verified': say so next to the number"),
        (lambda v: v["steps"][1].update({"from": "ITV"}), "neither a role nor an earlier step"),
    ],
)  # fmt: skip
def test_malformed_recipes_name_the_table(change, words):
    with pytest.raises(InputError, match=words) as err:
        _broken(change)
    assert "[volumes" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.slow
def test_longitudinal_parameter_changes_the_ctv():
    from rtplan.workflows.volumes import volumes_folder

    short = volumes_folder(EXTREMITY, protocol="extremity-preop", out=None)
    long = volumes_folder(
        EXTREMITY, protocol="extremity-preop", out=None, parameters={"longitudinal_mm": 40}
    )
    lo30, hi30 = short.structures[0].bounds_mm()
    lo40, hi40 = long.structures[0].bounds_mm()
    assert long.volumes_cc["CTV_rtplan"] > short.volumes_cc["CTV_rtplan"]
    # same radial extent; 10 mm longer at each end unless the compartment stops it
    assert np.allclose(lo30[:2], lo40[:2], atol=0.5) and hi40[2] >= hi30[2]
