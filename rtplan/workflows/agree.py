"""``rtplan agree`` as a Python function (:func:`agree_and_report`): every patient's observers
compared (:func:`run_cohort`), on a local process pool or a Dask cluster, and the results
written (:func:`write_csv`, :func:`save_box_plots`).

A *patient* is a folder holding one RTSTRUCT per observer (and usually the CT).  For each
structure, every observer's contours are rasterised on one grid (the CT grid cropped to
the structures when the CT is there, else the contour-plane grid of
:func:`~rtplan.agreement.pairwise.common_grid`) and compared pairwise
(:class:`~rtplan.agreement.pairwise.MaskSet`).  The result is a long table: one row per
patient, structure and observer pair.

Conventions
-----------
Observers
    An observer is named by the RTSTRUCT's StructureSetLabel, else its StructureSetName,
    else the file name; a name used twice gets the file name appended.  Observers are
    ordered by name.
Structures
    Matched across observers by name, exactly or else case-insensitively.  By default
    every structure with closed contours in at least two observers' sets is compared (a
    structure only one observer drew is not part of an agreement study); name structures
    to compare them whoever drew them.  A structure absent
    from an observer's set gives rows with status ``a_missing`` / ``b_missing`` (metrics
    NaN); one that is present but has no contours is an empty mask (``a_empty`` ...); one
    the reader flags as malformed (self-intersecting, off-plane) is treated as missing
    and named in the patient's notes.
Pairs
    ``reference=None``: every unordered observer pair ``(a, b)`` with ``a`` before ``b``.
    ``reference="staple"``: each observer (``observer_b``) against the STAPLE consensus
    (``observer_a = "STAPLE"``, see :mod:`~rtplan.agreement.consensus`), with the
    observer's STAPLE sensitivity and specificity; a structure drawn by fewer than two
    observers has no consensus (status ``a_missing``).  ``reference=<observer>``: each other
    observer against that one.  Every row also carries the structure's generalised
    conformity index over all observers who drew it (``gci``) and their number.
Failures
    A patient that cannot be read or compared is reported (its folder and the one-line
    error) and skipped; the rest of the cohort completes.
Execution
    ``jobs=1`` runs in this process; ``jobs>1`` on a local process pool (workers started
    by a fork server, so they inherit no threads of the caller); ``scheduler``
    (a Dask scheduler address) on a ``dask.distributed`` cluster whose workers see the same
    files.  The rows do not depend on where or in which order patients ran.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rtplan.agreement.consensus import generalised_conformity_index, staple
from rtplan.agreement.pairwise import (
    CONVENTION,
    DEFAULT_TOLERANCE_MM,
    MaskSet,
    PairMetrics,
    common_grid,
    structure_masks,
)
from rtplan.agreement.summary import SUMMARY_COLUMNS, SUMMARY_METRICS, summarise
from rtplan.errors import InputError, RtplanError
from rtplan.grid import Grid
from rtplan.io.output import check_output_file, check_output_folder, safe_filename, write_atomic
from rtplan.report.agreement import box_plot_pngs, json_ready, to_csv
from rtplan.structure import names_hint
from rtplan.workflows.execution import DEFAULT_TIMEOUT_S, absolute_paths, run_each
from rtplan.workflows.patients import find_patients

STAPLE_NAME = "STAPLE"
ID_COLUMNS = ["patient", "structure", "observer_a", "observer_b", "status", "n_observers"]
EXTRA_COLUMNS = ["gci", "staple_sensitivity_b", "staple_specificity_b", "tolerance_mm"]


def columns() -> list[str]:
    """Column order of the long result table."""
    return ID_COLUMNS + PairMetrics.metric_names() + EXTRA_COLUMNS


@dataclass(frozen=True)
class AgreementOptions:
    """What to compare and how.

    Parameters
    ----------
    structures : tuple of str, optional
        Structure names to compare (default: every structure two or more observers drew).
    reference : str, optional
        ``None`` (all pairs), ``"staple"`` or an observer name (module docstring).
    tolerance_mm : float
        Surface Dice / added path length tolerance.
    percent : float
        Percentile of the robust Hausdorff distance.
    in_plane_spacing_mm : float
        Pixel size of the comparison grid when there is no CT.
    patient_id : str, optional
        Only this PatientID's objects of each folder (``--patient-id``).
    structure_sets : tuple of str, optional
        The RTSTRUCT observers, by label, UID, file name or path (``--structure-set``, once
        per observer; :func:`rtplan.io.selection.pick_structure_sets`); default: every one.
    """

    structures: tuple[str, ...] | None = None
    reference: str | None = None
    tolerance_mm: float = DEFAULT_TOLERANCE_MM
    percent: float = 95.0
    in_plane_spacing_mm: float = 1.0
    patient_id: str | None = None
    structure_sets: tuple[str, ...] | None = None

    def __post_init__(self):
        if not self.tolerance_mm >= 0:
            raise InputError(f"tolerance must be >= 0 mm, got {self.tolerance_mm}")
        if not 0 <= self.percent <= 100:
            raise InputError(f"percentile must be between 0 and 100, got {self.percent}")
        if not self.in_plane_spacing_mm > 0:
            raise InputError(f"in-plane spacing must be > 0 mm, got {self.in_plane_spacing_mm}")


@dataclass(frozen=True)
class PatientObservers:
    """One patient's delineations: ``observers[name][structure name] -> Structure``."""

    patient: str
    observers: dict[str, dict[str, object]]
    ct_grid: Grid | None = None
    notes: tuple[str, ...] = ()
    #: Every structure name of every observer (also those not asked for).
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class PatientOutcome:
    """Rows (or the error) of one patient, and the structure names its observers have."""

    patient: str
    rows: list[dict] = field(default_factory=list)
    error: str | None = None
    notes: tuple[str, ...] = ()
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class CohortResult:
    """All rows of a cohort run, the patients that failed and notes."""

    rows: list[dict]
    failures: list[tuple[str, str]]
    notes: list[str]
    options: AgreementOptions

    @property
    def ok(self) -> bool:
        """True when every patient was compared."""
        return not self.failures


