"""Cohort runs from DICOM files: hand-counted truths, failure isolation, identical results
on one process, a process pool and a Dask LocalCluster, and the ``rtplan agree`` CLI.

Truth: box structures whose faces lie on voxel boundaries of the CT (pixel centres on
whole mm, 2.5 mm slices), so every observer's mask is an exact voxel block and Dice and
the generalised conformity index can be counted by hand.
"""

import csv
import json
import math

import numpy as np
import pytest

from rtplan.cli import main
from rtplan.grid import Grid
from rtplan.testing.agreement_phantoms import Ellipsoid, write_observer_patient
from rtplan.workflows.agree import AgreementOptions, columns, find_patients, run_cohort

CT = Grid(shape=(12, 40, 40), origin_mm=(-20.0, -20.0, 0.0), spacing_mm=(2.5, 1.0, 1.0))


def _box(name, dx=0.0, dz=0.0):
    # x in [-9.5, 10.5] (20 px), y in [-4.5, 5.5] (10 px), planes 7.5..17.5 (5 slices)
    return Ellipsoid(name, (0.5 + dx, 0.5, 12.5 + dz), (10.0, 5.0, 6.0), "GTV", box=True)


def _liver():
    return Ellipsoid("Liver", (0.0, 0.0, 12.5), (12.0, 12.0, 8.0))


