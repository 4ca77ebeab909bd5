"""Choosing the plan, structure set and dose of a folder (rtplan.io.selection), patient
identity, symlinked exports.  Truths: the synthetic phantom's known objects and doses
(rtplan.testing.synthetic.write_phantom_patient: PLAN dose max = 1.05 x prescription), and layouts
built here whose right answer is fixed by construction (which file references which)."""

from __future__ import annotations

import json
import os
import shutil

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import generate_uid

from rtplan.errors import AmbiguousInputError, InputError, PatientIdentityError
from rtplan.io import load_folder, load_plan_folder, scan
from rtplan.testing import synthetic as syn


def _copy(src, dst, **changes):
    """A copy of a DICOM file with a new SOPInstanceUID and ``changes`` applied."""
    ds = pydicom.dcmread(src)
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    dst.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dst)
    return ds


def _second_plan(truth, folder, label="PLAN2", dose_factor=1.0):
    """A second plan (new UID and label) with its own PLAN dose (``dose_factor`` x)."""
    plan = _copy(truth.plan_path, folder / "plan2" / "RP2.dcm", RTPlanLabel=label)
    ds = pydicom.dcmread(truth.dose_paths[0])
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID = plan.SOPInstanceUID
    ds.DoseGridScaling = float(ds.DoseGridScaling) * dose_factor
    ds.save_as(folder / "plan2" / "RD2.dcm")
    return plan


def _beam_doses(truth, folder, shares=(0.5, 0.5)):
    """BEAM doses of the phantom plan: the PLAN dose x each share (beams 1, 2, ...)."""
    paths = []
    for n, share in enumerate(shares, start=1):
        ds = pydicom.dcmread(truth.dose_paths[0])
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.DoseSummationType = "BEAM"
        ds.DoseGridScaling = float(ds.DoseGridScaling) * share
        beam = Dataset()
        beam.ReferencedBeamNumber = n
        group = Dataset()
        group.ReferencedFractionGroupNumber = 1
        group.ReferencedBeamSequence = DicomSequence([beam])
        ds.ReferencedRTPlanSequence[0].ReferencedFractionGroupSequence = DicomSequence([group])
        paths.append(folder / f"beam{n}.dcm")
        ds.save_as(paths[-1])
    return paths


def test_two_plans_refused_listing_candidates_then_chosen_by_label_uid_or_file(tmp_path):
    truth = syn.write_phantom_patient(tmp_path)
    second = _second_plan(truth, tmp_path, dose_factor=0.5)
    with pytest.raises(AmbiguousInputError) as err:
        load_plan_folder(tmp_path)
    msg = str(err.value)
    for text in ("PHANTOM", "PLAN2", truth.plan_uid, second.SOPInstanceUID, "--plan"):
        assert text in msg
    assert "\n" not in msg
    top = truth.max_dose_gy
    for spec in ("PLAN2", second.SOPInstanceUID, str(tmp_path / "plan2" / "RP2.dcm"), "RP2.dcm"):
        patient = load_plan_folder(tmp_path, plan=spec)
        assert patient.plan().sop_instance_uid == second.SOPInstanceUID
        assert patient.dose().max_gy == pytest.approx(0.5 * top, rel=1e-4)
        # the plan references the phantom structure set
        assert patient.structure_set().sop_instance_uid == truth.structure_set_uid
    assert load_plan_folder(tmp_path, plan="PHANTOM").dose().max_gy == pytest.approx(top, rel=1e-4)
    # a dose names its plan
    patient = load_plan_folder(tmp_path, dose=[tmp_path / "plan2" / "RD2.dcm"])
    assert patient.plan().label == "PLAN2"
    with pytest.raises(InputError, match="no RTPLAN 'nope'"):
        load_plan_folder(tmp_path, plan="nope")


def test_plan_without_dose_does_not_make_the_folder_ambiguous(tmp_path):
    truth = syn.write_phantom_patient(tmp_path)
    _copy(truth.plan_path, tmp_path / "draft.dcm", RTPlanLabel="DRAFT")  # no dose
    patient = load_plan_folder(tmp_path)
    assert patient.plan().sop_instance_uid == truth.plan_uid
    assert any("only RTPLAN with a dose" in n for n in patient.notes)


