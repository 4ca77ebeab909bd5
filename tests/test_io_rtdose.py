"""RTDOSE reader.  Truth: each synthetic dose is a known linear function of the LPS position,
D(x, y, z) = 10 + 0.05 x + 0.03 y + 0.02 z (Gy), written on the writer's own grid; the reader
must give every voxel the value of D at the position its grid assigns to that voxel (up to the
DoseGridScaling quantum).  Trilinear resampling of a linear function is exact, so summed beam
doses on different grids have a closed-form truth too."""

from __future__ import annotations

import numpy as np
import pytest

from rtplan.errors import DicomReadError, DoseCoverageError, InputError
from rtplan.io.rtdose import read_dose_files, read_rtdose, sum_beam_doses
from rtplan.io.rtplan import read_rtplan
from rtplan.testing import synthetic as syn

FRAME, STUDY = "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2"


def linear_dose(points_mm, scale=1.0):
    p = np.asarray(points_mm, dtype=float)
    return scale * (10.0 + 0.05 * p[..., 0] + 0.03 * p[..., 1] + 0.02 * p[..., 2])


def grid_points(grid):
    k, j, i = np.meshgrid(*(np.arange(n) for n in grid.shape), indexing="ij")
    return grid.index_to_world(np.stack([k, j, i], axis=-1).reshape(-1, 3)).reshape(
        grid.shape + (3,)
    )


def write_dose(tmp_path, grid, values=None, name="dose.dcm", **kw):
    values = linear_dose(grid_points(grid)) if values is None else values
    kw.setdefault("frame_of_reference_uid", FRAME)
    kw.setdefault("study_uid", STUDY)
    ds = syn.rtdose_dataset(values, grid, **kw)
    return syn.write_datasets([ds], tmp_path, names=[name])[0], ds


def assert_matches_linear(dose, ds, scale=1.0):
    quantum = float(ds.DoseGridScaling) * dose.fraction_scaling
    truth = linear_dose(grid_points(dose.grid), scale)
    assert np.max(np.abs(dose.values_gy - truth)) <= quantum * 0.51 + 1e-5 * truth.max()


def write_plan(tmp_path, fractions=25, prescription=50.0, beams=2, name="plan.dcm"):
    ds = syn.rtplan_dataset(
        "P1",
        fractions,
        prescription,
        [syn.SyntheticBeam(f"B{n}", 1.0) for n in range(1, beams + 1)],
        patient_id="P",
        patient_name="P",
        study_uid=STUDY,
        frame_of_reference_uid=FRAME,
        referenced_structure_set_uid="1.2.3",
    )
    return read_rtplan(syn.write_datasets([ds], tmp_path, names=[name])[0])


@pytest.mark.parametrize("position", list(syn.PATIENT_POSITION_IOP))
@pytest.mark.parametrize("reverse_frames", [False, True], ids=["increasing", "decreasing"])
def test_relative_offsets_every_orientation(tmp_path, position, reverse_frames):
    grid = syn.cardinal_grid((4, 5, 6), (-20.0, 15.0, 40.0), (3.0, 2.5, 2.0), position)
    path, ds = write_dose(tmp_path, grid, reverse_frames=reverse_frames)
    assert float(ds.GridFrameOffsetVector[0]) == 0.0
    if reverse_frames:
        assert float(ds.GridFrameOffsetVector[-1]) < 0
    dose = read_rtdose(path)
    assert_matches_linear(dose, ds)
    assert dose.grid.same_as(grid)
    assert dose.summation_type == "PLAN" and dose.fraction_scaling == 1


def test_absolute_offsets(tmp_path):
    grid = syn.cardinal_grid((4, 5, 6), (-20.0, 15.0, 40.0), (3.0, 2.5, 2.0), "HFS")
    path, ds = write_dose(tmp_path, grid, gfov_mode="absolute")
    assert float(ds.GridFrameOffsetVector[0]) == 40.0  # = ImagePositionPatient z
    dose = read_rtdose(path)
    assert_matches_linear(dose, ds)
    assert dose.grid.same_as(grid)


def test_non_uniform_offsets_and_32_bit(tmp_path):
    grid = syn.cardinal_grid(
        (4, 5, 6), (-20.0, 15.0, 40.0), (2.0, 2.5, 2.0), "FFS", slice_offsets_mm=(0, 2, 5, 11)
    )
    path, ds = write_dose(tmp_path, grid, bits=32, reverse_frames=True)
    dose = read_rtdose(path)
    assert dose.grid.slice_offsets_mm == (0.0, 2.0, 5.0, 11.0)
    assert_matches_linear(dose, ds)


