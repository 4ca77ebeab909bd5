"""Synthetic DICOM builders: valid IODs (dciodvfy), DS <= 16 chars, hand-computed geometry."""

from __future__ import annotations

import os
import subprocess

import numpy as np
import pydicom
import pytest
from conftest import dciodvfy

from rtplan.testing import synthetic as syn


def _patient(position="HFS", slice_offsets_mm=None):
    grid = syn.cardinal_grid(
        (3, 4, 5), (-10.0, -20.0, 30.0), (2.5, 1.0, 1.5), position, slice_offsets_mm
    )
    hu = np.arange(np.prod(grid.shape), dtype=float).reshape(grid.shape) - 1000.0
    cts = syn.ct_series_datasets(hu, grid, patient_id="P1", patient_name="Test^One")
    study, frame = cts[0].StudyInstanceUID, cts[0].FrameOfReferenceUID
    square = np.array([[-5, -18, 0], [0, -18, 0], [0, -16, 0], [-5, -16, 0]], dtype=float)
    planes = [np.column_stack([square[:, :2], np.full(4, z)]) for z in (30.0, 32.5)]
    rtstruct = syn.rtstruct_dataset_from_contours(
        [
            syn.SyntheticROI("GTV", planes, interpreted_type="GTV"),
            syn.SyntheticROI(
                "marker", [(np.array([[0.0, 0.0, 30.0]]), "POINT")], interpreted_type="MARKER"
            ),
        ],
        ct_datasets=cts,
    )
    plan = syn.rtplan_dataset(
        "PLAN1",
        25,
        50.0,
        [syn.SyntheticBeam("AP", 1.0), syn.SyntheticBeam("PA", 1.0, 180.0)],
        patient_id="P1",
        patient_name="Test^One",
        study_uid=study,
        frame_of_reference_uid=frame,
        referenced_structure_set_uid=rtstruct.SOPInstanceUID,
        target_roi_number=1,
    )
    dose = syn.rtdose_dataset(
        np.full(grid.shape, 2.0) + np.arange(grid.shape[2]) * 0.1,
        grid,
        frame_of_reference_uid=frame,
        study_uid=study,
        patient_id="P1",
        patient_name="Test^One",
        referenced_plan_uid=plan.SOPInstanceUID,
        dvhs=[syn.SyntheticDVH(1, [1.0] * 4, [10.0, 8.0, 2.0, 0.0])],
        referenced_structure_set_uid=rtstruct.SOPInstanceUID,
    )
    return grid, [*cts, rtstruct, plan, dose]


def _ds_values(ds):
    for elem in ds.iterall():
        if elem.VR == "DS" and elem.value not in (None, ""):
            values = elem.value if elem.VM > 1 else [elem.value]
            yield from (str(v) for v in values)


def test_ct_geometry_matches_hand_computation():
    # HFS, origin (-10,-20,30), slice spacing 2.5: IPP z = 30, 32.5, 35; IOP 1\0\0\0\1\0;
    # PixelSpacing = [row spacing, column spacing] = [1.0, 1.5].
    grid, datasets = _patient()
    cts = datasets[:3]
    assert [float(d.ImagePositionPatient[2]) for d in cts] == [30.0, 32.5, 35.0]
    assert [float(v) for v in cts[0].ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
    assert [float(v) for v in cts[0].PixelSpacing] == [1.0, 1.5]
    ct = cts[1]
    hu = ct.pixel_array * float(ct.RescaleSlope) + float(ct.RescaleIntercept)
    assert hu[2, 3] == 20 + 2 * 5 + 3 - 1000  # value k*20 + j*5 + i - 1000 at k=1


def test_feet_first_slice_axis_points_to_feet():
    # FFS: row cosine (-1,0,0), column cosine (0,1,0) -> normal row x col = (0,0,-1).
    grid = syn.cardinal_grid((2, 1, 1), (0, 0, 0), (3, 1, 1), "FFS")
    assert grid.index_to_world([[1, 0, 0]]).tolist() == [[0.0, 0.0, -3.0]]


def test_every_decimal_string_fits_16_characters():
    _, datasets = _patient("HFDL", slice_offsets_mm=(0.0, 2.123456789123, 7.3333333333))
    values = [v for ds in datasets for v in _ds_values(ds)]
    assert values and max(len(v) for v in values) <= 16


def test_dose_scaling_round_trip():
    # Stored integers x DoseGridScaling reproduce the dose to within half a quantum.
    grid = syn.cardinal_grid((2, 3, 4), (0, 0, 0), (2, 2, 2))
    dose_gy = np.linspace(0, 61.3, np.prod(grid.shape)).reshape(grid.shape)
    ds = syn.rtdose_dataset(dose_gy, grid, frame_of_reference_uid="1.2", study_uid="1.3")
    scaling = float(ds.DoseGridScaling)
    assert np.max(np.abs(ds.pixel_array * scaling - dose_gy)) <= scaling / 2 + 1e-12


def test_write_datasets_is_atomic_and_sanitises_names(tmp_path):
    _, datasets = _patient()
    paths = syn.write_datasets(datasets[:1], tmp_path / "out", names=["../../evil name.dcm"])
    assert paths == [tmp_path / "out" / "evil_name.dcm"]
    assert os.listdir(tmp_path / "out") == ["evil_name.dcm"]  # no temporary file left
    assert pydicom.dcmread(paths[0]).SOPInstanceUID == datasets[0].SOPInstanceUID


@pytest.mark.requires_tool("dciodvfy")
@pytest.mark.parametrize("position", ["HFS", "FFP", "HFDR"])
def test_datasets_pass_dciodvfy(tmp_path, position):
    tool = dciodvfy()
    _, datasets = _patient(position)
    for path in syn.write_datasets(datasets, tmp_path / "dicom"):
        result = subprocess.run([tool, str(path)], capture_output=True, text=True)
        assert result.returncode == 0, f"dciodvfy failed on {path.name}: {result.stderr[-300:]}"
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
        assert errors == [], f"{path.name}: {errors}"


def test_decimal_strings_near_powers_of_ten():
    # pydicom's format_number_as_ds gives '-10.0000000000000' (17 chars) for this value;
    # ds_str must stay within 16 characters and keep ten significant digits.
    values = [-9.999999999999995, 9.999999999999998, 99999.99999999999, -1.2345678912345e-05,
              19.034504652023315, 0.0, -0.0, 1e-300, 123456789012.5]  # fmt: skip
    for v in values:
        text = syn.ds_str(v)
        assert len(text) <= 16, text
        assert float(text) == pytest.approx(v, rel=1e-9, abs=1e-300)
    assert syn.ds_list(values) == [syn.ds_str(v) for v in values]
