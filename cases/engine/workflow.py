"""The case workflow (DOMAIN §3): 15 states, transitions T1–T23 (with the 贵州 variants T7-GZ and
T10-GZ) as data, guards as small pure functions over ``CaseFacts``, and the automatic absence
thresholds. Pure: no database, no Flask. Thresholds, step order and notice variants come from the
``RegionProfile``; the code only knows the shape of the workflow.

Which transitions a profile uses is data too: a transition may require or exclude a step of the
profile's ``step_order`` (卫辉: REPORTED → NOTICED on township receipt of the 报告单, T8; 贵州:
township persuasion × N first, then the 敦返复学通知书, T10-GZ).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, replace

from cases.engine.calendars import HolidayTables
from cases.engine.closure import EvidenceItem, check_closure
from cases.engine.deadlines import DeadlineResult, Timer, add_months, due_date
from cases.engine.profiles import NOTICE_VARIANTS, RegionProfile
from forms.codes import DROPOUT_REASONS, PARTNER_DEPARTMENTS
from forms.errors import InvalidTransition, ValidationFailed
from forms.validators import format_date

STATES = {
    "ATTENDING": "正常在校",
    "ABSENT": "无故缺勤",
    "VERIFY": "家访核实",
    "SUSPECTED": "疑似辍学",
    "REPORTED": "已书面报告",
    "NOTICED": "返校通知已送达",
    "JOINT": "联合劝返",
    "LEGAL": "司法介入",
    "LOCATING": "失联寻找",
    "ASSESSING": "残疾评估",
    "APPROVAL": "待审批",
    "RETURNED": "已复学（安置/观察）",
    "DEFERRED": "延缓入学/休学（持续劝返）",
    "HOME_TAUGHT": "送教上门",
    "CLOSED": "已销号",
}
# States of an open case ("any" in the transition table): not the baseline, not terminal.
OPEN_STATES = frozenset(STATES) - {"ATTENDING", "CLOSED"}

ACTORS = {
    "class_teacher": "班主任",
    "school": "学校",
    "dedicated_person": "专人（会同班主任、村干部）",
    "township": "乡(镇)人民政府",
    "joint_team": "乡(镇)及联控联保成员单位",
    "justice": "司法部门会同乡(镇)",
    "police": "公安机关",
    "assessment_team": "乡(镇)、残联、教育部门",
    "education": "教育部门",
    "approver": "教育部门或乡村振兴领导小组办公室",
    "school_township": "学校、乡(镇)",
}


@dataclass(frozen=True)
class TransitionDef:
    """One row of the transition table. ``target`` equal to a source is a loop (T5).
    ``requires_steps``/``excludes_steps`` select the rows a profile uses; ``starts`` are the start
    events (``timers.START_EVENTS``) the transition produces: every profile timer whose ``from`` is
    one of them starts when the transition is taken (waiting, without a due date, while the event's
    date is still unknown); ``outcome`` is the closure evidence set (C1–C7) a transition into
    CLOSED must satisfy."""

    code: str
    label: str
    sources: frozenset[str]
    target: str
    actor: str
    guard: str
    documents: tuple[str, ...] = ()
    starts: tuple[str, ...] = ()
    requires_steps: tuple[str, ...] = ()
    excludes_steps: tuple[str, ...] = ()
    automatic: bool = False
    outcome: str | None = None
    source: str = ""

    def applies_to(self, profile: RegionProfile) -> bool:
        return (all(profile.has_step(s) for s in self.requires_steps)
                and not any(profile.has_step(s) for s in self.excludes_steps))


def _t(code, label, sources, target, actor, guard, **kw) -> TransitionDef:
    return TransitionDef(code, label, frozenset(sources), target, actor, guard, **kw)


TRANSITIONS: tuple[TransitionDef, ...] = (
    _t("T1", "登记无故缺勤", {"ATTENDING"}, "ABSENT", "class_teacher", "absence_recorded",
       documents=("考勤记录",), starts=("absence_recorded",), automatic=True, source="[S3]"),
    _t("T2", "核实有正当理由，恢复在校", {"ABSENT"}, "ATTENDING", "class_teacher", "legitimate_reason",
       documents=("考勤记录备注",), source="[CP]"),
    _t("T3", "家访或联系监护人核实", {"ABSENT"}, "VERIFY", "school", "verify_threshold",
       documents=("家访/联系记录",), starts=("entered_verify",), automatic=True, source="[S1]"),
    _t("T4", "认定疑似辍学，指定专人", {"ABSENT", "VERIFY"}, "SUSPECTED", "school", "suspect_threshold",
       documents=("指定劝返专人", "一生一表建档"),
       starts=("entered_suspected", "suspect_threshold_crossed", "persuasion_window_end", "home_visits_failed"),
       automatic=True, source="[S1][S3]"),
    _t("T5", "记录劝返", {"SUSPECTED"}, "SUSPECTED", "dedicated_person", "still_absent",
       documents=("劝返记录",), source="[S1]"),
    _t("T6", "学生返校", {"SUSPECTED"}, "RETURNED", "school", "child_returned",
       documents=("复学记录", "安置方式"), starts=("returned",), source="[S1]"),
    _t("T7", "书面报告乡(镇)和教育部门", {"SUSPECTED"}, "REPORTED", "school", "report_after_window",
       documents=("义务教育阶段学生辍学情况报告单", "劝返台账登记"), starts=("report_receipt",),
       requires_steps=("school_persuasion",), source="[S1]"),
    _t("T7-GZ", "两次以上家访未返校，报告县教育局和乡(镇)", {"SUSPECTED"}, "REPORTED", "school",
       "report_after_home_visits", documents=("义务教育阶段学生辍学情况报告单",), starts=("report_receipt",),
       requires_steps=("school_home_visits",), source="[S3]"),
    _t("T8", "乡(镇)下达并送达返校通知书", {"REPORTED"}, "NOTICED", "township", "notice_after_receipt",
       documents=("返校通知书", "存根", "送达回证"), starts=("service",),
       excludes_steps=("township_persuasion",), source="[S1]"),
    _t("T9", "限期内返校", {"NOTICED"}, "RETURNED", "school", "child_returned",
       documents=("复学记录",), starts=("returned",), source="[S1]"),
    _t("T10", "组织联合劝返", {"NOTICED"}, "JOINT", "joint_team", "joint_needed",
       documents=("联合劝返记录", "部门函件"), source="[S1]"),
    _t("T10-GZ", "乡(镇)劝返无效，送达敦返复学通知书", {"REPORTED"}, "NOTICED", "township",
       "notice_after_township_attempts", documents=("返校通知书", "存根", "送达回证"),
       starts=("service",), requires_steps=("township_persuasion",), source="[S3]"),
    _t("T11", "劝返无效，司法介入", {"JOINT"}, "LEGAL", "justice", "joint_ineffective",
       documents=("责令学生复学通知书/相关司法文书",), source="[S1][S0][S2]"),
    _t("T12", "失联，会同公安寻找", OPEN_STATES - {"LOCATING"}, "LOCATING", "township", "out_of_contact",
       documents=("公安协查函",), source="[S1]"),
    _t("T13", "已找到，继续联合劝返", {"LOCATING"}, "JOINT", "township", "found", source="[S1]"),
    _t("T14", "公安认定失踪或死亡，销号", {"LOCATING"}, "CLOSED", "police", "closure_evidence",
       documents=("公安认定证明",), outcome="C5", source="[S1]"),
    _t("T15", "身体原因，转残联评估", OPEN_STATES - {"ASSESSING", "HOME_TAUGHT"}, "ASSESSING",
       "assessment_team", "physical_condition", documents=("报送残联函",), source="[S1]"),
    _t("T16a", "专家委员会认定：送教上门", {"ASSESSING"}, "HOME_TAUGHT", "assessment_team",
       "assessed_home_taught", documents=("评估认定意见",), source="[S1]"),
    _t("T16b", "专家委员会认定：延缓入学/休学", {"ASSESSING"}, "DEFERRED", "assessment_team",
       "assessed_deferred", documents=("评估认定意见", "延缓入学/休学审批"), source="[S1]"),
    _t("T16c", "评估安置完成，台账销号归档", {"HOME_TAUGHT", "DEFERRED"}, "CLOSED", "assessment_team",
       "closure_evidence", documents=("评估认定意见", "台账销号归档"), outcome="C3", source="[S1]"),
    _t("T17", "拒不复学，报请审批延缓/休学", {"JOINT", "LEGAL"}, "APPROVAL", "township",
       "deferral_route_ready", documents=("证明材料（C2/C4）",), source="[S1]"),
    _t("T18", "审批同意延缓入学/休学", {"APPROVAL"}, "DEFERRED", "approver", "deferral_approved",
       documents=("审批意见",), source="[S1]"),
    _t("T19", "延缓/休学期间返校", {"DEFERRED"}, "RETURNED", "school", "child_returned",
       documents=("复学记录",), starts=("returned",), source="[S1]"),
    _t("T20", "超龄离校标注，销号", {"DEFERRED"}, "CLOSED", "education", "over_age",
       documents=("超龄离校标注", "台账销号"), outcome="C6", source="[S1]"),
    _t("T21", "复学稳定，销号", {"RETURNED"}, "CLOSED", "school_township", "return_stable",
       documents=("出勤证明",), outcome="C1", source="[S3][CP]"),
    _t("T22", "经核实非辍学，销号", OPEN_STATES, "CLOSED", "education", "closure_evidence",
       documents=("派出所/社区证明、就读证明或转学记录",), outcome="C7", source="[EXT-17]"),
    _t("T23", "复学后再次缺勤（反弹）", {"RETURNED"}, "ABSENT", "class_teacher", "absence_recorded",
       documents=("考勤记录",), starts=("absence_recorded",), automatic=True, source="[S1][CP]"),
)
TRANSITIONS_BY_CODE = {t.code: t for t in TRANSITIONS}


@dataclass(frozen=True)
class ReasonPartners:
    """§3.4: partner departments (``PARTNER_DEPARTMENTS`` codes) for joint persuasion by reason."""

    partners: tuple[str, ...]
    assisting: tuple[str, ...] = ()
    actions: str = ""
    source: str = "[S1]"


REASON_PARTNERS: dict[str, ReasonPartners] = {
    "R07": ReasonPartners(("sifa",), (), "责令复学通知书、司法文书"),
    "R02": ReasonPartners(("renshe", "gongan"), (),
                          "协调务工地教育部门及公安、人社；查处使用童工；批评教育家长"),
    "R05": ReasonPartners(("canlian", "jiaoyu"), ("weijian",), "送教上门、远程信息化教学；专家委员会评估"),
    "R03": ReasonPartners(("minzheng",), (), "特殊关爱；依法处理"),
    "R04": ReasonPartners(("minzong",), (), "教育与宗教相分离"),
    "R08": ReasonPartners(("gongan",), (), "查找下落，再视情况联系其他部门"),
    "R01": ReasonPartners(("jiaoyu",), (), "学困生帮扶；插班、单独编班、普职融合、个别辅导", "[S1][S2][S4]"),
    "R06": ReasonPartners(("minzheng", "xczx", "jiaoyu"), (), "两免一补、营养改善计划、救助", "[S0][S1][S3]"),
    "R10": ReasonPartners(("weijian",), ()),
    "R09": ReasonPartners(("gongan", "scjg"), (), "整治校园周边及网吧等不良环境", "[CP]"),
    "R11": ReasonPartners(("jiaoyu",), (), "联系流入地/流出地教育部门", "[CP]"),
    "R12": ReasonPartners(("jiaoyu",), (), "寄宿、交通保障", "[CP]"),
    "R99": ReasonPartners((), (), "由乡(镇)视情况确定", "[CP]"),
}


def partners_for(reason: str | None) -> ReasonPartners:
    """Partner departments for a dropout reason code (unknown or missing reason: township decides)."""
    return REASON_PARTNERS.get(reason or "R99", REASON_PARTNERS["R99"])


@dataclass(frozen=True)
class CaseFacts:
    """What is known about one case on ``today``; guards read only this and the profile.

    Counts are of recorded, failed attempts. ``unexcused_days`` is kept in the profile's absence
    unit (school days for 卫辉, calendar days for 贵州; see ``deadlines.count_school_days``).
    ``notice_served_on`` is the service date of a *complete* 送达回证 (incomplete: None).
    ``suspect_threshold_crossed_on``: the day the absence run reached the suspect threshold (from
    attendance records; None without them). ``home_visits_reached_on``: the date of the failed
    school home visit that reached ``school.home_visits_before_report`` (贵州: the second)."""

    today: dt.date
    unexcused_days: int = 0
    unregistered_at_term_start: bool = False
    handover_not_arrived: bool = False
    legitimate_reason_verified: bool = False
    reason: str | None = None
    entered_suspected_on: dt.date | None = None
    suspect_threshold_crossed_on: dt.date | None = None
    school_attempts_in_window: int = 0
    home_visits_failed: int = 0
    home_visits_reached_on: dt.date | None = None
    out_of_contact: bool = False
    report_received_on: dt.date | None = None
    report_received_by_education: bool = False
    township_attempts_failed: int = 0
    notice_variant: str | None = None
    notice_served_on: dt.date | None = None
    returned_on: dt.date | None = None
    joint_attempts: int = 0
    joint_attempts_with_partner: int = 0
    court_ruling: bool = False
    student_refuses: bool = False
    written_statement: bool = False
    poverty_family: bool = False
    guardian_refuses: bool = False
    deferral_route: str | None = None  # "C2" (refusal) or "C4" (poor family refuses)
    found: bool = False
    disability_suspected: bool = False
    assessment_placement: str | None = None  # "home_taught" | "deferred"
    over_age: bool = False
    previous_return_on: dt.date | None = None
    evidence: tuple[EvidenceItem, ...] = ()
    holidays: HolidayTables | None = None


# --- deadlines the guards need ---------------------------------------------------------------

def persuasion_window_due(facts: CaseFacts, profile: RegionProfile) -> DeadlineResult | None:
    """Last day of the school persuasion window (None if the profile has none or not suspected)."""
    name = profile.school.window_timer
    if name is None or facts.entered_suspected_on is None:
        return None
    return due_date(profile.timer(name), facts.entered_suspected_on, holidays=facts.holidays)


def return_deadline_due(facts: CaseFacts, profile: RegionProfile) -> DeadlineResult | None:
    """Last day to return after service of the township notice (None until served)."""
    if facts.notice_served_on is None:
        return None
    return due_date(profile.return_deadline, facts.notice_served_on, holidays=facts.holidays)


def _valid_joint_attempts(facts: CaseFacts, profile: RegionProfile) -> int:
    # Q18: under profiles that require it, only attempts naming a partner department count.
    return facts.joint_attempts_with_partner if profile.joint.partner_each_attempt else facts.joint_attempts


def _returned(facts: CaseFacts) -> bool:
    return facts.returned_on is not None and facts.returned_on <= facts.today


# --- guards: (facts, profile) -> None when allowed, else the reason in Chinese -----------------

Guard = Callable[[CaseFacts, RegionProfile], "str | None"]


def g_absence_recorded(f: CaseFacts, p: RegionProfile) -> str | None:
    if f.unexcused_days >= 1 or f.unregistered_at_term_start or f.handover_not_arrived:
        return None
    return "尚未登记无故缺勤、开学未报到或整班移交未到校"


def g_legitimate_reason(f: CaseFacts, p: RegionProfile) -> str | None:
    return None if f.legitimate_reason_verified else "缺勤的正当理由尚未核实"


def g_verify_threshold(f: CaseFacts, p: RegionProfile) -> str | None:
    rule = p.absence.verify_after
    if rule is None:  # the profile sets no day threshold: the school may start verification any time
        return g_absence_recorded(f, p)
    if rule.reached(f.unexcused_days):
        return None
    return f"无故缺勤{f.unexcused_days}日，未达到家访核实标准（{_threshold_text(rule, p)}）"


def g_suspect_threshold(f: CaseFacts, p: RegionProfile) -> str | None:
    rule = p.absence.suspect_after
    if rule.reached(f.unexcused_days):
        return None
    return f"无故缺勤{f.unexcused_days}日，未达到疑似辍学标准（{_threshold_text(rule, p)}）"


def g_still_absent(f: CaseFacts, p: RegionProfile) -> str | None:
    return "学生已返校，应办理返校" if _returned(f) else None


def g_child_returned(f: CaseFacts, p: RegionProfile) -> str | None:
    return None if _returned(f) else "尚未登记返校日期"


def g_report_after_window(f: CaseFacts, p: RegionProfile) -> str | None:
    if _returned(f):
        return "学生已返校，无需报告"
    if f.out_of_contact:
        return None
    due = persuasion_window_due(f, p)
    if due is None:
        return "尚未记录进入疑似辍学的日期"
    if f.today > due.date:
        return None
    return (f"劝返期至{format_date(due.date)}届满（已劝返{f.school_attempts_in_window}次），"
            "届满仍未返校或失联时方可报告")


def g_report_after_home_visits(f: CaseFacts, p: RegionProfile) -> str | None:
    if _returned(f):
        return "学生已返校，无需报告"
    need = p.school.home_visits_before_report or 0
    if f.home_visits_failed >= need:
        return None
    return f"家访{f.home_visits_failed}次，需家访{need}次以上仍未返校方可报告"


def _notice_served(f: CaseFacts, p: RegionProfile) -> str | None:
    if f.notice_variant is not None and f.notice_variant != p.township.notice_variant:
        return (f"本地区应使用《{NOTICE_VARIANTS[p.township.notice_variant]}》，"
                f"不是《{NOTICE_VARIANTS.get(f.notice_variant, f.notice_variant)}》")
    if f.notice_served_on is None:
        return "通知书尚未送达（需完整的送达回证）"
    return None


def g_notice_after_receipt(f: CaseFacts, p: RegionProfile) -> str | None:
    if f.report_received_on is None:
        return "乡(镇)尚未签收辍学情况报告单"
    if f.notice_served_on is not None and f.notice_served_on < f.report_received_on:
        return "通知书送达日期早于报告单签收日期，请核对"
    return _notice_served(f, p)


def g_notice_after_township_attempts(f: CaseFacts, p: RegionProfile) -> str | None:
    need = p.township.attempts_before_notice
    if f.township_attempts_failed < need:
        return f"乡(镇)劝返{f.township_attempts_failed}次，需劝返{need}次无效后方可下达通知书"
    return _notice_served(f, p)


def g_joint_needed(f: CaseFacts, p: RegionProfile) -> str | None:
    if _returned(f):
        return "学生已返校"
    if f.reason in p.joint.immediate_reasons:
        return None
    due = return_deadline_due(f, p)
    if due is None:
        return "通知书尚未送达"
    if f.today > due.date:
        return None
    return f"返校期限至{format_date(due.date)}，逾期未返校时转入联合劝返"


def g_joint_ineffective(f: CaseFacts, p: RegionProfile) -> str | None:
    if _returned(f):
        return "学生已返校"
    have, need = _valid_joint_attempts(f, p), p.joint.min_attempts
    if have >= need:
        return None
    extra = "（每次须有成员单位参加）" if p.joint.partner_each_attempt else ""
    return f"联合劝返{have}次，需不少于{need}次{extra}仍无效方可司法介入"


def g_out_of_contact(f: CaseFacts, p: RegionProfile) -> str | None:
    return None if f.out_of_contact else "未登记失联"


def g_found(f: CaseFacts, p: RegionProfile) -> str | None:
    return None if f.found else "尚未找到学生"


def g_physical_condition(f: CaseFacts, p: RegionProfile) -> str | None:
    return None if f.disability_suspected else "未登记身体原因或疑似残疾"


def g_assessed_home_taught(f: CaseFacts, p: RegionProfile) -> str | None:
    return None if f.assessment_placement == "home_taught" else "专家委员会未认定送教上门"


def g_assessed_deferred(f: CaseFacts, p: RegionProfile) -> str | None:
    return None if f.assessment_placement == "deferred" else "专家委员会未认定延缓入学/休学"


def refusal_gate_met(f: CaseFacts, p: RegionProfile) -> bool:
    """C2 (a)+(b) with the profile's Q4 combination."""
    gate = p.closure.refusal_gate
    joint_ok = _valid_joint_attempts(f, p) >= gate.joint_attempts_min
    if not gate.court_ruling_required:
        return joint_ok
    return (joint_ok and f.court_ruling) if gate.combine == "AND" else (joint_ok or f.court_ruling)


