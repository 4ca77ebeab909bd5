"""``rtplan check`` end to end on synthetic DICOM-RT patients written in the test.

The patient: boxes drawn on every CT slice 2..13 (5 mm slices, so 12 planes = 60 mm of slab):
PTV 60 x 60 mm = 216 cc, bowel bag 80 x 80 mm = 384 cc.  The dose is 50.4 Gy for x <= -10 mm
(the PTV side), ``bowel_gy`` for x >= 10 mm (the bowel side), linear in between; both boxes lie
where the trilinear dose is exactly constant.  Truths by hand: with ``bowel_gy`` = 30 Gy the
bowel bag's V45Gy is 0 cc (pass); with 46 Gy it is the whole 384 cc, 189 cc over the 195 cc
QUANTEC limit (fail); the PTV receives exactly the prescription (D95% = 100 %Rx).  The other
organs of ``rps-preop`` (small bowel, kidneys, cord, liver, stomach) are boxes at y >= 56 mm,
where the dose is exactly 0 Gy (the dose grid is zero from y = 50 mm), so every mandatory
constraint is evaluated (a strict check fails on one that is not).
"""

from __future__ import annotations

import csv
import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from rtplan.cli import main
from rtplan.testing.synthetic import (
    SyntheticBeam,
    SyntheticROI,
    cardinal_grid,
    ct_series_datasets,
    rtdose_dataset,
    rtplan_dataset,
    rtstruct_dataset_from_contours,
    write_datasets,
)

#: The organs at risk besides the bowel bag: name -> x range (mm), all at y 56..84 mm (0 Gy).
ORGANS = {
    "Bowel_Small": (20.0, 50.0),
    "Kidneys": (-50.0, -20.0),
    "SpinalCord": (-8.0, 8.0),
    "Liver": (60.0, 100.0),
    "Stomach": (-100.0, -60.0),
}
PTV_CC = 60 * 60 * 60 / 1000
BOWEL_CC = 80 * 80 * 60 / 1000


def write_rps_patient(folder: Path, patient_id: str, bowel_gy: float, names=None) -> Path:
    """A small RPS-like patient (see the module docstring)."""
    names = names or {"ptv": "PTV", "bowel": "Bowel bag"}
    grid = cardinal_grid((16, 48, 64), (-126.0, -94.0, 0.0), (5.0, 4.0, 4.0), "HFS")
    cts = ct_series_datasets(
        np.zeros(grid.shape), grid, patient_id=patient_id, patient_name="Test^RPS"
    )
    z = 5.0 * np.arange(16)

    def rect(x0, x1, y0, y1, zz):
        return np.array([[x0, y0, zz], [x1, y0, zz], [x1, y1, zz], [x0, y1, zz]], float)

    rois = [
        SyntheticROI(
            "BODY", [rect(-120, 120, -90, 90, zz) for zz in z], interpreted_type="EXTERNAL"
        ),
        SyntheticROI(
            names["ptv"], [rect(-80, -20, -30, 30, zz) for zz in z[2:14]], interpreted_type="PTV"
        ),
        SyntheticROI(names["bowel"], [rect(20, 100, -40, 40, zz) for zz in z[2:14]]),
    ]
    for name, (x0, x1) in names.get("organs", ORGANS).items():
        rois.append(SyntheticROI(name, [rect(x0, x1, 56, 84, zz) for zz in z[3:12]]))
    rs = rtstruct_dataset_from_contours(rois, ct_datasets=cts, label="RPS")
    study, frame = cts[0].StudyInstanceUID, cts[0].FrameOfReferenceUID
    plan = rtplan_dataset(
        "RPS",
        28,
        50.4,
        [SyntheticBeam("AP", 0.9), SyntheticBeam("PA", 0.9, 180.0)],
        patient_id=patient_id,
        patient_name="Test^RPS",
        study_uid=study,
        frame_of_reference_uid=frame,
        referenced_structure_set_uid=rs.SOPInstanceUID,
        target_roi_number=2,
    )
    world = grid.index_to_world(np.indices(grid.shape).reshape(3, -1).T)
    x, y = (world[:, k].reshape(grid.shape) for k in (0, 1))
    dose = np.interp(x, [-10.0, 10.0], [50.4, bowel_gy]) * (y < 50.0)
    rd = rtdose_dataset(
        dose,
        grid,
        frame_of_reference_uid=frame,
        study_uid=study,
        patient_id=patient_id,
        referenced_plan_uid=plan.SOPInstanceUID,
    )
    write_datasets(cts, folder / "CT")
    write_datasets([rs, plan, rd], folder)
    return folder


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("cohort")
    write_rps_patient(root / "rps_pass", "RPS_PASS", bowel_gy=30.0)
    write_rps_patient(root / "rps_fail", "RPS_FAIL", bowel_gy=46.0)
    return root


