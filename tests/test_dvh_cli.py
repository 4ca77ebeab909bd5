"""`rtplan dvh` on a written phantom patient (rtplan.testing.synthetic; hand-computed truths)."""

import json
from pathlib import Path

import numpy as np
import pytest

from rtplan.cli import main
from rtplan.testing.synthetic import (
    SyntheticDVH,
    rtdose_dataset,
    write_datasets,
    write_phantom_patient,
)


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    return write_phantom_patient(tmp_path_factory.mktemp("dvh_phantom"))


def _json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_json_volumes_and_mean_dose(phantom, capsys):
    # truth: PTV 15 x 15 mm x 4 slices = 2.25 cc; dose 50 (1.05 - 0.01 |x|) Gy on voxel
    # centres at x = +-0.75, +-2.25, ...: trilinear, so flat at 52.125 Gy for |x| < 0.75:
    # Dmean = 50 (1.05 - 0.01 * 3.7875) = 50.60625 Gy (stored as 16-bit: 2e-3 Gy slack)
    out = _json(capsys, ["dvh", str(phantom.folder), "--json"])
    assert out["schema"] == "rtplan-dvh/1"
    rows = {r["name"]: r for r in out["structures"]}
    assert set(rows) == {"BODY", "PTV", "Bowel"}
    for name, cc in phantom.volumes_cc.items():
        assert rows[name]["volume_cc"] == pytest.approx(cc, rel=1e-9)
        assert rows[name]["outside_dose_cc"] == 0.0
    ptv = rows["PTV"]
    assert list(ptv["metrics"]) == [
        "Dmean",
        "Dmin",
        "Dmax",
        "D0.03cc",
        "D98%",
        "D95%",
        "D50%",
        "D2%",
    ]
    assert ptv["metrics"]["Dmean"] == pytest.approx(50.60625, abs=2e-3)
    assert ptv["metrics"]["Dmax"] == pytest.approx(52.125, abs=2e-3)
    assert ptv["metrics"]["Dmin"] == pytest.approx(50 * (1.05 - 0.075), abs=2e-3)
    assert out["prescription_gy"] == 50.0


def test_metrics_units_and_relative_forms(phantom, capsys):
    out = _json(
        capsys,
        ["dvh", str(phantom.folder), "--json", "--structure", "PTV", "--metrics",
         "V50Gy%,V50Gy,V95%Rx,D50%Rx,HI"],
    )  # fmt: skip
    (ptv,) = out["structures"]
    assert ptv["units"] == {"V50Gy%": "%", "V50Gy": "cc", "V95%Rx": "%", "D50%Rx": "%Rx", "HI": "1"}
    # V50Gy: |x| <= 5 mm of the 15 mm wide PTV -> 10/15 of 2.25 cc
    assert ptv["metrics"]["V50Gy"] == pytest.approx(1.5, rel=1e-3)
    assert ptv["metrics"]["V50Gy%"] == pytest.approx(100 * 10 / 15, rel=1e-3)
    assert ptv["metrics"]["V95%Rx"] == pytest.approx(100.0)