def _route(f: CaseFacts) -> str:
    return f.deferral_route or ("C4" if f.poverty_family else "C2")


def g_deferral_route_ready(f: CaseFacts, p: RegionProfile) -> str | None:
    if _returned(f):
        return "学生已返校"
    if _route(f) == "C4":
        if f.poverty_family and f.guardian_refuses:
            return None
        return "贫困家庭拒不复学路径需登记为脱贫/监测家庭且监护人拒绝"
    gate = p.closure.refusal_gate
    problems = []
    if not refusal_gate_met(f, p):
        word = "并" if gate.combine == "AND" and gate.court_ruling_required else "或"
        court = f"{word}经司法部门判决裁定" if gate.court_ruling_required else ""
        problems.append(f"联合劝返不少于{gate.joint_attempts_min}次{court}")
    if not f.student_refuses:
        problems.append("学生本人拒绝复学")
    if not f.written_statement:
        problems.append("学生及家长书面说明")
    return ("尚不具备：" + "、".join(problems)) if problems else None


def g_deferral_approved(f: CaseFacts, p: RegionProfile) -> str | None:
    check = check_closure(_route(f), f.evidence, p)
    return None if check.ok else "证明材料不全：" + "；".join(check.missing)


def g_over_age(f: CaseFacts, p: RegionProfile) -> str | None:
    if not f.over_age:
        return "学生尚未超过义务教育年龄"
    return None