def run(capsys, *argv):
    code = main(["check", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def row(out: str, start: str) -> str:
    """The table line whose first cells are ``start`` (whitespace between cells ignored)."""
    words = start.split()
    return next(line for line in out.splitlines() if line.split()[: len(words)] == words)


def test_passing_plan_exits_0(cohort, capsys):
    code, out, err = run(capsys, cohort / "rps_pass", "--protocol", "rps-preop")
    assert code == 0, out + err
    assert "V45Gy" in row(out, "Bowel bag") and "PASS" in row(out, "Bowel bag")
    assert "0.00 cc" in row(out, "Bowel bag")
    assert "100.00 %Rx" in row(out, "PTV          D95%Rx")
    assert "result: PASS" in out


def test_failing_bowel_bag_exits_1_and_says_by_how_much(cohort, capsys):
    code, out, err = run(capsys, cohort / "rps_fail", "--protocol", "rps-preop")
    assert code == 1, out + err
    line = row(out, "Bowel bag")
    assert f"{BOWEL_CC:.2f} cc" in line and "< 195 cc" in line and "FAIL" in line
    assert f"{195 - BOWEL_CC:+.2f} cc" in line  # -189.00 cc
    assert "result: FAIL" in out


def test_cohort_folder_reports_every_patient(cohort, capsys, tmp_path):
    files = {k: tmp_path / f"report.{k}" for k in ("csv", "xml", "html")}
    code, out, _ = run(
        capsys,
        cohort,
        "--protocol",
        "rps-preop",
        "--json",
        "--csv",
        files["csv"],
        "--junit",
        files["xml"],
        "--html",
        files["html"],
    )
    assert code == 1
    doc = json.loads(out)
    assert {p["patient"]: p["status"] for p in doc["patients"]} == {
        "RPS_PASS": "pass",
        "RPS_FAIL": "fail",
    }
    bb = {
        p["patient"]: next(c for c in p["constraints"] if c["constraint"] == "bowel_bag_v45gy")
        for p in doc["patients"]
    }
    assert bb["RPS_FAIL"]["value"] == pytest.approx(BOWEL_CC, rel=1e-6)
    assert bb["RPS_PASS"]["value"] == pytest.approx(0.0, abs=1e-9)
    fail = next(p for p in doc["patients"] if p["patient"] == "RPS_FAIL")
    assert fail["inputs"]["RTPLAN"] and fail["inputs"]["RTDOSE"] and fail["inputs"]["RTSTRUCT"]
    assert fail["prescriptions"]["ptv"]["used_gy"] == 50.4
    n = len(doc["patients"][0]["constraints"]) + 1  # + the prescription line
    assert len(files["csv"].read_text().splitlines()) == 1 + 2 * n
    root = ET.parse(files["xml"]).getroot()
    assert root.get("tests") == str(2 * n) and root.get("failures") == "1"
    html = files["html"].read_text()
    assert html.count("data:image/png;base64,") == 4 and "RPS_FAIL" in html  # DVH + overlay each


def test_cohort_with_an_unreadable_patient_still_checks_the_others(cohort, capsys, tmp_path):
    root = tmp_path / "mixed"
    shutil.copytree(cohort / "rps_pass", root / "good")
    write_rps_patient(root / "bad", "RPS_BAD", 30.0, names={"ptv": "PTV", "bowel": "Bowels"})
    code, out, err = run(capsys, root, "--protocol", "rps-preop")
    assert code == 2
    assert "RPS_BAD: ERROR" in out and "closest names present: 'Bowels'" in out
    assert sum(line.startswith("RPS_PASS ") for line in out.splitlines()) > 0


def test_missing_required_structure_is_bad_input(tmp_path, capsys):
    write_rps_patient(tmp_path / "p", "RPS_X", 30.0, names={"ptv": "PTV", "bowel": "Bowels"})
    code, out, err = run(capsys, tmp_path / "p", "--protocol", "rps-preop")
    assert code == 2 and out == ""
    assert err.startswith("rtplan check: error: ") and err.count("\n") == 1
    assert "required structure 'Bag_Bowel'" in err and "'Bowels'" in err


def test_mapping_file_resolves_a_local_name(tmp_path, capsys):
    write_rps_patient(tmp_path / "p", "RPS_X", 30.0, names={"ptv": "PTV_opt", "bowel": "BB"})
    mapping = tmp_path / "map.toml"
    mapping.write_text('[structures]\nBag_Bowel = "BB"\nptv = "PTV_opt"\n')
    code, out, err = run(capsys, tmp_path / "p", "--protocol", "rps-preop", "--map", mapping)
    assert code == 0, err
    assert "PASS" in row(out, "BB ")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["{missing}", "--protocol", "rps-preop"], "no such file or folder"),
        (["{patient}", "--protocol", "rps-postop"], "unknown protocol 'rps-postop'"),
        (["{patient}", "--protocol", "{bad_protocol}"], "not valid TOML"),
        (["{empty}", "--protocol", "rps-preop"], "RTDOSE file found"),
    ],
)
def test_bad_input_exits_2_with_one_line(cohort, tmp_path, capsys, argv, message):
    bad = tmp_path / "bad.toml"
    bad.write_text("schema_version = [\n")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not DICOM")
    values = {
        "missing": tmp_path / "nope",
        "patient": cohort / "rps_pass",
        "bad_protocol": bad,
        "empty": tmp_path / "empty",
    }
    code, out, err = run(capsys, *(a.format(**values) for a in argv))
    assert code == 2 and message in err and err.count("\n") == 1