def test_single_frame(tmp_path):
    grid = syn.cardinal_grid((1, 5, 6), (-20.0, 15.0, 40.0), (3.0, 2.5, 2.0), "HFS")
    path, ds = write_dose(tmp_path, grid)
    dose = read_rtdose(path)
    assert dose.grid.shape == (1, 5, 6)
    assert_matches_linear(dose, ds)


def test_dose_grid_scaling_applied(tmp_path):
    grid = syn.cardinal_grid((2, 2, 2), (0, 0, 0), (1, 1, 1))
    values = np.array([0.0, 1.0, 2.5, 7.0, 10.0, 20.0, 40.0, 63.0]).reshape(grid.shape)
    path, ds = write_dose(tmp_path, grid, values)
    dose = read_rtdose(path)
    scaling = float(ds.DoseGridScaling)
    assert scaling != 1.0
    np.testing.assert_allclose(dose.values_gy, ds.pixel_array * scaling, rtol=1e-6)
    np.testing.assert_allclose(dose.values_gy, values, atol=scaling)


def test_bad_offset_vector_is_an_error(tmp_path):
    grid = syn.cardinal_grid((3, 2, 2), (0, 0, 5.0), (2, 1, 1))
    _, ds = write_dose(tmp_path, grid)
    ds.GridFrameOffsetVector = ["3", "5", "7"]  # neither 0 nor IPP z (5) first
    path = syn.write_datasets([ds], tmp_path, names=["bad.dcm"])[0]
    with pytest.raises(DicomReadError, match="GridFrameOffsetVector starts at 3"):
        read_rtdose(path)


def test_fraction_dose_multiplied_by_planned_fractions(tmp_path):
    plan = write_plan(tmp_path, fractions=25, prescription=50.0)
    grid = syn.cardinal_grid((3, 4, 4), (0, 0, 0), (2, 2, 2))
    per_fraction = np.full(grid.shape, 2.0)
    path, ds = write_dose(
        tmp_path,
        grid,
        per_fraction,
        summation_type="FRACTION",
        referenced_plan_uid=plan.sop_instance_uid,
    )
    dose = read_rtdose(path, plan=plan)
    quantum = float(ds.DoseGridScaling)  # stored integers x scaling: within half a quantum
    np.testing.assert_allclose(dose.values_gy, 50.0, atol=25 * quantum / 2)
    assert dose.fraction_scaling == 25 and dose.summation_type == "FRACTION"
    with pytest.raises(InputError, match="give its RTPLAN"):
        read_rtdose(path)
    as_group_total = read_rtdose(path, plan=plan, fraction_dose="group_total")
    np.testing.assert_allclose(as_group_total.values_gy, 2.0, atol=quantum / 2)


def test_fraction_dose_that_is_a_group_total_is_refused(tmp_path):
    plan = write_plan(tmp_path, fractions=25, prescription=50.0)
    grid = syn.cardinal_grid((3, 4, 4), (0, 0, 0), (2, 2, 2))
    path, _ = write_dose(
        tmp_path,
        grid,
        np.full(grid.shape, 51.0),
        summation_type="FRACTION",
        referenced_plan_uid=plan.sop_instance_uid,
    )
    with pytest.raises(InputError, match="group_total"):
        read_rtdose(path, plan=plan)


def test_fraction_dose_with_the_wrong_plan(tmp_path):
    plan = write_plan(tmp_path)
    grid = syn.cardinal_grid((3, 4, 4), (0, 0, 0), (2, 2, 2))
    path, _ = write_dose(
        tmp_path, grid, np.ones(grid.shape), summation_type="FRACTION", referenced_plan_uid="1.9"
    )
    with pytest.raises(InputError, match="refers to plan 1.9"):
        read_rtdose(path, plan=plan)


def test_session_dose_multiplied(tmp_path):
    plan = write_plan(tmp_path, fractions=5, prescription=25.0)
    grid = syn.cardinal_grid((3, 4, 4), (0, 0, 0), (2, 2, 2))
    path, ds = write_dose(
        tmp_path,
        grid,
        np.full(grid.shape, 5.0),
        summation_type="FRACTION_SESSION",
        referenced_plan_uid=plan.sop_instance_uid,
    )
    quantum = float(ds.DoseGridScaling)
    np.testing.assert_allclose(read_rtdose(path, plan=plan).values_gy, 25.0, atol=5 * quantum / 2)


