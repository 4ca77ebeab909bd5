"""``rtplan dvh`` as a Python function: DVH metrics of the structures of one plan, read from a
folder of DICOM files.

:func:`dvh_folder` chooses the patient's structure set and dose (:mod:`rtplan.io.selection`:
``selection`` holds ``--patient-id``, ``--plan``, ``--structure-set``, ``--dose``,
``--mixed-patients``; several doses are summed on the first one's grid: BEAM doses of one
plan by :func:`rtplan.io.sum_beam_doses`, plans by :func:`rtplan.plansum.sum_doses`),
computes each structure's DVH (:func:`rtplan.dvh.compute`), evaluates the metric strings
(grammar in :mod:`rtplan.dvh.metrics`), optionally compares with the planning system's DVHs
in the RTDOSE (:mod:`rtplan.dvh.embedded`), and writes the CSV table and the plot when asked.
Its result holds the ``rtplan-dvh/1`` report (docs/dvh.md) that ``rtplan dvh --json`` prints.

Empty structures are listed (volume 0, flag ``empty``).  A structure of the set that cannot
be used (broken contours), and contours that belong to no structure
(:class:`rtplan.structure.UnassignedContours`, listed as ``ROI 99``), are listed with their
problem and no numbers, and make the exit code 1; a structure named in ``structures`` that is
empty or broken raises.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from rtplan.defaults import DEFAULT_BIN_POINT, DEFAULT_END_CAP
from rtplan.dosefield import axial_field
from rtplan.dvh.compute import (
    DEFAULT_METRICS,
    DEFAULT_OUTSIDE_TOLERANCE,
    OutsideTolerance,
    compute,
    dose_grid_structure,
)
from rtplan.dvh.embedded import choose_bin_point, choose_end_cap, compare_embedded
from rtplan.dvh.histogram import DVH
from rtplan.dvh.metrics import evaluate, parse
from rtplan.errors import InputError
from rtplan.io.output import OutputSet, check_output_file
from rtplan.io.selection import Selection
from rtplan.report.dvh import to_csv
from rtplan.workflows._select import one_patient
from rtplan.workflows.dvh_cohort import DEFAULT_CURVE_STEP_GY, write_curves

SCHEMA = "rtplan-dvh/1"


@dataclass(frozen=True)
class DvhResult:
    """What :func:`dvh_folder` made.

    Attributes
    ----------
    report : dict
        The ``rtplan-dvh/1`` report (docs/dvh.md).
    dvhs : dict of str to DVH
        The DVH of every structure computed, by name.
    metrics : tuple of str
        The metric strings, in the order asked.
    messages : tuple of str
        Notes for the user (how objects were chosen, flags of structures), each once; the
        command prints them on stderr.  Problems the readers found are emitted as
        :class:`~rtplan.errors.RtplanWarning` (the command line shows each once).
    broken : tuple of str
        Structures of the set that could not be used, and contours that belong to no
        structure (``ROI 99``): listed in the report with their problem.
    """

    report: dict
    dvhs: dict
    metrics: tuple[str, ...]
    messages: tuple[str, ...]
    broken: tuple[str, ...]

    @property
    def exit_code(self) -> int:
        """0, or 1 when a structure of the set (or some of its contours) could not be used."""
        return 1 if self.broken else 0


def dvh_folder(
    path: str | os.PathLike,
    *,
    structures: Sequence[str] | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    selection: Selection | None = None,
    compare_embedded: bool = False,
    end_cap: str = DEFAULT_END_CAP,
    bin_point: str = DEFAULT_BIN_POINT,
    outside_tolerance: OutsideTolerance = DEFAULT_OUTSIDE_TOLERANCE,
    fraction_dose: str = "per_fraction",
    csv: str | os.PathLike | None = None,
    plot: str | os.PathLike | None = None,
    curves: str | os.PathLike | None = None,
    curve_step_gy: float = DEFAULT_CURVE_STEP_GY,
    threads: int | None = None,
) -> DvhResult:
    """DVH metrics of the structures of the plan under ``path`` (``rtplan dvh``).

    Parameters
    ----------
    path : path
        Folder of DICOM files (searched recursively).
    structures : sequence of str, optional
        Structures to compute (default: every volume of the structure set).
    metrics : sequence of str
        Metric strings (``Dmean``, ``D95%``, ``V20Gy``, ...; :mod:`rtplan.dvh.metrics`).
    selection : Selection, optional
        Which patient, plan, structure set and dose (:mod:`rtplan.io.selection`).
    compare_embedded : bool
        Compare with the planning system's DVHs stored in the RTDOSE.
    end_cap : {"auto", "slab", "none"}
        End-cap convention (``auto``: the one matching the planning system's DVHs).
    bin_point : {"auto", "lower", "centre"}
        Where a cumulative volume of the planning system's DVHs sits in its dose bin
        (:func:`rtplan.dvh.embedded.choose_bin_point`); used by ``auto`` end caps and the
        comparison.
    outside_tolerance : OutsideTolerance
        Structure volume allowed outside the dose grid with dose metrics still computed.
    fraction_dose : {"per_fraction", "group_total"}
        How to read DoseSummationType FRACTION.
    csv, plot : path, optional
        Write the CSV table / the cumulative DVH plot (PNG), completely or not at all.
    curves : path, optional
        Write the cumulative DVH curves as a long CSV every ``curve_step_gy`` Gy
        (:func:`rtplan.workflows.dvh_cohort.write_curves`).
    threads : int, optional
        Structures computed at once (each DVH is independent; numpy releases the GIL in
        their array work); default: the CPUs this process may use, at most 4.  The results
        do not depend on it.

    Returns
    -------
    DvhResult

    Raises
    ------
    RtplanError
        Bad input: unwritable output, malformed metric, ambiguous folder, unknown or broken
        structure named in ``structures``, a %Rx metric without a prescription, ...
    """
    metrics = list(metrics)
    selection = selection or Selection()
    _check_outputs(path, selection, csv=csv, plot=plot)
    if not metrics:
        raise InputError("--metrics is empty")
    parsed = [parse(m) for m in metrics]  # malformed strings fail before any reading
    patient, ss, dose = _read(path, selection, fraction_dose)
    rx = _prescription(patient)
    if any(m.needs_prescription for m in parsed) and rx is None:
        raise InputError("a %Rx metric needs a prescription and the plan states none", path=path)
    chosen, broken, empty = _structures(ss, structures)
    # auto matches every usable structure, so a structure's DVH does not depend on which
    # others were asked for
    matched = _usable(ss) if structures and dose.embedded_dvhs else chosen
    point = choose_bin_point(bin_point, dose.embedded_dvhs, rx)
    cap = choose_end_cap(end_cap, matched, dose.embedded_dvhs, prescription_gy=rx,
                         point=point.used)  # fmt: skip
    dvhs, rows = _compute(ss, chosen, dose, cap.used, rx, outside_tolerance, parsed, threads)
    unassigned = () if structures else ss.unassigned
    rows += _unused_rows(ss, broken, empty, metrics) + _unassigned_rows(unassigned, metrics)
    comparison = (
        _compare(dose, chosen, dvhs, rx, ss.empty_names if not structures else [], point.used)
        if compare_embedded
        else None
    )
    outside = _outside_summary(dvhs)
    notes = [*patient.notes, cap.describe(), *outside]
    report = {
        "schema": SCHEMA,
        "path": str(path),
        "patient_id": patient.patient_id,
        "frame_of_reference_uid": dose.frame_of_reference_uid,
        "inputs": _inputs(patient),
        "dose": {
            "source": dose.source,
            "summation_type": dose.summation_type,
            "dose_type": dose.dose_type,
            "kind": dose.kind,
            "max_gy": float(dose.max_gy),
        },
        "prescription_gy": rx,
        "conventions": _conventions(dvhs, cap, outside_tolerance)
        | ({"embedded_bin_point": point.as_dict()} if dose.embedded_dvhs else {}),
        "notes": notes,
        "structures": rows,
    }
    if comparison is not None:
        report["embedded_comparison"] = comparison
    _write(report, dvhs, metrics, csv=csv, plot=plot, curves=curves, curve_step_gy=curve_step_gy)
    broken_names = tuple(s.name for s in broken) + tuple(u.name for u in unassigned)
    return DvhResult(
        report, dvhs, tuple(metrics), _messages([*patient.notes, *outside], rows), broken_names
    )


def _write(report: dict, dvhs: dict, metrics, *, csv, plot, curves, curve_step_gy) -> None:
    """Phase 3: the CSV table and the plot, completely or not at all; then the curves."""
    with OutputSet() as outputs:
        if csv:
            comparison = report.get("embedded_comparison")
            outputs.add(csv, to_csv(report["structures"], metrics, comparison))
        if plot:
            from rtplan.report.plots import dvh_png

            outputs.add(plot, dvh_png(dvhs, title=f"DVH: {report['patient_id']}"))
    if curves:
        write_curves(curves, dvhs, report, curve_step_gy)


def _read(path, selection: Selection, fraction_dose: str):
    """Phase 1: the patient chosen under ``path``, its structure set and its dose (Gy)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        patient = one_patient(path, selection, fraction_dose=fraction_dose)
        return patient, patient.structure_set(), patient.dose()


def _compute(ss, chosen, dose, end_cap: str, rx, outside_tolerance, parsed, threads=None):
    """Phase 2: the DVH of every chosen structure and its report row (one sampling field of
    the dose; on up to ``threads`` threads).  A row's metrics are evaluated on the thread
    that made its DVH, unless a conformity metric needs the prescription isodose volume,
    known once every DVH is."""
    field = axial_field(dose)
    needs_piv = any(m.kind == "ci" for m in parsed)

    def one(s):
        dvh = compute(s, dose, end_cap=end_cap, prescription_gy=rx, field=field,
                      outside_tolerance=outside_tolerance)  # fmt: skip
        return dvh, None if needs_piv else _row(s, dvh, parsed, rx, None)

    done = _each(one, chosen, threads, cost=_box_mm3)
    dvhs = dict(zip([s.name for s in chosen], [d for d, _ in done], strict=True))
    piv = _isodose_volume(ss, dose, field, end_cap, dvhs) if needs_piv else None
    rows = [_row(s, dvh, parsed, rx, piv) if row is None else row
            for s, (dvh, row) in zip(chosen, done, strict=True)]  # fmt: skip
    return dvhs, rows


def _each(fn, items: list, threads: int | None, cost=None) -> list:
    """``[fn(x) for x in items]`` on up to ``threads`` threads (default: the CPUs this
    process may use, at most 4), the costliest items (``cost(x)``) started first so that no
    large one is left running alone at the end; the first item's exception in order is
    raised, as in a loop."""
    if threads is None:
        cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        threads = min(4, len(cpus) if cpus else os.cpu_count() or 1)
    if threads <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    from concurrent.futures import ThreadPoolExecutor

    order = sorted(range(len(items)), key=lambda i: -cost(items[i])) if cost else range(len(items))
    with ThreadPoolExecutor(max_workers=min(threads, len(items))) as pool:
        futures = {i: pool.submit(fn, items[i]) for i in order}
        return [futures[i].result() for i in range(len(items))]


def _box_mm3(structure) -> float:
    """Volume (mm^3) of a structure's bounding box: what its DVH costs, roughly."""
    lo, hi = structure.bounds_mm()
    return float(math.prod(hi - lo))


def _conventions(dvhs: dict, cap, outside_tolerance) -> dict:
    """The report's conventions: the DVHs' (resolution per structure) and the end-cap choice."""
    first = next(iter(dvhs.values()), None)
    base = (
        first.conventions | {"resolution_mm": "per structure"}
        if first is not None
        else {"end_cap": cap.used}
    )
    return base | {
        "end_cap_choice": cap.as_dict(),
        "outside_dose_tolerance": outside_tolerance.describe(),
    }


def _messages(notes: list[str], rows: list[dict]) -> tuple[str, ...]:
    """Notes for stderr: the report's notes without the end cap (the table and JSON state it),
    and each structure's flags but outside-the-grid and empty (the table shows those)."""
    messages = list(notes)
    messages += [
        f"{r['name']}: {flag}"
        for r in rows
        for flag in r["flags"]
        if "outside the dose grid" not in flag and flag != "empty"
    ]
    return tuple(messages)


def _check_outputs(path, selection, **outputs) -> None:
    """Refuse output files that could destroy something, before any work (docs/io.md)."""
    inputs = [path, *selection.dose]
    for option, target in outputs.items():
        if target:
            check_output_file(target, inputs=inputs, what=f"--{option}")


def _structures(ss, names):
    """(structures to compute, broken ones to list, empty ones to list).  Named structures
    raise when empty or broken (``ss[name]``); by default every usable volume is computed."""
    if names:
        return [ss[n] for n in names], [], []
    problems = ss.problems
    broken = [s for s in ss if s.name in problems]
    empty = [s for s in ss if s.name in ss.empty_names and s.name not in problems]
    return _usable(ss), broken, empty


def _usable(ss) -> list:
    """The structures of ``ss`` that are volumes without a problem."""
    return [s for s in ss if s.is_volume and s.name not in ss.problems]


def _row(s, dvh: DVH, parsed, rx, piv) -> dict:
    """The report row of one computed structure."""
    values = {m.text: evaluate(dvh, m, prescription_gy=rx, isodose_volume_cc=piv) for m in parsed}
    # a structure partly outside the dose grid gets one flag (the DVH's), not one a metric
    notes = [v.note for v in values.values() if v.note and "outside the dose grid" not in v.note]
    return {
        "name": s.name,
        "number": s.number,
        "type": s.interpreted_type,
        "volume_cc": dvh.volume_cc,
        "outside_dose_cc": dvh.outside_dose_cc,
        "min_gy": _num(dvh.min_gy),
        "max_gy": _num(dvh.max_gy),
        "metrics": {k: _num(v.value) for k, v in values.items()},
        "units": {k: v.unit for k, v in values.items()},
        "flags": list(dict.fromkeys(list(dvh.flags) + notes)),
    }


def _unused_rows(ss, broken, empty, metrics) -> list[dict]:
    """Rows of the structures listed without numbers: broken (with the problem), empty."""
    problems = ss.problems if broken else {}
    listed = [(s, None, [f"not computed: {r}" for r in problems[s.name]]) for s in broken]
    listed += [(s, 0.0, ["empty"]) for s in empty]
    return [
        _row_without_numbers(s.name, s.number, s.interpreted_type, volume, flags, metrics)
        for s, volume, flags in listed
    ]


def _unassigned_rows(unassigned, metrics) -> list[dict]:
    """Rows of contours that belong to no structure (``ROI 99``), with their problem."""
    return [
        _row_without_numbers(
            u.name, u.roi_number, "", None, [f"not computed: {u.problem}"], metrics
        )
        for u in unassigned
    ]


def _row_without_numbers(name, number, kind, volume, flags, metrics) -> dict:
    return {
        "name": name,
        "number": number,
        "type": kind,
        "volume_cc": volume,
        "outside_dose_cc": None,
        "min_gy": None,
        "max_gy": None,
        "metrics": {m: None for m in metrics},
        "units": {},
        "flags": flags,
    }


def _inputs(patient) -> dict:
    """The files used, by role."""
    c = patient.choice
    return {
        "RTPLAN": str(c.plan.path) if c.plan is not None else None,
        "RTSTRUCT": str(c.structure_set.path) if c.structure_set is not None else None,
        "RTDOSE": [str(f.path) for f in c.doses] or [str(p) for p in patient.selection.dose],
    }


def _outside_summary(dvhs) -> list[str]:
    """One note for every structure partly outside the dose grid (empty when none)."""
    parts = []
    for name, dvh in dvhs.items():
        if dvh.outside_dose_cc > 0 and any("outside the dose grid" in f for f in dvh.flags):
            within = dvh.outside_dose_cc <= dvh.outside_tolerance_cc
            parts.append(
                f"{name} {dvh.outside_dose_cc:.3g} cc of {dvh.volume_cc:.4g} cc "
                + (
                    "(within the tolerance: metrics over the dosed part)"
                    if within
                    else "(beyond the tolerance: dose metrics n/a)"
                )  # fmt: skip
            )
    if not parts:
        return []
    return [f"{len(parts)} structure(s) partly outside the dose grid: " + "; ".join(parts)]


def _prescription(patient) -> float | None:
    """Total prescription of the plan(s) behind the dose (a plan sum adds them)."""
    c = patient.choice
    plans = {p.sop_instance_uid: p for p in patient.plans}
    refs = list(dict.fromkeys(f.referenced_plan_uid for f in c.doses))
    if not c.doses and c.plan is not None:
        refs = [c.plan.sop_instance_uid]
    values = [plans[u].prescription_gy if u in plans else None for u in refs]
    if not values or any(v is None for v in values):
        return None
    return float(sum(values))


def _isodose_volume(ss, dose, field, end_cap, dvhs):
    """``level_gy -> cc`` in the EXTERNAL structure, else in the whole dose grid."""
    external = [s for s in ss if s.interpreted_type.upper() == "EXTERNAL" and s.is_volume]
    if external:
        s = external[0]
        dvh = dvhs.get(s.name) or compute(s, dose, end_cap=end_cap, field=field)
    else:
        dvh = compute(dose_grid_structure(dose), dose, field=field)
    return dvh.volume_at_dose_cc


def _compare(dose, structures, dvhs, rx, empty_names, point):
    """rtplan against the planning system's DVHs, per structure (:mod:`rtplan.dvh.embedded`;
    ``point``: where the curves' volumes sit in their bins); structures without an embedded
    DVH are listed with a note."""
    by_number = {e.roi_number: e for e in dose.embedded_dvhs}
    out = []
    for s in structures:
        e = by_number.get(s.number)
        c = compare_embedded(dvhs[s.name], e, prescription_gy=rx, point=point)
        out.append(
            {
                "name": s.name,
                "like_for_like": c.like_for_like,
                "metrics": {
                    m.metric: {
                        "rtplan": _num(m.rtplan),
                        "planning_system": _num(m.planning_system),
                        "difference": _num(m.difference),
                        "difference_pct": _num(m.difference_pct),
                        "difference_volume_points": _num(m.volume_points),
                    }
                    for m in c.metrics
                },
                "notes": list(c.notes),
            }
        )
    for name in empty_names:
        out.append({"name": name, "like_for_like": None, "metrics": {},
                    "notes": ["empty structure: not compared"]})  # fmt: skip
    return out


def _num(value):
    return (
        None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
    )
