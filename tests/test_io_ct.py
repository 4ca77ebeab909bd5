"""CT series reader: orientation, sorting, rescale, spacing problems (truths from the DICOM
Image Plane formula PS3.3 C.7.6.2.1.1 applied to each file's own attributes)."""

from __future__ import annotations

import random

import numpy as np
import pydicom
import pytest

from rtplan.errors import GeometryError, RtplanWarning
from rtplan.io.ct import read_ct_series
from rtplan.testing import synthetic as syn

POSITIONS = list(syn.PATIENT_POSITION_IOP)


def _series(position="HFS", slice_offsets_mm=None, slope=1.0, intercept=-1024.0):
    grid = syn.cardinal_grid(
        (4, 3, 5), (-12.0, 30.0, -40.0), (2.5, 0.8, 1.3), position, slice_offsets_mm
    )
    hu = (np.arange(np.prod(grid.shape)).reshape(grid.shape) * 3 - 900).astype(float)
    datasets = syn.ct_series_datasets(
        hu,
        grid,
        patient_id="P",
        patient_name="P^Q",
        patient_position=position,
        rescale_slope=slope,
        rescale_intercept=intercept,
    )
    return grid, hu, datasets


def _write_shuffled(datasets, folder):
    # InstanceNumber deliberately anti-correlated with position, file order random
    for n, ds in enumerate(datasets):
        ds.InstanceNumber = len(datasets) - n
    paths = syn.write_datasets(datasets, folder)
    random.Random(4).shuffle(paths)
    return paths


def _dicom_position(ds, j, i):
    """C.7.6.2.1.1: P = S + i * dc * row_cosine + j * dr * column_cosine."""
    iop = np.asarray(ds.ImageOrientationPatient, dtype=float)
    dr, dc = (float(v) for v in ds.PixelSpacing)  # [row spacing, column spacing]
    return np.asarray(ds.ImagePositionPatient, float) + i * dc * iop[:3] + j * dr * iop[3:]


@pytest.mark.parametrize("position", POSITIONS)
def test_every_cardinal_orientation_maps_index_to_dicom_position(tmp_path, position):
    _, hu, datasets = _series(position)
    paths = _write_shuffled(datasets, tmp_path / "ct")
    image = read_ct_series(paths)
    by_uid = {str(ds.SOPInstanceUID): ds for ds in map(pydicom.dcmread, paths)}
    for k, uid in enumerate(image.sop_instance_uids):
        ds = by_uid[uid]
        for j, i in [(0, 0), (2, 4), (1, 3)]:
            world = image.grid.index_to_world([k, j, i])
            np.testing.assert_allclose(world, _dicom_position(ds, j, i), atol=1e-6)
        # pixel values come back from the slice the index points to
        stored = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        np.testing.assert_array_equal(image.values_hu[k], stored)
    # and the whole volume equals the array the files were made from (sorted by position)
    np.testing.assert_array_equal(image.values_hu, hu)
    assert image.warnings == ()
    assert image.grid.is_uniform


def test_slices_sorted_by_position_not_instance_number(tmp_path):
    _, _, datasets = _series("FFS")
    paths = _write_shuffled(datasets, tmp_path / "ct")
    image = read_ct_series(paths)
    normal = np.cross(*np.asarray(datasets[0].ImageOrientationPatient, float).reshape(2, 3))
    along = [np.dot(np.asarray(ds.ImagePositionPatient, float), normal) for ds in datasets]
    uid_to_along = {ds.SOPInstanceUID: a for ds, a in zip(datasets, along, strict=True)}
    assert np.all(np.diff([uid_to_along[u] for u in image.sop_instance_uids]) > 0)


def test_pixel_spacing_is_row_then_column(tmp_path):
    # PixelSpacing [0.8, 1.3]: rows (index j) are 0.8 mm apart, columns (index i) 1.3 mm.
    _, _, datasets = _series("HFS")
    image = read_ct_series(syn.write_datasets(datasets, tmp_path / "ct"))
    assert image.grid.spacing_mm == (2.5, 0.8, 1.3)
    step_i = image.grid.index_to_world([0, 0, 1]) - image.grid.index_to_world([0, 0, 0])
    np.testing.assert_allclose(step_i, [1.3, 0, 0])


