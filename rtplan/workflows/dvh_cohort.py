"""``rtplan dvh`` over a cohort: every patient's DVH metrics as one long table, and curves.

:func:`dvh_cohort` runs :func:`rtplan.workflows.dvh.dvh_folder` on every patient folder
(found as ``rtplan agree`` finds them: :func:`rtplan.workflows.patients.find_patients`) on
this process, a local process pool or a Dask cluster (:mod:`rtplan.workflows.execution`:
absolute paths, results in patient order whatever ran where, bounded memory).  Rows are
written to the CSV files as patients complete (streamed to a temporary file beside the
target, renamed when the run ends: a file is complete or absent).

Long table (``--csv``): one row per patient x plan x structure x metric, columns
:data:`DVH_COLUMNS`: the requested metrics plus ``volume`` (cc) and
``outside_dose_volume`` (cc) of every structure; a value that cannot be given is empty and
``flags`` says why.  Curves (``--curves``): cumulative DVHs sampled every
``curve_step_gy`` from 0 Gy to the structure's maximum dose, columns
:data:`CURVE_COLUMNS`; ``volume_percent`` is of the structure's volume.  A patient that
cannot be read is listed with its one-line error and skipped (exit code 1).
"""

from __future__ import annotations

import csv
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rtplan.errors import InputError, RtplanError
from rtplan.sanitize import csv_cell
from rtplan.workflows.execution import DEFAULT_TIMEOUT_S, absolute_paths, run_each

#: Columns of the long DVH table.
DVH_COLUMNS = (
    "patient_id", "plan", "structure_set", "dose", "structure", "metric", "value", "unit",
    "flags",
)  # fmt: skip
#: Columns of the long curve table.
CURVE_COLUMNS = (
    "patient_id", "plan", "structure_set", "dose", "structure", "dose_gy", "volume_cc",
    "volume_percent",
)  # fmt: skip
#: Default dose step of the curves (Gy).
DEFAULT_CURVE_STEP_GY = 0.1


@dataclass(frozen=True)
class PatientDvh:
    """Rows (or the error) of one patient."""

    folder: str
    rows: list = field(default_factory=list)
    curves: list = field(default_factory=list)
    messages: tuple[str, ...] = ()
    error: str | None = None
    exit_code: int = 0


@dataclass(frozen=True)
class CohortDvh:
    """What :func:`dvh_cohort` did."""

    patients: int
    rows: int
    curve_rows: int
    failures: list[tuple[str, str]]
    messages: list[str]
    exit_code: int


def _labels(report: dict) -> dict:
    """patient_id, plan, structure_set and dose names of a report (labels from the files)."""
    import pydicom

    def label(path, keyword):
        if not path:
            return ""
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=[keyword])
        return str(getattr(ds, keyword, "") or "") or Path(path).name

    inputs = report["inputs"]
    return {
        "patient_id": report["patient_id"],
        "plan": label(inputs["RTPLAN"], "RTPlanLabel"),
        "structure_set": label(inputs["RTSTRUCT"], "StructureSetLabel"),
        "dose": "+".join(Path(p).name for p in inputs["RTDOSE"]),
    }


def long_rows(report: dict, labels: dict) -> list[tuple]:
    """Long-table rows (:data:`DVH_COLUMNS` order) of one ``rtplan-dvh/1`` report."""
    out = []
    for r in report["structures"]:
        flags = "; ".join(r["flags"])
        values = [
            ("volume", r["volume_cc"], "cc"),
            ("outside_dose_volume", r["outside_dose_cc"], "cc"),
        ]
        values += [(m, v, r["units"].get(m, "")) for m, v in r["metrics"].items()]
        for metric, value, unit in values:
            out.append((*labels.values(), r["name"], metric, value, unit, flags))
    return out


def curve_rows(dvhs: dict, labels: dict, step_gy: float) -> list[tuple]:
    """Curve rows (:data:`CURVE_COLUMNS` order) of one patient's DVHs."""
    out = []
    for name, dvh in dvhs.items():
        dose, volume = dvh.curve(step_gy)
        total = dvh.volume_cc
        for d, v in zip(dose.tolist(), volume.tolist(), strict=True):
            pct = 100.0 * v / total if total > 0 else math.nan
            out.append((*labels.values(), name, round(d, 10), v, pct))
    return out


def write_curves(path: str | os.PathLike, dvhs: dict, report: dict, step_gy: float) -> None:
    """One patient's curve rows (:func:`curve_rows`) as a CSV file, through a temporary file."""
    out = _StreamedCsv(path, CURVE_COLUMNS)
    out.write(curve_rows(dvhs, _labels(report), step_gy))
    out.commit()