def test_plan_dose_preferred_over_its_beam_doses_which_sum_to_it(tmp_path):
    truth = syn.write_phantom_patient(tmp_path)
    _beam_doses(truth, tmp_path / "dose", (0.5, 0.5))
    patient = load_plan_folder(tmp_path)
    dose = patient.dose()
    assert dose.summation_type == "PLAN" and dose.source == str(truth.dose_paths[0])
    assert dose.max_gy == pytest.approx(truth.max_dose_gy, rel=1e-4)
    assert any("sum to the PLAN dose within" in n for n in patient.notes)
    assert not any("differ from the PLAN dose" in n for n in patient.notes)


def test_beam_doses_that_do_not_sum_to_the_plan_dose_are_noted(tmp_path):
    truth = syn.write_phantom_patient(tmp_path)
    _beam_doses(truth, tmp_path / "dose", (0.5, 0.52))  # sum = 1.02 x PLAN: 2 % of its max
    patient = load_plan_folder(tmp_path)
    assert patient.dose().summation_type == "PLAN"
    (note,) = [n for n in patient.notes if "differ from the PLAN dose" in n]
    assert "2.00 %" in note


def test_beam_doses_alone_are_summed_and_explicit_beams_too(tmp_path):
    truth = syn.write_phantom_patient(tmp_path)
    beams = _beam_doses(truth, tmp_path / "dose", (0.25, 0.75))
    patient = load_plan_folder(tmp_path, dose=beams)
    dose = patient.dose()
    assert dose.summation_type == "BEAM"
    assert dose.max_gy == pytest.approx(truth.max_dose_gy, rel=1e-4)
    truth.dose_paths[0].unlink()
    assert load_plan_folder(tmp_path).dose().max_gy == pytest.approx(truth.max_dose_gy, rel=1e-4)


def test_the_same_dose_twice_is_an_error(tmp_path):
    truth = syn.write_phantom_patient(tmp_path)
    d = truth.dose_paths[0]
    with pytest.raises(InputError, match="same RTDOSE file is given twice"):
        load_plan_folder(tmp_path, dose=[d, d])
    copy = tmp_path / "copy.dcm"
    shutil.copy(d, copy)
    with pytest.raises(InputError, match="same RTDOSE .SOPInstanceUID"):
        load_plan_folder(tmp_path, dose=[d, copy])


