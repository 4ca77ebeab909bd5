"""``rtplan info``'s text table, from the inventory of
:func:`rtplan.workflows.inventory.folder_inventory` (its JSON schema: docs/io.md)."""

from __future__ import annotations


def _num(value, fmt=".3f") -> str:
    return "-" if value is None else format(value, fmt)


def _grid(g: dict) -> str:
    k, j, i = g["shape"]
    dk, dj, di = g["spacing_mm"]
    spacing = f"{dk:g}" if g["uniform"] else f"{dk:g}+ (uneven)"
    return f"{k} x {j} x {i} voxels, spacing {spacing} x {dj:g} x {di:g} mm (slice x row x column)"


def inventory_text(inv: dict) -> str:
    """The inventory as a human-readable text table."""
    lines = []
    for p in inv["patients"]:
        lines.append(f"Patient {p['patient_id'] or '(no ID)'}  {p['patient_name']}")
        for s in p["studies"]:
            lines.append(
                f"  Study {s['study_instance_uid']}  {s['study_date']}  {s['study_description']}".rstrip()
            )
        for f in p["frames_of_reference"]:
            lines += _frame_lines(f)
    if inv["notes"]:
        lines.append("Notes:")
        lines += [f"  {n}" for n in inv["notes"]]
    return "\n".join(lines)


def _frame_lines(f: dict) -> list[str]:
    """One frame of reference: its CT series, structure sets, plans and doses."""
    lines = [f"  Frame of reference {f['frame_of_reference_uid'] or '(none)'}"]
    for s in f["series"]:
        lines.append(f"    {s['modality']} series {s['series_instance_uid']}: {_grid(s['grid'])}")
        lines += [f"      warning: {w}" for w in s["warnings"]]
    for ss in f["structure_sets"]:
        lines.append(
            f"    Structure set '{ss['label']}' ({ss['file']}), {len(ss['structures'])} structures"
        )
        lines += [f"      warning: {w}" for w in ss["warnings"]]
        lines += [f"      problem: {p}" for p in ss["unassigned_contours"]]
        lines.append(_table(ss["structures"]))
    lines += [_plan_line(pl) for pl in f["plans"]]
    for d in f["doses"]:
        scale = f", x {d['fraction_scaling']} fractions" if d["fraction_scaling"] != 1 else ""
        top = "max -" if d["max_gy"] is None else f"max {d['max_gy']:.2f} Gy"
        kind = "" if d["dose_type"] in ("", "PHYSICAL") else f" {d['dose_type']}"
        lines.append(f"    Dose {d['summation_type']}{kind}{scale}: {top}; {_grid(d['grid'])}")
        lines += [f"      warning: {w}" for w in d["warnings"]]
    return lines


def _plan_line(pl: dict) -> str:
    rx, per = pl["prescription_gy"], pl["dose_per_fraction_gy"]
    return (
        f"    Plan '{pl['label']}': {pl['fractions']} fractions, "
        + (f"{rx:g} Gy prescribed ({per:.3g} Gy per fraction)" if rx else "no prescription")
        + (
            ", brachytherapy"
            if pl["brachytherapy"]
            else f", {sum(len(g['beams']) for g in pl['fraction_groups'])} beams"
        )
    )


def _table(structures: list[dict]) -> str:
    header = ("name", "type", "contours", "z range (mm)", "volume_cc")
    rows = []
    for s in structures:
        z = s["slice_range_mm"]
        rows.append(
            (
                s["name"],
                s["type"] or "-",
                str(s["contours"]),
                f"{z[0]:.2f} .. {z[1]:.2f}" if z else "-",
                "0.000 (empty)"
                if "empty" in s.get("flags", [])
                else _num(s["volume_cc"])
                if s["is_volume"]
                else "(not a volume)",
            )
        )
        rows += [("", "", "", "", f"problem: {msg}") for msg in s["problems"]]
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
    return "\n".join(
        "      " + "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    )
