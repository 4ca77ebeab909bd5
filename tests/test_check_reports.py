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


def _dvh(name, *parts):
    return DVH(
        [(a + b) / 2 for _, a, b in parts],
        [v for v, _, _ in parts],
        [(b - a) / 2 for _, a, b in parts],
        name=name,
    )


def _check(bowel_high_cc: float, patient: str, plan_uid: str):
    dvhs = {
        "PTV": _dvh("PTV", (500.0, 48.0, 52.0)),
        "Bowel bag": _dvh("Bowel bag", (200.0, 0.0, 40.0), (bowel_high_cc, 40.0, 50.0)),
        "Kidneys": _dvh("Kidneys", (300.0, 5.0, 15.0)),
    }
    square = np.array([[0, 0, 0], [10, 0, 0], [10, 10, 0]], float)
    structures = [Structure(n, (Contour(square),), number=i) for i, n in enumerate(dvhs)]
    plan = Plan("RPS1", (FractionGroup(1, 28),), prescription_gy=50.4, sop_instance_uid=plan_uid)
    dose = Dose(np.zeros((2, 2, 2)), Grid((2, 2, 2), (0, 0, 0), (1, 1, 1)))
    return check_plan(
        PROTOCOL,
        structures,
        dose,
        plan,
        patient=patient,
        inputs={"RTPLAN": plan_uid, "RTDOSE": "1.2.826.0.1.9"},
        dvh_function=lambda s, d: dvhs[s.name],
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
        "error": 1,
    }
    fail = doc["patients"][1]
    assert fail["inputs"]["RTPLAN"] == "1.2.826.0.1.2"
    bb = next(c for c in fail["constraints"] if c["constraint"] == "bowel_bag_v45gy")
    assert bb["verdict"] == "fail" and bb["value"] == pytest.approx(200.0)
    assert bb["margin"] == pytest.approx(-5.0) and bb["structure"] == "Bag_Bowel"
    assert bb["plan_structure"] == "Bowel bag" and "Kavanagh" in bb["source"]
    absent = next(c for c in fail["constraints"] if c["constraint"] == "liver_dmean")
    assert absent["verdict"] == "not evaluated" and absent["value"] is None
    assert doc["patients"][2] == {
        "patient": "rps_bad",
        "status": "error",
        "error": "rps_bad/RD.dcm: not a DICOM file",
    }


def test_csv_one_row_per_patient_and_constraint(outcomes):
    rows = list(csv.DictReader(io.StringIO(to_csv(outcomes, PROTOCOL))))
    assert tuple(rows[0]) == ROW_FIELDS
    assert len(rows) == 2 * N_CONSTRAINTS + 1
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
    assert int(root.get("tests")) == 2 * N_CONSTRAINTS + 1
    assert root.get("failures") == "1" and root.get("errors") == "1"
    failures = root.findall(".//failure")
    assert len(failures) == 1
    assert "V45Gy" in failures[0].get("message") and "-5.00 cc" in failures[0].get("message")
    # absent optional structures are skipped: small bowel, cord, liver, stomach, per patient
    assert int(root.get("skipped")) == 2 * 4


def test_junit_xml_with_junitparser(outcomes, tmp_path):
    junitparser = pytest.importorskip("junitparser")
    path = tmp_path / "check.xml"
    path.write_text(to_junit_xml(outcomes, PROTOCOL))
    xml = junitparser.JUnitXml.fromfile(str(path))
    cases = [(suite.name, case) for suite in xml for case in suite]
    assert len(cases) == 2 * N_CONSTRAINTS + 1
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
    assert sum(line.startswith("rps_pass ") for line in many.splitlines()) == N_CONSTRAINTS
    assert "rps_bad: ERROR" in many
