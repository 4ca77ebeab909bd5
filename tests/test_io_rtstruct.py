"""RTSTRUCT reader: ROI metadata, contour types, holes, keyholes, off-slice contours, lookup,
bad structures.  Volumes are checked against hand-computed polygon area x slab thickness."""

from __future__ import annotations

import numpy as np
import pytest

from rtplan.errors import (
    ContourError,
    DicomReadError,
    GeometryError,
    RtplanWarning,
    StructureNotFoundError,
)
from rtplan.io.ct import read_ct_series
from rtplan.io.rtstruct import read_rtstruct
from rtplan.testing import synthetic as syn

SPACING = 2.5  # CT slices at z = 30, 32.5, 35, 37.5, 40 mm


def rect(x0, y0, x1, y1, z):
    """Counter-clockwise rectangle on plane z, (N, 3)."""
    return np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], dtype=float)


def keyhole(z):
    """20 x 20 square with a 10 x 10 hole, drawn as ONE contour entering the hole along a
    zero-width channel at x = 10 (area 400 - 100 = 300 mm^2)."""
    xy = [(0, 0), (20, 0), (20, 20), (10, 20), (10, 15), (15, 15), (15, 5), (5, 5), (5, 15),
          (10, 15), (10, 20), (0, 20)]  # fmt: skip
    return np.array([(x, y, z) for x, y in xy], dtype=float)


@pytest.fixture
def ct(tmp_path):
    grid = syn.cardinal_grid((5, 40, 40), (-5.0, -5.0, 30.0), (SPACING, 1.0, 1.0))
    datasets = syn.ct_series_datasets(np.zeros(grid.shape), grid, patient_id="P", patient_name="P")
    syn.write_datasets(datasets, tmp_path / "ct")
    return datasets, read_ct_series(tmp_path / "ct")


def write_rtstruct(tmp_path, rois, ct_datasets=None, **kw):
    ds = syn.rtstruct_dataset_from_contours(rois, ct_datasets=ct_datasets, **kw)
    return syn.write_datasets([ds], tmp_path / "rs")[0]


def test_roi_metadata(tmp_path, ct):
    rois = [
        syn.SyntheticROI("PTV", [rect(0, 0, 10, 10, 30)], number=7, interpreted_type="PTV",
                         color=(255, 128, 0)),
        syn.SyntheticROI("Kidney_L", [rect(0, 0, 5, 5, 30)], number=3, interpreted_type="ORGAN",
                         color=None),
    ]  # fmt: skip
    ss = read_rtstruct(write_rtstruct(tmp_path, rois, ct[0]), reference=ct[1])
    assert ss.names == ["PTV", "Kidney_L"]
    assert [s.number for s in ss] == [7, 3]
    assert [s.interpreted_type for s in ss] == ["PTV", "ORGAN"]
    assert ss["PTV"].color == (255, 128, 0) and ss["Kidney_L"].color is None
    assert ss.referenced_series_uid == ct[1].series_instance_uid
    assert ss.frame_of_reference_uid == ct[1].frame_of_reference_uid
    assert all(s.frame_of_reference_uid == ct[1].frame_of_reference_uid for s in ss)
    assert ss.warnings == ()


def test_volumes_multiple_contours_holes_and_keyholes(tmp_path, ct):
    rois = [
        # 10 x 10 mm on 3 slices: 100 mm^2 x 2.5 mm x 3 = 750 mm^3
        syn.SyntheticROI("box", [rect(0, 0, 10, 10, z) for z in (30, 32.5, 35)]),
        # two islands per slice, 2 slices: (100 + 50) x 2.5 x 2 = 750 mm^3
        syn.SyntheticROI("islands", [c for z in (30, 32.5)
                                     for c in (rect(0, 0, 10, 10, z), rect(20, 0, 25, 10, z))]),
        # ring: 20 x 20 outer, 10 x 10 nested hole, 2 slices: 300 x 2.5 x 2 = 1500 mm^3
        syn.SyntheticROI("ring", [c for z in (35, 37.5)
                                  for c in (rect(0, 0, 20, 20, z), rect(5, 5, 15, 15, z))]),
        # the same ring as keyhole contours: 1500 mm^3
        syn.SyntheticROI("ring_keyhole", [keyhole(35), keyhole(37.5)]),
        # a single slice: slab = CT spacing -> 100 x 2.5 = 250 mm^3
        syn.SyntheticROI("single", [rect(0, 0, 10, 10, 40)]),
    ]  # fmt: skip
    ss = read_rtstruct(write_rtstruct(tmp_path, rois, ct[0]), reference=ct[1])
    expected_cc = {"box": 0.75, "islands": 0.75, "ring": 1.5, "ring_keyhole": 1.5, "single": 0.25}
    for name, cc in expected_cc.items():
        assert ss[name].volume_cc == pytest.approx(cc, rel=1e-12), name
        assert ss[name].slice_spacing_mm == SPACING
    assert ss.problems == {}