def _structure_names(patient: PatientObservers, wanted: Sequence[str] | None) -> list[str]:
    """The requested names, else every name drawn (with contours) by two or more observers."""
    if wanted:
        return list(wanted)
    first: dict[str, str] = {}
    named: dict[str, int] = {}
    for structures in patient.observers.values():
        for key in {n.casefold() for n in structures}:
            named[key] = named.get(key, 0) + 1
        for name in structures:
            first.setdefault(name.casefold(), name)
    # only names two observers use are checked for voxels (mask files are read lazily)
    count: dict[str, int] = {}
    for structures in patient.observers.values():
        drawn = {
            n.casefold() for n, s in structures.items() if named[n.casefold()] >= 2 and s.is_volume
        }
        for key in drawn:
            count[key] = count.get(key, 0) + 1
    return [first[k] for k in first if count.get(k, 0) >= 2]


def _lookup(structures: dict[str, object], name: str):
    if name in structures:
        return structures[name]
    folded = [s for n, s in structures.items() if n.casefold() == name.casefold()]
    return folded[0] if len(folded) == 1 else None


def agree_patient(patient: PatientObservers, options: AgreementOptions) -> list[dict]:
    """Rows of one patient (conventions in the module docstring).

    Raises
    ------
    InputError
        The reference observer is not among this patient's observers.
    GeometryError
        Observers' structures lie in different frames of reference.
    """
    observers = sorted(patient.observers)
    reference = _reference(patient, observers, options.reference)
    if reference == STAPLE_NAME:
        pairs = [(STAPLE_NAME, o) for o in observers]
    elif reference is not None:
        pairs = [(reference, o) for o in observers if o != reference]
    else:
        pairs = [(a, b) for i, a in enumerate(observers) for b in observers[i + 1 :]]
    rows = []
    for name in _structure_names(patient, options.structures):
        rows += _structure_rows(patient, name, observers, pairs, reference, options)
    return rows


