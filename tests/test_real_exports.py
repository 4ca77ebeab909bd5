"""A real planning-system export (tests/data/dcpt_let_plan03: RayStation 14 proton plan of
the DCPT water phantom with its PLAN dose and both BEAM doses; the RTPLAN carries another
PatientID than the structure set and doses it is tied to by UID).

Truths: the phantom's designed geometry (``Cube101010`` is a 10 x 10 x 10 cm cube: 21
contours of 100 x 100 mm, 5 mm apart = 1000 cc ending on its end contours, 1050 cc with
half-slice end slabs), the BEAM doses summing to the PLAN dose (a property of the export,
checked here voxel by voxel), and a brute-force mean of the dose voxels inside the cube.
"""

from __future__ import annotations

import json
import lzma
from pathlib import Path

import numpy as np
import pydicom
import pytest

from rtplan.cli import main
from rtplan.io import load_plan_folder

DATA = Path(__file__).parent / "data" / "dcpt_let_plan03"
PLAN_DOSE = "RD1.2.752.243.1.1.20250523160113556.3000.73252.dcm"
BEAM_DOSES = (
    "RD1.2.752.243.1.1.20250523160113556.4000.16653.dcm",
    "RD1.2.752.243.1.1.20250523160113556.5000.84138.dcm",
)
PLAN = "ramped_2Gy_ver2_full.dcm"


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dcpt_let_plan03")
    for xz in sorted(DATA.glob("*.dcm.xz")):
        (folder / xz.name[:-3]).write_bytes(lzma.decompress(xz.read_bytes()))
    return folder


def _run(capsys, argv):
    code = main(argv)
    return code, capsys.readouterr()


def test_info_lists_the_export(export, capsys):
    code, out = _run(capsys, ["info", str(export)])
    assert code == 0, out.err
    for text in ("Cube101010", "Slope101004", "External", "PMMA", "LoPo", "Dose PLAN", "Dose BEAM"):
        assert text in out.out


def test_objects_of_two_patients_are_refused_by_default(export, capsys):
    code, out = _run(capsys, ["dvh", str(export)])
    assert code == 2
    err = out.err
    assert err.count("\n") == 1
    for text in ("WTR303030", "test_LET_ramp", PLAN, "--patient-id", "--mixed-patients"):
        assert text in err


def test_one_patient_dvh_prefers_the_plan_dose_and_checks_the_beams(export, capsys):
    code, out = _run(capsys, ["dvh", str(export), "--patient-id", "WTR303030", "--json"])
    assert code == 0, out.err
    report = json.loads(out.out)
    assert report["dose"]["summation_type"] == "PLAN"
    assert report["inputs"]["RTDOSE"] == [str(export / PLAN_DOSE)]
    assert report["inputs"]["RTPLAN"] is None
    assert any("sum to the PLAN dose within" in n for n in report["notes"])
    rows = {r["name"]: r for r in report["structures"]}
    # no planning-system DVH to match: auto falls back to the slab convention
    assert report["conventions"]["end_cap"] == "slab"
    assert rows["Cube101010"]["volume_cc"] == pytest.approx(1050.0, rel=1e-9)
    assert "LoPo" not in rows  # a marker point, not a volume
    code, out = _run(
        capsys,
        ["dvh", str(export), "--patient-id", "WTR303030", "--json", "--end-cap", "none",
         "--structure", "Cube101010"],
    )  # fmt: skip
    (cube,) = json.loads(out.out)["structures"]
    assert cube["volume_cc"] == pytest.approx(1000.0, rel=1e-9)  # the designed 10 cm cube


def test_beam_doses_sum_to_the_plan_dose(export):
    # the property the PLAN-over-BEAM rule relies on, voxel by voxel (0.1 % of the maximum)
    plan = load_plan_folder(export, patient_id="WTR303030", dose=[export / PLAN_DOSE]).dose()
    beams = load_plan_folder(
        export, patient_id="WTR303030", dose=[export / b for b in BEAM_DOSES]
    ).dose()
    assert beams.summation_type == "BEAM" and plan.grid.same_as(beams.grid)
    diff = np.abs(np.asarray(beams.values_gy) - np.asarray(plan.values_gy))
    assert diff.max() <= 1e-3 * plan.max_gy


