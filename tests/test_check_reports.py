"""Reports of a protocol check, read back with independent parsers.

Truths: the hand-computed verdicts of a plan whose bowel bag has 400 cc between 40 and 50 Gy
(V45Gy = 200 cc, 5 cc over the 195 cc limit) and one that passes; JSON read by ``json``, CSV
by ``csv``, JUnit XML by ElementTree and by junitparser (a JUnit XML library), HTML by
``html.parser`` with the embedded PNG decoded.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import numpy as np
import pytest

from rtplan import __version__
from rtplan.check import check_plan
from rtplan.dose import Dose
from rtplan.dvh import DVH
from rtplan.grid import Grid
from rtplan.plan import FractionGroup, Plan
from rtplan.protocols import load_protocol
from rtplan.report import (
    PatientError,
    exit_code,
    to_csv,
    to_html,
    to_json,
    to_junit_xml,
    to_text,
)
from rtplan.report.records import ROW_FIELDS
from rtplan.structure import Contour, Structure

PROTOCOL = load_protocol("rps-preop")
N_CONSTRAINTS = len(PROTOCOL.constraints)
N_CASES = N_CONSTRAINTS + 1  # the constraints and the prescription line of the one target


def _dvh(name, *parts):
    return DVH(
        [(a + b) / 2 for _, a, b in parts],
        [v for v, _, _ in parts],
        [(b - a) / 2 for _, a, b in parts],
        name=name,
    )


def _check(
    bowel_high_cc: float,
    patient: str,
    plan_uid: str,
    *,
    absent=(),
    prescription=(50.4, 28),
    strict=True,
):
    """A check on hand-made DVHs: every organ of rps-preop below its limits except the bowel
    bag's ``bowel_high_cc`` between 40 and 50 Gy; ``absent`` names structures left out."""
    dvhs = {
        "PTV": _dvh("PTV", (500.0, 48.0, 52.0)),
        "Bowel bag": _dvh("Bowel bag", (200.0, 0.0, 40.0), (bowel_high_cc, 40.0, 50.0)),
        "Kidneys": _dvh("Kidneys", (300.0, 5.0, 15.0)),
        "Bowel_Small": _dvh("Bowel_Small", (100.0, 0.0, 10.0)),
        "SpinalCord": _dvh("SpinalCord", (20.0, 0.0, 20.0)),
        "Liver": _dvh("Liver", (1500.0, 0.0, 10.0)),
        "Stomach": _dvh("Stomach", (200.0, 0.0, 10.0)),
    }
    dvhs = {k: v for k, v in dvhs.items() if k not in absent}
    square = np.array([[0, 0, 0], [10, 0, 0], [10, 10, 0]], float)
    structures = [Structure(n, (Contour(square),), number=i) for i, n in enumerate(dvhs)]
    rx_gy, fractions = prescription
    plan = Plan(
        "RPS1", (FractionGroup(1, fractions),), prescription_gy=rx_gy, sop_instance_uid=plan_uid
    )
    dose = Dose(np.zeros((2, 2, 2)), Grid((2, 2, 2), (0, 0, 0), (1, 1, 1)))
    return check_plan(
        PROTOCOL,
        structures,
        dose,
        plan,
        patient=patient,
        inputs={"RTPLAN": plan_uid, "RTDOSE": "1.2.826.0.1.9"},
        dvh_function=lambda s, d: dvhs[s.name],
        strict=strict,
    )


@pytest.fixture(scope="module")
def outcomes():
    passing = _check(100.0, "rps_pass", "1.2.826.0.1.1")  # V45Gy = 50 cc
    failing = _check(400.0, "rps_fail", "1.2.826.0.1.2")  # V45Gy = 200 cc
    return [passing, failing, PatientError("rps_bad", "rps_bad/RD.dcm: not a DICOM file")]


def test_exit_codes(outcomes):
    passing, failing, error = outcomes
    assert (passing.status, failing.status) == ("pass", "fail")
    assert exit_code([passing]) == 0
    assert exit_code([passing, failing]) == 1
    assert exit_code([passing, error]) == 2
    assert exit_code(outcomes) == 1  # a definite failure outranks an unreadable patient


