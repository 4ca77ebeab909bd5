"""``rtplan expand`` and ``rtplan volumes`` on a folder of DICOM files: read, build, write.

The Python API of the two commands.  :func:`expand_folder` and :func:`volumes_folder` read
the CT series and a structure set of one patient (:mod:`rtplan.io`), build the new volumes
(:func:`rtplan.volumes.builder.expand_structure`, :func:`rtplan.volumes.recipes.run_recipe`),
and write a new RTSTRUCT holding the input's structures plus the new ones
(:func:`rtplan.io.rtstruct_writer.write_rtstruct`, which never overwrites a file), and
optionally a PNG of axial, coronal and sagittal views through the GTV's centre
(:func:`rtplan.report.overlay.plane_views`).

Which structure set: the one named by ``structure_set`` (its label, UID, file name or path),
else the only one holding every structure needed (for a recipe, every required role).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from rtplan.errors import InputError, RtplanError, StructureNotFoundError
from rtplan.image import Image
from rtplan.io.discover import PatientData
from rtplan.io.output import check_output_folder, safe_filename, write_new
from rtplan.io.rtstruct_writer import write_rtstruct
from rtplan.io.selection import Selection
from rtplan.matching import match_role
from rtplan.protocols.recipe import Recipe, load_recipe
from rtplan.structure import Structure, StructureSet
from rtplan.volumes.builder import Crop, Step, expand_structure, find_structure
from rtplan.volumes.margins import Margins
from rtplan.volumes.recipes import run_recipe
from rtplan.volumes.workspace import FINE_MM
from rtplan.workflows._select import one_patient


@dataclass(frozen=True)
class FolderResult:
    """What a command made: new structures, their log, the files written."""

    structures: tuple[Structure, ...]
    steps: tuple[Step, ...]
    notes: tuple[str, ...]
    rtstruct: Path | None
    png: Path | None
    source: str

    @property
    def volumes_cc(self) -> dict[str, float]:
        """Volume (cc, slab convention) of each new structure."""
        return {s.name: s.volume_cc for s in self.structures}


def check_outputs(path, out, png) -> None:
    """The ``out`` and ``png`` folders, checked before any work (docs/io.md)."""
    if out is not None:
        check_output_folder(out, inputs=[path], what="--out")
    if png:
        check_output_folder(png, inputs=[path], what="--png")


def _load(path, patient_id) -> tuple[PatientData, Image]:
    patient = one_patient(path, Selection(patient_id=patient_id), choose_now=False)
    image = patient.image()
    if image is None:
        raise InputError("no CT series: new contours must lie on CT slices", path=path)
    return patient, image


def _choose_set(patient: PatientData, label: str | None, check, path) -> StructureSet:
    """The structure set named, else the only one, else the only one ``check`` accepts
    (``check(ss)`` raises an RtplanError naming what ``ss`` lacks)."""
    sets = patient.structure_sets
    if not sets:
        raise InputError("no RTSTRUCT in the folder", path=path)
    if label is not None:
        chosen = [s for s in sets if _names_set(label, s)]
        if not chosen:
            have = ", ".join(repr(s.label) for s in sets)
            raise InputError(f"no structure set '{label}' (have: {have})", path=path)
        check(chosen[0])
        return chosen[0]
    fitting, first_error = [], None
    for ss in sets:
        try:
            check(ss)
            fitting.append(ss)
        except RtplanError as exc:
            first_error = first_error or exc
    if len(fitting) == 1:
        return fitting[0]
    if not fitting:
        raise first_error
    have = ", ".join(f"'{s.label}'" for s in fitting)
    raise InputError(
        f"{len(fitting)} structure sets hold what is needed ({have}); choose one with "
        "--structure-set",
        path=path,
    )


def _names_set(spec: str, ss: StructureSet) -> bool:
    """``spec`` is the structure set's label, SOPInstanceUID, file name or path."""
    if spec in (ss.label, ss.sop_instance_uid, Path(ss.source).name, ss.source):
        return True
    return Path(spec).exists() and Path(spec).resolve() == Path(ss.source).resolve()


def _write(out, new, image, patient, chosen, name) -> Path:
    out = Path(out)
    if not out.exists():
        out.mkdir(parents=True)
    ct_header = patient.ct_series[0].paths[0] if patient.ct_series else None
    return write_rtstruct(
        out,
        list(new),
        image,
        ct_header,
        copy_rois_from=chosen.source,
        label=name[:16],
        description="rtplan target volumes",
    )


def _write_both(rtstruct, picture) -> tuple[Path | None, Path | None]:
    """The RTSTRUCT and the picture of one run (each a writer, or a false value for none),
    both or neither: the RTSTRUCT is removed again when the picture cannot be written (its
    name taken by a concurrent run, Ctrl-C), so a failed run leaves no output."""
    written = rtstruct() if rtstruct else None
    try:
        return written, (picture() if picture else None)
    except BaseException:
        if written is not None:
            written.unlink(missing_ok=True)
        raise


def _png(png, image, centre_of: Structure, new, title) -> Path:
    from rtplan.report.overlay import centroid_mm, figure_png, plane_views

    folder = Path(png)
    if not folder.exists():
        folder.mkdir(parents=True)
    drawn = [centre_of, *new]
    fig = plane_views(
        image, drawn, centre_mm=centroid_mm(centre_of), names=[s.name for s in drawn], title=title
    )
    target = folder / safe_filename(f"volumes_{'_'.join(s.name for s in new)}.png")
    return write_new(target, figure_png(fig))  # never overwrites, even racing another run


