"""Strict verdicts and exit codes of ``rtplan check`` on copies of ``sample_dicom/rps_01``.

Truths (issue 12, "Done when"):

* a 5 x 5 Gy plan (RTPLAN 25 Gy in 5 fractions, the dose scaled by 25 / 50.4) is not
  ``rps-preop``'s 50.4 Gy / 28 fx, and ``rps-preop`` does not allow EQD2 conversion: exit 1
  with a MISMATCH line, although every physical-dose constraint passes;
* ``rps_01`` has no femur, so ``extremity-preop``'s mandatory femur constraints cannot be
  judged: exit 1 with NOT EVALUATED lines;
* ``--relaxed`` turns both into notes: exit 0;
* with ``Kidneys`` removed and ``Kidney_L`` / ``Kidney_R`` kept, the kidney constraints are
  judged on the union of the two: its volume is the sum of theirs and its mean dose their
  volume-weighted mean (the kidneys do not overlap);
* an exception that is not an ``RtplanError`` is a bug: exit 3, one line on stderr naming the
  exception and a traceback file that holds the traceback (``--debug`` prints it instead).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest

from rtplan.cli import main

SAMPLE = Path(__file__).resolve().parents[1] / "sample_dicom" / "rps_01"


def run(capsys, *argv):
    code = main([*map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def five_by_five(tmp_path_factory) -> Path:
    """A copy of rps_01 re-prescribed to 25 Gy in 5 fractions, its dose scaled to match."""
    folder = tmp_path_factory.mktemp("rps_01_5x5") / "rps_01"
    shutil.copytree(SAMPLE, folder)
    plan = pydicom.dcmread(folder / "RP.plan.dcm")
    plan.FractionGroupSequence[0].NumberOfFractionsPlanned = 5
    for ref in plan.DoseReferenceSequence:
        ref.TargetPrescriptionDose = "25.0"
    plan.save_as(folder / "RP.plan.dcm")
    dose = pydicom.dcmread(folder / "RD.dose.dcm")
    dose.DoseGridScaling = f"{float(dose.DoseGridScaling) * 25.0 / 50.4:.10g}"
    dose.save_as(folder / "RD.dose.dcm")
    return folder


def test_five_by_five_plan_vs_rps_preop_exits_1_with_a_mismatch_line(five_by_five, capsys):
    code, out, err = run(capsys, "check", five_by_five, "--protocol", "rps-preop")
    assert code == 1, out + err
    (line,) = [ln for ln in out.splitlines() if "Rx / fx" in ln]
    assert "MISMATCH" in line and "25 Gy / 5 fx (5 Gy/fx)" in line
    assert "= 50.4 Gy / 28 fx (1.8 Gy/fx)" in line
    # coverage against the protocol's 50.4 Gy fails (the dose was halved), against the
    # plan's own 25 Gy it passes: both are shown
    d95 = [ln for ln in out.splitlines() if ln.split()[:2] == ["PTV", "D95%Rx"]]
    assert len(d95) == 2
    assert "PASS" in d95[0] and "plan Rx 25 Gy" in d95[0]
    assert "FAIL" in d95[1] and "protocol Rx 50.4 Gy" in d95[1]
    assert "result: FAIL" in out


def test_five_by_five_relaxed_exits_0_with_a_note(five_by_five, capsys):
    code, out, err = run(capsys, "check", five_by_five, "--protocol", "rps-preop", "--relaxed")
    assert code == 0, out + err
    assert "note: relaxed: prescription of PTV mismatch" in out
    assert "MISMATCH (note, relaxed)" in out and "result: PASS" in out
    assert "FAIL (note, relaxed)" in out  # the coverage against the protocol's 50.4 Gy


def test_rps_01_vs_extremity_preop_exits_1_not_evaluated(capsys):
    code, out, err = run(capsys, "check", SAMPLE, "--protocol", "extremity-preop")
    assert code == 1, out + err
    femur = [ln for ln in out.splitlines() if ln.startswith("Femur")]
    assert len(femur) == 3 and all("NOT EVALUATED" in ln for ln in femur)
    code, out, err = run(capsys, "check", SAMPLE, "--protocol", "extremity-preop", "--relaxed")
    assert code == 0, out + err
    assert out.count("note: relaxed: mandatory femur_") == 3


@pytest.fixture(scope="module")
def without_kidneys(tmp_path_factory) -> Path:
    """A copy of rps_01 whose structure sets lack the combined ``Kidneys``."""
    folder = tmp_path_factory.mktemp("rps_01_no_kidneys") / "rps_01"
    shutil.copytree(SAMPLE, folder)
    for path in folder.glob("RS.*.dcm"):
        ds = pydicom.dcmread(path)
        numbers = [r.ROINumber for r in ds.StructureSetROISequence if r.ROIName == "Kidneys"]
        if not numbers:
            continue
        ds.StructureSetROISequence = [
            r for r in ds.StructureSetROISequence if r.ROINumber not in numbers
        ]
        ds.ROIContourSequence = [
            r for r in ds.ROIContourSequence if r.ReferencedROINumber not in numbers
        ]
        ds.RTROIObservationsSequence = [
            r for r in ds.RTROIObservationsSequence if r.ReferencedROINumber not in numbers
        ]
        ds.save_as(path)
    return folder


def test_kidney_constraints_are_judged_on_the_union_of_the_parts(without_kidneys, capsys):
    from rtplan.dvh.compute import compute
    from rtplan.io import load_plan_folder

    code, out, err = run(capsys, "check", without_kidneys, "--protocol", "rps-preop", "--json")
    assert code == 0, out + err
    doc = json.loads(out)
    (patient,) = doc["patients"]
    assert patient["structures"]["kidneys"]["matched"] == ["Kidney_L+Kidney_R"]
    assert patient["structures"]["kidneys"]["how"] == "union of parts"
    assert any("union of Kidney_L and Kidney_R is used" in n for n in patient["notes"])
    kidneys = {c["constraint"]: c for c in patient["constraints"] if c["structure"] == "Kidneys"}
    assert len(kidneys) == 5 and all(c["verdict"] == "pass" for c in kidneys.values())
    # independent truth: the parts' own DVHs
    data = load_plan_folder(without_kidneys)
    structures = data.structure_set()
    dose = data.dose()
    parts = [compute(structures[n], dose) for n in ("Kidney_L", "Kidney_R")]
    dosed = sum(p.dosed_volume_cc for p in parts)
    mean = sum(p.mean_gy * p.dosed_volume_cc for p in parts) / dosed
    assert kidneys["kidneys_dmean"]["value"] == pytest.approx(mean, rel=1e-9)
    volume = structures["Kidney_L"].volume_cc + structures["Kidney_R"].volume_cc
    assert f"({volume:.2f} cc)" in " ".join(patient["notes"])


def _boom(*args, **kwargs):
    raise ZeroDivisionError("forced for the test")


def test_internal_error_exits_3_with_one_line_and_a_traceback_file(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr("rtplan.check.evaluate_constraint", _boom)
    code, out, err = run(capsys, "check", SAMPLE, "--protocol", "rps-preop")
    assert code == 3 and out == ""
    assert err.count("\n") == 1 and "internal error ZeroDivisionError: forced" in err
    path = Path(err.split("traceback in ", 1)[1].split(")", 1)[0])
    assert path.parent == tmp_path / "cache" / "rtplan" / "crash"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    text = path.read_text()
    assert "Traceback (most recent call last)" in text and "_boom" in text
    # --debug (before or after the command) prints the traceback instead of writing it
    for argv in (["--debug", "check"], ["check", "--debug"]):
        code, out, err = run(capsys, *argv, SAMPLE, "--protocol", "rps-preop")
        assert code == 3 and "Traceback (most recent call last)" in err and "_boom" in err


def test_internal_error_exit_code_of_the_process(tmp_path):
    # The real process exit status (what a CI runner sees), not main()'s return value.
    script = (
        "import sys, rtplan.check as c\n"
        "def boom(*a, **k): raise KeyError('forced')\n"
        "c.evaluate_constraint = boom\n"
        "from rtplan.cli import main\n"
        f"sys.exit(main(['check', {str(SAMPLE)!r}, '--protocol', 'rps-preop']))\n"
    )
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 3 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "internal error KeyError" in proc.stderr


# ------------------------------------------------------------------ provenance (issue 12)
def test_reports_carry_provenance_and_the_protocol_files_sha256(tmp_path, capsys):
    # The case: a copy of rps-preop.toml with the bowel-bag limit 195 -> 50 cc must
    # be named by its own path and SHA-256 (truth: hashlib over the file's bytes, what
    # sha256sum prints), in JSON, HTML and JUnit, with patient, plan, structure set and dose.
    import hashlib
    import xml.etree.ElementTree as ET

    shipped = Path(__file__).resolve().parents[1] / "rtplan/protocols/rps-preop.toml"
    copy = tmp_path / "rps-preop.toml"
    copy.write_text(shipped.read_text().replace("limit = 195.0", "limit = 50.0"))
    sha = hashlib.sha256(copy.read_bytes()).hexdigest()
    assert sha != hashlib.sha256(shipped.read_bytes()).hexdigest()
    html, junit = tmp_path / "r.html", tmp_path / "r.xml"
    code, out, err = run(
        capsys, "check", SAMPLE, "--protocol", copy, "--json", "--html", html, "--junit", junit
    )
    assert code == 1, err  # V45Gy 102.67 cc > 50 cc
    doc = json.loads(out)
    assert doc["provenance"]["protocol_sha256"] == sha
    assert doc["provenance"]["protocol_file"] == str(copy.resolve())
    assert doc["provenance"]["rtplan_version"] and doc["provenance"]["checked_at"]
    prov = doc["patients"][0]["provenance"]
    expected = {
        "patient_name": "Sample^Retroperitoneal",
        "patient_id": "RTPLAN-RPS-01",
        "plan_label": "RPS_PREOP",
        "plan_date": "2024-03-04 09:00:00",
        "structure_set_label": "observer1",
        "plan_fractions": 28,
        "protocol_fractions": 28,
    }
    assert {k: prov[k] for k in expected} == expected
    assert prov["dose_files"] == [str(SAMPLE / "RD.dose.dcm")]
    page = html.read_text()
    for text in (sha, str(copy.resolve()), "Sample^Retroperitoneal", "RPS_PREOP", "observer1"):
        assert text in page, text
    assert "Physics check sign-off" in page and "checked by" in page
    assert "(50.17 Gy)" in page  # Gy beside the %Rx value (D95 = 99.55 %Rx of 50.4 Gy)
    root = ET.parse(junit).getroot()
    suite = root.find("testsuite")
    assert suite.get("timestamp", "").startswith(doc["provenance"]["checked_at"][:10])
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["protocol_sha256"] == sha and props["patient_id"] == "RTPLAN-RPS-01"
    assert props["plan_label"] == "RPS_PREOP" and props["structure_set_label"] == "observer1"
    assert all(float(c.get("time")) >= 0 for c in suite.iter("testcase"))
    assert sum(float(c.get("time")) for c in suite.iter("testcase")) > 0
    assert f"sha256 {sha}" in run(capsys, "check", SAMPLE, "--protocol", copy)[1]