def test_rescale_slope_and_intercept(tmp_path):
    _, hu, datasets = _series("HFP", slope=0.5, intercept=-1000.0)
    assert float(datasets[0].RescaleSlope) == 0.5
    image = read_ct_series(syn.write_datasets(datasets, tmp_path / "ct"))
    np.testing.assert_array_equal(image.values_hu, hu)


def test_read_from_folder_ignores_other_objects(tmp_path):
    grid, hu, datasets = _series()
    dose = syn.rtdose_dataset(
        np.ones(grid.shape), grid, frame_of_reference_uid="1.2", study_uid="1.3"
    )
    syn.write_datasets([*datasets, dose], tmp_path / "mixed")
    (tmp_path / "mixed" / "notes.txt").write_text("not dicom")
    image = read_ct_series(tmp_path / "mixed")
    np.testing.assert_array_equal(image.values_hu, hu)


def test_missing_slice_is_reported_and_positions_kept(tmp_path):
    _, hu, datasets = _series("HFS")
    del datasets[2]  # slices at 0, 2.5, (5.0 missing), 7.5 mm
    with pytest.warns(RtplanWarning) as emitted:  # a Python caller sees it, with the folder
        image = read_ct_series(syn.write_datasets(datasets, tmp_path / "ct"))
    assert len(image.warnings) == 1 and "missing slice" in image.warnings[0]
    assert [str(w.message) for w in emitted] == [f"{tmp_path / 'ct'}: {image.warnings[0]}"]
    assert image.grid.slice_offsets_mm == (0.0, 2.5, 7.5)
    np.testing.assert_allclose(image.slice_z_mm, [-40.0 + 0, -37.5, -32.5])
    np.testing.assert_array_equal(image.values_hu, hu[[0, 1, 3]])


def test_non_uniform_spacing_is_reported(tmp_path):
    _, _, datasets = _series("FFDL", slice_offsets_mm=(0.0, 2.0, 5.0, 6.5))
    with pytest.warns(RtplanWarning, match="non-uniform slice spacing"):
        image = read_ct_series(syn.write_datasets(datasets, tmp_path / "ct"))
    assert "non-uniform slice spacing" in image.warnings[0]
    np.testing.assert_allclose(image.grid.slice_offsets_mm, (0.0, 2.0, 5.0, 6.5))
    assert image.grid.spacing_mm[0] == pytest.approx(1.5)


def test_mixed_orientation_is_an_error_naming_the_file(tmp_path):
    _, _, datasets = _series()
    datasets[1].ImageOrientationPatient = ["0", "1", "0", "0", "0", "-1"]  # a sagittal scout
    paths = syn.write_datasets(datasets, tmp_path / "ct")
    with pytest.raises(GeometryError, match="mixed image orientations") as err:
        read_ct_series(paths)
    assert paths[1].name in str(err.value)


def test_duplicate_position_is_an_error_naming_both_files(tmp_path):
    _, _, datasets = _series()
    twin = pydicom.Dataset(datasets[1])
    twin.SOPInstanceUID = pydicom.uid.generate_uid()
    paths = syn.write_datasets([*datasets, twin], tmp_path / "ct")
    with pytest.raises(GeometryError, match="same position") as err:
        read_ct_series(paths)
    assert paths[1].name in str(err.value) and paths[-1].name in str(err.value)


def test_sheared_series_is_an_error(tmp_path):
    _, _, datasets = _series()
    for k, ds in enumerate(datasets):  # gantry tilt: y drifts 1 mm per slice
        ipp = [float(v) for v in ds.ImagePositionPatient]
        ds.ImagePositionPatient = syn.ds_list([ipp[0], ipp[1] + k, ipp[2]])
    with pytest.raises(GeometryError, match="gantry tilt"):
        read_ct_series(syn.write_datasets(datasets, tmp_path / "ct"))


def test_single_slice_uses_slice_thickness(tmp_path):
    grid = syn.cardinal_grid((1, 2, 2), (0, 0, 0), (3.0, 1.0, 1.0))
    datasets = syn.ct_series_datasets(np.zeros(grid.shape), grid, patient_id="P", patient_name="P")
    image = read_ct_series(syn.write_datasets(datasets, tmp_path / "ct"))
    assert image.grid.shape == (1, 2, 2) and image.grid.spacing_mm[0] == 3.0