def _reference(patient: PatientObservers, observers: list[str], reference: str | None):
    """``None`` (every pair), :data:`STAPLE_NAME`, or an observer of this patient."""
    if reference is not None and reference.casefold() == "staple":
        return STAPLE_NAME
    if reference is not None and reference not in observers:
        raise InputError(
            f"patient {patient.patient}: no observer '{reference}' "
            f"(observers: {', '.join(observers)})"
        )
    return reference


def _masks(drawn: dict, ct_grid, in_plane_mm: float):
    """The observers' masks of one structure on one grid, its spacing (mm) and their
    generalised conformity index (NaN with fewer than two observers)."""
    if not drawn:
        return {}, None, math.nan
    grid = common_grid(list(drawn.values()), ct_grid, in_plane_mm)
    masks = structure_masks(drawn, grid)
    gci = generalised_conformity_index(masks) if len(masks) >= 2 else math.nan
    return masks, grid.spacing_mm, gci


def _structure_rows(patient, name, observers, pairs, reference, options) -> list[dict]:
    """The rows of one structure: its observers' masks on one grid, the STAPLE consensus
    when it is the reference, and every pair compared."""
    present = {o: _lookup(patient.observers[o], name) for o in observers}
    drawn = {o: s for o, s in present.items() if s is not None}
    display = next(iter(drawn.values())).name if drawn else name
    masks, spacing, gci = _masks(drawn, patient.ct_grid, options.in_plane_spacing_mm)
    p = q = {}
    if reference == STAPLE_NAME and len(masks) >= 2 and any(m.any() for m in masks.values()):
        result = staple(masks)
        p, q = result.sensitivity, result.specificity
        masks[STAPLE_NAME] = result.consensus
    mask_set = MaskSet(masks, spacing) if masks else None
    rows = []
    for a, b in pairs:
        if a not in masks:
            metrics = PairMetrics.missing("a_missing", options.tolerance_mm)
        elif b not in masks:
            metrics = PairMetrics.missing("b_missing", options.tolerance_mm)
        else:
            metrics = mask_set.compare(a, b, options.tolerance_mm, options.percent)
        row = {
            "patient": patient.patient,
            "structure": display,
            "observer_a": a,
            "observer_b": b,
            "n_observers": len(drawn),
            "gci": gci,
            "staple_sensitivity_b": p.get(b, math.nan),
            "staple_specificity_b": q.get(b, math.nan),
        }
        row.update(metrics.as_dict())
        rows.append({c: row[c] for c in columns()})
    return rows


# ------------------------------------------------------------------ reading patients
def _observer_names(structure_sets) -> list[str]:
    names = [ss.label or ss.name or Path(ss.source).stem for ss in structure_sets]
    return [
        f"{n} ({Path(ss.source).name})" if names.count(n) > 1 else n
        for n, ss in zip(names, structure_sets, strict=True)
    ]


def load_patient(
    folder: str | os.PathLike,
    structures: Sequence[str] | None = None,
    *,
    patient_id: str | None = None,
    structure_sets: Sequence[str] | None = None,
) -> PatientObservers:
    """Read one patient folder: every RTSTRUCT (an observer each) and the CT grid.

    Only the named ``structures`` (case-insensitive) are kept and checked, when given; only
    the objects of ``patient_id`` and the RTSTRUCTs ``structure_sets`` names
    (:class:`AgreementOptions`) are used, when given.

    Raises
    ------
    RtplanError
        Unreadable files, no or only one RTSTRUCT, or structure sets in several frames of
        reference.
    """
    from rtplan.io.masks import mask_folders

    folder = Path(folder)
    masks = mask_folders(folder)
    group, sets = _observer_group(folder, bool(masks), patient_id, structure_sets)
    if len(sets) + len(masks) < 2:
        raise InputError(
            f"only {len(sets) + len(masks)} observer (RTSTRUCT or mask folder): "
            "agreement needs two",
            path=folder,
        )
    wanted = {n.casefold() for n in structures} if structures else None
    notes: list[str] = []
    names: list[str] = []
    observers = _rtstruct_observers(folder, sets, wanted, notes, names)
    grid = group.ct_series[0].grid if group.ct_series else None
    _add_mask_observers(observers, masks, grid, group.frame_of_reference_uid, wanted, names)
    label = group.patient_id or folder.name
    return PatientObservers(label, observers, grid, tuple(notes), tuple(dict.fromkeys(names)))


