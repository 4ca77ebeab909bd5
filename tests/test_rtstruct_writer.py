"""RTSTRUCT writer: dciodvfy-valid output, mask round trip, references, encoding, safety."""

from __future__ import annotations

import hashlib
import os
import subprocess

import numpy as np
import pydicom
import pytest
from conftest import dciodvfy

from rtplan.contouring import edges_meet, structure_from_mask
from rtplan.errors import ContourError, GeometryError, InputError, RtplanError
from rtplan.io.ct import read_ct_series
from rtplan.io.rtstruct import read_rtstruct
from rtplan.io.rtstruct_writer import MAX_ELEMENT_BYTES, rtstruct_dataset, write_rtstruct
from rtplan.polygon import signed_area
from rtplan.structure import Contour, Structure
from rtplan.testing import synthetic as syn


def _ct(tmp_path, position="HFS", shape=(24, 48, 48), spacing=(3.0, 2.0, 2.0)):
    """A CT series on disk, read back with rtplan's reader: (image, first CT file)."""
    centre = syn.cardinal_grid(shape, (0, 0, 0), spacing, position).index_to_world(
        [(np.asarray(shape) - 1) / 2]
    )[0]
    grid = syn.cardinal_grid(shape, tuple(-centre), spacing, position)  # centred on 0
    cts = syn.ct_series_datasets(
        np.full(grid.shape, -100.0), grid, patient_id="RT-7", patient_name="Doe^Jane"
    )
    for ds in cts:
        ds.PatientBirthDate = "19600101"
        ds.PatientSex = "F"
    files = syn.write_datasets(cts, tmp_path / "ct")
    return read_ct_series(tmp_path / "ct"), files[0]


def _world(grid):
    k, j, i = np.meshgrid(*[np.arange(n, dtype=float) for n in grid.shape], indexing="ij")
    return grid.index_to_world(np.stack([k, j, i], axis=-1))


def _read_back(path, grid_spacing_mm):
    """Structures read with plain pydicom (independent of rtplan's reader)."""
    ds = pydicom.dcmread(path)
    names = {int(r.ROINumber): str(r.ROIName) for r in ds.StructureSetROISequence}
    out = {}
    for rc in ds.ROIContourSequence:
        contours = tuple(
            Contour(np.asarray(c.ContourData, dtype=float).reshape(-1, 3), c.ContourGeometricType)
            for c in rc.ContourSequence
        )
        name = names[int(rc.ReferencedROINumber)]
        out[name] = Structure(name, contours, slice_spacing_mm=grid_spacing_mm)
    return ds, out


def _shapes(grid):
    """Test masks (>= 1 cc) built from closed-form shapes in LPS mm."""
    w = _world(grid)
    x, y, z = w[..., 0], w[..., 1], w[..., 2]
    rho = np.hypot(x - 3.0, y + 2.0)
    return {
        "Sphere_small": np.linalg.norm(w - [5.3, -4.1, 2.2], axis=-1) <= 7.0,  # ~1.4 cc
        "Sphere_big": np.linalg.norm(w - [-8.0, 6.5, -5.0], axis=-1) <= 22.0,
        "Box": (np.abs(x + 20) <= 12) & (np.abs(y - 18) <= 7) & (np.abs(z - 10) <= 14),
        "Ring": (rho <= 30) & (rho >= 14) & (np.abs(z) <= 20),
        "Islands": ((np.hypot(x - 25, y - 25) <= 8) | (np.hypot(x + 25, y - 25) <= 8))
        & (np.abs(z + 12) <= 9),
    }


def _sphere_section_fractions(grid, centre, radius, n=8):
    """In-plane occupancy of each voxel by the sphere's cross-section on its slice plane,
    by n x n supersampling: the sphere as a planning system holds it (one disc per slice,
    standing for the slab), the truth for fractional masks."""
    acc = np.zeros(grid.shape)
    offsets = (np.arange(n) + 0.5) / n - 0.5
    w = _world(grid)
    for dj in offsets:
        for di in offsets:
            d = grid.direction_matrix @ (np.array([0.0, dj, di]) * grid.spacing_mm)
            acc += np.linalg.norm(w + d - centre, axis=-1) <= radius
    return acc / n**2