def g_return_stable(f: CaseFacts, p: RegionProfile) -> str | None:
    if f.returned_on is None:
        return "尚未登记返校日期"
    obs = p.timer("observation")
    end = due_date(obs, f.returned_on, holidays=f.holidays).date
    if f.today <= end:
        return f"复学观察期至{format_date(end)}，期满后方可销号"
    return None


def g_closure_evidence(f: CaseFacts, p: RegionProfile) -> str | None:
    return None  # the evidence set of the transition's outcome is checked in _blocked()


GUARDS: dict[str, Guard] = {
    "absence_recorded": g_absence_recorded,
    "legitimate_reason": g_legitimate_reason,
    "verify_threshold": g_verify_threshold,
    "suspect_threshold": g_suspect_threshold,
    "still_absent": g_still_absent,
    "child_returned": g_child_returned,
    "report_after_window": g_report_after_window,
    "report_after_home_visits": g_report_after_home_visits,
    "notice_after_receipt": g_notice_after_receipt,
    "notice_after_township_attempts": g_notice_after_township_attempts,
    "joint_needed": g_joint_needed,
    "joint_ineffective": g_joint_ineffective,
    "out_of_contact": g_out_of_contact,
    "found": g_found,
    "physical_condition": g_physical_condition,
    "assessed_home_taught": g_assessed_home_taught,
    "assessed_deferred": g_assessed_deferred,
    "deferral_route_ready": g_deferral_route_ready,
    "deferral_approved": g_deferral_approved,
    "over_age": g_over_age,
    "return_stable": g_return_stable,
    "closure_evidence": g_closure_evidence,
}


