"""Treatment protocols: prescriptions, structure roles and dose-volume constraints as data.

The protocols shipped with rtplan are the ``*.toml`` files of this package; a user may pass
the path of their own file anywhere a protocol name is accepted.  The file format is
described in :mod:`rtplan.protocols.schema` and ``docs/protocols.md``.

Examples
--------
>>> p = load_protocol("rps-preop")
>>> p.prescription.fractions, p.prescription.total_gy
(28, 50.4)
>>> "rps-preop" in available_protocols()
True
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from rtplan.errors import InputError
from rtplan.protocols.schema import (
    Prescription,
    Protocol,
    Source,
    StructureRole,
    Target,
    parse_protocol,
)

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "Prescription",
    "Protocol",
    "Source",
    "StructureRole",
    "Target",
    "available_protocols",
    "load_protocol",
    "load_structure_mapping",
    "parse_protocol",
    "protocol_path",
]


def available_protocols() -> list[str]:
    """Names of the protocols shipped with rtplan, sorted (``sources.toml``, the bibliography,
    is not a protocol)."""
    files = resources.files(__name__).iterdir()
    names = (f.name[: -len(".toml")] for f in files if f.name.endswith(".toml"))
    return sorted(n for n in names if n != "sources")


def protocol_path(name_or_path: str | Path) -> Path:
    """The file of a shipped protocol name, or ``name_or_path`` itself when it is a file.

    Raises
    ------
    InputError
        Neither an existing file nor a shipped protocol name (the message lists the names).
    """
    p = Path(name_or_path)
    if p.is_file():
        return p
    if str(name_or_path) in available_protocols():
        return Path(str(resources.files(__name__).joinpath(f"{name_or_path}.toml")))
    if p.suffix.lower() == ".toml" or len(p.parts) > 1:
        raise InputError("protocol file not found", path=p)
    raise InputError(
        f"unknown protocol '{name_or_path}' (shipped: {', '.join(available_protocols())}; "
        "or give the path of a .toml file)"
    )


def _read_toml(path: Path, what: str) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {what}: {exc}", path=path) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not valid TOML: {exc}", path=path) from None


def load_protocol(name_or_path: str | Path) -> Protocol:
    """Read and validate a protocol.

    Parameters
    ----------
    name_or_path : str or pathlib.Path
        A shipped protocol name (``"rps-preop"``) or the path of a TOML protocol file.

    Returns
    -------
    Protocol

    Raises
    ------
    InputError
        Unknown name, unreadable file, TOML syntax error or invalid content; one line that
        names the file.
    """
    path = protocol_path(name_or_path)
    return parse_protocol(_read_toml(path, "protocol"), path=str(path))


def load_structure_mapping(path: str | Path) -> dict[str, str | tuple[str, ...]]:
    """Read a user's structure mapping file (TOML).

    The file has one table, ``[structures]``, whose keys are protocol role keys or TG-263
    names and whose values are the structure name (or list of names) in the plan::

        [structures]
        Bag_Bowel = "BB opt"          # TG-263 name -> plan name
        ptv = "PTV_eval"              # role key -> plan name
        Femur_L = ["Femur L", "Femur R"]

    Keys that no protocol role uses are ignored, so one file can serve several protocols.

    Raises
    ------
    InputError
        Unreadable file, bad TOML, or a value that is not a name or a list of names.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError("structure mapping file not found", path=p)
    data = _read_toml(p, "structure mapping")
    table = data.get("structures")
    if set(data) != {"structures"} or not isinstance(table, dict):
        raise InputError("a structure mapping file holds exactly one table, [structures]", path=p)
    out: dict[str, str | tuple[str, ...]] = {}
    for key, value in table.items():
        if isinstance(value, str) and value:
            out[key] = value
        elif isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
            out[key] = tuple(value)
        else:
            raise InputError(f"[structures] '{key}' must be a name or a list of names", path=p)
    return out