def test_json(outcomes):
    doc = json.loads(to_json(outcomes, PROTOCOL))
    assert doc["rtplan_version"] == __version__
    assert doc["protocol"]["name"] == "rps-preop" and doc["protocol"]["status"] == "template"
    assert doc["summary"] == {
        "status": "fail",
        "exit_code": 1,
        "patients": 3,
        "pass": 1,
        "fail": 1,
        "incomplete": 0,
        "mismatch": 0,
        "error": 1,
    }
    fail = doc["patients"][1]
    assert fail["inputs"]["RTPLAN"] == "1.2.826.0.1.2"
    bb = next(c for c in fail["constraints"] if c["constraint"] == "bowel_bag_v45gy")
    assert bb["verdict"] == "fail" and bb["value"] == pytest.approx(200.0)
    assert bb["margin"] == pytest.approx(-5.0) and bb["structure"] == "Bag_Bowel"
    assert bb["plan_structure"] == "Bowel bag" and "Kavanagh" in bb["source"]
    assert fail["schedule"][0]["verdict"] == "match"
    assert doc["patients"][2] == {
        "patient": "rps_bad",
        "status": "error",
        "error": "rps_bad/RD.dcm: not a DICOM file",
    }


def test_csv_one_row_per_patient_and_constraint(outcomes):
    rows = list(csv.DictReader(io.StringIO(to_csv(outcomes, PROTOCOL))))
    assert tuple(rows[0]) == ROW_FIELDS
    assert len(rows) == 2 * N_CASES + 1
    bb = [r for r in rows if r["constraint"] == "bowel_bag_v45gy"]
    assert [(r["patient"], r["verdict"]) for r in bb] == [
        ("rps_pass", "pass"),
        ("rps_fail", "fail"),
    ]
    assert float(bb[1]["value"]) == pytest.approx(200.0)
    assert float(bb[1]["margin"]) == pytest.approx(-5.0)
    assert rows[-1]["patient"] == "rps_bad" and rows[-1]["verdict"] == "error"


def test_junit_xml_with_elementtree(outcomes):
    root = ET.fromstring(to_junit_xml(outcomes, PROTOCOL))
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [
        "rps_pass / rps-preop",
        "rps_fail / rps-preop",
        "rps_bad / rps-preop",
    ]
    assert int(root.get("tests")) == 2 * N_CASES + 1
    assert root.get("failures") == "1" and root.get("errors") == "1"
    failures = root.findall(".//failure")
    assert len(failures) == 1
    assert "V45Gy" in failures[0].get("message") and "-5.00 cc" in failures[0].get("message")
    # the two optional contralateral-kidney limits (no kidney mapped to that role) are skipped
    assert int(root.get("skipped")) == 2 * 2


def test_junit_xml_with_junitparser(outcomes, tmp_path):
    junitparser = pytest.importorskip("junitparser")
    path = tmp_path / "check.xml"
    path.write_text(to_junit_xml(outcomes, PROTOCOL))
    xml = junitparser.JUnitXml.fromfile(str(path))
    cases = [(suite.name, case) for suite in xml for case in suite]
    assert len(cases) == 2 * N_CASES + 1
    failed = [
        (s, c.name) for s, c in cases if c.result and isinstance(c.result[0], junitparser.Failure)
    ]
    assert failed == [("rps_fail / rps-preop", "Bag_Bowel V45Gy < 195 cc [Bowel bag]")]
    errors = [s for s, c in cases if c.result and isinstance(c.result[0], junitparser.Error)]
    assert errors == ["rps_bad / rps-preop"]


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.cells, self.text = [], [], []
        self._in_cell = False

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs))
        self._in_cell = tag == "td"

    def handle_data(self, data):
        self.text.append(data)
        if self._in_cell:
            self.cells.append(data)


def test_html_is_self_contained_with_embedded_dvh(outcomes):
    page = _Page()
    page.feed(to_html(outcomes, PROTOCOL))
    text = " ".join(page.text)
    assert f"rtplan {__version__}" in text and "rps-preop" in text
    assert "Template protocol" in text
    assert "1.2.826.0.1.2" in page.cells  # the failing plan's RTPLAN UID
    assert "FAIL" in page.cells and "-5.00 cc (-2.6%)" in page.cells
    assert len(page.images) == 2  # one DVH plot per checked patient
    for img in page.images:
        assert img["src"].startswith("data:image/png;base64,")
        png = base64.b64decode(img["src"].split(",", 1)[1])
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert "http://" not in to_html(outcomes, PROTOCOL)  # nothing fetched from elsewhere


def test_terminal_table(outcomes):
    single = to_text(outcomes[1:2], PROTOCOL)
    header = next(line for line in single.splitlines() if line.startswith("structure"))
    assert header.split() == [
        "structure",
        "metric",
        "value",
        "limit",
        "result",
        "margin",
        "to",
        "limit",
        "basis",
    ]
    bb = next(line for line in single.splitlines() if line.startswith("Bowel bag"))
    assert "200.00 cc" in bb and "< 195 cc" in bb and "FAIL" in bb and "-5.00 cc" in bb
    assert "result: FAIL" in single
    many = to_text(outcomes, PROTOCOL)
    assert sum(line.startswith("rps_pass ") for line in many.splitlines()) == N_CASES
    assert "rps_bad: ERROR" in many


