"""Finding a protocol's structures in a plan by name.

A protocol names each structure role by its TG-263 name(s) and aliases; plans name them as
their planners did ("Bowel bag", "BOWEL_BAG", "BowelBag").  :func:`match_structures` finds
each role's structure in this order, stopping at the first step that finds one:

1. the user's mapping (role key or TG-263 name -> plan name), when one is given: an explicit
   instruction wins over every rule below;
2. a plan name equal to one of the role's TG-263 names (case-sensitive), in the order listed;
3. a plan name equal to one of the role's aliases (case-sensitive), in the order listed;
4. a plan name equal to a TG-263 name or alias after :func:`normalise_name` (case, spaces,
   underscores and hyphens ignored), in the order listed.

A role marked ``multiple`` (e.g. left and right femur) collects every structure found by
steps 2 to 4 instead of the first.

Combined structures: when no step finds a role whose TG-263 name is a combined structure of
:data:`COMBINED_PARTS` (``Kidneys``, ``Lungs``, ``Parotids``, ...) but every part is present
(``Kidney_L`` and ``Kidney_R``, found by TG-263 name, a common alias or normalised name), the
match is the union of the parts (``how`` ``"union of parts"``, ``parts`` the plan names);
:func:`union_structure` builds it and reports say so.  Two different plan structures that match the same name at
the same step (e.g. "Bowel bag" and "BOWEL_BAG") are ambiguous: an :class:`InputError` asks
for a mapping.  A required role that is not found raises :class:`StructureNotFoundError`
listing the closest names present (:func:`difflib.get_close_matches` on normalised names).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from rtplan.errors import ContourError, InputError, StructureNotFoundError
from rtplan.protocols.schema import StructureRole
from rtplan.structure import Contour, Structure, names_hint, normalise_name

#: TG-263 names of bilateral combined structures and the TG-263 names of their parts.
COMBINED_PARTS: dict[str, tuple[str, ...]] = {
    "Kidneys": ("Kidney_L", "Kidney_R"),
    "Lungs": ("Lung_L", "Lung_R"),
    "Parotids": ("Parotid_L", "Parotid_R"),
    "Glnds_Submand": ("Glnd_Submand_L", "Glnd_Submand_R"),
    "Lenses": ("Lens_L", "Lens_R"),
    "Eyes": ("Eye_L", "Eye_R"),
    "Cochleas": ("Cochlea_L", "Cochlea_R"),
    "Femurs": ("Femur_L", "Femur_R"),
}


def _part_aliases(part: str) -> tuple[str, ...]:
    """Common spellings of a lateral TG-263 part: ``Kidney_L`` -> ``Kidney_Lt``,
    ``Kidney_Left``, ``L_Kidney``, ``Lt_Kidney``, ``Left_Kidney`` (compared normalised)."""
    base, side = part.rsplit("_", 1)
    word = {"L": ("Lt", "Left"), "R": ("Rt", "Right")}[side]
    return (
        part,
        *(f"{base}_{w}" for w in word),
        *(f"{s}_{base}" for s in (side, *word)),
    )


@dataclass(frozen=True)
class Match:
    """The plan structure(s) found for one role and the rule that found them.

    ``structures`` is empty when an optional role is absent; it holds one name, or for a
    ``multiple`` role every name found.  ``how`` is ``"mapping"``, ``"TG-263 name"``,
    ``"alias"``, ``"normalised name"`` or ``"absent"``.
    """

    role: str
    structures: tuple[str, ...]
    how: str
    parts: tuple[str, ...] = ()

    @property
    def found(self) -> bool:
        return bool(self.structures)

    @property
    def is_union(self) -> bool:
        """True when the structure is built as the union of ``parts``."""
        return bool(self.parts)


def _not_found(role: StructureRole, present: Sequence[str], source: str) -> StructureNotFoundError:
    hint = names_hint(role.names + role.aliases, present)
    return StructureNotFoundError(
        f"required structure '{role.label}' (role '{role.key}') not found; {hint}; "
        "map it with a structure mapping file",
        path=source or None,
    )


def _find(patterns: Sequence[str], present: Sequence[str], key, role: StructureRole, source: str):
    """Plan names matching each pattern (in pattern order) under ``key``; ambiguity is an error."""
    index: dict[str, list[str]] = {}
    for name in present:
        index.setdefault(key(name), []).append(name)
    found: list[str] = []
    for p in patterns:
        hits = index.get(key(p), [])
        if len(hits) > 1:
            raise InputError(
                f"structure names {', '.join(repr(h) for h in hits)} all match '{p}' "
                f"(role '{role.key}'); choose one with a structure mapping file",
                path=source or None,
            )
        found.extend(h for h in hits if h not in found)
    return found


def match_role(
    role: StructureRole,
    present: Sequence[str],
    mapping: Mapping[str, str | Sequence[str]] | None = None,
    *,
    source: str = "",
) -> Match:
    """Find one role's structure(s) among the plan's structure names.

    Parameters
    ----------
    role : StructureRole
        The protocol's role (TG-263 names, aliases, ``required``, ``multiple``).
    present : sequence of str
        Names of the structures in the plan.
    mapping : mapping, optional
        User mapping from a role key or TG-263 name to a plan name (or list of names).
    source : str
        The structure set's file, for messages.

    Returns
    -------
    Match

    Raises
    ------
    StructureNotFoundError
        A required role is not found, or a mapping names a structure not in the plan.
    InputError
        Two plan structures match the same name equally well.
    """
    mapped = _mapped(role, present, mapping, source) if mapping else None
    if mapped is not None:
        return mapped
    steps = [
        ("TG-263 name", role.names, str),
        ("alias", role.aliases, str),
        ("normalised name", role.names + role.aliases, normalise_name),
    ]
    collected: list[str] = []
    how = ""
    for label, patterns, key in steps:
        hits = _find(patterns, present, key, role, source)
        if hits and not role.multiple:
            return Match(role.key, (hits[0],), label)
        new = [h for h in hits if h not in collected]
        if new and not how:
            how = label
        collected.extend(new)
    if collected:
        return Match(role.key, tuple(collected), how)
    union = _parts_match(role, present)
    if union is not None:
        return union
    if role.required:
        raise _not_found(role, present, source)
    return Match(role.key, (), "absent")


def _mapped(role: StructureRole, present, mapping, source: str) -> Match | None:
    """Step 1: the user's mapping of the role key or a TG-263 name, when it has one (every
    name it gives must be in the plan)."""
    for key in (role.key, *role.names):
        if key in mapping:
            wanted = mapping[key]
            wanted = (wanted,) if isinstance(wanted, str) else tuple(wanted)
            missing = [w for w in wanted if w not in present]
            if missing:
                raise StructureNotFoundError(
                    f"the structure mapping sends '{key}' to '{missing[0]}', which is not in "
                    f"the plan; {names_hint(missing, present)}",
                    path=source or None,
                )
            return Match(role.key, wanted, "mapping")
    return None


def _parts_match(role: StructureRole, present: Sequence[str]) -> Match | None:
    """The union of a combined role's parts, when every part is present (module docstring)."""
    by_norm: dict[str, list[str]] = {}
    for name in present:
        by_norm.setdefault(normalise_name(name), []).append(name)
    for combined in role.names:
        if combined not in COMBINED_PARTS:
            continue
        found = []
        for part in COMBINED_PARTS[combined]:
            exact = [part] if part in present else []
            hits = exact or next(
                (
                    by_norm[normalise_name(a)]
                    for a in _part_aliases(part)
                    if normalise_name(a) in by_norm
                ),
                [],
            )
            if len(hits) != 1:
                break  # absent, or ambiguous: no union
            found.append(hits[0])
        else:
            return Match(role.key, ("+".join(found),), "union of parts", tuple(found))
    return None