def test_round_trip_binary_masks_dice_and_volume(tmp_path):
    # Truth: the masks.  mask -> contours -> RTSTRUCT -> pydicom -> exact partial-volume mask:
    # Dice >= 0.99 and volume within 0.5% (pixel-edge outlines make both exact here).
    image, header = _ct(tmp_path)
    masks = _shapes(image.grid)
    types = {"Sphere_small": "GTV", "Sphere_big": "CTV", "Box": "PTV"}
    structures = [
        structure_from_mask(m, image.grid, name, interpreted_type=types.get(name, "ORGAN"))
        for name, m in masks.items()
    ]
    path = write_rtstruct(tmp_path, structures, image, header, label="roundtrip")
    _, read = _read_back(path, image.grid.spacing_mm[0])
    for name, m in masks.items():
        volume_cc = m.sum() * image.grid.voxel_volume_cc
        assert volume_cc >= 1.0
        back = read[name].binary_mask(image.grid)
        dice = 2 * np.sum(back & m) / (back.sum() + m.sum())
        assert dice >= 0.99, name
        assert read[name].volume_cc == pytest.approx(volume_cc, rel=0.005), name


def test_round_trip_through_rtplans_reader(tmp_path):
    # Same truth, read back with rtplan.io.rtstruct (strict: every structure checked for
    # emptiness, self-intersection, off-slice contours) on a feet-first CT.
    image, header = _ct(tmp_path, "FFS")
    masks = _shapes(image.grid)
    path = write_rtstruct(
        tmp_path, [structure_from_mask(m, image.grid, n) for n, m in masks.items()], image, header
    )
    ss = read_rtstruct(path, reference=image)
    assert ss.names == list(masks) and ss.warnings == () and dict(ss.problems) == {}
    for name, m in masks.items():
        back = ss[name].binary_mask(image.grid)
        assert 2 * np.sum(back & m) / (back.sum() + m.sum()) >= 0.99, name
        assert ss[name].volume_cc == pytest.approx(m.sum() * image.grid.voxel_volume_cc, rel=0.005)


def test_islands_and_ring_are_separate_nested_contours(tmp_path):
    image, header = _ct(tmp_path)
    masks = _shapes(image.grid)
    path = write_rtstruct(
        tmp_path,
        [structure_from_mask(masks[n], image.grid, n) for n in ("Ring", "Islands")],
        image,
        header,
    )
    _, read = _read_back(path, image.grid.spacing_mm[0])
    for polys in read["Ring"].planes.values():  # an outline and a hole on every plane
        assert len(polys) == 2 and signed_area(polys[0]) * signed_area(polys[1]) < 0
    for polys in read["Islands"].planes.values():  # two outlines on every plane
        assert len(polys) == 2 and signed_area(polys[0]) * signed_area(polys[1]) > 0
        assert not edges_meet(*polys)


@pytest.mark.parametrize("radius_mm", [6.5, 15.0])
def test_round_trip_partial_volume_sphere(tmp_path, radius_mm):
    # Truth: in-plane partial-volume occupancy of the sphere's slice sections (supersampled).
    # Volume (sum of fractions) within 0.5%; Dice >= 0.99 both for the fractions
    # (2 sum min(a, b) / (sum a + sum b)) and for the >= 0.5 masks.
    image, header = _ct(tmp_path)
    f = _sphere_section_fractions(image.grid, np.array([1.7, -2.9, 0.8]), radius_mm)
    s = structure_from_mask(f, image.grid, "GTV", interpreted_type="GTV")
    path = write_rtstruct(tmp_path, [s], image, header)
    _, read = _read_back(path, image.grid.spacing_mm[0])
    back = read["GTV"].fraction_mask(image.grid)
    truth_cc = f.sum() * image.grid.voxel_volume_cc
    assert truth_cc >= 1.0
    assert back.sum() * image.grid.voxel_volume_cc == pytest.approx(truth_cc, rel=0.005)
    fuzzy_dice = 2 * np.minimum(back, f).sum() / (back.sum() + f.sum())
    a, b = back >= 0.5, f >= 0.5
    assert fuzzy_dice >= 0.99
    assert 2 * np.sum(a & b) / (a.sum() + b.sum()) >= 0.99


