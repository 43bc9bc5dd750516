"""Closure evidence sets C1–C7: complete sets pass, gaps are listed in Chinese, nothing counts
until a person has verified it, and C2's Q4 gate follows the profile."""

from __future__ import annotations

import copy
import json

import pytest

from cases.engine.closure import EVIDENCE_KINDS, EvidenceItem, check_closure, evidence_sets
from cases.engine.profiles import PROFILE_DIR, load_profile, profile_from_dict
from forms.errors import ValidationFailed

WEIHUI = load_profile("henan-weihui-2022")
GUIZHOU = load_profile("guizhou-2019")


def ok(kind, **kw) -> EvidenceItem:
    return EvidenceItem(kind, verified_by="核查员甲", **kw)


def joint(n, partners=("sifa",)):
    return [ok("joint_persuasion_record", partners=partners) for _ in range(n)]


COMPLETE = {
    "C1": [ok("attendance_record"), ok("enrolment_record"), ok("placement_record", value="chaban"),
           ok("teaching_plan"), ok("support_plan")],
    "C2": [*joint(3), ok("court_ruling"), ok("student_refusal"), ok("written_statement"),
           ok("deferral_approval", issuer="county_education")],
    "C3": [ok("disability_referral"), ok("expert_assessment"), ok("home_teaching_plan")],
    "C4": [ok("rural_revitalization_approval", issuer="rural_revitalization_office")],
    "C5": [ok("police_determination")],
    "C6": [ok("over_age_mark")],
    "C7": [ok("transfer_record")],
}


@pytest.mark.parametrize("profile", [WEIHUI, GUIZHOU], ids=lambda p: p.name)
@pytest.mark.parametrize("outcome", sorted(COMPLETE))
def test_complete_sets_pass_and_empty_sets_fail(outcome, profile):
    assert check_closure(outcome, COMPLETE[outcome], profile).ok
    empty = check_closure(outcome, [], profile)
    assert not empty.ok and empty.missing
    assert all(isinstance(m, str) and m for m in empty.missing)


@pytest.mark.parametrize("outcome", sorted(COMPLETE))
def test_unverified_evidence_never_counts(outcome):
    unverified = [EvidenceItem(i.kind, value=i.value, issuer=i.issuer, partners=i.partners)
                  for i in COMPLETE[outcome]]
    result = check_closure(outcome, unverified, WEIHUI)
    assert not result.ok
    assert any("待人工核实" in m for m in result.missing)


def test_c1_missing_list_in_chinese():
    result = check_closure("C1", [ok("attendance_record"), ok("placement_record", value="tuition")], WEIHUI)
    assert result.missing == [
        "缺少学籍恢复或变更记录",
        "安置方式记录（插班/单独编班/普职融合/个别辅导/送教上门/远程）：1份不符合要求（须注明安置方式）",
        "缺少教育教学计划",
        "缺少一对一帮扶方案",
    ]


def test_c2_and_gate_needs_both_joint_attempts_and_court_ruling():
    evidence = [e for e in COMPLETE["C2"] if e.kind != "court_ruling"]
    result = check_closure("C2", evidence, WEIHUI)
    assert result.missing == ["缺少司法部门判决裁定（确认监护人已履行法定义务）"]
    two = [e for e in COMPLETE["C2"] if e.kind != "joint_persuasion_record"] + joint(2)
    result = check_closure("C2", two, WEIHUI)
    assert result.missing == ["联合劝返记录：需经人工核实的至少3份，现有2份；每次须列明参与的成员单位"]


def _or_profile():
    data = copy.deepcopy(json.loads((PROFILE_DIR / "henan-weihui-2022.json").read_text(encoding="utf-8")))
    data["closure"]["refusal_gate"]["combine"] = "OR"
    return profile_from_dict(data)


def test_c2_or_gate_accepts_either():
    profile = _or_profile()
    without_court = [e for e in COMPLETE["C2"] if e.kind != "court_ruling"]
    assert check_closure("C2", without_court, profile).ok
    court_only = [e for e in COMPLETE["C2"] if e.kind != "joint_persuasion_record"]
    assert check_closure("C2", court_only, profile).ok
    neither = [e for e in court_only if e.kind != "court_ruling"]
    result = check_closure("C2", neither, profile)
    assert len(result.missing) == 1 and result.missing[0].startswith("联合劝返不少于3次或司法部门判决裁定：")


def test_joint_records_must_name_a_partner():
    evidence = [e for e in COMPLETE["C2"] if e.kind != "joint_persuasion_record"] + joint(3, partners=())
    result = check_closure("C2", evidence, WEIHUI)
    assert result.missing == ["联合劝返记录：需经人工核实的至少3份，现有0份；"
                              "3份不符合要求（每次须列明参与的成员单位）"]


def test_deferral_approval_must_come_from_a_profile_approver():
    evidence = [e for e in COMPLETE["C2"] if e.kind != "deferral_approval"]
    evidence.append(ok("deferral_approval", issuer="township"))
    result = check_closure("C2", evidence, WEIHUI)
    assert len(result.missing) == 1 and "审批单位须为县级教育部门或" in result.missing[0]
    # C3 (physical condition): the township may approve (义务教育法 第十一条).
    c3 = [ok("disability_referral"), ok("expert_assessment"), ok("deferral_approval", issuer="township")]
    assert check_closure("C3", c3, WEIHUI).ok


def test_c4_issuer_and_c7_any_of():
    assert not check_closure("C4", [ok("rural_revitalization_approval", issuer="township")], WEIHUI).ok
    result = check_closure("C7", [], WEIHUI)
    assert result.missing == ["缺少以下材料之一：数据错误核实材料、重复学籍/空挂学籍核实材料、"
                              "在外地就读证明、转学记录、出国(境)证明、派出所或社区证明"]
    for kind in ("abroad_proof", "police_or_community_certificate", "study_elsewhere_proof"):
        assert check_closure("C7", [ok(kind)], WEIHUI).ok


def test_errors_and_data():
    with pytest.raises(ValidationFailed):
        check_closure("C9", [], WEIHUI)
    with pytest.raises(ValidationFailed):
        EvidenceItem("selfie")
    sets = evidence_sets(WEIHUI)
    assert sorted(sets) == ["C1", "C2", "C3", "C4", "C5", "C6", "C7"]
    kinds = {n.kind for reqs in sets.values() for r in reqs for opt in r.options for n in opt}
    assert kinds <= set(EVIDENCE_KINDS)