OBSERVERS = {
    "obs1": [_box("GTV"), _liver(), Ellipsoid("Spleen", (0.0, 0.0, 12.5), (5.0, 5.0, 5.0))],
    "obs2": [_box("GTV", dx=2.0), _liver()],
    "obs3": [_box("gtv", dz=2.5)],  # other spelling; no liver
}
# hand counts (voxels): |1&2| = 18x10x5, |1&3| = 20x10x4, |2&3| = 18x10x4, each box 1000
DICE = {("obs1", "obs2"): 0.9, ("obs1", "obs3"): 0.8, ("obs2", "obs3"): 0.72}
GCI = (900 + 800 + 720) / (1100 + 1200 + 1280)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("cohort")
    for pid in ("P01", "P02"):
        write_observer_patient(root / pid, pid, OBSERVERS, ct_grid=CT)
    broken = write_observer_patient(root / "P03", "P03", OBSERVERS, ct_grid=CT)
    data = broken[0].read_bytes()
    broken[0].write_bytes(data[: len(data) // 2])  # truncated RTSTRUCT
    return root


def _same(rows_a, rows_b):
    assert len(rows_a) == len(rows_b)
    for a, b in zip(rows_a, rows_b, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            if isinstance(a[k], float) and math.isnan(a[k]):
                assert math.isnan(b[k]), k
            else:
                assert a[k] == b[k], k


def test_rows_match_hand_counts_and_a_broken_patient_is_skipped(cohort):
    result = run_cohort([cohort], AgreementOptions(), jobs=1)
    assert [p for p, _ in result.failures] == [str(cohort / "P03")]
    assert "P03" in result.failures[0][0] and result.failures[0][1]
    assert not result.ok
    gtv = [r for r in result.rows if r["structure"] == "GTV"]
    assert len(gtv) == 6  # two patients x three pairs
    for r in gtv:
        assert r["status"] == "ok" and r["n_observers"] == 3
        assert r["dice"] == pytest.approx(DICE[r["observer_a"], r["observer_b"]], rel=1e-12)
        assert r["gci"] == pytest.approx(GCI, rel=1e-12)
        assert r["volume_a_cc"] == pytest.approx(1000 * 2.5 / 1000, rel=1e-12)
    liver = {
        (r["observer_a"], r["observer_b"]): r for r in result.rows if r["structure"] == "Liver"
    }
    assert liver["obs1", "obs2"]["status"] == "ok" and liver["obs1", "obs2"]["dice"] == 1.0
    assert liver["obs1", "obs3"]["status"] == "b_missing"
    assert math.isnan(liver["obs2", "obs3"]["dice"])
    assert list(result.rows[0]) == columns()
    assert not any(r["structure"] == "Spleen" for r in result.rows)  # only obs1 drew it
    named = run_cohort([cohort / "P01"], AgreementOptions(structures=("spleen",)), jobs=1).rows
    # named explicitly, it is compared and every pair lacking it is flagged (name as drawn)
    assert [(r["observer_a"], r["observer_b"], r["structure"], r["status"]) for r in named] == [
        ("obs1", "obs2", "Spleen", "b_missing"),
        ("obs1", "obs3", "Spleen", "b_missing"),
        ("obs2", "obs3", "Spleen", "a_missing"),
    ]


def test_process_pool_gives_identical_rows(cohort):
    one = run_cohort([cohort], AgreementOptions(), jobs=1)
    two = run_cohort([cohort], AgreementOptions(), jobs=2)
    _same(one.rows, two.rows)
    assert one.failures == two.failures


@pytest.mark.slow
def test_dask_local_cluster_gives_identical_rows(cohort):
    distributed = pytest.importorskip("dask.distributed")
    one = run_cohort([cohort], AgreementOptions(reference="staple"), jobs=1)
    # in-process workers keep this test short; pickling across processes is covered by the
    # process-pool test, and the benchmark runs a multi-process cluster
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False) as cluster:
        on_dask = run_cohort(
            [cohort], AgreementOptions(reference="staple"), scheduler=cluster.scheduler_address
        )
    _same(one.rows, on_dask.rows)
    assert one.failures == on_dask.failures


def test_reference_staple_and_reference_observer(cohort):
    staple_rows = run_cohort([cohort / "P01"], AgreementOptions(reference="staple"), jobs=1).rows
    gtv = [r for r in staple_rows if r["structure"] == "GTV"]
    assert [(r["observer_a"], r["observer_b"]) for r in gtv] == [
        ("STAPLE", "obs1"),
        ("STAPLE", "obs2"),
        ("STAPLE", "obs3"),
    ]
    assert all(
        0 < r["staple_sensitivity_b"] <= 1 and 0 < r["staple_specificity_b"] <= 1 for r in gtv
    )
    liver = [r for r in staple_rows if r["structure"] == "Liver"]
    assert [r["status"] for r in liver] == ["ok", "ok", "b_missing"]
    ref = run_cohort([cohort / "P01"], AgreementOptions(reference="obs2"), jobs=1).rows
    gtv = {r["observer_b"]: r for r in ref if r["structure"] == "GTV"}
    assert set(gtv) == {"obs1", "obs3"} and {r["observer_a"] for r in ref} == {"obs2"}
    assert gtv["obs3"]["dice"] == pytest.approx(DICE["obs2", "obs3"], rel=1e-12)
    unknown = run_cohort([cohort / "P01"], AgreementOptions(reference="nobody"), jobs=1)
    assert not unknown.rows and "no observer 'nobody'" in unknown.failures[0][1]


def test_find_patients_layouts(tmp_path, cohort):
    assert find_patients(cohort) == [cohort / "P01", cohort / "P02", cohort / "P03"]
    assert find_patients(cohort / "P01") == [cohort / "P01"]  # RTSTRUCTs directly inside
    nested = tmp_path / "P09"  # a CT/ + RS/ layout: sub-folders of one patient
    for path in write_observer_patient(nested, "P09", OBSERVERS, ct_grid=CT):
        (nested / "RS").mkdir(exist_ok=True)
        path.rename(nested / "RS" / path.name)
    assert find_patients(nested) == [nested]
    assert len(run_cohort([nested], jobs=1).rows) == 6  # GTV and Liver, three pairs each


def test_cli_writes_csv_json_plots_and_exit_code_1_on_a_skipped_patient(cohort, tmp_path, capsys):
    out_csv, plots = tmp_path / "agree.csv", tmp_path / "plots"
    code = main(
        ["agree", str(cohort), "--structure", "GTV", "--csv", str(out_csv), "--plots", str(plots),
         "--json", "--jobs", "1", "--tolerance-mm", "2"]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1
    assert "skipped" in captured.err and "P03" in captured.err
    with open(out_csv, newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 6 and list(table[0]) == columns()
    assert sorted({float(r["dice"]) for r in table}) == pytest.approx(sorted(set(DICE.values())))
    assert all(float(r["tolerance_mm"]) == 2.0 for r in table)

    def refuse(token):
        raise AssertionError(f"non-standard JSON constant {token}")

    document = json.loads(captured.out, parse_constant=refuse)  # NaN/inf written as null
    assert len(document["rows"]) == 6 and document["metadata"]["failures"]
    assert any(s["metric"] == "gci" for s in document["summary"])
    assert (plots / "dice.png").stat().st_size > 0 and (plots / "hd95_mm.png").exists()
    with pytest.raises(SystemExit) as exc:  # a usage error, found when parsing
        main(["agree", str(cohort / "P01"), "--jobs", "0"])
    assert exc.value.code == 2
    assert main(["agree", str(cohort / "P01"), "--jobs", "1", "--no-progress"]) == 0


def test_malformed_structure_is_treated_as_missing_with_a_note(tmp_path):
    import pydicom

    from rtplan.testing.synthetic import (
        SyntheticROI,
        rtstruct_dataset_from_contours,
        write_datasets,
    )

    folder = tmp_path / "P10"
    write_observer_patient(
        folder, "P10", {"obs1": [_box("GTV")], "obs2": [_box("GTV", dx=2.0)]}, ct_grid=CT
    )
    ct = [pydicom.dcmread(p) for p in sorted((folder / "CT").iterdir())]
    bowtie = np.array([[-5, -5, 10], [5, 5, 10], [5, -5, 10], [-5, 5, 10]], float)
    ds = rtstruct_dataset_from_contours(
        [SyntheticROI("GTV", [bowtie])], ct_datasets=ct, label="obs3"
    )
    write_datasets([ds], folder, ["RS_obs3.dcm"])
    result = run_cohort([folder], jobs=1)
    status = {(r["observer_a"], r["observer_b"]): r["status"] for r in result.rows}
    assert status == {
        ("obs1", "obs2"): "ok",
        ("obs1", "obs3"): "b_missing",
        ("obs2", "obs3"): "b_missing",
    }
    assert len(result.notes) == 1 and "obs3" in result.notes[0] and "GTV" in result.notes[0]
    assert result.ok


def test_summary_counts_what_it_leaves_out():
    from rtplan.agreement.summary import summarise

    rows = [
        {"patient": "P1", "structure": "GTV", "status": "ok", "gci": 0.8, "dice": 0.9, "hd95_mm": 2.0},
        {"patient": "P1", "structure": "GTV", "status": "b_empty", "gci": 0.8, "dice": 0.0, "hd95_mm": math.inf},
        {"patient": "P2", "structure": "GTV", "status": "b_missing", "gci": 0.6, "dice": math.nan, "hd95_mm": math.nan},
        {"patient": "P2", "structure": "GTV", "status": "ok", "gci": 0.6, "dice": 0.7, "hd95_mm": 4.0},
    ]  # fmt: skip
    out = {s["metric"]: s for s in summarise(rows, metrics=("dice", "hd95_mm"))}
    assert out["dice"]["n"] == 4 and out["dice"]["n_nan"] == 1 and out["dice"]["n_flagged"] == 2
    assert out["dice"]["median"] == pytest.approx(0.7) and out["dice"]["min"] == 0.0
    assert out["hd95_mm"]["n_inf"] == 1 and out["hd95_mm"]["mean"] == pytest.approx(3.0)
    assert out["gci"]["n"] == 2 and out["gci"]["mean"] == pytest.approx(0.7)  # once per patient


def test_box_plots_show_every_pair_as_a_point_and_state_the_tolerance(cohort):
    """Truth: the finite values of the rows (one point each) and the run's tolerance."""
    from rtplan.report.agreement import box_plots

    rows = run_cohort([cohort], AgreementOptions(tolerance_mm=2.0), jobs=1).rows
    figures = box_plots(rows, ("dice", "surface_dice"))
    for metric, fig in figures.items():
        ax = fig.axes[0]
        points = sum(len(c.get_offsets()) for c in ax.collections)
        assert points == sum(math.isfinite(r[metric]) for r in rows)
        pairs = {(r["observer_a"], r["observer_b"]) for r in rows}
        assert len(ax.collections) == len(pairs)
    assert "tolerance 2 mm" in figures["surface_dice"].axes[0].get_title()
    assert "tolerance" not in figures["dice"].axes[0].get_title()


def test_a_misspelt_structure_exits_2_naming_the_closest_names(cohort, tmp_path, capsys):
    # 'Livr' is in no observer's set of any patient: one line naming it and 'Liver'
    # (the closest names, rtplan.structure.names_hint), no rows, no output written
    out_csv = tmp_path / "agree.csv"
    argv = ["agree", str(cohort / "P01"), "--structure", "GTV", "--structure", "Livr",
            "--jobs", "1", "--no-progress", "--csv", str(out_csv)]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "'Livr'" in err[0] and "closest names present: 'Liver'" in err[0], err
    assert "'GTV'" not in err[0]
    assert not out_csv.exists()
    # a name one patient lacks but another has: compared where drawn, a note for the other
    lacking = tmp_path / "P04"
    write_observer_patient(lacking, "P04", {k: v[:1] for k, v in OBSERVERS.items()}, ct_grid=CT)
    result = run_cohort([cohort / "P01", lacking], AgreementOptions(structures=("Liver",)), jobs=1)
    assert result.notes == ["P04: no observer has 'Liver'"]
    assert {r["patient"] for r in result.rows if r["status"] == "ok"} == {"P01"}