def union_structure(name: str, parts: Sequence[Structure]) -> Structure:
    """One structure whose volume is the union of ``parts`` (e.g. ``Kidney_L`` and
    ``Kidney_R`` for ``Kidneys``).

    The parts' contours are put together in one structure.  Under the even-odd rule of
    :mod:`rtplan.structure` that is the exact union only when no two parts overlap on a plane,
    so parts whose contours' bounding boxes meet on a shared plane are refused (a
    :class:`~rtplan.errors.ContourError`): the union would be wrong there, never guessed.  The
    slab thickness is the parts' (they must agree), so the union's volume is the sum of the
    parts' volumes.
    """
    if not parts:
        raise ValueError("no parts")
    thickness = {round(p.slab_thickness_mm, 6) for p in parts}
    if len(thickness) != 1:
        raise ContourError(
            f"the parts {', '.join(p.name for p in parts)} have different slab thicknesses "
            f"({', '.join(map(str, sorted(thickness)))} mm); their union is not built",
            structure=name,
        )
    boxes: dict[float, list[tuple[str, np.ndarray, np.ndarray]]] = {}
    for p in parts:
        for z, polys in p.planes.items():
            pts = np.concatenate(polys)
            boxes.setdefault(round(z, 2), []).append((p.name, pts.min(0), pts.max(0)))
    for z, items in boxes.items():
        for i, (a, lo_a, hi_a) in enumerate(items):
            for b, lo_b, hi_b in items[i + 1 :]:
                if np.all(lo_a <= hi_b) and np.all(lo_b <= hi_a):
                    raise ContourError(
                        f"the parts {a} and {b} may overlap on the plane z = {z:g} mm; their "
                        "union is not built (contour the combined structure or map it)",
                        structure=name,
                    )
    first = parts[0]
    contours: tuple[Contour, ...] = tuple(c for p in parts for c in p.contours)
    return Structure(
        name,
        contours,
        interpreted_type=first.interpreted_type,
        color=first.color,
        frame_of_reference_uid=first.frame_of_reference_uid,
        source=first.source,
        slice_spacing_mm=float(first.slab_thickness_mm),
    )


def match_structures(
    roles: Mapping[str, StructureRole],
    present: Sequence[str],
    mapping: Mapping[str, str | Sequence[str]] | None = None,
    *,
    source: str = "",
) -> dict[str, Match]:
    """Match every role of a protocol (see :func:`match_role` and the module docstring).

    Examples
    --------
    >>> from rtplan.protocols.schema import StructureRole
    >>> bag = StructureRole("bowel_bag", ("Bag_Bowel",), aliases=("Bowel_Bag",), required=True)
    >>> roles = {"bowel_bag": bag}
    >>> match_structures(roles, ["PTV", "Bowel bag"])["bowel_bag"]
    Match(role='bowel_bag', structures=('Bowel bag',), how='normalised name', parts=())
    """
    return {k: match_role(r, present, mapping, source=source) for k, r in roles.items()}