def test_point_and_open_planar_are_read_not_volumes(tmp_path, ct):
    line = np.array([[0, 0, 30], [5, 5, 30], [10, 0, 30]], dtype=float)
    rois = [
        syn.SyntheticROI("iso", [(np.array([[1.0, 2.0, 32.5]]), "POINT")], interpreted_type="MARKER"),
        syn.SyntheticROI("wire", [(line, "OPEN_PLANAR")], interpreted_type="CONTROL"),
    ]  # fmt: skip
    ss = read_rtstruct(write_rtstruct(tmp_path, rois, ct[0]), reference=ct[1])
    iso, wire = ss["iso"], ss["wire"]
    assert not iso.is_volume and not wire.is_volume
    assert iso.contours[0].geometric_type == "POINT"
    np.testing.assert_array_equal(iso.contours[0].points_mm, [[1.0, 2.0, 32.5]])
    assert wire.contours[0].geometric_type == "OPEN_PLANAR"
    np.testing.assert_array_equal(wire.contours[0].points_mm, line)
    assert ss.volumes == ()


def test_contours_off_ct_slices_are_reported(tmp_path, ct):
    rois = [syn.SyntheticROI("GTV", [rect(0, 0, 5, 5, 30), rect(0, 0, 5, 5, 31.2)])]
    with pytest.warns(RtplanWarning) as emitted:  # a Python caller sees it, with the file
        ss = read_rtstruct(write_rtstruct(tmp_path, rois, ct[0]), reference=ct[1])
    assert [str(w.message) for w in emitted] == [f"{ss.source}: {w}" for w in ss.warnings]
    assert ss.warnings == (
        "1 contour(s) of 1 structure(s) not on a CT slice: 'GTV' (1) "
        "(at 31.20 mm along the slice normal)",
    )


def test_contours_off_ct_slices_of_many_structures_give_one_warning(tmp_path, ct):
    # a partial CT series (the CT slices at z = 30..40 mm of a structure set drawn on z =
    # 20..50, 2.5 mm apart): one warning for the set naming the first 5 structures, not 7
    planes = 20.0 + 2.5 * np.arange(13)  # 8 of them off the CT: 20..27.5 and 42.5..50
    rois = [syn.SyntheticROI(f"S{i}", [rect(0, 0, 5, 5, z) for z in planes]) for i in range(7)]
    rois.append(syn.SyntheticROI("on", [rect(0, 0, 5, 5, 32.5)]))  # on a CT slice
    with pytest.warns(RtplanWarning) as emitted:
        ss = read_rtstruct(write_rtstruct(tmp_path, rois, ct[0]), reference=ct[1])
    assert [str(w.message) for w in emitted] == [f"{ss.source}: {ss.warnings[0]}"]
    assert ss.warnings[0] == (
        "56 contour(s) of 7 structure(s) not on a CT slice: 'S0' (8), 'S1' (8), "
        "'S2' (8), 'S3' (8), 'S4' (8) and 2 more "
        "(at 20.00, 22.50, 25.00, 27.50, 42.50 ... mm along the slice normal)"
    )


def test_without_ct_slab_comes_from_contour_planes(tmp_path):
    rois = [syn.SyntheticROI("box", [rect(0, 0, 10, 10, z) for z in (0, 3, 6)])]
    ss = read_rtstruct(write_rtstruct(tmp_path, rois, frame_of_reference_uid="1.2.3"))
    assert ss["box"].slice_spacing_mm is None
    assert ss["box"].volume_cc == pytest.approx(100 * 3 * 3 / 1000)
    assert ss.frame_of_reference_uid == "1.2.3"


