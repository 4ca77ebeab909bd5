"""RTPLAN reader: label, fraction groups, beams, prescription, references (values as written)."""

from __future__ import annotations

import pytest

from rtplan.errors import DicomReadError
from rtplan.io.rtplan import read_rtplan
from rtplan.testing import synthetic as syn


def _plan(**kw):
    args = dict(
        patient_id="P",
        patient_name="P",
        study_uid="1.2.3",
        frame_of_reference_uid="1.2.4",
        referenced_structure_set_uid="1.2.5",
    )
    args.update(kw)
    return args


def test_plan_fields(tmp_path):
    ds = syn.rtplan_dataset(
        "RPS_50.4",
        28,
        50.4,
        [syn.SyntheticBeam("AP", 0.9), syn.SyntheticBeam("PA", 0.9, 180.0)],
        target_roi_number=4,
        plan_name="RPS preop",
        extra_fraction_groups=[(5, [syn.SyntheticBeam("boost", 2.0, 90.0)])],
        **_plan(),
    )
    plan = read_rtplan(syn.write_datasets([ds], tmp_path)[0])
    assert plan.label == "RPS_50.4" and plan.name == "RPS preop"
    assert plan.prescription_gy == 50.4
    assert [(g.number, g.fractions) for g in plan.fraction_groups] == [(1, 28), (2, 5)]
    assert plan.fractions == 33
    assert [(b.number, b.name, b.dose_gy) for b in plan.fraction_groups[0].beams] == [
        (1, "AP", 0.9),
        (2, "PA", 0.9),
    ]
    assert [(b.number, b.name) for b in plan.fraction_groups[1].beams] == [(3, "boost")]
    assert plan.referenced_structure_set_uid == "1.2.5"
    assert plan.frame_of_reference_uid == "1.2.4"
    assert plan.sop_instance_uid == ds.SOPInstanceUID
    (ref,) = plan.dose_references
    assert (ref.reference_type, ref.structure_type, ref.roi_number) == ("TARGET", "VOLUME", 4)
    assert plan.dose_per_fraction_gy == pytest.approx(50.4 / 33)


def test_plan_without_prescription(tmp_path):
    ds = syn.rtplan_dataset("NORX", 5, None, [syn.SyntheticBeam("AP")], **_plan())
    plan = read_rtplan(syn.write_datasets([ds], tmp_path)[0])
    assert plan.prescription_gy is None and plan.fractions == 5
    assert plan.fraction_groups[0].beams[0].dose_gy is None


def test_missing_label_is_an_error(tmp_path):
    ds = syn.rtplan_dataset("X", 5, 25.0, **_plan())
    del ds.RTPlanLabel
    with pytest.raises(DicomReadError, match=r"missing required tag RTPlanLabel \(300A,0002\)"):
        read_rtplan(syn.write_datasets([ds], tmp_path)[0])
