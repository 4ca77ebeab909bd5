"""Segmentation masks as observers in cohort runs (``rtplan agree``).

Truths:

* Same shapes, same voxels: a NIfTI observer whose masks are the RTSTRUCT observer's own
  rasterisation on the CT gives the *identical* rows (bound 0) -- rtplan compares on the
  CT lattice and takes a mask on that lattice voxel for voxel.
* Same shapes, independent rasterisation: an ellipsoid voxelised analytically (voxel
  centre inside the ellipsoid) against the same ellipsoid drawn as 72-gon contours and
  rasterised by partial-volume coverage (>= 50 %).  Both are slice-by-slice views of one
  region, so they can differ only in voxels the surface passes through; with ``n`` such
  voxels and ``S = |A| + |B|``, Dice moves by at most ``3 n / (S - n)`` (from
  ``D = 2|A∩B| / S`` with ``|A∩B| <= S/2``, each of ``|A∩B|`` and ``|B|`` moving by at most
  ``n``).  The Hausdorff distance moves by at most ``H = HD(B, B')`` (triangle inequality
  of the Hausdorff distance) and so does every directed A -> B distance (pointwise
  ``d(a, B') <= d(a, B) + H``), hence their mean and percentile; rtplan itself measures H.
"""

import csv
import math

import numpy as np
import pytest

from rtplan.cli import main
from rtplan.grid import Grid
from rtplan.io.masks import write_mask
from rtplan.io.rtstruct import read_rtstruct
from rtplan.testing.agreement_phantoms import Ellipsoid, write_observer_patient
from rtplan.workflows.agree import AgreementOptions, run_cohort

CT = Grid(shape=(16, 48, 48), origin_mm=(-24.0, -24.0, 0.0), spacing_mm=(2.5, 1.0, 1.0))
GTV = Ellipsoid("GTV", (0.5, 0.5, 17.5), (10.0, 6.0, 6.0), "GTV", box=True)
LIVER = Ellipsoid("Liver", (1.2, -0.7, 18.0), (14.0, 11.0, 12.0))
OBSERVERS = {
    "manual": [GTV, LIVER],
    "edited": [
        Ellipsoid("GTV", (2.5, 0.5, 17.5), (10.0, 6.0, 6.0), "GTV", box=True),
        Ellipsoid("Liver", (0.3, 1.1, 17.0), (13.0, 12.0, 11.0)),
    ],
}


def _by_pair(rows):
    return {(r["structure"], r["observer_a"], r["observer_b"]): r for r in rows}


@pytest.fixture(scope="module")
def patient(tmp_path_factory):
    folder = tmp_path_factory.mktemp("masks") / "P01"
    paths = write_observer_patient(folder, "P01", OBSERVERS, ct_grid=CT)
    edited = read_rtstruct(paths[1])
    for s in edited.structures:  # the RTSTRUCT observer's own rasterisation, as NIfTI
        write_mask(folder / "auto" / f"{s.name}.nii.gz", s.binary_mask(CT), CT)
    return folder


def test_mask_observer_equals_the_rtstruct_observer_it_was_made_from(patient):
    result = run_cohort([patient], AgreementOptions(), jobs=1)
    assert result.ok, result.failures
    rows = _by_pair(result.rows)
    for structure in ("GTV", "Liver"):
        via_rtstruct = rows[structure, "edited", "manual"]
        via_mask = rows[structure, "auto", "manual"]
        assert via_mask["status"] == "ok"
        for key, value in via_rtstruct.items():
            if key in ("observer_a", "observer_b", "n_observers", "gci"):
                continue
            assert via_mask[key] == value or (math.isnan(value) and math.isnan(via_mask[key])), key
        assert rows[structure, "auto", "edited"]["dice"] == 1.0
        assert rows[structure, "auto", "edited"]["hausdorff_mm"] == 0.0


def test_analytic_voxelisation_agrees_within_the_rasterisation_bound(patient, tmp_path):
    k, j, i = np.indices(CT.shape)
    xyz = CT.index_to_world(np.stack([k, j, i], axis=-1))
    shape = OBSERVERS["edited"][1]
    u = (xyz - np.asarray(shape.centre_mm)) / np.asarray(shape.radii_mm)
    analytic = (u**2).sum(axis=-1) < 1
    folder = tmp_path / "P01"
    folder.mkdir()
    for p in patient.rglob("*.dcm"):
        (folder / p.relative_to(patient)).parent.mkdir(parents=True, exist_ok=True)
        (folder / p.relative_to(patient)).write_bytes(p.read_bytes())
    write_mask(folder / "analytic" / "Liver.nii.gz", analytic, CT)
    options = AgreementOptions(structures=("Liver",))
    rows = _by_pair(run_cohort([folder], options, jobs=1).rows)
    b = rows["Liver", "edited", "manual"]  # manual = A, edited = B (names sort a < e < m)
    b2 = rows["Liver", "analytic", "manual"]
    own = rows["Liver", "analytic", "edited"]
    contour_mask = read_rtstruct(next(patient.glob("RS_edited.dcm")))["Liver"].binary_mask(CT)
    n = int((contour_mask != analytic).sum())
    assert 0 < n < 0.2 * analytic.sum()  # the rasterisations differ, a little
    s = (b["volume_a_cc"] + b["volume_b_cc"]) / (np.prod(CT.spacing_mm) / 1000)
    assert abs(b2["dice"] - b["dice"]) <= 3 * n / (s - n)
    h = own["hausdorff_mm"]
    assert 0 < h <= math.hypot(1.0, 1.0) + 1e-9  # differences stay within a voxel in-plane
    for key in ("hausdorff_mm", "hd95_mm", "mean_a_to_b_mm", "masd_mm"):
        assert abs(b2[key] - b[key]) <= h + 1e-9, key


def test_cli_with_a_nifti_observer_and_a_misfit_mask(patient, tmp_path, capsys):
    out = tmp_path / "agree.csv"
    assert main(["agree", str(patient), "--csv", str(out), "--jobs", "1"]) == 0
    observers = {(r["observer_a"], r["observer_b"]) for r in csv.DictReader(out.open())}
    assert observers == {("auto", "edited"), ("auto", "manual"), ("edited", "manual")}
    bad = tmp_path / "bad"
    for p in patient.rglob("*.dcm"):
        (bad / p.relative_to(patient)).parent.mkdir(parents=True, exist_ok=True)
        (bad / p.relative_to(patient)).write_bytes(p.read_bytes())
    shifted = Grid(CT.shape, (-23.5, -24.0, 0.0), CT.spacing_mm)  # half a voxel in x
    write_mask(bad / "auto" / "GTV.nii.gz", np.ones(CT.shape, bool), shifted)
    capsys.readouterr()
    assert main(["agree", str(bad), "--jobs", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "GTV.nii.gz" in err[0] and "does not fit the CT" in err[0]
