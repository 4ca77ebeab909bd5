"""``rtplan info``: JSON schema content against the phantom's hand-computed truths, the table,
and every bad-input case (exit 2, one stderr line naming file / structure / problem, nothing
on stdout, input files unchanged)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

from rtplan.cli import main
from rtplan.testing import synthetic as syn


def _digest(folder):
    return {
        p: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _info_json(capsys, *args):
    assert main(["info", *map(str, args), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_lists_every_structure_with_its_volume(tmp_path, capsys):
    truth = syn.write_phantom_patient(tmp_path / "p", summation_type="FRACTION")
    (tmp_path / "p" / "README.txt").write_text("hello")
    inv = _info_json(capsys, tmp_path / "p")
    assert inv["schema"] == "rtplan-info/1"
    (patient,) = inv["patients"]
    assert patient["patient_id"] == truth.patient_id
    assert [s["study_instance_uid"] for s in patient["studies"]] == [truth.study_uid]
    (frame,) = patient["frames_of_reference"]
    assert frame["frame_of_reference_uid"] == truth.frame_of_reference_uid
    (series,) = frame["series"]
    assert series["slices"] == 10 and series["grid"]["spacing_mm"] == [2.5, 1.5, 1.5]
    (ss,) = frame["structure_sets"]
    structures = {s["name"]: s for s in ss["structures"]}
    assert set(structures) == {"BODY", "PTV", "Bowel", "Marker"}
    for s in ss["structures"]:
        assert {"name", "type", "volume_cc"} <= set(s)
    for name, cc in truth.volumes_cc.items():
        assert structures[name]["volume_cc"] == pytest.approx(cc, rel=1e-12)
    assert structures["PTV"]["type"] == "PTV" and structures["PTV"]["contours"] == 4
    assert structures["PTV"]["slice_range_mm"] == [-3.75, 3.75]
    assert structures["Marker"]["volume_cc"] is None and not structures["Marker"]["is_volume"]
    (plan,) = frame["plans"]
    assert (plan["fractions"], plan["prescription_gy"]) == (25, 50.0)
    (dose,) = frame["doses"]
    assert dose["summation_type"] == "FRACTION" and dose["fraction_scaling"] == 25
    assert dose["max_gy"] == pytest.approx(truth.max_dose_gy, rel=1e-4)
    assert dose["units"] == "Gy" and dose["file_units"] == ["GY"]
    assert dose["grid"]["shape"] == [10, 32, 32]
    assert any("README.txt" in n for n in inv["notes"])


def test_table(tmp_path, capsys):
    syn.write_phantom_patient(tmp_path)
    assert main(["info", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "PTV" in out and "2.250" in out and "44.100" in out and "25 fractions" in out
    assert "max 52.12 Gy" in out


def _expect_bad_input(capsys, path, *needles):
    code = main(["info", str(path), "--json"])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_bad_input_truncated_file(tmp_path, capsys):
    truth = syn.write_phantom_patient(tmp_path)
    victim = truth.dose_paths[0]
    victim.write_bytes(victim.read_bytes()[:-500])
    before = _digest(tmp_path)
    _expect_bad_input(capsys, tmp_path, str(victim), "truncated")
    assert _digest(tmp_path) == before


def test_bad_input_not_dicom(tmp_path, capsys):
    path = tmp_path / "plan.dcm"
    path.write_text("this is not DICOM")
    _expect_bad_input(capsys, path, str(path), "not a DICOM file")


def test_bad_input_missing_required_tag(tmp_path, capsys):
    truth = syn.write_phantom_patient(tmp_path)
    ds = pydicom.dcmread(truth.ct_paths[4])
    del ds.ImagePositionPatient
    ds.save_as(truth.ct_paths[4])
    _expect_bad_input(
        capsys, tmp_path, str(truth.ct_paths[4]), "missing required tag ImagePositionPatient"
    )


def test_bad_input_mismatched_frames_of_reference(tmp_path, capsys):
    truth = syn.write_phantom_patient(tmp_path)
    ds = pydicom.dcmread(truth.dose_paths[0])
    ds.FrameOfReferenceUID = pydicom.uid.generate_uid()
    ds.save_as(truth.dose_paths[0])
    _expect_bad_input(capsys, tmp_path, str(truth.dose_paths[0]), "mismatched frames of reference")


def _with_extra_roi(tmp_path, roi):
    truth = syn.write_phantom_patient(tmp_path)
    ct = [pydicom.dcmread(p) for p in truth.ct_paths]
    ds = syn.rtstruct_dataset_from_contours(
        [syn.SyntheticROI("PTV", [np.array([[0, 0, 0], [5, 0, 0], [5, 5, 0.0]])]), roi],
        ct_datasets=ct,
    )
    truth.rtstruct_path.unlink()
    syn.write_datasets([ds], tmp_path, ["RTSTRUCT.dcm"])
    return truth


def test_empty_structure_listed_not_fatal(tmp_path, capsys):
    # planning systems export empty placeholder ROIs: listed with volume 0, flagged
    _with_extra_roi(tmp_path, syn.SyntheticROI("Bowel_Bag", []))
    assert main(["info", str(tmp_path), "--json"]) == 0
    inv = json.loads(capsys.readouterr().out)
    ss = inv["patients"][0]["frames_of_reference"][0]["structure_sets"][0]
    bag = next(s for s in ss["structures"] if s["name"] == "Bowel_Bag")
    assert bag["volume_cc"] == 0.0 and bag["flags"] == ["empty"] and bag["problems"] == []
    assert main(["info", str(tmp_path)]) == 0
    assert "0.000 (empty)" in capsys.readouterr().out


def test_bad_input_self_intersecting_contour(tmp_path, capsys):
    z = 1.25
    bowtie = np.array([[0, 0, z], [10, 10, z], [10, 0, z], [0, 10, z]], dtype=float)
    truth = _with_extra_roi(tmp_path, syn.SyntheticROI("CTV", [bowtie]))
    _expect_bad_input(
        capsys, tmp_path, str(truth.rtstruct_path), "structure 'CTV'", "self-intersecting"
    )


def test_console_script(tmp_path):
    syn.write_phantom_patient(tmp_path / "ok")
    script = Path(sys.executable).parent / "rtplan"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "rtplan.cli"]
    result = subprocess.run([*command, "info", str(tmp_path / "ok"), "--json"],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stderr
    inv = json.loads(result.stdout)
    names = [
        s["name"]
        for s in inv["patients"][0]["frames_of_reference"][0]["structure_sets"][0]["structures"]
    ]
    assert names == ["BODY", "PTV", "Bowel", "Marker"]
    bad = subprocess.run(
        [*command, "info", str(tmp_path / "missing")], capture_output=True, text=True
    )
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and "no such file or folder" in bad.stderr


def test_relative_dose_is_listed_not_converted(tmp_path, capsys):
    truth = syn.write_phantom_patient(tmp_path)
    ds = pydicom.dcmread(truth.dose_paths[0])
    ds.DoseUnits = "RELATIVE"
    ds.save_as(truth.dose_paths[0])
    (dose,) = _info_json(capsys, tmp_path)["patients"][0]["frames_of_reference"][0]["doses"]
    assert dose["units"] == "RELATIVE" and dose["max_gy"] is None
    assert dose["grid"]["shape"] == [10, 32, 32]
    from rtplan.errors import InputError
    from rtplan.io import load_plan_folder

    with pytest.raises(InputError, match="RELATIVE units"):
        load_plan_folder(tmp_path).dose()


def test_reader_warnings_listed_with_their_object_not_repeated(tmp_path, capsys):
    # Truth: an RTSTRUCT with two ROIs of one name; info lists the reader's warning under the
    # structure set (JSON and table) and prints nothing on stderr: one place, once.
    path = syn.write_phantom_patient(tmp_path / "p").rtstruct_path
    ds = pydicom.dcmread(path)
    ds.StructureSetROISequence[1].ROIName = ds.StructureSetROISequence[0].ROIName
    ds.save_as(path)
    problem = f"two ROIs named '{ds.StructureSetROISequence[0].ROIName}'; lookup by name returns the first"
    assert main(["info", str(tmp_path / "p"), "--json"]) == 0
    out = capsys.readouterr()
    (group,) = json.loads(out.out)["patients"][0]["frames_of_reference"]
    assert [ss["warnings"] for ss in group["structure_sets"]] == [[problem]]
    assert out.err == ""
    assert main(["info", str(tmp_path / "p")]) == 0
    out = capsys.readouterr()
    assert f"warning: {problem}" in out.out and out.err == ""