def _threshold_text(rule, p: RegionProfile) -> str:
    unit = "个教学日" if p.absence.unit == "school_day" else "日"
    return f"超过{rule.days}{unit}" if rule.exclusive else f"{rule.days}{unit}"


# --- actions and transitions ------------------------------------------------------------------

@dataclass(frozen=True)
class Action:
    """An action offered in a state: the transition code, what it does and who does it."""

    code: str
    label: str
    target: str
    target_label: str
    actor: str
    actor_label: str
    documents: tuple[str, ...]
    automatic: bool = False

    def to_dict(self) -> dict:
        return {"code": self.code, "label": self.label, "target": self.target,
                "target_label": self.target_label, "actor": self.actor, "actor_label": self.actor_label,
                "documents": list(self.documents)}


@dataclass(frozen=True)
class StartedTimer:
    """A timer started by a transition; ``due`` is None while its start event is still unknown
    (e.g. the township's receipt of the 报告单)."""

    name: str
    timer: Timer
    start: dt.date | None
    due: DeadlineResult | None


@dataclass(frozen=True)
class Transition:
    """The result of ``apply``: what changed, which timers started, tags (``relapse``) and
    warnings to show (e.g. a persuasion window with too few attempts, a provisional date)."""

    code: str
    from_state: str
    to_state: str
    actor: str
    documents: tuple[str, ...]
    timers: tuple[StartedTimer, ...] = ()
    tags: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    outcome: str | None = None
    notice_variant: str | None = None