def dvh_patient(folder: str, options: dict, curve_step_gy: float | None) -> PatientDvh:
    """One patient's rows; errors become the outcome's ``error`` (never raised)."""
    from rtplan.workflows.dvh import dvh_folder

    try:
        result = dvh_folder(folder, threads=1, **options)  # the patients run in parallel
        labels = _labels(result.report)
        curves = curve_rows(result.dvhs, labels, curve_step_gy) if curve_step_gy else []
        return PatientDvh(
            folder, long_rows(result.report, labels), curves, result.messages,
            exit_code=result.exit_code,
        )  # fmt: skip
    except RtplanError as exc:
        return PatientDvh(folder, error=str(exc))
    except Exception as exc:  # noqa: BLE001 - a bug on one patient must not stop the cohort
        return PatientDvh(folder, error=f"internal error {type(exc).__name__}: {exc}")


class _StreamedCsv:
    """A CSV file written row by row into a temporary file, renamed on :meth:`commit`."""

    def __init__(self, path, columns):
        self.path = Path(path)
        fd, self.tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".csv", dir=self.path.parent)
        self.fh = os.fdopen(fd, "w", newline="", encoding="utf-8")
        self.writer = csv.writer(self.fh)
        self.writer.writerow(columns)
        self.count = 0

    def write(self, rows):
        for row in rows:
            self.writer.writerow([_cell(v) for v in row])
        self.count += len(rows)

    def commit(self):
        self.fh.close()
        os.replace(self.tmp, self.path)

    def discard(self):
        self.fh.close()
        if os.path.exists(self.tmp):
            os.unlink(self.tmp)


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return csv_cell(value)


def patient_folders(path: str | os.PathLike) -> list[Path]:
    """Patient folders under ``path`` (the rule of ``rtplan agree``)."""
    from rtplan.workflows.patients import find_patients

    return find_patients(path)


def dvh_cohort(
    paths: Sequence[str | os.PathLike],
    *,
    csv_path: str | os.PathLike | None = None,
    curves_path: str | os.PathLike | None = None,
    curve_step_gy: float = DEFAULT_CURVE_STEP_GY,
    jobs: int | None = None,
    scheduler: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    progress: bool = False,
    **options,
) -> CohortDvh:
    """DVH metrics (and curves) of every patient under ``paths`` (module docstring).

    ``options`` are :func:`rtplan.workflows.dvh.dvh_folder` keywords (structures,
    metrics, selection, end_cap, outside_tolerance, fraction_dose).

    Raises
    ------
    InputError
        Bad options, an unusable scheduler, an unwritable output.
    """
    if curves_path and not curve_step_gy > 0:
        raise InputError(f"--curve-step must be > 0 Gy, got {curve_step_gy}")
    folders = absolute_paths([f for p in paths for f in patient_folders(p)])
    outputs = []
    try:
        table = _StreamedCsv(csv_path, DVH_COLUMNS) if csv_path else None
        curves = _StreamedCsv(curves_path, CURVE_COLUMNS) if curves_path else None
    except OSError as exc:
        raise InputError(f"cannot write file: {exc.strerror or exc}") from None
    outputs = [o for o in (table, curves) if o is not None]
    try:
        outcomes = run_each(
            dvh_patient, folders, jobs=jobs, scheduler=scheduler, timeout_s=timeout_s,
            progress=progress, options=options, curve_step_gy=curve_step_gy if curves else None,
        )  # fmt: skip
        result = _gather(outcomes, len(folders), table, curves)
    except BaseException:
        for o in outputs:
            o.discard()
        raise
    for o in outputs:
        o.commit()
    return result


def _gather(outcomes, n_folders: int, table, curves) -> CohortDvh:
    """The patients' outcomes, in order: rows streamed to ``table`` and ``curves`` (when
    written), failures and messages kept, the exit code (a failure: 1, or 2 with no rows)."""
    failures, messages, code, n_rows, n_curves = [], [], 0, 0, 0
    for outcome in outcomes:
        if outcome.error is not None:
            failures.append((outcome.folder, outcome.error))
            continue
        code = max(code, outcome.exit_code)
        messages += [f"{Path(outcome.folder).name}: {m}" for m in outcome.messages]
        n_rows += len(outcome.rows)
        n_curves += len(outcome.curves)
        if table is not None:
            table.write(outcome.rows)
        if curves is not None:
            curves.write(outcome.curves)
    if failures:
        code = 1 if n_rows else 2
    return CohortDvh(n_folders, n_rows, n_curves, failures, messages, code)