def test_csv_and_plot(phantom, tmp_path, capsys):
    csv_path, png = tmp_path / "dvh.csv", tmp_path / "dvh.png"
    assert main(["dvh", str(phantom.folder), "--csv", str(csv_path), "--plot", str(png)]) == 0
    lines = csv_path.read_text().splitlines()
    assert lines[0].startswith("name,volume_cc,outside_dose_cc,Dmean [Gy]")
    assert len(lines) == 4
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "PTV" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--structure", "PTV_Hgh"], "PTV_Hgh"),
        (["--metrics", "D95"], "malformed metric 'D95'"),
    ],
)
def test_bad_input_one_line_exit_2(phantom, capsys, argv, message):
    assert main(["dvh", str(phantom.folder), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_dose_in_another_frame_of_reference(phantom, tmp_path, capsys):
    other = write_phantom_patient(tmp_path / "other")
    assert main(["dvh", str(phantom.folder), "--dose", str(other.dose_paths[0])]) == 2
    err = capsys.readouterr().err.strip()
    assert "frame of reference" in err and "\n" not in err


def test_plan_sum_of_two_doses(phantom, tmp_path, capsys):
    # truth: a second plan (copy, new UIDs) with the same dose: the sum doubles every dose
    # metric and the prescriptions add; the same file twice is an error, not a sum
    import pydicom
    from pydicom.uid import generate_uid

    one = _json(capsys, ["dvh", str(phantom.folder), "--json", "--structure", "PTV"])
    plan = pydicom.dcmread(phantom.plan_path)
    plan.SOPInstanceUID = plan.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    plan.RTPlanLabel = "BOOST"
    plan.save_as(tmp_path / "RP_boost.dcm")
    dose = pydicom.dcmread(phantom.dose_paths[0])
    dose.SOPInstanceUID = dose.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    dose.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID = plan.SOPInstanceUID
    dose.save_as(tmp_path / "RD_boost.dcm")
    folder = tmp_path / "export"
    import shutil

    shutil.copytree(phantom.folder, folder)
    shutil.copy(tmp_path / "RP_boost.dcm", folder)
    d = str(phantom.dose_paths[0])
    two = _json(
        capsys,
        ["dvh", str(folder), "--json", "--structure", "PTV", "--dose", d,
         str(tmp_path / "RD_boost.dcm")],
    )  # fmt: skip
    for m, v in one["structures"][0]["metrics"].items():
        assert two["structures"][0]["metrics"][m] == pytest.approx(2 * v, rel=1e-9)
    assert two["prescription_gy"] == 100.0
    assert main(["dvh", str(phantom.folder), "--dose", d, d]) == 2
    assert "same RTDOSE file is given twice" in capsys.readouterr().err


def test_compare_embedded(phantom, tmp_path, capsys):
    # an RTDOSE whose DVHSequence holds rtplan's own PTV curve in 0.01 Gy bins: the
    # differences must vanish to the bin size
    from rtplan.dvh import compute
    from rtplan.io import load_plan_folder

    patient = load_plan_folder(phantom.folder)
    dose = patient.dose()
    dvh = compute(patient.structure_set()["PTV"], dose)
    edges = np.arange(0.01, 53.0, 0.01)
    vols = dvh.volume_at_dose_cc(edges - 0.01)
    emb = SyntheticDVH(
        2, [0.01] * len(edges), list(vols), max_dose=dvh.max_gy, mean_dose=dvh.mean_gy
    )
    ds = rtdose_dataset(
        dose.values_gy, dose.grid, frame_of_reference_uid=dose.frame_of_reference_uid,
        study_uid="1.2.3.4", patient_id=phantom.patient_id,
        referenced_plan_uid=phantom.plan_uid, dvhs=[emb],
        referenced_structure_set_uid=phantom.structure_set_uid,
    )  # fmt: skip
    (path,) = write_datasets([ds], tmp_path, ["with_dvh.dcm"])
    out = _json(
        capsys,
        ["dvh", str(phantom.folder), "--json", "--structure", "PTV", "--dose", str(path),
         "--compare-embedded"],
    )  # fmt: skip
    (cmp,) = out["embedded_comparison"]
    assert cmp["name"] == "PTV"
    for m in ("volume_cc", "Dmean", "Dmax", "D95%", "D50%", "D5%"):
        assert abs(cmp["metrics"][m]["difference"]) < 0.02, m


def test_every_subcommand_help_prints(capsys):
    # argparse formats help lazily; a stray '%' in a help string only fails here
    from rtplan.cli import COMMANDS, main

    for name in COMMANDS:
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0
        assert "usage: rtplan" in capsys.readouterr().out


def _two_rois_named_ptv(folder, patient_id):
    """The phantom's RTSTRUCT with its second ROI renamed like the first (a reader warning)."""
    import pydicom

    path = write_phantom_patient(folder, patient_id=patient_id).rtstruct_path
    ds = pydicom.dcmread(path)
    rois = ds.StructureSetROISequence
    rois[1].ROIName = rois[0].ROIName
    ds.save_as(path)
    return path, rois[0].ROIName


def test_a_reader_warning_is_shown_once_on_stderr(tmp_path, capsys):
    # Truth: the file holds two ROIs of one name; the reader warns (RtplanWarning) and the
    # command line prints it once as "rtplan dvh: warning: FILE: ...", whether the patient
    # ran in this process or (a cohort on 2 workers) in worker processes.
    expected = []
    for patient in ("p1", "p2"):
        path, name = _two_rois_named_ptv(tmp_path / "cohort" / patient, patient)
        expected.append(
            f"rtplan dvh: warning: {path}: two ROIs named '{name}'; lookup by name returns the first"
        )
    assert main(["dvh", str(tmp_path / "cohort" / "p1"), "--json"]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert [ln for ln in lines if ": warning: " in ln] == expected[:1]
    csv = tmp_path / "dvh.csv"
    assert main(["dvh", str(tmp_path / "cohort"), "--csv", str(csv), "--jobs", "2"]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert [ln for ln in lines if ": warning: " in ln] == expected


def test_curves_of_one_patient_equal_the_cohort_file(phantom, tmp_path):
    # Truth: the cohort writer (rtplan.workflows.dvh_cohort.dvh_cohort) on the same folder
    # writes the same curve rows; the dose column steps by --curve-step from 0 Gy.
    from rtplan.workflows.dvh_cohort import dvh_cohort

    one = tmp_path / "one.csv"
    assert main(["dvh", str(phantom.folder), "--curves", str(one), "--curve-step", "0.5"]) == 0
    cohort = tmp_path / "cohort.csv"
    dvh_cohort([phantom.folder], curves_path=cohort, curve_step_gy=0.5, jobs=1)
    assert one.read_bytes() == cohort.read_bytes()
    import csv

    doses = sorted({float(r["dose_gy"]) for r in csv.DictReader(one.open(encoding="utf-8"))})
    assert doses[:3] == [0.0, 0.5, 1.0]


def test_threads_do_not_change_the_report():
    """The structures of a plan are computed on several threads: the report (every number,
    flag and message of every structure) is the one computed on a single thread."""
    from rtplan.workflows.dvh import dvh_folder

    plan = Path(__file__).resolve().parents[1] / "sample_dicom" / "rps_01"
    one = dvh_folder(plan, threads=1)
    many = dvh_folder(plan, threads=3)
    assert len(one.dvhs) > 3
    assert json.dumps(many.report, sort_keys=True) == json.dumps(one.report, sort_keys=True)
    for name, dvh in one.dvhs.items():
        assert np.array_equal(many.dvhs[name].sample_dose_gy, dvh.sample_dose_gy)