def _action(t: TransitionDef) -> Action:
    return Action(t.code, t.label, t.target, STATES[t.target], t.actor, ACTORS[t.actor], t.documents,
                  t.automatic)


def _check_state(state: str) -> None:
    if state not in STATES:
        raise ValidationFailed(f"未知的案件状态：{state!r}", fields={"state": "unknown"})


def _blocked(t: TransitionDef, state: str, facts: CaseFacts, profile: RegionProfile) -> str | None:
    """Why ``t`` cannot be taken now (None: it can)."""
    if state not in t.sources:
        return f"该操作只能在以下状态执行：{'、'.join(STATES[s] for s in sorted(t.sources))}"
    if not t.applies_to(profile):
        return f"地区配置“{profile.title or profile.name}”不使用此步骤"
    reason = GUARDS[t.guard](facts, profile)
    if reason is None and t.outcome is not None:
        check = check_closure(t.outcome, facts.evidence, profile)
        if not check.ok:
            reason = "销号证明材料不全：" + "；".join(check.missing)
    return reason


def candidate_actions(state: str, facts: CaseFacts,
                      profile: RegionProfile) -> list[tuple[Action, str | None]]:
    """Every action of the profile from ``state``, each with why it is blocked (None: allowed)."""
    _check_state(state)
    return [(_action(t), _blocked(t, state, facts, profile)) for t in TRANSITIONS
            if state in t.sources and t.applies_to(profile)]