@pytest.mark.requires_tool("dciodvfy")
@pytest.mark.parametrize("position", ["HFS", "FFP", "HFDR"])
def test_output_passes_dciodvfy(tmp_path, position):
    tool = dciodvfy()
    image, header = _ct(tmp_path, position)
    masks = _shapes(image.grid)
    structures = [
        structure_from_mask(masks["Box"], image.grid, "BODY", interpreted_type="EXTERNAL"),
        structure_from_mask(masks["Sphere_small"], image.grid, "GTV", interpreted_type="GTV"),
        structure_from_mask(masks["Ring"], image.grid, "Bowel_Small"),
    ]
    path = write_rtstruct(tmp_path, structures, image, header)
    result = subprocess.run([tool, str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-300:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert errors == []


def test_references_types_and_encoding(tmp_path):
    image, header = _ct(tmp_path, "FFS")
    masks = _shapes(image.grid)
    structures = [
        structure_from_mask(masks["Box"], image.grid, "BODY", interpreted_type="EXTERNAL"),
        structure_from_mask(masks["Ring"], image.grid, "Bag_Bowel"),
    ]
    path = write_rtstruct(tmp_path, structures, image, header, label="obs1")
    ds = pydicom.dcmread(path)
    ct = pydicom.dcmread(header)
    # every CT slice listed once in the referenced series
    series = ds.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0]
    series = series.RTReferencedSeriesSequence[0]
    assert series.SeriesInstanceUID == image.series_instance_uid
    listed = [r.ReferencedSOPInstanceUID for r in series.ContourImageSequence]
    assert sorted(listed) == sorted(image.sop_instance_uids)
    # each contour references the slice it lies on, and NumberOfContourPoints is an int
    by_uid = dict(zip(image.sop_instance_uids, image.slice_z_mm, strict=True))
    for rc in ds.ROIContourSequence:
        for c in rc.ContourSequence:
            pts = np.asarray(c.ContourData, dtype=float).reshape(-1, 3)
            assert isinstance(c.NumberOfContourPoints, int)
            assert c.NumberOfContourPoints == len(pts) >= 3
            assert np.all(pts[:, 2] == by_uid[c.ContourImageSequence[0].ReferencedSOPInstanceUID])
    # DS values at most 16 characters
    ds_values = [
        str(v)
        for elem in ds.iterall()
        if elem.VR == "DS" and elem.value is not None
        for v in (elem.value if elem.VM > 1 else [elem.value])
    ]
    assert ds_values and max(len(v) for v in ds_values) <= 16
    # interpreted types set; patient/study copied; new series and instance
    assert [o.RTROIInterpretedType for o in ds.RTROIObservationsSequence] == ["EXTERNAL", "ORGAN"]
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex",
                    "StudyInstanceUID", "StudyDate", "StudyID", "FrameOfReferenceUID"):  # fmt: skip
        assert ds[keyword].value == ct[keyword].value, keyword
    assert ds.SeriesInstanceUID != ct.SeriesInstanceUID
    assert ds.StructureSetLabel == "obs1" and ds.Modality == "RTSTRUCT"
    assert path.name == f"RS.{ds.SOPInstanceUID}.dcm"


def test_copying_rois_never_modifies_the_input(tmp_path):
    image, header = _ct(tmp_path)
    masks = _shapes(image.grid)
    first = write_rtstruct(
        tmp_path / "ct",
        [structure_from_mask(masks["Box"], image.grid, "BODY", interpreted_type="EXTERNAL")],
        image,
        header,
    )
    before = hashlib.sha256(first.read_bytes()).hexdigest()
    mtime = os.stat(first).st_mtime_ns
    gtv = structure_from_mask(masks["Sphere_big"], image.grid, "GTV", interpreted_type="GTV")
    second = write_rtstruct(tmp_path, [gtv], image, header, copy_rois_from=first)
    assert hashlib.sha256(first.read_bytes()).hexdigest() == before
    assert os.stat(first).st_mtime_ns == mtime
    ds = pydicom.dcmread(second)
    assert [r.ROIName for r in ds.StructureSetROISequence] == ["BODY", "GTV"]
    assert [int(r.ROINumber) for r in ds.StructureSetROISequence] == [1, 2]
    # refusing: writing over the input, over any existing file, a second EXTERNAL
    with pytest.raises(InputError):
        write_rtstruct(first, [gtv], image, header, copy_rois_from=first)
    with pytest.raises(InputError):
        write_rtstruct(second, [gtv], image, header)
    body2 = structure_from_mask(masks["Ring"], image.grid, "Body2", interpreted_type="EXTERNAL")
    with pytest.raises(InputError):
        rtstruct_dataset([body2], image, header, copy_rois_from=first)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")) == []


