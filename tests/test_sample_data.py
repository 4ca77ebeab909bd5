"""The committed sample patients match what scripts/make_sample_dicom.py describes.

Truths: the generator's own description (:data:`PATIENTS`: structures, types, observers,
plan numbers); the protocol limits the sample plans are designed to pass (rps-preop,
extremity-preop), checked with an independent dose-volume computation (exact partial-volume
masks on the dose grid, voxel sums), which also checks the brute-force embedded DVHs; and,
for determinism, a byte-for-byte regeneration (slow).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from conftest import dciodvfy

from rtplan.grid import Grid
from rtplan.io.ct import read_ct_series
from rtplan.structure import Contour, Structure

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_dicom"


def _generator():
    spec = importlib.util.spec_from_file_location(
        "make_sample_dicom", ROOT / "scripts" / "make_sample_dicom.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_sample_dicom"] = module  # dataclasses need the module registered
    spec.loader.exec_module(module)
    return module


GEN = _generator()
PATIENTS = GEN.PATIENTS


def _structures(path, slab_mm):
    """ROIs of an RTSTRUCT read with plain pydicom: {name: (Structure, type, number)}."""
    ds = pydicom.dcmread(path)
    types = {
        int(o.ReferencedROINumber): o.RTROIInterpretedType for o in ds.RTROIObservationsSequence
    }
    names = {int(r.ROINumber): str(r.ROIName) for r in ds.StructureSetROISequence}
    out = {}
    for rc in ds.ROIContourSequence:
        number = int(rc.ReferencedROINumber)
        contours = tuple(
            Contour(np.asarray(c.ContourData, dtype=float).reshape(-1, 3))
            for c in rc.ContourSequence
        )
        out[names[number]] = (
            Structure(names[number], contours, slice_spacing_mm=slab_mm),
            types[number],
            number,
        )
    return ds, out


def _dose(path):
    """Dose (Gy) and its grid, read with pydicom (relative GridFrameOffsetVector, HFS)."""
    ds = pydicom.dcmread(path)
    offsets = np.asarray(ds.GridFrameOffsetVector, dtype=float)
    grid = Grid(
        (int(ds.NumberOfFrames), int(ds.Rows), int(ds.Columns)),
        tuple(float(v) for v in ds.ImagePositionPatient),
        (float(offsets[1] - offsets[0]), *(float(v) for v in ds.PixelSpacing)),
    )
    return ds, ds.pixel_array * float(ds.DoseGridScaling), grid


@pytest.fixture(scope="module", params=sorted(PATIENTS))
def patient(request):
    key = request.param
    folder = SAMPLES / key
    image = read_ct_series(folder)
    slab = image.grid.spacing_mm[0]
    rs, structures = _structures(folder / "RS.observer1.dcm", slab)
    rd, dose, dose_grid = _dose(folder / "RD.dose.dcm")
    return {
        "key": key, "spec": PATIENTS[key], "folder": folder, "image": image, "rs": rs,
        "structures": structures, "rd": rd, "dose": dose, "dose_grid": dose_grid,
    }  # fmt: skip


def _dvh(patient, name):
    """Independent dose-volume data: exact partial-volume mask on the dose grid (cc per voxel)."""
    structure = patient["structures"][name][0]
    w = (
        structure.fraction_mask(patient["dose_grid"]).astype(float)
        * patient["dose_grid"].voxel_volume_cc
    )
    return patient["dose"][w > 0], w[w > 0]


def _v(d, w, dose_gy):
    return float(w[d >= dose_gy].sum())


def _d_percent(d, w, percent):
    order = np.argsort(d)[::-1]
    cum = np.cumsum(w[order])
    return float(d[order][np.searchsorted(cum, w.sum() * percent / 100.0)])


def test_structures_types_and_observers(patient):
    spec, folder = patient["spec"], patient["folder"]
    found = {name: t for name, (_, t, _) in patient["structures"].items()}
    assert found == spec["structures"]
    assert list(found) == list(spec["structures"])  # in the documented order
    assert patient["rs"].StructureSetLabel == "observer1"
    numbers = {name: n for name, (_, _, n) in patient["structures"].items()}
    for label in ("observer2", "observer3"):
        ds, obs = _structures(folder / f"RS.{label}.dcm", patient["image"].grid.spacing_mm[0])
        assert ds.StructureSetLabel == label
        assert list(obs) == spec["observer_structures"]
        for name, (s, t, n) in obs.items():  # same ROI numbers and types, drawn differently
            assert (t, n) == (spec["structures"][name], numbers[name])
            main = patient["structures"][name][0].volume_cc
            assert 0.005 < abs(s.volume_cc / main - 1) < 0.5, (label, name)
    for ds in (patient["rs"],):
        assert ds.PatientID == spec["patient_id"]


def test_plan_and_dose_numbers(patient):
    spec, folder = patient["spec"], patient["folder"]
    plan = pydicom.dcmread(folder / "RP.plan.dcm")
    assert plan.RTPlanLabel == spec["plan_label"]
    assert int(plan.FractionGroupSequence[0].NumberOfFractionsPlanned) == spec["fractions"]
    (ref,) = plan.DoseReferenceSequence
    assert ref.DoseReferenceType == "TARGET"
    assert float(ref.TargetPrescriptionDose) == spec["prescription_gy"]
    assert int(ref.ReferencedROINumber) == patient["structures"]["PTV"][2]
    assert (
        plan.ReferencedStructureSetSequence[0].ReferencedSOPInstanceUID
        == patient["rs"].SOPInstanceUID
    )
    rd = patient["rd"]
    assert rd.DoseSummationType == "PLAN" and rd.DoseUnits == "GY"
    assert rd.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID == plan.SOPInstanceUID
    assert (
        rd.FrameOfReferenceUID
        == patient["image"].frame_of_reference_uid
        == plan.FrameOfReferenceUID
    )
    assert rd.StudyInstanceUID == patient["image"].study_instance_uid


def test_embedded_dvhs_match_an_independent_computation(patient):
    # The DVHSequence (brute-force sampling of the contours) against exact partial-volume
    # voxel sums on the dose grid: total volume within 1% (both are the contour volume up
    # to the structure's extent beyond the dose grid), mean dose within 2%.
    numbers = {n: name for name, (_, _, n) in patient["structures"].items()}
    items = patient["rd"].DVHSequence
    assert [numbers[int(i.DVHReferencedROISequence[0].ReferencedROINumber)] for i in items] == (
        patient["spec"]["embedded_dvhs"]
    )
    for item in items:
        name = numbers[int(item.DVHReferencedROISequence[0].ReferencedROINumber)]
        data = np.asarray(item.DVHData, dtype=float)
        assert item.DVHType == "CUMULATIVE" and item.DVHVolumeUnits == "CM3"
        assert len(data) == 2 * int(item.DVHNumberOfBins)
        volumes = data[1::2]
        assert np.all(np.diff(volumes) <= 0)  # cumulative: never increasing
        d, w = _dvh(patient, name)
        contour_cc = patient["structures"][name][0].volume_cc
        assert volumes[0] == pytest.approx(contour_cc, rel=0.01), name
        assert float(item.DVHMeanDose) == pytest.approx(np.sum(d * w) / w.sum(), rel=0.02), name


def test_plans_pass_their_protocol_limits(patient):
    # Limits from rtplan/protocols (rps-preop / extremity-preop); margins make the voxel
    # method's sub-percent differences irrelevant.
    rx = patient["spec"]["prescription_gy"]
    d, w = _dvh(patient, "PTV")
    assert _d_percent(d, w, 95) >= 0.95 * rx
    assert _v(d, w, 1.07 * rx) / w.sum() < 0.02
    if patient["key"] == "rps_01":
        d, w = _dvh(patient, "Bag_Bowel")
        assert _v(d, w, 45.0) < 195.0
        d, w = _dvh(patient, "Bowel_Small")
        assert _v(d, w, 15.0) < 120.0
        d, w = _dvh(patient, "Kidneys")
        assert np.sum(d * w) / w.sum() < 15.0
        assert _v(d, w, 20.0) / w.sum() < 0.32
        d, w = _dvh(patient, "SpinalCord")
        assert d.max() < 45.0
        d, w = _dvh(patient, "Liver")
        assert np.sum(d * w) / w.sum() < 30.0
        d, w = _dvh(patient, "Stomach")
        assert d.min() < 45.0
    else:
        d, w = _dvh(patient, "Femur_R")
        assert np.sum(d * w) / w.sum() < 37.0
        assert _v(d, w, 40.0) / w.sum() < 0.64
        assert d.max() < 59.0


def test_sample_data_is_small():
    files = [f for f in SAMPLES.rglob("*") if f.is_file()]
    assert sum(f.stat().st_size for f in files) < 30e6
    assert not [f for f in files if f.name.startswith(".")]


@pytest.mark.requires_tool("dciodvfy")
def test_sample_files_pass_dciodvfy(patient):
    tool = dciodvfy()
    folder = patient["folder"]
    cts = sorted(folder.glob("CT.*.dcm"))
    for path in [*sorted(folder.glob("R[SPD].*.dcm")), cts[0], cts[len(cts) // 2], cts[-1]]:
        result = subprocess.run([tool, str(path)], capture_output=True, text=True)
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
        assert result.returncode == 0 and errors == [], (
            f"{path.name}: {errors or result.stderr[-200:]}"
        )


@pytest.mark.slow
def test_regeneration_reproduces_the_committed_files(tmp_path):
    # Truth: the committed files.  Regenerating the thigh patient gives the same files, UIDs
    # and labels exactly, and the same numbers within what floating-point differences between
    # platforms could change (on the machine that made them, the files are byte-identical).
    GEN.main(["--out", str(tmp_path), "--only", "extremity_01"])
    old_dir, new_dir = SAMPLES / "extremity_01", tmp_path / "extremity_01"
    slab = read_ct_series(old_dir).grid.spacing_mm[0]
    names = sorted(p.name for p in old_dir.iterdir())
    assert sorted(p.name for p in new_dir.iterdir()) == names
    for name in names:
        old, new = pydicom.dcmread(old_dir / name), pydicom.dcmread(new_dir / name)
        assert (new.SOPInstanceUID, new.SeriesInstanceUID) == (
            old.SOPInstanceUID,
            old.SeriesInstanceUID,
        )
        if old.Modality == "CT":
            assert np.abs(new.pixel_array.astype(int) - old.pixel_array).max() <= 1, name
        elif old.Modality == "RTDOSE":
            a = new.pixel_array * float(new.DoseGridScaling)
            b = old.pixel_array * float(old.DoseGridScaling)
            assert np.abs(a - b).max() < 2e-3, name
        elif old.Modality == "RTSTRUCT":
            _, s_old = _structures(old_dir / name, slab)
            _, s_new = _structures(new_dir / name, slab)
            assert list(s_new) == list(s_old)
            for roi, (structure, _, _) in s_old.items():
                assert s_new[roi][0].volume_cc == pytest.approx(structure.volume_cc, rel=1e-3), roi
        else:
            assert new.RTPlanLabel == old.RTPlanLabel


def test_compare_embedded_recognises_the_upper_bin_point(patient):
    # the generator writes V_n as the volume receiving at least the upper edge of bin n
    # (brute_force_dvh): read with the bin point auto finds from DVHMeanDose, the header means
    # sit on the curves (0 bins), a bin away when read at the lower edges
    from rtplan.dvh.embedded import choose_bin_point
    from rtplan.io.rtdose import read_rtdose

    embedded = read_rtdose(patient["folder"] / "RD.dose.dcm").embedded_dvhs
    choice = choose_bin_point("auto", embedded)
    assert choice.used == "upper"
    assert choice.scores["upper"] < 0.05 and choice.scores["lower"] > 0.9
    assert choice.structures == len(patient["spec"]["embedded_dvhs"])