def allowed_actions(state: str, facts: CaseFacts, profile: RegionProfile) -> list[Action]:
    """The actions that can be taken from ``state`` now, in table order."""
    return [a for a, why in candidate_actions(state, facts, profile) if why is None]


def _state_text(state: str) -> str:
    return f"“{STATES[state]}”"


def action_text(code: str) -> str:
    """A transition in words for messages (“登记无故缺勤”); the engine's codes never reach users."""
    t = TRANSITIONS_BY_CODE.get(code)
    return f"“{t.label}”" if t is not None else "所请求的操作"


def _invalid(state: str, code: str, reason: str, facts: CaseFacts,
             profile: RegionProfile) -> InvalidTransition:
    allowed = allowed_actions(state, facts, profile)
    listed = "、".join(f"“{a.label}”" for a in allowed) or "无"
    return InvalidTransition(
        f"当前状态为{_state_text(state)}，不能执行{action_text(code)}：{reason}。当前可执行的操作：{listed}",
        current_state=state, current_state_label=STATES[state], action=code, reason=reason,
        allowed_actions=[a.to_dict() for a in allowed],
    )


def _window_end(f: CaseFacts, p: RegionProfile) -> dt.date | None:
    if p.school.window_timer is None:
        return None
    return due_date(p.timer(p.school.window_timer), f.entered_suspected_on or f.today, holidays=f.holidays).date