def test_cube_mean_dose_against_a_voxel_average(export):
    # brute force: the mean of the dose voxels whose centres lie inside the cube (ending on
    # its end contours); partial voxels at the faces make the two differ by well under 1 %
    from rtplan.dvh import compute

    patient = load_plan_folder(export, patient_id="WTR303030")
    dose = patient.dose()
    cube = patient.structure_set()["Cube101010"]
    dvh = compute(cube, dose, end_cap="none")
    pts = np.concatenate([c.points_mm for c in cube.contours])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    idx = np.indices(dose.grid.shape).reshape(3, -1).T
    xyz = dose.grid.index_to_world(idx)
    inside = np.all((xyz > lo) & (xyz < hi), axis=1)
    brute = float(np.asarray(dose.values_gy).reshape(-1)[inside].mean())
    assert dvh.mean_gy == pytest.approx(brute, rel=0.005)


def test_mixed_patients_combined_on_request_and_stated(export, capsys):
    code, out = _run(capsys, ["dvh", str(export), "--mixed-patients", "--json"])
    assert code == 0, out.err
    report = json.loads(out.out)
    assert report["inputs"]["RTPLAN"] == str(export / PLAN)
    assert any("different patients combined" in n for n in report["notes"])
    assert "different patients combined" in out.err


@pytest.mark.parametrize("choice", [["--patient-id", "WTR303030"], ["--mixed-patients"]])
def test_check_reaches_a_verdict(export, capsys, choice):
    argv = ["check", str(export), "--protocol", str(DATA / "protocol.toml"),
            "--map", str(DATA / "mapping.toml"), "--json", *choice]  # fmt: skip
    code, out = _run(capsys, argv)
    assert code in (0, 1), out.err
    report = json.loads(out.out)
    text = json.dumps(report)
    assert "D95%Rx" in text and "Cube101010" in text
    if "--mixed-patients" in choice:
        assert "different patients combined" in text


def test_folder_of_symlinks_to_the_export(export, tmp_path, capsys):
    links = tmp_path / "links"
    links.mkdir()
    for p in export.iterdir():
        (links / p.name).symlink_to(p)
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "export").symlink_to(links, target_is_directory=True)
    code, out = _run(capsys, ["dvh", str(tmp_path / "tree"), "--patient-id", "WTR303030"])
    assert code == 0, out.err
    assert "Cube101010" in out.out


def test_explicit_dose_files_the_same_file_twice(export, capsys):
    d = str(export / PLAN_DOSE)
    code, out = _run(capsys, ["dvh", str(export), "--patient-id", "WTR303030", "--dose", d, d])
    assert code == 2 and "given twice" in out.err


def test_the_plan_in_the_export_is_a_real_mismatch():
    # guards the premise of the tests above: the identities differ in the files themselves
    rs = pydicom.dcmread(lzma.open(next(DATA.glob("RS*.xz"))))
    rp = pydicom.dcmread(lzma.open(DATA / f"{PLAN}.xz"))
    assert (rs.PatientID, rp.PatientID) == ("WTR303030", "test_LET_ramp")


def test_empty_roi_in_the_export_fatal_only_when_the_protocol_needs_it(export, tmp_path, capsys):
    import shutil

    from pydicom.dataset import Dataset

    folder = tmp_path / "export"
    shutil.copytree(export, folder)
    rs = next(folder.glob("RS*.dcm"))
    ds = pydicom.dcmread(rs)
    roi = Dataset()
    roi.ROINumber = 77
    roi.ReferencedFrameOfReferenceUID = ds.StructureSetROISequence[0].ReferencedFrameOfReferenceUID
    roi.ROIName, roi.ROIGenerationAlgorithm = "Areola", "MANUAL"
    ds.StructureSetROISequence.append(roi)
    contour = Dataset()
    contour.ReferencedROINumber, contour.ROIDisplayColor = 77, [1, 2, 3]
    ds.ROIContourSequence.append(contour)
    obs = Dataset()
    obs.ObservationNumber, obs.ReferencedROINumber = 77, 77
    obs.RTROIInterpretedType, obs.ROIInterpreter = "ORGAN", ""
    ds.RTROIObservationsSequence.append(obs)
    ds.save_as(rs)
    assert _run(capsys, ["info", str(folder)])[0] == 0
    code, out = _run(capsys, ["dvh", str(folder), "--patient-id", "WTR303030"])
    assert code == 0, out.err
    base = ["check", str(folder), "--protocol", str(DATA / "protocol.toml"), "--patient-id",
            "WTR303030"]  # fmt: skip
    assert _run(capsys, [*base, "--map", str(DATA / "mapping.toml")])[0] in (0, 1)
    (tmp_path / "map.toml").write_text('[structures]\nptv = "Areola"\n')
    code, out = _run(capsys, [*base, "--map", str(tmp_path / "map.toml")])
    assert code == 2 and out.err.count("\n") == 1 and "'Areola'" in out.err