def test_the_same_object_in_two_files_is_read_once(tmp_path):
    truth = syn.write_phantom_patient(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")  # e.g. two export folders, one RTSTRUCT
    patient = load_plan_folder(tmp_path)
    assert patient.dose().max_gy == pytest.approx(truth.max_dose_gy, rel=1e-4)
    assert len(patient.structure_sets) == 1
    assert any("is in two files" in n for n in patient.notes)


def test_mismatched_patient_identity_refused_unless_combined(tmp_path):
    truth = syn.write_phantom_patient(tmp_path)
    ds = pydicom.dcmread(truth.plan_path)
    ds.PatientID, ds.PatientName = "OTHER", "Other^Person"
    ds.save_as(truth.plan_path)
    with pytest.raises(PatientIdentityError) as err:
        load_plan_folder(tmp_path)
    msg = str(err.value)
    for text in (
        "OTHER",
        "Other^Person",
        truth.patient_id,
        str(truth.plan_path),
        "--mixed-patients",
    ):
        assert text in msg
    patient = load_plan_folder(tmp_path, mixed_patients=True)
    assert patient.plan().sop_instance_uid == truth.plan_uid
    assert any("different patients combined" in n for n in patient.notes)
    # one patient's objects only: the plan is not used
    alone = load_plan_folder(tmp_path, patient_id=truth.patient_id)
    assert alone.dose().max_gy == pytest.approx(truth.max_dose_gy, rel=1e-4)
    with pytest.raises(InputError, match="no RTPLAN"):
        alone.plan()


def test_missing_patient_name_is_not_a_different_patient(tmp_path):
    truth = syn.write_phantom_patient(tmp_path)
    ds = pydicom.dcmread(truth.dose_paths[0])
    ds.PatientName = ""
    ds.save_as(truth.dose_paths[0])
    patient = load_plan_folder(tmp_path)
    assert patient.dose().max_gy == pytest.approx(truth.max_dose_gy, rel=1e-4)
    assert not any("different patients" in n for n in patient.notes)


def test_two_patients_need_patient_id(tmp_path):
    syn.write_phantom_patient(tmp_path / "a", patient_id="A")
    syn.write_phantom_patient(tmp_path / "b", patient_id="B")
    with pytest.raises(AmbiguousInputError, match="--patient-id"):
        load_plan_folder(tmp_path)
    assert load_plan_folder(tmp_path, patient_id="B").patient_id == "B"
    with pytest.raises(InputError, match="no patient 'C'"):
        load_plan_folder(tmp_path, patient_id="C")


def test_folder_of_symlinks_and_symlinked_folders_with_a_loop(tmp_path):
    truth = syn.write_phantom_patient(tmp_path / "export")
    links = tmp_path / "links"
    links.mkdir()
    for p in (tmp_path / "export").rglob("*.dcm"):
        (links / f"{p.parent.name}_{p.name}").symlink_to(p)
    for p in (tmp_path / "export" / "CT").iterdir():
        (links / f"ct_{p.name}").symlink_to(p)
    patient = load_plan_folder(links)
    assert patient.dose().max_gy == pytest.approx(truth.max_dose_gy, rel=1e-4)
    assert patient.image().grid.shape == (10, 32, 32)

    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "export").symlink_to(tmp_path / "export", target_is_directory=True)
    (tmp_path / "export" / "loop").symlink_to(tmp_path / "export", target_is_directory=True)
    (tree / "dangling.dcm").symlink_to(tmp_path / "nowhere.dcm")
    catalog = scan(tree)
    assert len(catalog.files) == 10 + 3  # each real file once, the loop entered once
    assert any("already read" in n for n in catalog.notes)
    assert any("broken link" in n for n in catalog.notes)
    assert load_plan_folder(tree).structure_set()["PTV"].volume_cc == pytest.approx(
        truth.volumes_cc["PTV"], rel=1e-12
    )
    os.unlink(tmp_path / "export" / "loop")


def test_plan_referencing_a_structure_set_chooses_it_among_two(tmp_path):
    truth = syn.write_phantom_patient(tmp_path)
    other = _copy(truth.rtstruct_path, tmp_path / "RS_other.dcm", StructureSetLabel="OTHER")
    assert load_plan_folder(tmp_path).structure_set().sop_instance_uid == truth.structure_set_uid
    chosen = load_plan_folder(tmp_path, structure_set="OTHER").structure_set()
    assert chosen.sop_instance_uid == other.SOPInstanceUID
    truth.plan_path.unlink()
    with pytest.raises(AmbiguousInputError, match="--structure-set"):
        load_plan_folder(tmp_path)


def test_groups_join_objects_tied_by_references(tmp_path):
    truth = syn.write_phantom_patient(tmp_path)
    ds = pydicom.dcmread(truth.plan_path)
    ds.PatientID = "OTHER"
    ds.save_as(truth.plan_path)
    (group,) = load_folder(tmp_path)
    assert {f.patient_id for f in group.files} == {"OTHER", truth.patient_id}
    with pytest.raises(PatientIdentityError):
        group.dose()


def test_info_lists_the_objects_chosen(tmp_path, capsys):
    import json

    from rtplan.cli import main

    truth = syn.write_phantom_patient(tmp_path)
    second = _second_plan(truth, tmp_path)
    assert main(["info", str(tmp_path), "--json"]) == 0  # everything, no choice needed
    plans = json.loads(capsys.readouterr().out)["patients"][0]["frames_of_reference"][0]["plans"]
    assert len(plans) == 2
    assert main(["info", str(tmp_path), "--json", "--plan", second.SOPInstanceUID]) == 0
    (frame,) = json.loads(capsys.readouterr().out)["patients"][0]["frames_of_reference"]
    assert [p["label"] for p in frame["plans"]] == ["PLAN2"] and len(frame["doses"]) == 1
    assert main(["info", str(tmp_path), "--patient-id", "nobody"]) == 2
    assert "no patient 'nobody'" in capsys.readouterr().err