def test_user_protocol_file(cohort, tmp_path, capsys):
    # A stricter institutional limit (V45Gy < 1 cc would fail; < 0.5 cc with 0 cc passes).
    text = (Path(__file__).parents[1] / "rtplan/protocols/rps-preop.toml").read_text()
    mine = tmp_path / "mine.toml"
    mine.write_text(
        text.replace("limit = 195.0", "limit = 0.5").replace('name = "rps-preop"', 'name = "mine"')
    )
    code, out, _ = run(capsys, cohort / "rps_pass", "--protocol", mine)
    assert code == 0 and "< 0.5 cc" in row(out, "Bowel bag")
    code, out, _ = run(capsys, cohort / "rps_fail", "--protocol", mine)
    assert code == 1


# ------------------------------------------------------------------ the bundled sample plan
SAMPLE = Path(__file__).resolve().parents[1] / "sample_dicom" / "rps_01"
needs_sample = pytest.mark.skipif(not SAMPLE.is_dir(), reason="sample_dicom/rps_01 not present")


@needs_sample
def test_sample_rps_01_passes_rps_preop(capsys):
    code, out, err = run(capsys, SAMPLE, "--protocol", "rps-preop")
    assert code == 0, out + err
    assert "PASS" in row(out, "Bag_Bowel") and "result: PASS" in out


@needs_sample
def test_sample_with_a_hot_bowel_bag_fails_rps_preop(tmp_path, capsys):
    # Raise the RTDOSE to at least 47 Gy on every dose voxel near the bowel bag (the voxels
    # overlapping it, dilated by one): the trilinear dose is then >= 47 Gy everywhere in the
    # bowel bag, so its V45Gy must equal its whole volume, far above the 195 cc limit.
    import pydicom
    from scipy import ndimage

    from rtplan.io import load_plan_folder
    from rtplan.io.rtdose import dose_grid

    folder = tmp_path / "rps_01_hot_bowel"
    shutil.copytree(SAMPLE, folder)
    patient = load_plan_folder(folder)
    bowel = patient.structure_set()["Bag_Bowel"]
    dose = patient.dose()
    near = ndimage.binary_dilation(bowel.fraction_mask(dose.grid) > 0, iterations=1)
    ds = pydicom.dcmread(dose.source)
    grid, order = dose_grid(ds)
    assert grid.same_as(dose.grid)
    stored = ds.pixel_array.astype(np.int64)  # frames in file order
    floor = int(np.ceil(47.0 / float(ds.DoseGridScaling)))
    hot = np.zeros_like(near)
    hot[order] = near  # back to file frame order
    stored[hot] = np.maximum(stored[hot], floor)
    assert stored.max() < 2 ** int(ds.BitsAllocated)
    ds.PixelData = stored.astype(ds.pixel_array.dtype).tobytes()
    ds.save_as(dose.source)

    code, out, err = run(capsys, folder, "--protocol", "rps-preop", "--json")
    assert code == 1, err
    doc = json.loads(out)
    bb = next(c for c in doc["patients"][0]["constraints"] if c["constraint"] == "bowel_bag_v45gy")
    assert bb["verdict"] == "fail"
    assert bb["value"] == pytest.approx(bowel.volume_cc, rel=0.005)
    assert bb["margin"] == pytest.approx(195.0 - bb["value"])