def _home_visits_reached(f: CaseFacts, p: RegionProfile) -> dt.date | None:
    # The report duty begins once the case is SUSPECTED: visits made before count from that day.
    if f.home_visits_reached_on is None:
        return None
    return max(f.home_visits_reached_on, f.entered_suspected_on or f.today)


# The date of each start event (``timers.START_EVENTS``) from the case facts; None: not known yet
# (the timer waits). ``f.today`` is the day the producing transition is taken.
EVENT_DATES: dict[str, Callable[[CaseFacts, RegionProfile], dt.date | None]] = {
    "absence_recorded": lambda f, p: f.today,
    "entered_verify": lambda f, p: f.today,
    "entered_suspected": lambda f, p: f.entered_suspected_on or f.today,
    "suspect_threshold_crossed": lambda f, p: f.suspect_threshold_crossed_on or f.entered_suspected_on or f.today,
    "persuasion_window_end": _window_end,
    "home_visits_failed": _home_visits_reached,
    "report_receipt": lambda f, p: f.report_received_on,
    "service": lambda f, p: f.notice_served_on,
    "returned": lambda f, p: f.returned_on,
}


def event_date(event: str, facts: CaseFacts, profile: RegionProfile) -> dt.date | None:
    """The date of start event ``event`` for a case with ``facts`` (None while unknown)."""
    return EVENT_DATES[event](facts, profile)


def timers_started_by(code: str, profile: RegionProfile) -> list[str]:
    """Names of the profile timers transition ``code`` starts, in profile order."""
    starts = TRANSITIONS_BY_CODE[code].starts
    return [name for name, timer in profile.timers.items() if timer.start_event in starts]


def is_relapse(episode_start: dt.date, previous_return_on: dt.date | None, profile: RegionProfile) -> bool:
    """A new episode starting within the profile's relapse window after a return is 反弹."""
    if previous_return_on is None or episode_start < previous_return_on:
        return False
    window = profile.timer("relapse_window")
    if window.unit == "month":
        return episode_start <= add_months(previous_return_on, window.length)
    return episode_start <= due_date(window, previous_return_on).date


