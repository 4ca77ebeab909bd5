"""The import rules of docs/architecture.md, read from the source with ``ast``.

Truth: the layer table below (the same as docs/architecture.md).  Every ``import`` and
``from ... import`` of an rtplan module anywhere in a file (also inside functions: a lazy
import is still a dependency) must go to a unit the importing unit may use.  The second
test shows the check fails: it adds a forbidden import to a copy of the real sources.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "rtplan"

#: The domain model: imports no other rtplan unit.
MODEL = {"rtplan", "__version__", "errors", "grid", "structure", "image", "dose", "dosefield",
         "plansum", "plan", "polygon", "contouring", "defaults", "caches", "sanitize"}  # fmt: skip
#: unit -> the units (besides itself and the model) it may import.
ALLOWED = {
    "io": set(),
    "dvh": set(),
    "agreement": {"dvh"},
    "volumes": {"dvh", "agreement"},
    "constraints": {"dvh"},
    "protocols": {"constraints"},
    "matching": {"protocols"},
    "check": {"dvh", "constraints", "matching", "protocols"},
    "report": {"dvh", "agreement", "volumes", "constraints", "protocols", "matching", "check"},
    "testing": {"io", "dvh", "agreement", "volumes"},
    "workflows": {
        "io",
        "dvh",
        "agreement",
        "volumes",
        "constraints",
        "protocols",
        "matching",
        "check",
        "report",
    },  # fmt: skip
    "commands": {
        "io",
        "dvh",
        "agreement",
        "volumes",
        "constraints",
        "protocols",
        "matching",
        "check",
        "report",
        "workflows",
    },  # fmt: skip
    "cli": {"commands"},
}


def unit(module: str) -> str:
    """``rtplan.dvh.compute`` -> ``dvh``; ``rtplan.errors`` -> ``errors``; ``rtplan`` -> ``rtplan``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "rtplan"


def imports(source: str) -> set[str]:
    """rtplan modules imported by ``source`` (absolute imports; ``from rtplan import x``
    counts as ``rtplan.x``)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "rtplan"}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "rtplan":
                found |= {f"rtplan.{a.name}" for a in node.names}
            elif node.module.startswith("rtplan."):
                found.add(node.module)
    return found


def violations(sources: dict[str, str]) -> list[str]:
    """``importer -> imported`` for every import the layer table forbids."""
    bad = []
    for module, source in sorted(sources.items()):
        here = unit(module)
        allowed = MODEL if here in MODEL else {here} | MODEL | ALLOWED[here]
        for target in sorted(imports(source)):
            if unit(target) not in allowed:
                bad.append(f"{module} -> {target}")
    return bad


def package_sources() -> dict[str, str]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[module] = path.read_text(encoding="utf-8")
    return out


def test_every_import_follows_the_layers():
    sources = package_sources()
    assert set(ALLOWED) | MODEL >= {unit(m) for m in sources}, "a new unit needs a row"
    assert violations(sources) == []


def test_a_forbidden_import_is_reported():
    sources = package_sources()
    injected = dict(sources)
    injected["rtplan.dvh.compute"] += "\nfrom rtplan.io import scan\n"
    injected["rtplan.grid"] += "\ndef f():\n    import rtplan.report.plots\n"
    injected["rtplan.io.ct"] += "\nfrom rtplan.testing import synthetic\n"
    assert violations(injected) == [
        "rtplan.dvh.compute -> rtplan.io",
        "rtplan.grid -> rtplan.report.plots",
        "rtplan.io.ct -> rtplan.testing",
    ]
