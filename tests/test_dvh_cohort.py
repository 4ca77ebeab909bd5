"""``rtplan dvh`` over a folder of patients (rtplan.workflows.dvh_cohort).

Truths: the single-patient command on each patient (the cohort's rows must carry its exact
numbers); the in-process run (a Dask LocalCluster must give identical files); the curve's
own definition (volume at 0 Gy = the structure volume = 100 %).
"""

import csv
import shutil

import distributed
import pytest

from rtplan.cli import main
from rtplan.workflows.dvh import dvh_folder
from rtplan.workflows.dvh_cohort import CURVE_COLUMNS, DVH_COLUMNS, dvh_cohort


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from rtplan.testing.synthetic import write_phantom_patient

    root = tmp_path_factory.mktemp("dvh_cohort")
    for i in range(3):
        write_phantom_patient(root / f"P{i}", patient_id=f"PH{i}", prescription_gy=50.0 + i)
    return root


def _read(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_cohort_rows_equal_single_patient_runs_and_dask(cohort, tmp_path):
    out = dvh_cohort([cohort], csv_path=tmp_path / "a.csv", curves_path=tmp_path / "c.csv", jobs=1)
    assert out.exit_code == 0 and out.patients == 3 and not out.failures
    rows = _read(tmp_path / "a.csv")
    assert tuple(rows[0]) == DVH_COLUMNS
    for i in range(3):
        single = dvh_folder(cohort / f"P{i}").report
        mine = [r for r in rows[1:] if r[0] == f"PH{i}"]
        for s in single["structures"]:
            got = {r[5]: r[6] for r in mine if r[4] == s["name"]}
            assert float(got["volume"]) == s["volume_cc"]
            for m, v in s["metrics"].items():
                assert (got[m] == "" and v is None) or float(got[m]) == v
    curves = _read(tmp_path / "c.csv")
    assert tuple(curves[0]) == CURVE_COLUMNS
    first = [r for r in curves[1:] if r[0] == "PH0" and r[4] == "PTV"][0]
    assert float(first[5]) == 0.0 and float(first[7]) == pytest.approx(100.0)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False) as c:
        dvh_cohort(
            [cohort], csv_path=tmp_path / "d.csv", curves_path=tmp_path / "e.csv",
            scheduler=c.scheduler_address,
        )  # fmt: skip
    assert (tmp_path / "d.csv").read_bytes() == (tmp_path / "a.csv").read_bytes()
    assert (tmp_path / "e.csv").read_bytes() == (tmp_path / "c.csv").read_bytes()


def test_cli_cohort_pool_skips_a_broken_patient(cohort, tmp_path, capsys):
    broken = tmp_path / "cohort"
    shutil.copytree(cohort, broken)
    for p in (broken / "P1" / "dose").glob("*.dcm"):
        p.write_bytes(p.read_bytes()[:500])
    code = main(["dvh", str(broken), "--csv", str(tmp_path / "x.csv"), "--jobs", "2"])
    assert code == 1
    err = capsys.readouterr().err
    assert "skipped" in err and "P1" in err
    patients = {r[0] for r in _read(tmp_path / "x.csv")[1:]}
    assert patients == {"PH0", "PH2"}


def test_unreachable_scheduler_is_exit_2(cohort, capsys):
    code = main(
        ["dvh", str(cohort), "--scheduler", "tcp://127.0.0.1:9", "--scheduler-timeout", "1"]
    )
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tcp://127.0.0.1:9" in err[0]
