"""Contours that belong to no structure (rtplan.structure.UnassignedContours): an
ROIContourSequence item for an ROI the set does not define, or a second item for one ROI.
They are a problem record of the structure set (not a warning text): listed by ``dvh`` over
all structures (exit 1), an error where a structure they probably belong to is needed, and
a note of ``check`` otherwise.  Counts are taken from the file as written (independent of
the reader)."""

from __future__ import annotations

import json

import pydicom
import pytest

from rtplan.cli import main
from rtplan.errors import ContourError
from rtplan.io import read_rtstruct
from rtplan.structure import UnassignedContours
from rtplan.testing.synthetic import write_phantom_patient
from rtplan.workflows.dvh import dvh_folder


def _patient(tmp_path, change):
    """The phantom (25 Gy / 5 fx) with its RTSTRUCT edited; (folder, items before the edit)."""
    folder = tmp_path / "patient"
    write_phantom_patient(folder, patient_id="U1", fractions=5, prescription_gy=25.0)
    ds = pydicom.dcmread(folder / "RTSTRUCT.dcm")
    names = {r.ROINumber: r.ROIName for r in ds.StructureSetROISequence}
    counts = {
        names[rc.ReferencedROINumber]: len(rc.ContourSequence) for rc in ds.ROIContourSequence
    }
    change(ds, names)
    ds.save_as(folder / "RTSTRUCT.dcm")
    return folder, counts


def _point_at(name, number=99):
    def change(ds, names):
        (rc,) = [rc for rc in ds.ROIContourSequence if names[rc.ReferencedROINumber] == name]
        rc.ReferencedROINumber = number

    return change


def test_an_undefined_roi_is_a_problem_record_of_the_set(tmp_path):
    folder, counts = _patient(tmp_path, _point_at("PTV"))
    ds = pydicom.dcmread(folder / "RTSTRUCT.dcm")
    item = next(n for n, rc in enumerate(ds.ROIContourSequence, 1) if rc.ReferencedROINumber == 99)
    ss = read_rtstruct(folder / "RTSTRUCT.dcm", strict=False)
    assert ss.unassigned == (UnassignedContours(item, 99, counts["PTV"], repeated=False),)
    assert not any("ROI 99" in w for w in ss.warnings)  # a record, not a warning text
    with pytest.raises(ContourError, match=r"structure 'PTV': empty structure.*ROI 99"):
        ss["PTV"]
    with pytest.raises(ContourError, match="does not define"):
        ss["ROI 99"]
    assert "PTV" in ss.problems  # empty, and the set has contours of no structure
    with pytest.raises(ContourError, match="ROI 99"):
        read_rtstruct(folder / "RTSTRUCT.dcm")  # strict: the whole set is checked


def test_a_second_item_for_one_roi_is_not_used_and_recorded(tmp_path):
    def repeat_bowel(ds, names):
        (rc,) = [rc for rc in ds.ROIContourSequence if names[rc.ReferencedROINumber] == "Bowel"]
        extra = pydicom.Dataset()
        extra.ReferencedROINumber = rc.ReferencedROINumber
        extra.ContourSequence = [rc.ContourSequence[0]]
        ds.ROIContourSequence.append(extra)

    folder, counts = _patient(tmp_path, repeat_bowel)
    ss = read_rtstruct(folder / "RTSTRUCT.dcm", strict=False)
    n_items = len(pydicom.dcmread(folder / "RTSTRUCT.dcm").ROIContourSequence)
    bowel = ss["Bowel"]
    assert len(bowel.contours) == counts["Bowel"]  # the first item, as written
    assert ss.unassigned == (UnassignedContours(n_items, bowel.number, 1, repeated=True),)
    assert "already holds" in ss.unassigned[0].problem


def test_dvh_over_all_structures_lists_them_and_exits_1(tmp_path):
    folder, _ = _patient(tmp_path, _point_at("PTV"))
    result = dvh_folder(folder)
    rows = {r["name"]: r for r in result.report["structures"]}
    assert result.exit_code == 1 and "ROI 99" in result.broken
    assert rows["ROI 99"]["number"] == 99 and rows["ROI 99"]["volume_cc"] is None
    assert all(v is None for v in rows["ROI 99"]["metrics"].values())
    assert rows["ROI 99"]["flags"][0].startswith("not computed: ROIContourSequence item")
    assert rows["PTV"]["flags"][0].startswith("not computed: empty structure")
    # a structure the user names that is fine: no problem of the run
    named = dvh_folder(folder, structures=["Bowel"])
    assert named.exit_code == 0 and [r["name"] for r in named.report["structures"]] == ["Bowel"]
    with pytest.raises(ContourError, match="ROI 99"):
        dvh_folder(folder, structures=["PTV"])


def test_check_errors_when_the_protocol_needs_it_and_notes_it_otherwise(tmp_path, capsys):
    needed, _ = _patient(tmp_path / "a", _point_at("PTV"))
    args = ["--protocol", "extremity-hypo-5x5", "--relaxed", "--json"]
    assert main(["check", str(needed), *args]) == 2
    err = capsys.readouterr().err
    assert "structure 'PTV'" in err and "ROI 99" in err and err.count("\n") == 1

    baseline, _ = _patient(tmp_path / "b", lambda ds, names: None)
    code = main(["check", str(baseline), *args])
    capsys.readouterr()
    unneeded, _ = _patient(tmp_path / "c", _point_at("Marker"))  # the protocol needs no Marker
    assert main(["check", str(unneeded), *args]) == code
    report = json.loads(capsys.readouterr().out)
    notes = json.dumps(report)
    assert "not used: ROIContourSequence item" in notes and "ROI 99" in notes


def test_info_refuses_them_and_lists_them_when_lenient(tmp_path, capsys):
    folder, _ = _patient(tmp_path, _point_at("PTV"))
    assert main(["info", str(folder)]) == 2
    assert "ROI 99" in capsys.readouterr().err
    assert main(["info", str(folder), "--lenient", "--json"]) == 0
    (frame,) = json.loads(capsys.readouterr().out)["patients"][0]["frames_of_reference"]
    (ss,) = frame["structure_sets"]
    assert len(ss["unassigned_contours"]) == 1 and "ROI 99" in ss["unassigned_contours"][0]


def test_expand_names_the_problem_of_the_structure_it_needs(tmp_path, capsys):
    folder, _ = _patient(tmp_path, _point_at("PTV"))
    argv = ["expand", str(folder), "--structure", "PTV", "--name", "CTV", "--margin", "5"]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "structure 'PTV': empty structure" in err and "ROI 99" in err, err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
