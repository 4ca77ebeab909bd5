"""`rtplan dvh` on the layouts real planning-system exports have: an empty placeholder ROI,
a BODY a hair outside the dose grid, planning-system DVHs in the RTDOSE (header in % of
the prescription, curve in % of the prescription, differential, cGy, missing for some
structures), and the end cap chosen to match them.

Truths: the synthetic phantom (rtplan.testing.synthetic.write_phantom_patient: PTV 15 x 15 mm on 4
CT slices of 2.5 mm = 2.25 cc with full end slabs, 1.6875 cc ending on its end contours;
prescription 50 Gy), contour geometry edited here by hand (the part outside the dose grid
is a box of known size), and embedded DVHs written from rtplan's own curve in 0.01 Gy
bins, so the planning-system metrics must agree with rtplan's to the bin size whatever
units they are written in.
"""

import json

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from rtplan.cli import main
from rtplan.dvh import compute
from rtplan.io import load_plan_folder
from rtplan.testing.synthetic import (
    SyntheticDVH,
    rtdose_dataset,
    write_datasets,
    write_phantom_patient,
)


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    return write_phantom_patient(tmp_path_factory.mktemp("exports"))


def _run(capsys, argv, code=0):
    got = main(argv)
    out = capsys.readouterr()
    assert got == code, out.err
    return out


def _with_empty_roi(folder, name="Areola"):
    """Append an ROI without contours to the phantom's RTSTRUCT (as Eclipse exports them)."""
    path = folder / "RTSTRUCT.dcm"
    ds = pydicom.dcmread(path)
    number = 99
    roi = Dataset()
    roi.ROINumber = number
    roi.ReferencedFrameOfReferenceUID = ds.StructureSetROISequence[0].ReferencedFrameOfReferenceUID
    roi.ROIName = name
    roi.ROIGenerationAlgorithm = "MANUAL"
    ds.StructureSetROISequence.append(roi)
    contour = Dataset()
    contour.ReferencedROINumber = number
    contour.ROIDisplayColor = [255, 0, 255]
    ds.ROIContourSequence.append(contour)
    obs = Dataset()
    obs.ObservationNumber = number
    obs.ReferencedROINumber = number
    obs.RTROIInterpretedType = "ORGAN"
    obs.ROIInterpreter = ""
    ds.RTROIObservationsSequence.append(obs)
    ds.save_as(path)


def test_empty_roi_listed_and_fatal_only_when_asked_for(phantom, tmp_path, capsys):
    import shutil

    folder = tmp_path / "p"
    shutil.copytree(phantom.folder, folder)
    _with_empty_roi(folder)
    out = json.loads(_run(capsys, ["dvh", str(folder), "--json"]).out)
    rows = {r["name"]: r for r in out["structures"]}
    assert rows["Areola"]["volume_cc"] == 0.0 and rows["Areola"]["flags"] == ["empty"]
    assert rows["PTV"]["volume_cc"] == pytest.approx(2.25, rel=1e-9)
    _run(capsys, ["info", str(folder)])
    err = _run(capsys, ["dvh", str(folder), "--structure", "Areola"], code=2).err
    assert err.count("\n") == 1 and "'Areola'" in err and "empty" in err


def test_body_two_ppm_outside_the_dose_grid_keeps_its_metrics(phantom, tmp_path, capsys):
    import shutil

    # the dose grid ends at x = +24 mm (32 voxels of 1.5 mm centred on 0, plus half a
    # voxel); move the BODY's +x side from 21 to 24 + 8.82e-5 mm: outside = 8.82e-5 x 42 x
    # 25 mm^3 = 9.26e-5 cc of 44.1 + 3 x 42 x 25 / 1000 = 47.25 cc (1.96 ppm)
    folder = tmp_path / "p"
    shutil.copytree(phantom.folder, folder)
    path = folder / "RTSTRUCT.dcm"
    ds = pydicom.dcmread(path)
    for c in ds.ROIContourSequence[0].ContourSequence:
        pts = np.asarray(c.ContourData, dtype=float).reshape(-1, 3)
        pts[pts[:, 0] > 20, 0] = 24.0000882
        c.ContourData = [f"{v:.7f}" for v in pts.ravel()]
    ds.save_as(path)
    out = json.loads(_run(capsys, ["dvh", str(folder), "--json"]).out)
    body = next(r for r in out["structures"] if r["name"] == "BODY")
    outside_cc = 8.82e-5 * 42 * 25 / 1000
    assert body["outside_dose_cc"] == pytest.approx(outside_cc, rel=1e-3)
    assert body["volume_cc"] == pytest.approx(47.25 + outside_cc, rel=1e-9)
    assert all(v is not None for v in body["metrics"].values())
    assert any("within the tolerance" in f for f in body["flags"])
    err = _run(capsys, ["dvh", str(folder)]).err
    assert err.count("partly outside the dose grid") == 1  # one summary note, not per metric
    # no tolerance: the dose metrics are undefined (never a number made up for the rest)
    out = json.loads(
        _run(capsys, ["dvh", str(folder), "--json", "--outside-tolerance-pct", "0"]).out
    )
    body = next(r for r in out["structures"] if r["name"] == "BODY")
    assert all(v is None for v in body["metrics"].values())
    assert any("beyond the tolerance" in f for f in body["flags"])