def test_relative_units_refused(tmp_path):
    grid = syn.cardinal_grid((2, 2, 2), (0, 0, 0), (1, 1, 1))
    path, _ = write_dose(tmp_path, grid, np.ones(grid.shape), dose_units="RELATIVE")
    with pytest.raises(InputError, match="RELATIVE"):
        read_rtdose(path)


def test_beam_doses_summed_on_the_same_grid(tmp_path):
    plan = write_plan(tmp_path, beams=2)
    grid = syn.cardinal_grid((3, 4, 5), (-5, -5, 0), (2, 2, 2), "HFP")
    paths = []
    for beam, scale in ((1, 0.4), (2, 0.6)):
        p, _ = write_dose(
            tmp_path,
            grid,
            linear_dose(grid_points(grid), scale),
            name=f"beam{beam}.dcm",
            summation_type="BEAM",
            referenced_plan_uid=plan.sop_instance_uid,
            referenced_beam_number=beam,
        )
        paths.append(p)
    dose = read_dose_files(paths, plan=plan)
    np.testing.assert_allclose(dose.values_gy, linear_dose(grid_points(grid)), rtol=1e-4)
    assert dose.referenced_beam_numbers == (1, 2) and dose.summation_type == "BEAM"
    with pytest.raises(InputError, match=r"no dose for beam\(s\) \[2\]"):
        sum_beam_doses([read_rtdose(paths[0])], plan=plan)


def test_beam_doses_on_different_grids_are_resampled(tmp_path):
    fine = syn.cardinal_grid((4, 5, 6), (0.0, 0.0, 0.0), (2.0, 2.0, 2.0))
    coarse = syn.cardinal_grid((4, 5, 6), (-3.0, -3.0, -3.0), (3.0, 3.0, 3.0))  # covers fine
    p1, _ = write_dose(tmp_path, fine, linear_dose(grid_points(fine), 0.5), name="b1.dcm",
                       summation_type="BEAM", referenced_beam_number=1)  # fmt: skip
    p2, _ = write_dose(tmp_path, coarse, linear_dose(grid_points(coarse), 0.5), name="b2.dcm",
                       summation_type="BEAM", referenced_beam_number=2)  # fmt: skip
    dose = read_dose_files([p1, p2])
    assert dose.grid.same_as(fine)
    np.testing.assert_allclose(dose.values_gy, linear_dose(grid_points(fine)), rtol=1e-4)
    small = syn.cardinal_grid((2, 2, 2), (0.0, 0.0, 0.0), (2.0, 2.0, 2.0))
    p3, _ = write_dose(tmp_path, small, np.ones(small.shape), name="b3.dcm",
                       summation_type="BEAM", referenced_beam_number=3)  # fmt: skip
    with pytest.raises(DoseCoverageError, match="does not cover"):
        read_dose_files([p1, p3])


def test_embedded_dvh_scaling_applies_to_dose(tmp_path):
    # DVHDoseScaling 0.01 with bin widths of 100 -> 1 Gy bins; volumes must stay as stored.
    grid = syn.cardinal_grid((2, 2, 2), (0, 0, 0), (1, 1, 1))
    dvhs = [
        syn.SyntheticDVH(3, [100.0] * 4, [12.0, 9.0, 4.0, 0.0], dose_scaling=0.01, max_dose=3.5),
        syn.SyntheticDVH(5, [50.0, 50.0], [2.0, 1.0], dose_units="CGY"),
    ]
    path, _ = write_dose(
        tmp_path, grid, np.ones(grid.shape), dvhs=dvhs, referenced_structure_set_uid="1.2.3"
    )
    a, b = read_rtdose(path).embedded_dvhs
    assert a.roi_number == 3 and a.dvh_type == "CUMULATIVE" and a.volume_units == "CM3"
    np.testing.assert_allclose(a.dose_gy, [1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(a.volume_cc, [12.0, 9.0, 4.0, 0.0])
    assert a.max_dose_gy == 3.5 and a.min_dose_gy is None
    np.testing.assert_allclose(b.dose_gy, [0.5, 1.0])  # cGy -> Gy


def test_not_an_rtdose(tmp_path):
    plan_path = syn.write_datasets(
        [syn.rtplan_dataset("P", 1, 1.0, patient_id="P", patient_name="P", study_uid="1.2",
                            frame_of_reference_uid="1.3", referenced_structure_set_uid="1.4")],
        tmp_path,
    )[0]  # fmt: skip
    with pytest.raises(DicomReadError, match="not an RTDOSE"):
        read_rtdose(plan_path)
