"""Segmentation masks (NIfTI, NRRD) placed on the CT lattice (rtplan.io.masks).

Truths: the NIfTI-1 and NRRD specifications.  The files are written byte by byte here
(not with SimpleITK, which rtplan reads them with), from an affine stated in the file's
own convention -- NIfTI's RAS ``srow`` rows, NRRD's ``space`` -- so a lit voxel's patient
position follows by hand: NIfTI world (RAS) = srow @ (i, j, k, 1); LPS = (-x, -y, z).
"""

import gzip
import json
import struct

import numpy as np
import pytest

from rtplan.errors import GeometryError, InputError
from rtplan.grid import Grid
from rtplan.io.masks import (
    lattice_placement,
    mask_folders,
    read_labels,
    read_mask_observer,
    write_mask,
)

# CT: i -> +x (L), j -> +y (P), k -> +z (S); centres at x = -20..19, y = -20..19, z = 0..27.5
CT = Grid(shape=(12, 40, 40), origin_mm=(-20.0, -20.0, 0.0), spacing_mm=(2.5, 1.0, 1.0))


def nifti_bytes(array_kji: np.ndarray, srow: np.ndarray) -> bytes:
    """A NIfTI-1 single file (uint8, sform_code 1, qform_code 0) of an ``[k, j, i]`` array;
    ``srow`` is the 3x4 RAS affine of voxel (i, j, k)."""
    nk, nj, ni = array_kji.shape
    hdr = bytearray(352)
    struct.pack_into("<i", hdr, 0, 348)
    struct.pack_into("<8h", hdr, 40, 3, ni, nj, nk, 1, 1, 1, 1)
    struct.pack_into("<hh", hdr, 70, 2, 8)  # datatype uint8, bitpix 8
    spacing = np.linalg.norm(srow[:, :3], axis=0)
    struct.pack_into("<8f", hdr, 76, 1.0, *spacing, 0, 0, 0, 0)
    struct.pack_into("<f", hdr, 108, 352.0)  # vox_offset
    struct.pack_into("<f", hdr, 112, 1.0)  # scl_slope
    struct.pack_into("<hh", hdr, 252, 0, 1)  # qform_code 0, sform_code 1
    for r in range(3):
        struct.pack_into("<4f", hdr, 280 + 16 * r, *srow[r])
    hdr[344:348] = b"n+1\0"
    # NIfTI stores i fastest: the C-order bytes of an [k, j, i] array
    return bytes(hdr) + np.ascontiguousarray(array_kji, dtype=np.uint8).tobytes()


def lps_of_voxel(srow, ijk):
    x, y, z = srow @ np.r_[ijk, 1.0]
    return np.array([-x, -y, z])


@pytest.mark.parametrize(
    "srow",
    [
        # the CT's own axes: RAS x = -LPS x, so i -> L means srow x = -1
        np.array([[-1.0, 0, 0, 20.0], [0, -1.0, 0, 20.0], [0, 0, 2.5, 5.0]]),
        # i runs to the patient's right (reversed against the CT) and k downwards
        np.array([[1.0, 0, 0, -15.0], [0, -1.0, 0, 18.0], [0, 0, -2.5, 25.0]]),
    ],
    ids=["ct-axes", "reversed-i-and-k"],
)
def test_nifti_voxel_lands_where_the_nifti_spec_puts_it(tmp_path, srow):
    shape_kji = (6, 10, 12)
    lit = (2, 7, 4)  # (i, j, k) of the one lit voxel
    array = np.zeros(shape_kji, np.uint8)
    array[lit[2], lit[1], lit[0]] = 1
    folder = tmp_path / "auto"
    folder.mkdir()
    (folder / "GTV.nii.gz").write_bytes(gzip.compress(nifti_bytes(array, srow)))
    gtv = read_mask_observer(folder, CT)["GTV"]
    mask = gtv.binary_mask(CT)
    assert mask.sum() == 1
    expected = lps_of_voxel(srow, lit)
    assert np.allclose(CT.index_to_world(np.argwhere(mask)[0]), expected, atol=1e-4)
    lo, hi = gtv.bounds_mm()
    assert np.allclose((lo + hi) / 2, expected, atol=1e-4)
    assert np.allclose(hi - lo, [1.0, 1.0, 2.5], atol=1e-4)  # one voxel's faces


def test_nrrd_in_ras_space_is_converted_to_lps(tmp_path):
    # NRRD spec: position = space origin + sum(index_a * space direction_a), in RAS here
    array = np.zeros((4, 5, 6), np.uint8)  # [k, j, i]
    array[1, 2, 3] = 1
    header = (
        "NRRD0004\ntype: uint8\ndimension: 3\nspace: right-anterior-superior\n"
        "sizes: 6 5 4\nspace directions: (-1,0,0) (0,-1,0) (0,0,2.5)\n"
        "space origin: (10,12,7.5)\nencoding: raw\nendian: little\n\n"
    )
    folder = tmp_path / "auto"
    folder.mkdir()
    (folder / "Liver.nrrd").write_bytes(header.encode() + array.tobytes())
    mask = read_mask_observer(folder, CT)["Liver"].binary_mask(CT)
    ras = np.array([10 - 3, 12 - 2, 7.5 + 2.5])
    assert np.allclose(CT.index_to_world(np.argwhere(mask)[0]), [-ras[0], -ras[1], ras[2]])