def expand_folder(
    path: str | os.PathLike,
    *,
    structure: str,
    name: str,
    margin,
    out: str | os.PathLike | None,
    avoid: Sequence = (),
    within: Sequence = (),
    keep_source: bool = False,
    structure_set: str | None = None,
    patient_id: str | None = None,
    fine_mm: float = FINE_MM,
    png: str | os.PathLike | None = None,
) -> FolderResult:
    """``rtplan expand``: one structure expanded (or shrunk) and cropped, written out.

    Parameters
    ----------
    path : path
        Folder of one patient's DICOM files (CT series and RTSTRUCT).
    structure, name, margin, avoid, within, keep_source, fine_mm
        See :func:`rtplan.volumes.builder.expand_structure`.
    out : path or None
        Folder for the new RTSTRUCT (created if missing); ``None`` writes nothing.
    structure_set : str, optional
        Label or file name of the structure set to use.
    patient_id : str, optional
        When the folder holds several patients.
    png : path, optional
        Folder for a PNG of the three views through the source structure's centre.
    """
    check_outputs(path, out, png)
    Margins.parse(margin)  # bad syntax fails before any reading
    crops = [Crop.parse(c) for c in (*avoid, *within)]
    wanted = [structure, *(c.structure for c in crops)]
    patient, image = _load(path, patient_id)

    def has_all(ss: StructureSet) -> None:
        table = {s.name: s for s in ss.volumes}
        for w in wanted:
            try:
                if w in ss:  # present but empty or broken: its own problem, not "no structure"
                    ss[w]
                ss.check([find_structure(table, w, label=ss.label, path=ss.source).name])
            except StructureNotFoundError:
                raise
            except RtplanError as exc:  # broken contours: ContourError
                raise type(exc)(
                    f"{exc.problem} in structure set '{ss.label}'",
                    path=ss.source,
                    structure=exc.structure,
                ) from None

    chosen = _choose_set(patient, structure_set, has_all, path)
    table = {s.name: s for s in chosen.volumes}
    res = expand_structure(
        table,
        structure,
        margin,
        name=name,
        avoid=avoid,
        within=within,
        slice_z_mm=image.slice_z_mm,
        fine_mm=fine_mm,
        keep_source=keep_source,
    )
    new = (res.structure,)
    source = find_structure(table, structure)
    written, picture = _write_both(
        out and (lambda: _write(out, new, image, patient, chosen, name)),
        png and (lambda: _png(png, image, source, new, f"{name} from {source.name}")),
    )
    return FolderResult(new, res.steps, (), written, picture, chosen.source)


def volumes_folder(
    path: str | os.PathLike,
    *,
    protocol: str | os.PathLike | Recipe,
    out: str | os.PathLike | None,
    gtv: str | None = None,
    mapping: Mapping[str, str | Sequence[str]] | None = None,
    parameters: Mapping[str, float] | None = None,
    structure_set: str | None = None,
    patient_id: str | None = None,
    fine_mm: float = FINE_MM,
    png: str | os.PathLike | None = None,
) -> FolderResult:
    """``rtplan volumes``: a protocol's recipe run on one patient, written out.

    Parameters
    ----------
    path : path
        Folder of one patient's DICOM files.
    protocol : str, path or Recipe
        Shipped protocol name, protocol file, or a loaded recipe.
    out : path or None
        Folder for the new RTSTRUCT (created if missing); ``None`` writes nothing.
    gtv : str, optional
        Name of the structure the recipe grows from (the first step's role).
    mapping : mapping, optional
        Role key (or TG-263 name) -> structure name(s), overriding the name matching.
    parameters, fine_mm
        See :func:`rtplan.volumes.recipes.run_recipe`.
    structure_set, patient_id, png
        As for :func:`expand_folder` (the views go through the GTV's centre).
    """
    check_outputs(path, out, png)
    recipe = protocol if isinstance(protocol, Recipe) else load_recipe(protocol)
    patient, image = _load(path, patient_id)
    user_map = dict(mapping or {})
    if gtv:
        user_map[recipe.gtv_role] = gtv

    def has_roles(ss: StructureSet) -> None:
        for names in recipe_roles(recipe, ss.names, user_map, ss.source).values():
            ss.check(names)

    chosen = _choose_set(patient, structure_set, has_roles, path)
    table = {s.name: s for s in chosen.volumes}
    roles = recipe_roles(recipe, chosen.names, user_map, chosen.source)
    res = run_recipe(
        recipe,
        table,
        roles,
        slice_z_mm=image.slice_z_mm,
        parameters=parameters,
        fine_mm=fine_mm,
        source=chosen.source,
    )
    title = f"{recipe.protocol}: new volumes"
    written, picture = _write_both(
        out and (lambda: _write(out, res.structures, image, patient, chosen, recipe.protocol)),
        png and (lambda: _png(png, image, table[roles[recipe.gtv_role][0]], res.structures, title)),
    )
    return FolderResult(res.structures, res.steps, res.notes, written, picture, chosen.source)


def recipe_roles(
    recipe: Recipe,
    names: Sequence[str],
    mapping: Mapping[str, str | Sequence[str]],
    source: str = "",
) -> dict[str, tuple[str, ...]]:
    """Each role of ``recipe`` -> its structures among ``names`` (:func:`match_role`; a
    required role that is absent raises :class:`~rtplan.errors.StructureNotFoundError`)."""
    return {
        key: match_role(role, names, mapping, source=source).structures
        for key, role in recipe.roles.items()
    }