def test_cohort_on_a_process_pool_and_dask_gives_identical_rows(cohort, tmp_path):
    """Truth: the in-process run; rows equal except ``checked_at`` (the time of the run)."""
    import csv as csv_module

    import distributed

    from rtplan.protocols import load_protocol
    from rtplan.report import to_csv
    from rtplan.workflows.check import check_folder

    protocol = load_protocol("rps-preop")

    def rows(**how):
        text = to_csv(check_folder(cohort, protocol, **how), protocol)
        table = list(csv_module.DictReader(text.splitlines()))
        assert table and all(r.pop("checked_at") for r in table)
        return table

    here = rows(jobs=1)
    assert rows(jobs=2) == here
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False) as c:
        assert rows(scheduler=c.scheduler_address) == here


def _constraints(out: str) -> list[dict]:
    return [c for p in json.loads(out)["patients"] for c in p["constraints"]]


def test_end_cap_auto_is_slab_without_planning_system_dvhs(cohort, capsys):
    # no DVH in the RTDOSE: auto is slab, stated, and every verdict and value is slab's; the
    # bowel bag's V45Gy is its whole volume: 12 planes of 80 x 80 mm, 5 mm apart = 384 cc
    # with half-slice end slabs, 352 cc ending on the end contours (11 gaps of 5 mm)
    folder = cohort / "rps_fail"
    code, out, err = run(capsys, folder, "--protocol", "rps-preop", "--json")
    assert code == 1, err
    patient = json.loads(out)["patients"][0]
    assert patient["end_cap_choice"] == {
        "requested": "auto", "used": "slab",
        "median_abs_volume_difference_pct": {}, "structures_matched": [],
    }  # fmt: skip
    assert patient["provenance"]["end_cap"] == "slab (auto: no planning-system DVH in cc to match)"
    default = _constraints(out)
    code_slab, out_slab, _ = run(capsys, folder, "--protocol", "rps-preop", "--json",
                                 "--end-cap", "slab")  # fmt: skip
    assert code_slab == code and _constraints(out_slab) == default
    (bowel,) = [c for c in default if c["plan_structure"] == "Bowel bag" and c["metric"] == "V45Gy"]
    assert bowel["value"] == pytest.approx(BOWEL_CC, rel=1e-9) and bowel["verdict"] == "fail"
    code, out, _ = run(capsys, folder, "--protocol", "rps-preop", "--end-cap", "none")
    assert code == 1
    assert "end cap: none" in out.splitlines()
    assert f"{80 * 80 * 55 / 1000:.2f} cc" in row(out, "Bowel bag")


def test_end_cap_in_csv_junit_and_html(cohort, capsys, tmp_path):
    csv_file, junit, html = tmp_path / "c.csv", tmp_path / "c.xml", tmp_path / "c.html"
    code, out, err = run(capsys, cohort / "rps_pass", "--protocol", "rps-preop", "--end-cap",
                         "none", "--csv", csv_file, "--junit", junit, "--html", html)  # fmt: skip
    assert code == 0, err
    rows = list(csv.DictReader(csv_file.open(newline="")))
    assert rows and {r["end_cap"] for r in rows} == {"none"}
    props = {p.get("name"): p.get("value") for p in ET.parse(junit).iter("property")}
    assert props["end_cap"] == "none"
    assert "<td>DVH end cap</td><td>none</td>" in html.read_text().replace("\n", "")