def test_agree_takes_patient_id_and_structure_sets(tmp_path, capsys):
    # one folder with two patients' observers; the boxes' faces lie on CT voxel boundaries, so
    # Dice is a hand count: obs2 is obs1 shifted by 2 of its 20 voxels in x (0.9), obs3 by 1
    # of its 5 slices (0.8)
    import csv

    from rtplan.cli import main
    from rtplan.grid import Grid
    from rtplan.testing.agreement_phantoms import Ellipsoid, write_observer_patient

    ct = Grid(shape=(12, 40, 40), origin_mm=(-20.0, -20.0, 0.0), spacing_mm=(2.5, 1.0, 1.0))

    def box(dx=0.0, dz=0.0):
        return [Ellipsoid("GTV", (0.5 + dx, 0.5, 12.5 + dz), (10.0, 5.0, 6.0), "GTV", box=True)]

    observers = {"obs1": box(), "obs2": box(dx=2.0), "obs3": box(dz=2.5)}
    write_observer_patient(tmp_path / "p", "P01", observers, ct_grid=ct)
    write_observer_patient(tmp_path / "p" / "other", "P02", observers, ct_grid=ct)
    folder, table = str(tmp_path / "p"), tmp_path / "agree.csv"

    assert main(["agree", folder, "--jobs", "1"]) == 2  # two patients: nothing compared
    assert "several patients" in capsys.readouterr().err
    argv = ["agree", folder, "--jobs", "1", "--patient-id", "P02", "--csv", str(table)]
    assert main([*argv, "--structure-set", "obs1", "--structure-set", "obs3"]) == 0
    capsys.readouterr()
    with open(table, newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert (row["patient"], row["observer_a"], row["observer_b"]) == ("P02", "obs1", "obs3")
    assert float(row["dice"]) == pytest.approx(0.8)
    assert main(argv) == 0  # every observer of P02: three pairs
    capsys.readouterr()
    with open(table, newline="") as f:
        assert sorted(float(r["dice"]) for r in csv.DictReader(f)) == pytest.approx(
            [0.72, 0.8, 0.9]
        )
    for extra, message in (
        (["--structure-set", "obs1"], "only 1 observer"),
        (["--structure-set", "obs1", "--structure-set", "nobody"], "no RTSTRUCT 'nobody'"),
        (["--structure-set", "obs1", "--structure-set", "obs1"], "named twice"),
    ):
        assert main([*argv, *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert main(["agree", folder, "--jobs", "1", "--patient-id", "P09"]) == 2
    assert "no patient 'P09'" in capsys.readouterr().err


PHANTOM_PROTOCOL = """schema_version = 1
[protocol]
name = "phantom-test"
title = "synthetic phantom, 50 Gy in 25 fractions (test protocol)"
status = "template"
template_note = "written for rtplan's tests; no clinical source"
[prescription]
fractions = 25
source = "test"
verification = "not verified"
[[prescription.targets]]
structure = "ptv"
dose_gy = 50.0
source = "test"
verification = "not verified"
[structures.ptv]
names = ["PTV"]
kind = "target"
required = true
[[constraints]]
id = "ptv_d95"
structure = "ptv"
metric = "D95%Rx"
comparison = ">="
limit = 80.0
unit = "%Rx"
priority = "mandatory"
source = "test"
verification = "not verified"
[sources.test]
author = "rtplan"
year = 2026
journal = "test"
citation = "test protocol"
verification = "not verified"
"""


def test_agree_named_patient_in_a_folder_of_patient_folders(tmp_path, capsys):
    # a folder of two patient folders: --patient-id compares that patient's observers only,
    # the other folder is not a failure (it was "skipped", exit 1); truth: a hand count,
    # obs2 is obs1 shifted by 2 of its 20 voxels in x (Dice 0.9)
    import csv

    from rtplan.cli import main
    from rtplan.grid import Grid
    from rtplan.testing.agreement_phantoms import Ellipsoid, write_observer_patient

    ct = Grid(shape=(12, 40, 40), origin_mm=(-20.0, -20.0, 0.0), spacing_mm=(2.5, 1.0, 1.0))

    def box(dx=0.0):
        return [Ellipsoid("GTV", (0.5 + dx, 0.5, 12.5), (10.0, 5.0, 6.0), "GTV", box=True)]

    observers = {"obs1": box(), "obs2": box(dx=2.0)}
    write_observer_patient(tmp_path / "cohort" / "a", "P01", {"obs1": box(), "obs2": box(4.0)},
                           ct_grid=ct)  # fmt: skip
    write_observer_patient(tmp_path / "cohort" / "b", "P02", observers, ct_grid=ct)
    table = tmp_path / "agree.csv"
    argv = ["agree", str(tmp_path / "cohort"), "--jobs", "1", "--csv", str(table)]
    assert main([*argv, "--patient-id", "P02"]) == 0, capsys.readouterr().err
    capsys.readouterr()
    with open(table, newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["patient"] == "P02" and float(row["dice"]) == pytest.approx(0.9)
    assert main([*argv, "--patient-id", "P09"]) == 2
    assert "no patient 'P09'" in capsys.readouterr().err


def test_check_and_dvh_on_a_folder_with_two_plans(tmp_path, capsys):
    # the layout issue 11 could not check at all: refused with the candidates and the option
    # that exists, then each plan checked against its own dose (PLAN2's is 0.9 x the first)
    from rtplan.cli import main

    truth = syn.write_phantom_patient(tmp_path / "export")
    second = _second_plan(truth, tmp_path / "export", dose_factor=0.9)
    (tmp_path / "p.toml").write_text(PHANTOM_PROTOCOL)
    base = ["check", str(tmp_path / "export"), "--protocol", str(tmp_path / "p.toml"), "--json"]
    for argv in (base, ["dvh", str(tmp_path / "export")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "choose one with --plan" in err
        for text in ("PHANTOM", "PLAN2", truth.plan_uid, second.SOPInstanceUID):
            assert text in err
    d95 = {}
    for plan in ("PHANTOM", "PLAN2"):
        assert main([*base, "--plan", plan]) in (0, 1)
        (patient,) = json.loads(capsys.readouterr().out)["patients"]
        assert patient["plan"]["label"] == plan
        (row,) = [c for c in patient["constraints"] if c["constraint"] == "ptv_d95"]
        d95[plan] = row["value"]
    assert d95["PLAN2"] == pytest.approx(0.9 * d95["PHANTOM"], rel=1e-6)


def test_a_named_patient_in_a_folder_of_patients_is_that_patient(tmp_path, capsys):
    # naming a patient (or a plan) in a folder of patients makes the job that patient's,
    # not a cohort in which every other patient is "skipped" with exit 1; --mixed-patients
    # alone names nothing and keeps the cohort
    from rtplan.cli import main

    syn.write_phantom_patient(tmp_path / "a", patient_id="A")
    syn.write_phantom_patient(tmp_path / "b", patient_id="B", prescription_gy=40.0)
    (tmp_path / "p.toml").write_text(PHANTOM_PROTOCOL)
    assert main(["dvh", str(tmp_path), "--patient-id", "B", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["patient_id"], report["prescription_gy"]) == ("B", 40.0)
    check = ["check", str(tmp_path), "--protocol", str(tmp_path / "p.toml"), "--json"]
    assert main([*check, "--patient-id", "B"]) in (0, 1)
    assert [p["patient"] for p in json.loads(capsys.readouterr().out)["patients"]] == ["B"]
    assert main([*check, "--mixed-patients"]) in (0, 1)
    ids = [p["patient"] for p in json.loads(capsys.readouterr().out)["patients"]]
    assert sorted(ids) == ["A", "B"]