# --------------------------------------------------------------- strict verdicts (issue 12)
def _formats(outcome):
    """Every report format of one outcome, as text."""
    return {
        "text": to_text([outcome], PROTOCOL),
        "json": to_json([outcome], PROTOCOL),
        "csv": to_csv([outcome], PROTOCOL),
        "junit": to_junit_xml([outcome], PROTOCOL),
        "html": to_html([outcome], PROTOCOL),
    }


def test_absent_mandatory_structure_is_not_evaluated_and_exits_1():
    # Truth: rps-preop's liver Dmean is mandatory; without a liver it cannot be judged, and a
    # strict check must not pass what it could not judge.
    check = _check(100.0, "no_liver", "1.2.826.0.1.3", absent=("Liver",))
    assert check.status == "incomplete" and exit_code([check]) == 1
    for name, text in _formats(check).items():
        assert "NOT EVALUATED" in text, name
    root = ET.fromstring(_formats(check)["junit"])
    errors = root.findall(".//error")
    assert [e.get("type") for e in errors] == ["not evaluated"]
    relaxed = _check(100.0, "no_liver", "1.2.826.0.1.3", absent=("Liver",), strict=False)
    assert relaxed.status == "pass" and exit_code([relaxed]) == 0
    assert any("liver_dmean" in n and "not evaluated" in n for n in relaxed.notes)
    assert "NOT EVALUATED (note, relaxed)" in to_text([relaxed], PROTOCOL)
    assert ET.fromstring(to_junit_xml([relaxed], PROTOCOL)).get("errors") == "0"


def test_hypofractionated_plan_against_rps_preop_is_a_mismatch():
    # Truth: 35 Gy / 5 fx (7 Gy per fraction) is not rps-preop's 50.4 Gy / 28 fx (1.8 Gy),
    # and rps-preop does not allow EQD2 conversion: MISMATCH, exit 1, even though every
    # physical-dose constraint passes.
    check = _check(100.0, "hypo", "1.2.826.0.1.4", prescription=(35.0, 5))
    assert not check.failed and check.status == "mismatch" and exit_code([check]) == 1
    (sr,) = check.schedule
    assert sr.verdict == "mismatch" and sr.plan_per_fraction_gy == pytest.approx(7.0)
    out = _formats(check)
    for name, text in out.items():
        assert "MISMATCH" in text or '"mismatch"' in text, name
    assert "35 Gy / 5 fx (7 Gy/fx)" in out["text"] and "50.4 Gy / 28 fx (1.8 Gy/fx)" in out["text"]
    assert json.loads(out["json"])["patients"][0]["schedule"][0]["verdict"] == "mismatch"
    failure = ET.fromstring(out["junit"]).find(".//failure")
    assert failure.get("type") == "mismatch"
    # coverage is judged against both prescriptions: D95% = 48.2 Gy (the DVH is uniform on
    # 48..52 Gy) is 96.4 %Rx of 50.4 Gy (protocol) and 137.7 %Rx of 35 Gy (plan; a 25 Gy plan would trip the
    # plausibility guard of a dose maximum above 2 x the prescription)
    d95 = [r for r in check.results if r.constraint.id == "ptv_d95"]
    assert sorted(r.prescription_gy for r in d95) == [35.0, 50.4]
    by_rx = {r.prescription_gy: r.value for r in d95}
    assert by_rx[50.4] == pytest.approx(48.2 / 50.4 * 100)
    assert by_rx[35.0] == pytest.approx(48.2 / 35.0 * 100)
    relaxed = _check(100.0, "hypo", "1.2.826.0.1.4", prescription=(35.0, 5), strict=False)
    assert relaxed.status == "pass" and exit_code([relaxed]) == 0
    assert "MISMATCH (note, relaxed)" in to_text([relaxed], PROTOCOL)


def test_dicom_text_in_reports_is_data():
    # A patient name with markup, a formula start and an escape character must reach every
    # report as text: escaped in HTML, as a property value in JUnit, a non-formula CSV cell.
    check = _check(100.0, "=cmd|x", "1.2.826.0.1.5")
    import dataclasses

    evil = "<script>alert(1)</script>\x1b[31m"
    check = dataclasses.replace(check, provenance=dict(check.provenance, patient_name=evil))
    page = to_html([check], PROTOCOL)
    assert "<script>" not in page and "&lt;script&gt;" in page and "\x1b" not in page
    root = ET.fromstring(to_junit_xml([check], PROTOCOL))
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["patient_name"] == "<script>alert(1)</script>\\x1b[31m"
    rows = list(csv.DictReader(io.StringIO(to_csv([check], PROTOCOL))))
    assert rows[0]["patient"] == "'=cmd|x"