def test_permuted_and_flipped_axes_round_trip(tmp_path):
    # a mask stored with its axes in another order and two reversed, written by SimpleITK
    rng = np.random.default_rng(1)
    truth = np.zeros(CT.shape, bool)
    truth[2:9, 5:30, 8:25] = rng.random((7, 25, 17)) > 0.5
    flipped = truth[::-1, :, ::-1].transpose(2, 0, 1)  # axes (i, k, j), i and k reversed
    d = CT.direction_matrix * np.asarray(CT.spacing_mm)
    first = CT.index_to_world([CT.shape[0] - 1, 0, CT.shape[2] - 1])
    axes = np.c_[-d[:, 2], -d[:, 0], d[:, 1]] / np.asarray([1.0, 2.5, 1.0])
    grid = Grid(flipped.shape, first, (1.0, 2.5, 1.0), tuple(map(tuple, axes)))
    write_mask(tmp_path / "obs" / "GTV.nii", flipped, grid)
    assert lattice_placement(grid, CT)[0] == (1, 2, 0)
    got = read_mask_observer(tmp_path / "obs", CT)["GTV"].binary_mask(CT)
    assert np.array_equal(got, truth)


@pytest.mark.parametrize(
    ("origin", "spacing", "message"),
    [
        ((-19.5, -20.0, 0.0), (2.5, 1.0, 1.0), "voxel off"),  # half a voxel in x
        ((-20.0, -20.0, 0.0), (2.5, 1.5, 1.5), "do not match"),  # resampled 1.5 mm
        ((-25.0, -20.0, 0.0), (2.5, 1.0, 1.0), "outside the CT"),  # 5 voxels beyond in x
    ],
)
def test_mask_off_the_ct_lattice_is_a_one_line_geometry_error(tmp_path, origin, spacing, message):
    grid = Grid((4, 8, 8), origin, spacing)
    write_mask(tmp_path / "obs" / "GTV.nii.gz", np.ones(grid.shape, bool), grid)
    with pytest.raises(GeometryError, match=message) as info:
        read_mask_observer(tmp_path / "obs", CT)
    assert "GTV.nii.gz" in str(info.value) and "\n" not in str(info.value)


def test_oblique_mask_is_refused(tmp_path):
    c, s = np.cos(0.2), np.sin(0.2)
    direction = ((0.0, -s, c), (0.0, c, s), (1.0, 0.0, 0.0))
    grid = Grid((4, 8, 8), (-5.0, -5.0, 5.0), (2.5, 1.0, 1.0), direction)
    write_mask(tmp_path / "obs" / "GTV.nii.gz", np.ones(grid.shape, bool), grid)
    with pytest.raises(GeometryError, match="not parallel"):
        read_mask_observer(tmp_path / "obs", CT)


def test_label_map_with_nnunet_dataset_json_v1_and_v2(tmp_path):
    labels = np.zeros(CT.shape, np.uint8)
    labels[2:4, 10:20, 10:20] = 1
    labels[6:8, 5:9, 5:9] = 2
    for version, table in {
        "v2": {"background": 0, "GTV": 1, "Liver": 2, "both": [1, 2]},
        "v1": {"0": "background", "1": "GTV", "2": "Liver"},
    }.items():
        folder = tmp_path / version
        write_mask(folder / "case_001.nii.gz", labels, CT)
        (folder / "dataset.json").write_text(json.dumps({"name": "x", "labels": table}))
        got = read_mask_observer(folder, CT)
        assert np.array_equal(got["GTV"].binary_mask(CT), labels == 1)
        assert np.array_equal(got["Liver"].binary_mask(CT), labels == 2)
        if version == "v2":
            assert np.array_equal(got["both"].binary_mask(CT), labels > 0)
        assert "background" not in got


def test_several_values_without_labels_file_is_an_error(tmp_path):
    labels = np.zeros(CT.shape, np.uint8)
    labels[2, 2, 2], labels[3, 3, 3] = 1, 2
    write_mask(tmp_path / "obs" / "seg.nii.gz", labels, CT)
    gtv = read_mask_observer(tmp_path / "obs", CT)["seg"]
    with pytest.raises(InputError, match="labels file"):
        gtv.binary_mask(CT)


def test_read_labels_forms_and_errors(tmp_path):
    p = tmp_path / "labels.json"
    p.write_text(json.dumps({"1": "GTV", "3": "CTV"}))
    assert read_labels(p) == {"GTV": (1,), "CTV": (3,)}
    p.write_text(json.dumps({"GTV": 1.5}))
    with pytest.raises(InputError, match="whole number"):
        read_labels(p)
    p.write_text("[1, 2]")
    with pytest.raises(InputError, match="mapping"):
        read_labels(p)


def test_mask_folders_and_loose_files(tmp_path):
    write_mask(tmp_path / "ts" / "liver.nii.gz", np.ones((2, 2, 2), bool), CT)
    (tmp_path / "CT").mkdir()
    (tmp_path / "CT" / "x.dcm").write_bytes(b"")
    assert mask_folders(tmp_path) == [tmp_path / "ts"]
    write_mask(tmp_path / "stray.nrrd", np.ones((2, 2, 2), bool), CT)
    with pytest.raises(InputError, match="observer folder"):
        mask_folders(tmp_path)