def test_a_copied_element_with_a_corrupt_vr_is_refused_not_written(tmp_path):
    # the reader never reads ROIGenerationAlgorithm, the copy would carry its VR 'ZZ' out
    # into a file that no DICOM reader accepts: refused with one line, nothing written
    image, header = _ct(tmp_path)
    masks = _shapes(image.grid)
    body = structure_from_mask(masks["Box"], image.grid, "BODY", interpreted_type="EXTERNAL")
    first = write_rtstruct(tmp_path / "ct", [body], image, header)
    corrupt = tmp_path / "corrupt.dcm"
    raw = first.read_bytes()
    assert raw.count(b"\x06\x30\x36\x00CS") == 1
    corrupt.write_bytes(raw.replace(b"\x06\x30\x36\x00CS", b"\x06\x30\x36\x00ZZ"))
    gtv = structure_from_mask(masks["Sphere_big"], image.grid, "GTV", interpreted_type="GTV")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(RtplanError, match="ZZ") as err:
        write_rtstruct(out, [gtv], image, header, copy_rois_from=corrupt)
    assert "\n" not in str(err.value)
    assert list(out.iterdir()) == []


def test_output_name_is_sanitised_and_write_is_atomic(tmp_path):
    image, header = _ct(tmp_path)
    s = structure_from_mask(_shapes(image.grid)["Box"], image.grid, "Box")
    (tmp_path / "out").mkdir()
    path = write_rtstruct(tmp_path / "out" / "my set;rm -rf.dcm", [s], image, header)
    assert path == tmp_path / "out" / "my_set_rm_-rf.dcm"
    assert os.listdir(tmp_path / "out") == [path.name]  # no temporary file left behind
    with pytest.raises(InputError):
        write_rtstruct(tmp_path / "missing" / "x.dcm", [s], image, header)


def test_bad_structures_are_refused(tmp_path):
    image, header = _ct(tmp_path)
    z0, z_off = float(image.slice_z_mm[3]), float(image.slice_z_mm[3]) + 1.0
    square = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], dtype=float)

    def structure(z=z0, pts=square, **kw):
        kw.setdefault("interpreted_type", "ORGAN")
        return Structure("S", (Contour(np.column_stack([pts, np.full(len(pts), z)])),), **kw)

    assert rtstruct_dataset([structure()], image, header).ROIContourSequence
    with pytest.raises(GeometryError):  # not on a CT slice
        rtstruct_dataset([structure(z=z_off)], image, header)
    with pytest.raises(InputError):  # empty RTROIInterpretedType
        rtstruct_dataset([structure(interpreted_type="")], image, header)
    with pytest.raises(GeometryError):  # another frame of reference
        rtstruct_dataset([structure(frame_of_reference_uid="1.2.3")], image, header)
    with pytest.raises(ContourError):  # bow tie
        rtstruct_dataset([structure(pts=square[[0, 1, 3, 2]])], image, header)
    with pytest.raises(ContourError):  # two points
        rtstruct_dataset([structure(pts=square[:2])], image, header)
    with pytest.raises(InputError):  # same name twice
        rtstruct_dataset([structure(), structure()], image, header)
    with pytest.raises(InputError):
        rtstruct_dataset([structure()], image, header, label="a label far too long")


def test_long_contour_is_decimated_to_one_element(tmp_path):
    # A 12000-point circle of radius 40 mm: ContourData must fit the 16-bit element length;
    # the decimated polygon keeps the area (pi r^2 within 0.1%) and has no crossing edges.
    image, header = _ct(tmp_path)
    t = np.linspace(0, 2 * np.pi, 12000, endpoint=False)
    z = float(image.slice_z_mm[5])
    pts = np.column_stack([40 * np.cos(t) + 0.123456, 40 * np.sin(t), np.full(len(t), z)])
    ds = rtstruct_dataset(
        [Structure("Big", (Contour(pts),), interpreted_type="ORGAN")], image, header
    )
    c = ds.ROIContourSequence[0].ContourSequence[0]
    text = "\\".join(str(v) for v in c.ContourData)
    assert len(text) <= MAX_ELEMENT_BYTES < 12000 * 3 * 8
    xy = np.asarray(c.ContourData, dtype=float).reshape(-1, 3)[:, :2]
    assert abs(signed_area(xy)) == pytest.approx(np.pi * 40**2, rel=1e-3)
    assert not edges_meet(xy)
