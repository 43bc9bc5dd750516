"""Closure (销号) evidence sets C1–C7 (DOMAIN §3.5) as data, and the checker.

Closed-loop invariant: a case closes only when the evidence documents for its outcome are attached
**and verified by a human** (``EvidenceItem.verified_by``); machine-read signatures and seals are
never enough on their own.

C2 (refusal route) and C4 (poor family refuses) are the sets that allow 延缓入学/休学; the ledger
entry itself is closed later at over-age (C6). C2's gate (Q4: ≥ N joint persuasions AND/OR a court
ruling) comes from the region profile.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from cases.engine.profiles import ORGS, RegionProfile
from forms.codes import PLACEMENTS
from forms.errors import ValidationFailed

EVIDENCE_KINDS = {
    "attendance_record": "复学到校出勤记录",
    "enrolment_record": "学籍恢复或变更记录",
    "placement_record": "安置方式记录（插班/单独编班/普职融合/个别辅导/送教上门/远程）",
    "teaching_plan": "教育教学计划",
    "support_plan": "一对一帮扶方案",
    "joint_persuasion_record": "联合劝返记录",
    "court_ruling": "司法部门判决裁定（确认监护人已履行法定义务）",
    "student_refusal": "学生本人拒绝复学的记录",
    "written_statement": "学生及家长不复学情况书面说明",
    "deferral_approval": "延缓入学/休学审批意见",
    "disability_referral": "报送残联的记录",
    "expert_assessment": "残疾人教育专家委员会评估认定意见",
    "home_teaching_plan": "送教上门安排",
    "rural_revitalization_approval": "乡村振兴领导小组办公室核实同意的审批意见",
    "over_age_mark": "超龄离校标注",
    "police_determination": "公安机关失踪失联或死亡认定",
    "data_error_proof": "数据错误核实材料",
    "duplicate_registration_proof": "重复学籍/空挂学籍核实材料",
    "study_elsewhere_proof": "在外地就读证明",
    "transfer_record": "转学记录",
    "abroad_proof": "出国(境)证明",
    "police_or_community_certificate": "派出所或社区证明",
}

OUTCOMES = {
    "C1": "复学",
    "C2": "延缓入学/休学（拒不复学）",
    "C3": "身体原因（残疾评估）",
    "C4": "贫困家庭拒不复学",
    "C5": "失踪或死亡",
    "C6": "超龄",
    "C7": "经核实非辍学",
}

_PLACEMENT_CODES = frozenset(c.code for c in PLACEMENTS)


@dataclass(frozen=True)
class EvidenceItem:
    """One evidence document attached to a case. ``verified_by`` is the person who checked it
    (None: not yet verified by a human). ``value`` carries a code where the kind needs one (the
    placement mode); ``issuer`` the issuing body (an ``ORGS`` code); ``partners`` the partner
    departments (``PARTNER_DEPARTMENTS`` codes) who took part in a joint persuasion."""

    kind: str
    verified_by: str | None = None
    verified_on: dt.date | None = None
    document_id: str | None = None
    value: str | None = None
    issuer: str | None = None
    partners: tuple[str, ...] = ()

    def __post_init__(self):
        if self.kind not in EVIDENCE_KINDS:
            raise ValidationFailed(f"未知的证明材料类型：{self.kind!r}", fields={"kind": "unknown"})

    @property
    def verified(self) -> bool:
        return bool(self.verified_by)


@dataclass(frozen=True)
class Need:
    """``min_count`` verified items of ``kind`` that pass the kind's qualification rule."""

    kind: str
    min_count: int = 1


@dataclass(frozen=True)
class Requirement:
    """Met when every ``Need`` of at least one option is met."""

    options: tuple[tuple[Need, ...], ...]
    label: str = ""


@dataclass(frozen=True)
class ClosureCheck:
    ok: bool
    missing: list[str] = field(default_factory=list)


def _req(*kinds: str) -> Requirement:
    """Any one of ``kinds`` (one verified item)."""
    return Requirement(tuple((Need(k),) for k in kinds))


def _refusal_gate(profile: RegionProfile) -> list[Requirement]:
    gate = profile.closure.refusal_gate
    joint = Need("joint_persuasion_record", gate.joint_attempts_min)
    court = Need("court_ruling")
    if not gate.court_ruling_required:
        return [Requirement(((joint,),))]
    if gate.combine == "OR":
        label = f"联合劝返不少于{gate.joint_attempts_min}次或司法部门判决裁定"
        return [Requirement(((joint,), (court,)), label)]
    return [Requirement(((joint,),)), Requirement(((court,),))]