def _observer_group(folder: Path, has_masks: bool, patient_id, structure_sets):
    """Phase 1: the one patient and frame of reference whose RTSTRUCTs (or, without any,
    mask folders) are compared, and those RTSTRUCTs (the ones named, when some are)."""
    groups, named = _chosen_groups(folder, patient_id, structure_sets)
    with_sets = [g for g in groups if any(f.modality == "RTSTRUCT" for f in g.files)]
    if with_sets or not has_masks:
        groups = with_sets
    if not groups:
        raise InputError("no RTSTRUCT found", path=folder)
    if len(groups) > 1:
        frames = ", ".join(f"{g.patient_id}/{g.frame_of_reference_uid}" for g in groups)
        raise InputError(
            f"structure sets of several patients or frames of reference ({frames})", path=folder
        )
    group = groups[0]
    sets = group.structure_sets if with_sets else []
    if structure_sets:
        sets = [ss for ss in sets if ss.sop_instance_uid in named]
    return group, sets


def _chosen_groups(folder: Path, patient_id, structure_sets):
    """The folder's (patient, frame of reference) groups, only ``patient_id``'s and those
    holding a named RTSTRUCT when given; and the named RTSTRUCTs' UIDs."""
    from rtplan.io import scan
    from rtplan.io.selection import pick_structure_sets

    catalog = scan(folder)
    groups = catalog.groups()
    if patient_id is not None:
        groups = [g for g in groups if g.patient_id == patient_id]
        if not groups:
            have = ", ".join(sorted({repr(f.patient_id) for f in catalog.files}))
            raise InputError(f"no patient '{patient_id}' (have: {have})", path=folder)
    named: set[str] = set()
    if structure_sets:
        files = [f for g in groups for f in g.files]
        named = {f.sop_instance_uid for f in pick_structure_sets(structure_sets, files)}
        groups = [g for g in groups if any(f.sop_instance_uid in named for f in g.files)]
    return groups, named


def _rtstruct_observers(folder: Path, sets, wanted, notes: list[str], names: list[str]):
    """Phase 2: each RTSTRUCT's usable structures (the ``wanted`` ones, case-insensitive),
    by observer name; a malformed structure is left out and noted.  Every structure name
    is added to ``names``."""
    observers = {}
    for observer, ss in zip(_observer_names(sets), sets, strict=True):
        kept = {}
        for s in ss.structures:
            names.append(s.name)
            if wanted is not None and s.name.casefold() not in wanted:
                continue
            reasons = ss.problems_for(s)
            if reasons and s.contours:
                notes.append(f"{folder.name}: observer '{observer}', structure '{s.name}' "
                             f"skipped: {reasons[0]}")  # fmt: skip
                continue
            kept[s.name] = s
        observers[observer] = kept
    return observers


def _add_mask_observers(observers: dict, masks, grid, frame_uid: str, wanted, names) -> None:
    """Phase 3: each mask folder as an observer, placed on the CT lattice ``grid`` (its
    structure names added to ``names``)."""
    from rtplan.io.masks import read_mask_observer

    for mask_folder in masks:
        if grid is None:
            raise InputError(
                "mask observers need the patient's CT series in the folder (to place them)",
                path=mask_folder,
            )
        name = (
            mask_folder.name if mask_folder.name not in observers else f"{mask_folder.name} (masks)"
        )
        found = read_mask_observer(mask_folder, grid, frame_uid)
        names.extend(found)
        observers[name] = {
            n: m for n, m in found.items() if wanted is None or n.casefold() in wanted
        }


def _run_folder(folder: str, options: AgreementOptions) -> PatientOutcome:
    """Load and compare one patient; errors become the outcome's ``error``."""
    try:
        patient = load_patient(folder, options.structures, patient_id=options.patient_id,
                               structure_sets=options.structure_sets)  # fmt: skip
        rows = agree_patient(patient, options)
        return PatientOutcome(patient.patient, rows, None, patient.notes, patient.names)
    except RtplanError as exc:
        return PatientOutcome(str(folder), error=str(exc))
    except Exception as exc:  # noqa: BLE001 - a bug on one patient must not stop the cohort
        return PatientOutcome(str(folder), error=f"internal error {type(exc).__name__}: {exc}")


