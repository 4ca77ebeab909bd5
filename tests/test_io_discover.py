"""Discovery: mixed folders grouped by patient and frame of reference, references resolved,
frames never combined, inputs never modified.  Truths: the synthetic phantom's hand-computed
volumes and doses (rtplan.testing.synthetic.write_phantom_patient)."""

from __future__ import annotations

import hashlib

import numpy as np
import pydicom
import pytest

from rtplan.errors import DicomReadError, GeometryError, InputError
from rtplan.io import load_folder, load_plan_folder, scan
from rtplan.testing import synthetic as syn


def _digest(folder):
    return {
        p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_one_patient_everything_resolved(tmp_path):
    truth = syn.write_phantom_patient(tmp_path / "export", patient_position="FFP")
    (tmp_path / "export" / "README.txt").write_text("exported by hand")
    (tmp_path / "export" / ".DS_Store").write_bytes(b"\0" * 10)
    before = _digest(tmp_path / "export")

    catalog = scan(tmp_path / "export")
    assert any("README.txt" in n for n in catalog.notes)
    assert any("hidden" in n for n in catalog.notes)
    patient = load_plan_folder(tmp_path / "export")
    assert patient.patient_id == truth.patient_id
    assert patient.frame_of_reference_uid == truth.frame_of_reference_uid
    assert patient.study_instance_uids == [truth.study_uid]

    ss = patient.structure_set()
    assert ss.sop_instance_uid == truth.structure_set_uid
    assert ss.referenced_series_uid == truth.ct_series_uid
    for name, cc in truth.volumes_cc.items():
        assert ss[name].volume_cc == pytest.approx(cc, rel=1e-12)
        assert ss[name].slice_spacing_mm == 2.5  # from the CT
    plan = patient.plan()
    assert (plan.fractions, plan.prescription_gy) == (truth.fractions, truth.prescription_gy)
    assert plan.referenced_structure_set_uid == ss.sop_instance_uid
    dose = patient.dose()
    assert dose.referenced_plan_uid == plan.sop_instance_uid
    assert dose.max_gy == pytest.approx(truth.max_dose_gy, rel=1e-4)
    image = patient.image()
    assert image.grid.same_as(dose.grid) and image.values_hu.shape == (10, 32, 32)
    assert _digest(tmp_path / "export") == before  # nothing written or changed


@pytest.mark.parametrize("summation", ["FRACTION", "BEAM"])
def test_fraction_and_beam_doses_assembled(tmp_path, summation):
    truth = syn.write_phantom_patient(tmp_path, summation_type=summation)
    dose = load_plan_folder(tmp_path).dose()
    assert dose.max_gy == pytest.approx(truth.max_dose_gy, rel=1e-4)
    assert dose.summation_type == summation
    if summation == "BEAM":
        assert sorted(dose.referenced_beam_numbers) == [1, 2]
    else:
        assert dose.fraction_scaling == truth.fractions


def test_two_patients_and_two_frames_are_kept_apart(tmp_path):
    syn.write_phantom_patient(tmp_path / "a", patient_id="A")
    syn.write_phantom_patient(tmp_path / "b" / "deep" / "er", patient_id="B")
    syn.write_phantom_patient(tmp_path / "a2", patient_id="A")  # same patient, new frame
    groups = load_folder(tmp_path)
    assert [g.patient_id for g in groups] == ["A", "A", "B"]
    assert len({g.frame_of_reference_uid for g in groups}) == 3
    for g in groups:
        assert len(g.structure_sets) == len(g.plans) == len(g.doses) == len(g.ct_series) == 1
        assert g.doses[0].frame_of_reference_uid == g.frame_of_reference_uid
        assert g.structure_sets[0].frame_of_reference_uid == g.frame_of_reference_uid
    with pytest.raises(InputError, match="3 patients / frames of reference"):
        load_plan_folder(tmp_path)
    assert load_plan_folder(tmp_path, patient_id="B").patient_id == "B"


def test_dose_referencing_a_plan_in_another_frame_is_an_error(tmp_path):
    a = syn.write_phantom_patient(tmp_path / "a", patient_id="A")
    b = syn.write_phantom_patient(tmp_path / "b", patient_id="A")
    ds = pydicom.dcmread(b.dose_paths[0])
    ds.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID = a.plan_uid
    ds.save_as(b.dose_paths[0])
    with pytest.raises(GeometryError, match="mismatched frames of reference") as err:
        load_folder(tmp_path)
    assert str(b.dose_paths[0]) in str(err.value)


def test_structure_set_on_a_series_of_another_frame_is_an_error(tmp_path):
    a = syn.write_phantom_patient(tmp_path / "a", patient_id="A")
    b = syn.write_phantom_patient(tmp_path / "b", patient_id="A")
    ds = pydicom.dcmread(b.rtstruct_path)
    rfor = ds.ReferencedFrameOfReferenceSequence[0]
    rfor.RTReferencedStudySequence[0].RTReferencedSeriesSequence[
        0
    ].SeriesInstanceUID = a.ct_series_uid
    ds.save_as(b.rtstruct_path)
    with pytest.raises(GeometryError, match="mismatched frames of reference"):
        load_folder(tmp_path)


def test_fraction_dose_without_its_plan(tmp_path):
    truth = syn.write_phantom_patient(tmp_path, summation_type="FRACTION")
    truth.plan_path.unlink()
    with pytest.raises(InputError, match="needs its RTPLAN") as err:
        load_plan_folder(tmp_path).dose()
    assert str(truth.dose_paths[0]) in str(err.value)


def test_truncated_dicom_in_folder_is_an_error_naming_it(tmp_path):
    truth = syn.write_phantom_patient(tmp_path)
    victim = truth.ct_paths[3]
    victim.write_bytes(victim.read_bytes()[:-100])
    with pytest.raises(DicomReadError, match="truncated") as err:
        scan(tmp_path)
    assert str(victim) in str(err.value)


def test_folder_without_dicom(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(DicomReadError, match="no CT, RTSTRUCT, RTPLAN or RTDOSE"):
        scan(tmp_path)
    with pytest.raises(DicomReadError, match="not a DICOM file"):
        scan(tmp_path / "notes.txt")


def test_image_choice_with_two_series(tmp_path):
    truth = syn.write_phantom_patient(tmp_path)
    # a second CT series in the same frame (e.g. contrast), 3 slices
    grid = syn.cardinal_grid((3, 4, 4), (0, 0, 0), (2.5, 1, 1))
    extra = syn.ct_series_datasets(
        np.zeros(grid.shape),
        grid,
        patient_id=truth.patient_id,
        patient_name="Phantom^One",
        study_uid=truth.study_uid,
        frame_of_reference_uid=truth.frame_of_reference_uid,
    )
    syn.write_datasets(extra, tmp_path / "CT2")
    patient = load_plan_folder(tmp_path)
    assert len(patient.ct_series) == 2
    # the structure set references the phantom series, so that is the image
    assert patient.image().series_instance_uid == truth.ct_series_uid
    assert patient.image(extra[0].SeriesInstanceUID).grid.shape == (3, 4, 4)