def _embedded_file(phantom, tmp_path, items):
    """The phantom dose with a DVHSequence of ``items`` (SyntheticDVH), as a file."""
    dose = load_plan_folder(phantom.folder).dose()
    ds = rtdose_dataset(
        dose.values_gy, dose.grid, frame_of_reference_uid=dose.frame_of_reference_uid,
        study_uid="1.2.3.4", patient_id=phantom.patient_id, patient_name="Phantom^One",
        referenced_plan_uid=phantom.plan_uid, dvhs=items,
        referenced_structure_set_uid=phantom.structure_set_uid,
    )  # fmt: skip
    (path,) = write_datasets([ds], tmp_path, ["RD_with_dvh.dcm"])
    return path


def _ptv_curve(phantom, end_cap="slab"):
    """rtplan's PTV DVH: cumulative volumes at the lower edges of 0.01 Gy bins."""
    patient = load_plan_folder(phantom.folder)
    dvh = compute(patient.structure_set()["PTV"], patient.dose(), end_cap=end_cap)
    edges = np.arange(0.01, 53.0, 0.01)
    return dvh, edges, dvh.volume_at_dose_cc(edges - 0.01)


@pytest.mark.parametrize(
    "form", ["gy", "header_in_percent", "relative_curve", "differential", "cgy"]
)
def test_compare_embedded_in_every_unit(phantom, tmp_path, capsys, form):
    rx = 50.0
    dvh, edges, vols = _ptv_curve(phantom)
    widths = np.full(len(edges), 0.01)
    mean, top = dvh.mean_gy, dvh.max_gy
    kw = {}
    if form == "header_in_percent":  # the Varian case: curve in Gy, header in % of Rx
        mean, top = 100 * mean / rx, 100 * top / rx
    elif form == "relative_curve":
        widths, mean, top, kw = (
            100 * widths / rx,
            100 * mean / rx,
            100 * top / rx,
            {"dose_units": "RELATIVE"},
        )
    elif form == "differential":
        vols = vols - np.concatenate([vols[1:], [0.0]])
        kw = {"dvh_type": "DIFFERENTIAL"}
    elif form == "cgy":
        widths, mean, top, kw = 100 * widths, 100 * mean, 100 * top, {"dose_units": "CGY"}
    item = SyntheticDVH(2, list(widths), list(vols), max_dose=top, mean_dose=mean, **kw)
    path = _embedded_file(phantom, tmp_path, [item])
    out = json.loads(
        _run(
            capsys,
            ["dvh", str(phantom.folder), "--json", "--dose", str(path), "--compare-embedded",
             "--end-cap", "slab"],
        ).out
    )  # fmt: skip
    cmp = {c["name"]: c for c in out["embedded_comparison"]}
    # BODY and Bowel have no embedded DVH: listed with a note, PTV still compared
    assert cmp["BODY"]["metrics"] == {} and "no DVH" in cmp["BODY"]["notes"][0]
    ptv = cmp["PTV"]
    assert set(ptv["metrics"]) == {"volume_cc", "Dmean", "Dmax", "D95%", "D50%", "D5%", "D2cc"}
    assert abs(ptv["metrics"]["volume_cc"]["difference"]) < 1e-6
    for m in ("Dmean", "Dmax", "D95%", "D50%", "D5%", "D2cc"):
        assert abs(ptv["metrics"][m]["difference"]) <= 0.011, (m, ptv["metrics"][m])
    if form == "header_in_percent":
        assert any("in % of the prescription" in n for n in ptv["notes"])
    else:
        assert ptv["notes"] == []


def test_header_that_disagrees_with_the_curve_is_not_used(phantom, tmp_path, capsys):
    dvh, edges, vols = _ptv_curve(phantom)
    item = SyntheticDVH(2, [0.01] * len(edges), list(vols), mean_dose=1.5 * dvh.mean_gy)
    path = _embedded_file(phantom, tmp_path, [item])
    out = json.loads(
        _run(capsys, ["dvh", str(phantom.folder), "--json", "--dose", str(path),
                      "--compare-embedded", "--structure", "PTV"]).out
    )  # fmt: skip
    (ptv,) = out["embedded_comparison"]
    assert any("DVHMeanDose" in n and "not used" in n for n in ptv["notes"])
    assert abs(ptv["metrics"]["Dmean"]["difference"]) < 0.011


@pytest.mark.parametrize("truth_cap", ["slab", "none"])
def test_end_cap_auto_matches_the_planning_system(phantom, tmp_path, capsys, truth_cap):
    # the planning system's PTV volume is 2.25 cc (slab) or 1.6875 cc (none): auto picks it
    dvh, edges, vols = _ptv_curve(phantom, truth_cap)
    path = _embedded_file(phantom, tmp_path, [SyntheticDVH(2, [0.01] * len(edges), list(vols))])
    out = json.loads(
        _run(capsys, ["dvh", str(phantom.folder), "--json", "--dose", str(path),
                      "--compare-embedded", "--csv", str(tmp_path / "t.csv")]).out
    )  # fmt: skip
    choice = out["conventions"]["end_cap_choice"]
    assert choice["requested"] == "auto" and choice["used"] == truth_cap
    assert out["conventions"]["end_cap"] == truth_cap
    assert choice["median_abs_volume_difference_pct"][truth_cap] == pytest.approx(0, abs=1e-6)
    ptv = next(r for r in out["structures"] if r["name"] == "PTV")
    assert ptv["volume_cc"] == pytest.approx({"slab": 2.25, "none": 1.6875}[truth_cap])
    header = (tmp_path / "t.csv").read_text().splitlines()[0]
    assert "Dmean planning system" in header and "D2cc difference %" in header
    text = _run(capsys, ["dvh", str(phantom.folder), "--dose", str(path)]).out
    assert f"end cap: {truth_cap} (auto" in text
