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
steps 2 to 4 instead of the first.  Two different plan structures that match the same name at
the same step (e.g. "Bowel bag" and "BOWEL_BAG") are ambiguous: an :class:`InputError` asks
for a mapping.  A required role that is not found raises :class:`StructureNotFoundError`
listing the closest names present (:func:`difflib.get_close_matches` on normalised names).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from rtplan.errors import InputError, StructureNotFoundError
from rtplan.protocols.schema import StructureRole

_IGNORED = re.compile(r"[\s_\-]+")


def normalise_name(name: str) -> str:
    """A structure name with case, whitespace, underscores and hyphens removed.

    Examples
    --------
    >>> {normalise_name(n) for n in ["Bowel bag", "BowelBag", "Bowel_Bag", "BOWEL-BAG"]}
    {'bowelbag'}
    """
    return _IGNORED.sub("", str(name)).casefold()


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

    @property
    def found(self) -> bool:
        return bool(self.structures)


def closest_names(wanted: Iterable[str], present: Sequence[str], n: int = 5) -> list[str]:
    """Plan names most similar to any of ``wanted`` (normalised comparison), best first."""
    by_norm: dict[str, list[str]] = {}
    for name in present:
        by_norm.setdefault(normalise_name(name), []).append(name)
    scored: dict[str, float] = {}
    for w in wanted:
        nw = normalise_name(w)
        for cand in difflib.get_close_matches(nw, list(by_norm), n=n, cutoff=0.5):
            ratio = difflib.SequenceMatcher(None, nw, cand).ratio()
            scored[cand] = max(scored.get(cand, 0.0), ratio)
    ranked = sorted(scored, key=lambda c: -scored[c])
    return [name for c in ranked for name in by_norm[c]][:n]


def _not_found(role: StructureRole, present: Sequence[str], source: str) -> StructureNotFoundError:
    close = closest_names(role.names + role.aliases, present)
    if close:
        hint = "closest names present: " + ", ".join(repr(c) for c in close)
    elif present:
        hint = "names present: " + ", ".join(repr(c) for c in list(present)[:8])
        hint += ", ..." if len(present) > 8 else ""
    else:
        hint = "the plan has no structures"
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
    if mapping:
        for key in (role.key, *role.names):
            if key in mapping:
                wanted = mapping[key]
                wanted = (wanted,) if isinstance(wanted, str) else tuple(wanted)
                missing = [w for w in wanted if w not in present]
                if missing:
                    close = closest_names(missing, present)
                    raise StructureNotFoundError(
                        f"the structure mapping sends '{key}' to '{missing[0]}', which is not in "
                        f"the plan; closest names present: {', '.join(map(repr, close)) or 'none'}",
                        path=source or None,
                    )
                return Match(role.key, wanted, "mapping")

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
    if role.required:
        raise _not_found(role, present, source)
    return Match(role.key, (), "absent")


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
    Match(role='bowel_bag', structures=('Bowel bag',), how='normalised name')
    """
    return {k: match_role(r, present, mapping, source=source) for k, r in roles.items()}