def test_lookup_suggests_closest_names(tmp_path):
    rois = [syn.SyntheticROI(n, [rect(0, 0, 1, 1, 0), rect(0, 0, 1, 1, 1)])
            for n in ("PTV_High", "PTV_Low", "SpinalCord")]  # fmt: skip
    ss = read_rtstruct(write_rtstruct(tmp_path, rois))
    assert ss["spinalcord"].name == "SpinalCord"  # unique case-insensitive match
    with pytest.raises(StructureNotFoundError) as err:
        ss["PTV_Hgh"]
    message = str(err.value)
    assert "no structure 'PTV_Hgh'" in message and "\n" not in message
    # the one rule of every command (rtplan.structure.closest_names): normalised, best first
    assert message.endswith("; closest names present: 'PTV_High', 'PTV_Low'")
    with pytest.raises(StructureNotFoundError, match="names present: 'PTV_High', 'PTV_Low', "):
        ss["Bladder"]  # nothing close: the names present
    assert "Cord" not in ss and ss.get("Cord") is None


def test_empty_structure(tmp_path, ct):
    # an empty ROI (placeholder) is listed, not a problem of the set; asked for, it is one
    rois = [syn.SyntheticROI("GTV", [rect(0, 0, 5, 5, 30)]), syn.SyntheticROI("Bowel", [])]
    path = write_rtstruct(tmp_path, rois, ct[0])
    ss = read_rtstruct(path, reference=ct[1])  # strict: the empty ROI does not fail it
    assert ss["GTV"].volume_cc > 0
    assert ss.empty_names == ["Bowel"] and "Bowel" not in ss.problems
    with pytest.raises(ContourError) as err:
        ss["Bowel"]
    message = str(err.value)
    assert str(path) in message and "structure 'Bowel'" in message and "empty" in message
    assert "\n" not in message


def test_self_intersecting_contour(tmp_path):
    bowtie = np.array([[0, 0, 0], [10, 10, 0], [10, 0, 0], [0, 10, 0]], dtype=float)
    rois = [syn.SyntheticROI("CTV", [bowtie, rect(0, 0, 10, 10, 2.5)])]
    path = write_rtstruct(tmp_path, rois)
    with pytest.raises(
        ContourError, match=r"structure 'CTV'.*self-intersecting contour at z=0\.00"
    ):
        read_rtstruct(path)


def test_degenerate_closed_contour(tmp_path):
    rois = [syn.SyntheticROI("GTV", [np.array([[0, 0, 0], [1, 1, 0]], dtype=float)])]
    with pytest.raises(ContourError, match="closed contour with 2 point"):
        read_rtstruct(write_rtstruct(tmp_path, rois))


def test_frame_of_reference_mismatch(tmp_path, ct):
    rois = [syn.SyntheticROI("GTV", [rect(0, 0, 5, 5, 30)])]
    path = write_rtstruct(tmp_path, rois, frame_of_reference_uid="1.2.999")
    with pytest.raises(GeometryError, match="mismatched frames of reference"):
        read_rtstruct(path, reference=ct[1])


def test_roi_in_another_frame_of_reference(tmp_path, ct):
    rois = [
        syn.SyntheticROI("GTV", [rect(0, 0, 5, 5, 30)]),
        syn.SyntheticROI("Liver", [rect(0, 0, 5, 5, 30)], frame_of_reference_uid="1.2.777"),
    ]
    path = write_rtstruct(tmp_path, rois, ct[0])
    with pytest.raises(GeometryError, match=r"structure 'Liver': mismatched frames of reference"):
        read_rtstruct(path, reference=ct[1])
    with pytest.warns(RtplanWarning, match="'Liver' is in frame of reference 1.2.777"):
        ss = read_rtstruct(path, strict=False)  # no CT to compare with: reported, kept
    assert ss["Liver"].frame_of_reference_uid == "1.2.777"
    assert any("'Liver' is in frame of reference 1.2.777" in w for w in ss.warnings)


def test_missing_required_tag(tmp_path):
    ds = syn.rtstruct_dataset_from_contours([syn.SyntheticROI("GTV", [rect(0, 0, 5, 5, 0)])])
    del ds.StructureSetROISequence
    path = syn.write_datasets([ds], tmp_path)[0]
    with pytest.raises(
        DicomReadError, match=r"missing required tag StructureSetROISequence \(3006,0020\)"
    ):
        read_rtstruct(path)


def test_not_an_rtstruct(tmp_path, ct):
    path = syn.write_datasets(ct[0][:1], tmp_path / "one")[0]
    with pytest.raises(DicomReadError, match="not an RTSTRUCT"):
        read_rtstruct(path)