def evidence_sets(profile: RegionProfile) -> dict[str, list[Requirement]]:
    """C1–C7 for ``profile`` (C2 depends on the profile's refusal gate)."""
    return {
        "C1": [_req("attendance_record"), _req("enrolment_record"), _req("placement_record"),
               _req("teaching_plan"), _req("support_plan")],
        "C2": [*_refusal_gate(profile), _req("student_refusal"), _req("written_statement"),
               _req("deferral_approval")],
        "C3": [_req("disability_referral"), _req("expert_assessment"),
               Requirement(((Need("deferral_approval"),), (Need("home_teaching_plan"),)))],
        "C4": [_req("rural_revitalization_approval")],
        "C5": [_req("police_determination")],
        "C6": [_req("over_age_mark")],
        "C7": [_req("data_error_proof", "duplicate_registration_proof", "study_elsewhere_proof",
                    "transfer_record", "abroad_proof", "police_or_community_certificate")],
    }


# 义务教育法 第十一条: deferral for physical reasons is approved by the township government or the
# county education department (C3), not by the refusal-route approvers of the profile.
_PHYSICAL_DEFERRAL_APPROVERS = ("township", "county_education")


def _qualifier(kind: str, outcome: str, profile: RegionProfile) -> tuple[Callable[[EvidenceItem], bool], str]:
    """Rule an item of ``kind`` must pass beyond being verified, and its description."""
    if kind == "placement_record":
        return (lambda i: i.value in _PLACEMENT_CODES), "须注明安置方式"
    if kind == "deferral_approval":
        approvers = _PHYSICAL_DEFERRAL_APPROVERS if outcome == "C3" else profile.closure.approvers_deferral
        names = "或".join(ORGS[a] for a in approvers)
        return (lambda i: i.issuer in approvers), f"审批单位须为{names}"
    if kind == "rural_revitalization_approval":
        office = "rural_revitalization_office"
        return (lambda i: i.issuer == office), f"须由{ORGS[office]}出具"
    if kind == "joint_persuasion_record" and profile.joint.partner_each_attempt:
        return (lambda i: bool(i.partners)), "每次须列明参与的成员单位"
    return (lambda i: True), ""


def _need_status(need: Need, outcome: str, items: list[EvidenceItem],
                 profile: RegionProfile) -> tuple[bool, str]:
    ok_rule, rule_text = _qualifier(need.kind, outcome, profile)
    of_kind = [i for i in items if i.kind == need.kind]
    good = [i for i in of_kind if i.verified and ok_rule(i)]
    if len(good) >= need.min_count:
        return True, ""
    label = EVIDENCE_KINDS[need.kind]
    notes = []
    unverified = sum(1 for i in of_kind if not i.verified)
    failing = sum(1 for i in of_kind if i.verified and not ok_rule(i))
    if unverified:
        notes.append(f"{unverified}份待人工核实")
    if failing:
        notes.append(f"{failing}份不符合要求（{rule_text}）")
    if need.min_count > 1:
        head = f"{label}：需经人工核实的至少{need.min_count}份，现有{len(good)}份"
        if rule_text and not failing:
            notes.append(rule_text)
    elif not of_kind:
        return False, f"缺少{label}"
    else:
        head = label
    return False, head + ("；" if need.min_count > 1 else "：") + "；".join(notes) if notes else head


def check_closure(outcome: str, evidence: Iterable[EvidenceItem], profile: RegionProfile) -> ClosureCheck:
    """Whether ``evidence`` completes the evidence set of ``outcome`` (C1–C7) under ``profile``.
    ``missing`` lists, in Chinese, each unmet requirement (missing, unverified or not qualifying)."""
    sets = evidence_sets(profile)
    if outcome not in sets:
        known = "、".join(f"“{OUTCOMES[k]}”" for k in sets if k in OUTCOMES)
        raise ValidationFailed(f"未知的销号类型：应为{known}之一",
                               fields={"outcome": "unknown"})
    items = list(evidence)
    missing: list[str] = []
    for req in sets[outcome]:
        option_texts = []
        met = False
        for option in req.options:
            statuses = [_need_status(n, outcome, items, profile) for n in option]
            if all(ok for ok, _ in statuses):
                met = True
                break
            option_texts.append("、".join(text for ok, text in statuses if not ok))
        if not met:
            if len(option_texts) == 1:
                missing.append(option_texts[0])
            elif all(t.startswith("缺少") and "、" not in t for t in option_texts):
                missing.append("缺少以下材料之一：" + "、".join(t.removeprefix("缺少") for t in option_texts))
            else:
                missing.append(req.label + "：" + " 或 ".join(option_texts) if req.label
                               else "以下之一：" + " 或 ".join(option_texts))
    return ClosureCheck(not missing, missing)