def apply(state: str, action: str | Action, facts: CaseFacts, profile: RegionProfile) -> Transition:
    """Take ``action`` (a transition code or ``Action``) from ``state``; raise ``InvalidTransition``
    (HTTP 409) naming the current state and the allowed actions when it cannot be taken."""
    _check_state(state)
    code = action.code if isinstance(action, Action) else action
    t = TRANSITIONS_BY_CODE.get(code)
    if t is None:
        raise _invalid(state, code, "未知的操作", facts, profile)
    reason = _blocked(t, state, facts, profile)
    if reason is not None:
        raise _invalid(state, code, reason, facts, profile)

    timers, warnings, tags = [], [], []
    for name in timers_started_by(t.code, profile):
        timer = profile.timers[name]
        start = event_date(timer.start_event, facts, profile)
        due = due_date(timer, start, holidays=facts.holidays) if start is not None else None
        if due is not None and due.provisional:
            warnings.append(f"{timer.label}：{due.warning}")
        timers.append(StartedTimer(name, timer, start, due))

    if t.code == "T23" or (t.code == "T1" and is_relapse(facts.today, facts.previous_return_on, profile)):
        tags.append("relapse")
    if t.code == "T7" and facts.school_attempts_in_window < profile.school.min_attempts:
        warnings.append(f"劝返期内仅劝返{facts.school_attempts_in_window}次，"
                        f"少于规定的{profile.school.min_attempts}次")
    if t.code == "T9":
        due = return_deadline_due(facts, profile)
        if due is not None and facts.returned_on is not None and facts.returned_on > due.date:
            warnings.append(f"返校日期{format_date(facts.returned_on)}晚于期限{format_date(due.date)}")
    variant = None
    if t.code in ("T8", "T10-GZ"):
        variant = profile.township.notice_variant
    elif t.code == "T11":
        variant = profile.legal.notice_variant
    return Transition(t.code, state, t.target, t.actor, t.documents, tuple(timers), tuple(tags),
                      tuple(warnings), t.outcome, variant)


def evaluate_absence(state: str, unexcused_days: int, profile: RegionProfile,
                     facts: CaseFacts | None = None) -> list[str]:
    """The automatic transitions (T1/T23, T3, T4) that ``unexcused_days`` (in the profile's
    absence unit) triggers from ``state``, in order. E.g. 卫辉 ATTENDING with 5 days ->
    [T1, T3, T4]; 贵州 ATTENDING with 8 calendar days -> [T1, T4] (no day threshold for T3)."""
    _check_state(state)
    facts = replace(facts or CaseFacts(today=dt.date.today()), unexcused_days=unexcused_days)
    codes: list[str] = []
    automatic = [t for t in TRANSITIONS if t.automatic and t.applies_to(profile)]
    while True:
        step = None
        for t in automatic:
            if t.code == "T3" and profile.absence.verify_after is None:
                continue
            if state in t.sources and _blocked(t, state, facts, profile) is None:
                step = t
                break
        if step is None or step.code in codes:
            return codes
        codes.append(step.code)
        state = step.target


def dropout_confirmation_date(entered_suspected: dt.date, profile: RegionProfile) -> dt.date:
    """The day 辍学认定 is reached for a case that entered SUSPECTED on ``entered_suspected``:
    the first day strictly more than the profile's period (default 1 month) later."""
    return due_date(profile.timer("dropout_confirm"), entered_suspected).date


def dropout_confirmed_on(entered_suspected: dt.date | None, profile: RegionProfile, *, today: dt.date,
                         returned_on: dt.date | None = None) -> dt.date | None:
    """The ``dropout_confirmed_on`` flag as of ``today``: the confirmation date if it has been
    reached without a return before it, else None. The flag does not change the state."""
    if entered_suspected is None:
        return None
    when = dropout_confirmation_date(entered_suspected, profile)
    if today < when or (returned_on is not None and returned_on < when):
        return None
    return when


def validate_reason_codes() -> None:
    """Check the partner table against ``forms.codes`` (run by tests)."""
    reasons = {c.code for c in DROPOUT_REASONS}
    partners = {c.code for c in PARTNER_DEPARTMENTS}
    unknown = set(REASON_PARTNERS) - reasons
    missing = reasons - set(REASON_PARTNERS)
    bad = {p for rp in REASON_PARTNERS.values() for p in rp.partners + rp.assisting} - partners
    if unknown or missing or bad:
        raise ValidationFailed(f"联合劝返部门表与代码表不一致：未知原因{sorted(unknown)}，"
                               f"缺少原因{sorted(missing)}，未知部门{sorted(bad)}",
                               fields={"REASON_PARTNERS": "inconsistent"})


__all__ = [
    "STATES", "OPEN_STATES", "ACTORS", "TRANSITIONS", "TRANSITIONS_BY_CODE", "TransitionDef", "CaseFacts",
    "Action", "Transition", "StartedTimer", "GUARDS", "REASON_PARTNERS", "ReasonPartners", "partners_for",
    "allowed_actions", "candidate_actions", "action_text", "apply", "evaluate_absence", "is_relapse",
    "dropout_confirmation_date", "dropout_confirmed_on", "persuasion_window_due", "return_deadline_due",
    "refusal_gate_met", "validate_reason_codes", "EVENT_DATES", "event_date", "timers_started_by",
]