def run_cohort(
    paths: Sequence[str | os.PathLike],
    options: AgreementOptions | None = None,
    jobs: int | None = None,
    scheduler: str | None = None,
    progress: bool = False,
    on_patient: Callable[[PatientOutcome], None] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> CohortResult:
    """Compare the observers of every patient under ``paths``.

    Parameters
    ----------
    paths : sequence of path
        Patient folders or folders of patient folders (:func:`find_patients`); with
        ``options.patient_id``, folders holding that patient anywhere below them.
    options : AgreementOptions
        What to compare.
    jobs : int, optional
        Local worker processes (default: CPU count; 1 runs in this process).
    scheduler : str, optional
        Address of a Dask scheduler (``tcp://host:8786``); overrides ``jobs``.
    progress : bool
        Show a progress bar on stderr (only when it is a terminal).
    on_patient : callable, optional
        Called with each :class:`PatientOutcome`, in patient order.
    timeout_s : float
        Seconds the Dask scheduler has to answer (one-line :class:`InputError` otherwise).

    Execution follows :mod:`rtplan.workflows.execution` (absolute paths, input order,
    bounded memory).

    Returns
    -------
    CohortResult
        Rows in patient order (as found), whatever the completion order.  A named
        structure some patients lack is noted for each of them.

    Raises
    ------
    InputError
        A named structure that no observer of any patient read has (a misspelt name): one
        line naming it and the closest names present.
    """
    options = options or AgreementOptions()
    # a named patient is searched for in the whole of each path, not folder by folder
    # (where every other patient's folder would fail as "no patient")
    named = options.patient_id is not None
    folders = absolute_paths([f for p in paths for f in ([p] if named else find_patients(p))])
    rows, failures, notes, read = [], [], [], []
    outcomes = run_each(_run_folder, folders, jobs=jobs, scheduler=scheduler,
                        timeout_s=timeout_s, progress=progress, options=options)  # fmt: skip
    for folder, outcome in zip(folders, outcomes, strict=True):
        if on_patient is not None:
            on_patient(outcome)
        rows.extend(outcome.rows)
        notes.extend(outcome.notes)
        if outcome.error is not None:
            failures.append((folder, outcome.error))
        else:
            read.append(outcome)
    _check_names(options.structures, read, notes)
    return CohortResult(rows, failures, notes, options)


def _check_names(wanted, outcomes: list[PatientOutcome], notes: list[str]) -> None:
    """Refuse a named structure no patient read has; note the patients lacking one."""
    if not wanted or not outcomes:
        return
    present = [{n.casefold() for n in o.names} for o in outcomes]
    unknown = [w for w in wanted if not any(w.casefold() in p for p in present)]
    if unknown:
        everything = list(dict.fromkeys(n for o in outcomes for n in o.names))
        listed = ", ".join(map(repr, unknown))
        raise InputError(
            f"no structure {listed} in any observer's set; {names_hint(unknown, everything)}"
        )
    for o, names in zip(outcomes, present, strict=True):
        lacking = [w for w in wanted if w.casefold() not in names]
        if lacking:
            notes.append(f"{o.patient}: no observer has {', '.join(map(repr, lacking))}")


def result_metadata(result: CohortResult) -> dict:
    """Options, convention and failures of a run, for result files."""
    o = result.options
    return {
        "convention": CONVENTION,
        "reference": o.reference or "all pairs",
        "tolerance_mm": o.tolerance_mm,
        "percentile": o.percent,
        "in_plane_spacing_mm": o.in_plane_spacing_mm,
        "structures": list(o.structures) if o.structures else None,
        "patient_id": o.patient_id,
        "structure_sets": list(o.structure_sets) if o.structure_sets else None,
        "failures": [{"patient": p, "error": e} for p, e in result.failures],
        "notes": result.notes,
    }


@dataclass(frozen=True)
class AgreeReport:
    """What :func:`agree_and_report` made: the cohort's result and its per-structure summary."""

    result: CohortResult
    summary: list[dict]

    @property
    def document(self) -> dict:
        """The JSON document of ``rtplan agree --json`` (non-finite numbers as ``None``)."""
        document = {
            "metadata": result_metadata(self.result),
            "rows": self.result.rows,
            "summary": self.summary,
        }
        return json_ready(document)


def agree_and_report(
    paths: Sequence[str | os.PathLike],
    *,
    structures: Sequence[str] | None = None,
    reference: str | None = None,
    tolerance_mm: float = DEFAULT_TOLERANCE_MM,
    in_plane_mm: float = 1.0,
    jobs: int | None = None,
    scheduler: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    progress: bool = False,
    csv: str | os.PathLike | None = None,
    summary_csv: str | os.PathLike | None = None,
    plots: str | os.PathLike | None = None,
    patient_id: str | None = None,
    structure_sets: Sequence[str] | None = None,
) -> AgreeReport:
    """``rtplan agree``: the options checked, the output paths checked before any work
    (docs/io.md), every patient compared (:func:`run_cohort`), the summary made and the
    requested files written: the long table (``csv``), the summary (``summary_csv``), one box
    plot per metric (``plots``, a folder).

    Raises
    ------
    InputError
        An option out of range, an output path that could destroy something or cannot be
        written, or no patient could be compared (the first failure named).
    """
    _check_options(jobs, tolerance_mm, in_plane_mm)
    for option, target in (("--csv", csv), ("--summary-csv", summary_csv)):
        if target:
            check_output_file(target, inputs=paths, what=option)
    if plots:
        check_output_folder(plots, inputs=paths, what="--plots")
    options = AgreementOptions(
        structures=tuple(structures) if structures else None,
        reference=reference,
        tolerance_mm=tolerance_mm,
        in_plane_spacing_mm=in_plane_mm,
        patient_id=patient_id,
        structure_sets=tuple(structure_sets) if structure_sets else None,
    )
    result = run_cohort(paths, options, jobs=jobs, scheduler=scheduler, progress=progress,
                        timeout_s=timeout_s)  # fmt: skip
    if not result.rows and result.failures:  # nothing could be compared: bad input, one line
        more = len(result.failures) - 1
        more_text = f" (and {more} more folder(s))" if more else ""
        raise InputError(f"nothing compared: {result.failures[0][1]}{more_text}")
    summary = summarise(result.rows)
    if csv:
        try:
            write_csv(result.rows, csv, columns())
        except OSError as exc:
            raise InputError(f"cannot write CSV: {exc.strerror}", path=csv) from None
    if summary_csv:
        write_csv(summary, summary_csv, SUMMARY_COLUMNS)
    if plots:
        try:
            save_box_plots(result.rows, plots)
        except OSError as exc:
            raise InputError(f"cannot write plots: {exc.strerror}", path=plots) from None
    return AgreeReport(result, summary)


def _check_options(jobs: int | None, tolerance_mm: float, in_plane_mm: float) -> None:
    if jobs is not None and jobs < 1:
        raise InputError(f"--jobs must be at least 1, got {jobs}")
    for option, value in (("--tolerance-mm", tolerance_mm), ("--in-plane-mm", in_plane_mm)):
        if not (math.isfinite(value) and 0 < value <= 100):
            raise InputError(f"{option} must be a number of mm in (0, 100], got {value}")


# ------------------------------------------------------------------ result files
def write_csv(rows: Sequence[dict], path: str | os.PathLike, columns: Sequence[str]) -> Path:
    """Write the long table (:func:`rtplan.report.agreement.to_csv`); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, to_csv(rows, columns))


def save_box_plots(
    rows: Sequence[dict], folder: str | os.PathLike, metrics: Sequence[str] = SUMMARY_METRICS
) -> list[Path]:
    """Write :func:`rtplan.report.agreement.box_plots` as ``<folder>/<metric>.png``; returns the
    paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return [
        write_atomic(folder / f"{safe_filename(metric)}.png", png)
        for metric, png in box_plot_pngs(rows, metrics).items()
    ]
