"""Real structure-set exports kept in tests/data (origin and licence in each README):

* ``rtutils_mock_data``: a structure set written by rt-utils (before 1.2.6) on a 2-slice GE CT;
  it references the CT series by UID but declares a random frame of reference of its own.

Truths: the contours read with pydicom (shoelace areas, the inner contour a hole) times the
CT slice spacing read from the two ImagePositionPatient values, and the CT's own
FrameOfReferenceUID.
"""

from __future__ import annotations

import json
import lzma
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from conftest import dciodvfy

from rtplan.cli import main
from rtplan.errors import GeometryError
from rtplan.io.ct import read_ct_series
from rtplan.io.rtstruct import read_rtstruct

RT_UTILS = Path(__file__).parent / "data" / "rtutils_mock_data"


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rtutils_mock_data")
    for xz in sorted(RT_UTILS.glob("*.dcm.xz")):
        (folder / xz.name[:-3]).write_bytes(lzma.decompress(xz.read_bytes()))
    return folder


def _shoelace_mm2(flat) -> float:
    p = np.asarray(flat, float).reshape(-1, 3)
    x, y = p[:, 0], p[:, 1]
    return 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))


def _truth_cc(export: Path) -> float:
    """ROI-1 = outer square minus the contour inside it, as a slab one CT spacing thick."""
    z = sorted(
        float(pydicom.dcmread(export / f).ImagePositionPatient[2]) for f in ("ct_1.dcm", "ct_2.dcm")
    )
    areas = sorted(
        _shoelace_mm2(c.ContourData)
        for c in pydicom.dcmread(export / "rt.dcm").ROIContourSequence[0].ContourSequence
    )
    return (areas[1] - areas[0]) * (z[1] - z[0]) / 1000.0


def test_declared_frame_is_not_the_ct_frame(export):
    """The layout the tests are about, read with pydicom (guards the data, not rtplan)."""
    ct = pydicom.dcmread(export / "ct_1.dcm")
    ss = pydicom.dcmread(export / "rt.dcm")
    ref = ss.ReferencedFrameOfReferenceSequence[0]
    series = ref.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert ref.FrameOfReferenceUID != ct.FrameOfReferenceUID
    assert series.SeriesInstanceUID == ct.SeriesInstanceUID


def test_info_reads_the_rt_utils_structure_set_in_the_ct_frame(export, capsys):
    assert main(["info", str(export), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    ct_frame = str(pydicom.dcmread(export / "ct_1.dcm").FrameOfReferenceUID)
    (patient,) = out["patients"]
    (frame,) = patient["frames_of_reference"]
    assert frame["frame_of_reference_uid"] == ct_frame
    (ss,) = frame["structure_sets"]
    assert any("contours taken in the series' frame" in w for w in ss["warnings"])
    (roi,) = ss["structures"]
    assert roi["volume_cc"] == pytest.approx(_truth_cc(export), rel=1e-3)


@pytest.mark.requires_tool("dciodvfy")
def test_expand_writes_a_valid_structure_set_in_the_ct_frame(export, tmp_path):
    out = tmp_path / "out"
    argv = ["expand", str(export), "--structure", "ROI-1", "--name", "X", "--margin", "5"]
    assert main([*argv, "--out", str(out)]) == 0
    (written,) = sorted(out.glob("*.dcm"))
    ds = pydicom.dcmread(written)
    ct_frame = str(pydicom.dcmread(export / "ct_1.dcm").FrameOfReferenceUID)
    assert [str(r.ReferencedFrameOfReferenceUID) for r in ds.StructureSetROISequence] == [
        ct_frame
    ] * 2
    result = subprocess.run([dciodvfy(), str(written)], capture_output=True, text=True)
    assert [line for line in result.stderr.splitlines() if line.startswith("Error")] == []


def test_another_frame_without_the_series_reference_is_still_refused(export, tmp_path):
    ds = pydicom.dcmread(export / "rt.dcm")
    series = ds.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0]
    series.RTReferencedSeriesSequence[0].SeriesInstanceUID = "1.2.3.4"
    ds.save_as(tmp_path / "rt.dcm")
    ct = read_ct_series([export / "ct_1.dcm", export / "ct_2.dcm"])
    with pytest.raises(GeometryError, match="mismatched frames of reference"):
        read_rtstruct(tmp_path / "rt.dcm", reference=ct)


@pytest.mark.parametrize(("margin_mm", "beyond"), [("5", True), ("2", False)])
def test_expand_says_when_the_new_volume_reaches_beyond_the_ct(
    export, tmp_path, capsys, margin_mm, beyond
):
    """ROI-1 lies on the first of the two CT slices (z 60 and 65 mm, slab 57.5-62.5 mm): grown
    by 5 mm it covers the slab centred at z = 55 mm, where there is no CT slice; by 2 mm it
    does not."""
    argv = ["expand", str(export), "--structure", "ROI-1", "--name", "X", "--margin", margin_mm]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "beyond the CT" in line]
    assert len(lines) == int(beyond)
    if beyond:
        assert "1 slice position(s) beyond the CT not written" in lines[0]
