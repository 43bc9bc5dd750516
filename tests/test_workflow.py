"""Workflow: every transition and guard under both profiles, profile-specific step order,
invalid transitions (409 with the allowed list), absence thresholds, relapse and 辍学认定."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from cases.engine.closure import EvidenceItem
from cases.engine.profiles import load_profile
from cases.engine.workflow import (
    OPEN_STATES,
    STATES,
    TRANSITIONS,
    CaseFacts,
    allowed_actions,
    apply,
    candidate_actions,
    dropout_confirmed_on,
    evaluate_absence,
    is_relapse,
    partners_for,
    validate_reason_codes,
)
from forms.errors import InvalidTransition, ValidationFailed

D = dt.date
W = load_profile("henan-weihui-2022")
G = load_profile("guizhou-2019")
PROFILES = {"W": W, "G": G}
TODAY = D(2024, 10, 11)


def ok(kind, **kw):
    return EvidenceItem(kind, verified_by="核查员甲", **kw)


C1 = (ok("attendance_record"), ok("enrolment_record"), ok("placement_record", value="geren"),
      ok("teaching_plan"), ok("support_plan"))
C2 = (*(ok("joint_persuasion_record", partners=("sifa",)) for _ in range(3)), ok("court_ruling"),
      ok("student_refusal"), ok("written_statement"), ok("deferral_approval", issuer="county_education"))
C3 = (ok("disability_referral"), ok("expert_assessment"), ok("home_teaching_plan"))
RURAL_OK = ok("rural_revitalization_approval", issuer="rural_revitalization_office")
RURAL_BAD = ok("rural_revitalization_approval", issuer="township")
REFUSAL = dict(joint_attempts=3, joint_attempts_with_partner=3, court_ruling=True, student_refuses=True,
               written_statement=True)

# (code, profiles, state, facts allowing it, facts blocking it (None: not tested), target)
CASES = [
    ("T1", "WG", "ATTENDING", dict(unexcused_days=1), dict(unexcused_days=0), "ABSENT"),
    ("T1", "WG", "ATTENDING", dict(unregistered_at_term_start=True), None, "ABSENT"),
    ("T1", "G", "ATTENDING", dict(handover_not_arrived=True), None, "ABSENT"),
    ("T2", "WG", "ABSENT", dict(legitimate_reason_verified=True), dict(unexcused_days=2), "ATTENDING"),
    ("T3", "W", "ABSENT", dict(unexcused_days=3), dict(unexcused_days=2), "VERIFY"),
    ("T3", "G", "ABSENT", dict(unexcused_days=1), dict(unexcused_days=0), "VERIFY"),
    ("T4", "W", "ABSENT", dict(unexcused_days=5), dict(unexcused_days=4), "SUSPECTED"),
    ("T4", "W", "VERIFY", dict(unexcused_days=5), dict(unexcused_days=4), "SUSPECTED"),
    ("T4", "G", "ABSENT", dict(unexcused_days=8), dict(unexcused_days=7), "SUSPECTED"),
    ("T4", "G", "VERIFY", dict(unexcused_days=8), dict(unexcused_days=7), "SUSPECTED"),
    ("T5", "WG", "SUSPECTED", dict(), dict(returned_on=D(2024, 10, 10)), "SUSPECTED"),
    ("T6", "WG", "SUSPECTED", dict(returned_on=TODAY), dict(returned_on=D(2024, 10, 12)), "RETURNED"),
    # 卫辉: window of 10 working days from 2024-09-20 ends 2024-10-10.
    ("T7", "W", "SUSPECTED", dict(entered_suspected_on=D(2024, 9, 20)),
     dict(entered_suspected_on=D(2024, 9, 23)), "REPORTED"),
    ("T7", "W", "SUSPECTED", dict(entered_suspected_on=D(2024, 10, 8), out_of_contact=True),
     dict(entered_suspected_on=D(2024, 10, 8)), "REPORTED"),
    ("T7-GZ", "G", "SUSPECTED", dict(home_visits_failed=2), dict(home_visits_failed=1), "REPORTED"),
    ("T8", "W", "REPORTED", dict(report_received_on=D(2024, 10, 9), notice_served_on=D(2024, 10, 10)),
     dict(notice_served_on=D(2024, 10, 10)), "NOTICED"),
    ("T8", "W", "REPORTED", dict(report_received_on=D(2024, 10, 9), notice_served_on=D(2024, 10, 10),
                                 notice_variant="xianqi"),
     dict(report_received_on=D(2024, 10, 9), notice_served_on=D(2024, 10, 10), notice_variant="dunfan"),
     "NOTICED"),
    ("T8", "W", "REPORTED", dict(report_received_on=D(2024, 10, 9), notice_served_on=D(2024, 10, 9)),
     dict(report_received_on=D(2024, 10, 9), notice_served_on=D(2024, 10, 8)), "NOTICED"),
    ("T8", "W", "REPORTED", dict(report_received_on=D(2024, 10, 9), notice_served_on=D(2024, 10, 10)),
     dict(report_received_on=D(2024, 10, 9)), "NOTICED"),
    ("T9", "WG", "NOTICED", dict(notice_served_on=D(2024, 10, 8), returned_on=TODAY),
     dict(notice_served_on=D(2024, 10, 8)), "RETURNED"),
    # Return deadline: 5 working days after service on Fri 2024-09-27 is 2024-10-10.
    ("T10", "WG", "NOTICED", dict(notice_served_on=D(2024, 9, 27)),
     dict(notice_served_on=D(2024, 9, 30)), "JOINT"),
    ("T10", "WG", "NOTICED", dict(notice_served_on=D(2024, 10, 10), reason="R02"),
     dict(notice_served_on=D(2024, 10, 10), reason="R01"), "JOINT"),
    ("T10-GZ", "G", "REPORTED", dict(township_attempts_failed=2, notice_served_on=D(2024, 10, 10)),
     dict(township_attempts_failed=1, notice_served_on=D(2024, 10, 10)), "NOTICED"),
    ("T10-GZ", "G", "REPORTED", dict(township_attempts_failed=2, notice_served_on=D(2024, 10, 10),
                                     notice_variant="dunfan"),
     dict(township_attempts_failed=2, notice_served_on=D(2024, 10, 10), notice_variant="xianqi"), "NOTICED"),
    ("T10-GZ", "G", "REPORTED", dict(township_attempts_failed=3, notice_served_on=D(2024, 10, 10)),
     dict(township_attempts_failed=3), "NOTICED"),
    ("T11", "WG", "JOINT", dict(joint_attempts=3, joint_attempts_with_partner=3),
     dict(joint_attempts=3, joint_attempts_with_partner=2), "LEGAL"),
    ("T12", "WG", "JOINT", dict(out_of_contact=True), dict(), "LOCATING"),
    ("T12", "WG", "SUSPECTED", dict(out_of_contact=True), dict(), "LOCATING"),
    ("T13", "WG", "LOCATING", dict(found=True), dict(), "JOINT"),
    ("T14", "WG", "LOCATING", dict(evidence=(ok("police_determination"),)),
     dict(evidence=(EvidenceItem("police_determination"),)), "CLOSED"),
    ("T15", "WG", "SUSPECTED", dict(disability_suspected=True), dict(), "ASSESSING"),
    ("T15", "WG", "JOINT", dict(disability_suspected=True), dict(), "ASSESSING"),
    ("T16a", "WG", "ASSESSING", dict(assessment_placement="home_taught"),
     dict(assessment_placement="deferred"), "HOME_TAUGHT"),
    ("T16b", "WG", "ASSESSING", dict(assessment_placement="deferred"),
     dict(assessment_placement="home_taught"), "DEFERRED"),
    ("T16c", "WG", "HOME_TAUGHT", dict(evidence=C3), dict(evidence=C3[:2]), "CLOSED"),
    ("T17", "WG", "JOINT", REFUSAL, {**REFUSAL, "court_ruling": False}, "APPROVAL"),
    ("T17", "WG", "LEGAL", REFUSAL, {**REFUSAL, "written_statement": False}, "APPROVAL"),
    ("T17", "WG", "JOINT", dict(poverty_family=True, guardian_refuses=True), dict(poverty_family=True),
     "APPROVAL"),
    ("T18", "WG", "APPROVAL", dict(evidence=C2), dict(evidence=C2[:-1]), "DEFERRED"),
    ("T18", "WG", "APPROVAL", dict(deferral_route="C4", evidence=(RURAL_OK,)),
     dict(deferral_route="C4", evidence=(RURAL_BAD,)), "DEFERRED"),
    ("T19", "WG", "DEFERRED", dict(returned_on=TODAY), dict(), "RETURNED"),
    ("T20", "WG", "DEFERRED", dict(over_age=True, evidence=(ok("over_age_mark"),)),
     dict(over_age=True), "CLOSED"),
    ("T20", "WG", "DEFERRED", dict(over_age=True, evidence=(ok("over_age_mark"),)),
     dict(evidence=(ok("over_age_mark"),)), "CLOSED"),
    # Observation: 1 month from a return on 2024-09-10 ends 2024-10-10; closable from 10-11.
    ("T21", "WG", "RETURNED", dict(returned_on=D(2024, 9, 10), evidence=C1),
     dict(returned_on=D(2024, 9, 11), evidence=C1), "CLOSED"),
    ("T21", "WG", "RETURNED", dict(returned_on=D(2024, 9, 10), evidence=C1),
     dict(returned_on=D(2024, 9, 10), evidence=C1[1:]), "CLOSED"),
    ("T22", "WG", "SUSPECTED", dict(evidence=(ok("transfer_record"),)), dict(), "CLOSED"),
    ("T22", "WG", "DEFERRED", dict(evidence=(ok("study_elsewhere_proof"),)),
     dict(evidence=(EvidenceItem("study_elsewhere_proof"),)), "CLOSED"),
    ("T23", "WG", "RETURNED", dict(unexcused_days=1), dict(), "ABSENT"),
]


def _params():
    for code, profiles, state, good, bad, target in CASES:
        for key in profiles:
            yield pytest.param(code, PROFILES[key], state, good, bad, target, id=f"{code}-{key}-{state}")


def facts(**kw) -> CaseFacts:
    return CaseFacts(today=kw.pop("today", TODAY), **kw)


@pytest.mark.parametrize("code, profile, state, good, bad, target", list(_params()))
def test_transition_and_guard(code, profile, state, good, bad, target):
    result = apply(state, code, facts(**good), profile)
    assert (result.code, result.from_state, result.to_state) == (code, state, target)
    assert code in [a.code for a in allowed_actions(state, facts(**good), profile)]
    if bad is not None:
        with pytest.raises(InvalidTransition) as err:
            apply(state, code, facts(**bad), profile)
        e = err.value
        assert e.http_status == 409 and e.code == "invalid_transition"
        assert f"当前状态为“{STATES[state]}”，" in e.message and f"（{state}）" not in e.message
        assert e.details["current_state"] == state and e.details["action"] == code
        assert e.details["reason"] in e.message
        allowed = [a["code"] for a in e.details["allowed_actions"]]
        assert code not in allowed
        assert allowed == [a.code for a in allowed_actions(state, facts(**bad), profile)]
        for a in e.details["allowed_actions"]:
            assert f"“{a['label']}”" in e.message and a["code"] not in e.message


def test_every_transition_is_covered():
    covered = {c[0] for c in CASES}
    assert covered == {t.code for t in TRANSITIONS}
    assert len(STATES) == 15
    for t in TRANSITIONS:
        assert t.target in STATES and t.sources <= set(STATES)


@pytest.mark.parametrize("code, profile, state", [
    ("T7-GZ", W, "SUSPECTED"), ("T10-GZ", W, "REPORTED"), ("T7", G, "SUSPECTED"), ("T8", G, "REPORTED"),
])
def test_profile_selects_step_variant(code, profile, state):
    everything = facts(entered_suspected_on=D(2024, 9, 1), out_of_contact=False, home_visits_failed=5,
                       township_attempts_failed=5, report_received_on=D(2024, 10, 1),
                       notice_served_on=D(2024, 10, 2))
    with pytest.raises(InvalidTransition) as err:
        apply(state, code, everything, profile)
    assert f"地区配置“{profile.title}”不使用此步骤" in err.value.message
    assert code not in [a.code for a, _ in candidate_actions(state, everything, profile)]


def test_weihui_report_then_notice_on_receipt():
    f = facts(report_received_on=D(2024, 9, 26), notice_served_on=D(2024, 9, 27))
    assert [a.code for a in allowed_actions("REPORTED", f, W)] == ["T8"]
    t = apply("REPORTED", "T8", f, W)
    assert t.notice_variant == "xianqi"
    [timer] = t.timers
    assert timer.name == "return_deadline" and timer.start == D(2024, 9, 27)
    assert timer.due.date == D(2024, 10, 10) and not timer.due.provisional


def test_guizhou_township_persuasion_before_dunfan_notice():
    f = facts(township_attempts_failed=1, notice_served_on=D(2024, 10, 10))
    with pytest.raises(InvalidTransition, match="乡\\(镇\\)劝返1次，需劝返2次"):
        apply("REPORTED", "T10-GZ", f, G)
    t = apply("REPORTED", "T10-GZ", facts(township_attempts_failed=2, notice_served_on=D(2024, 9, 27)), G)
    assert t.notice_variant == "dunfan" and t.timers[0].due.date == D(2024, 10, 10)


def test_invalid_transition_from_wrong_state_lists_allowed():
    f = facts(unexcused_days=5)
    with pytest.raises(InvalidTransition) as err:
        apply("ATTENDING", "T11", f, W)
    e = err.value
    assert e.message.startswith("当前状态为“正常在校”，不能执行“劝返无效，司法介入”")
    assert e.message.endswith("当前可执行的操作：“登记无故缺勤”")
    # read in Chinese words: no state code, no transition code
    assert "ATTENDING" not in e.message and not re.search(r"T\d", e.message)
    assert [a["code"] for a in e.details["allowed_actions"]] == ["T1"]
    assert e.to_dict()["details"]["current_state_label"] == "正常在校"
    with pytest.raises(InvalidTransition, match="不能执行所请求的操作：未知的操作") as err:
        apply("ABSENT", "T99", f, W)
    assert "T99" not in err.value.message and "ABSENT" not in err.value.message
    with pytest.raises(InvalidTransition) as err:
        apply("CLOSED", "T22", facts(evidence=(ok("transfer_record"),)), W)
    assert "当前可执行的操作：无" in err.value.message
    with pytest.raises(ValidationFailed):
        apply("LIMBO", "T1", f, W)


def test_closing_without_verified_evidence_is_refused():
    with pytest.raises(InvalidTransition) as err:
        apply("RETURNED", "T21", facts(returned_on=D(2024, 9, 1)), W)
    assert "销号证明材料不全" in err.value.message and "缺少复学到校出勤记录" in err.value.message


def test_t4_starts_window_and_confirmation_timers():
    t = apply("VERIFY", "T4", facts(today=D(2024, 9, 20), unexcused_days=5), W)
    timers = {s.name: s for s in t.timers}
    assert timers["persuasion_window"].due.date == D(2024, 10, 10)
    assert timers["dropout_confirm"].due.date == D(2024, 10, 21)
    # 卫辉: the 报告单 is due 3 days after the window ends (started now, with the window's end).
    assert (timers["school_report"].start, timers["school_report"].due.date) == (D(2024, 10, 10), D(2024, 10, 13))
    g = apply("ABSENT", "T4", facts(today=D(2024, 9, 20), unexcused_days=8), G)
    # 贵州: no window; the report timer waits for the second failed home visit.
    assert [(s.name, s.start) for s in g.timers] == [("school_report", None), ("dropout_confirm", D(2024, 9, 20))]
    g = apply("ABSENT", "T4", facts(today=D(2024, 9, 20), unexcused_days=8, home_visits_failed=2,
                                    home_visits_reached_on=D(2024, 9, 18),
                                    suspect_threshold_crossed_on=D(2024, 9, 19)), G)
    timers = {s.name: s for s in g.timers}
    assert (timers["school_report"].start, timers["school_report"].due.date) == (D(2024, 9, 20), D(2024, 9, 23))
    assert (timers["dropout_confirm"].start, timers["dropout_confirm"].due.date) == (D(2024, 9, 19), D(2024, 10, 20))


def test_provisional_timer_adds_warning():
    f = facts(today=D(2027, 10, 1), report_received_on=D(2027, 9, 26), notice_served_on=D(2027, 9, 27))
    t = apply("REPORTED", "T8", f, W)
    assert t.timers[0].due.provisional
    assert any("2027年法定节假日安排尚未导入" in w for w in t.warnings)


def test_t7_warns_about_too_few_attempts_and_t9_about_late_return():
    t = apply("SUSPECTED", "T7", facts(entered_suspected_on=D(2024, 9, 20), school_attempts_in_window=1), W)
    assert t.warnings == ("劝返期内仅劝返1次，少于规定的3次",)
    assert apply("SUSPECTED", "T7", facts(entered_suspected_on=D(2024, 9, 20),
                                          school_attempts_in_window=3), W).warnings == ()
    late = apply("NOTICED", "T9", facts(notice_served_on=D(2024, 9, 27), returned_on=D(2024, 10, 11)), W)
    assert late.warnings == ("返校日期2024年10月11日晚于期限2024年10月10日",)  # shown on the case page


def test_t11_names_legal_variant():
    t = apply("JOINT", "T11", facts(joint_attempts=3, joint_attempts_with_partner=3), G)
    assert t.notice_variant == "zeling"


@pytest.mark.parametrize("profile, state, days, expected", [
    (W, "ATTENDING", 0, []),
    (W, "ATTENDING", 1, ["T1"]),
    (W, "ATTENDING", 3, ["T1", "T3"]),
    (W, "ATTENDING", 5, ["T1", "T3", "T4"]),
    (W, "ABSENT", 4, ["T3"]),
    (W, "VERIFY", 5, ["T4"]),
    (W, "VERIFY", 4, []),
    (W, "SUSPECTED", 20, []),
    (W, "RETURNED", 5, ["T23", "T3", "T4"]),
    (G, "ATTENDING", 3, ["T1"]),
    (G, "ATTENDING", 7, ["T1"]),
    (G, "ATTENDING", 8, ["T1", "T4"]),
    (G, "VERIFY", 8, ["T4"]),
])
def test_evaluate_absence(profile, state, days, expected):
    assert evaluate_absence(state, days, profile) == expected


def test_relapse_tagging():
    assert apply("RETURNED", "T23", facts(unexcused_days=1), W).tags == ("relapse",)
    new = apply("ATTENDING", "T1", facts(unexcused_days=1, previous_return_on=D(2024, 3, 1)), W)
    assert new.tags == ("relapse",)
    old = apply("ATTENDING", "T1", facts(unexcused_days=1, previous_return_on=D(2023, 10, 10)), W)
    assert old.tags == ()
    assert is_relapse(D(2025, 3, 1), D(2024, 3, 1), W)  # 365 days later, inclusive
    assert not is_relapse(D(2025, 3, 2), D(2024, 3, 1), W)
    assert not is_relapse(D(2024, 3, 1), None, G)


def test_dropout_confirmed_on():
    assert dropout_confirmed_on(D(2025, 1, 31), W, today=D(2025, 2, 28)) is None
    assert dropout_confirmed_on(D(2025, 1, 31), W, today=D(2025, 3, 1)) == D(2025, 3, 1)
    assert dropout_confirmed_on(D(2025, 3, 15), G, today=D(2025, 5, 1)) == D(2025, 4, 16)
    assert dropout_confirmed_on(D(2025, 3, 15), G, today=D(2025, 5, 1), returned_on=D(2025, 4, 15)) is None
    late_return = D(2025, 4, 20)
    confirmed = dropout_confirmed_on(D(2025, 3, 15), G, today=D(2025, 5, 1), returned_on=late_return)
    assert confirmed == D(2025, 4, 16)
    assert dropout_confirmed_on(None, W, today=D(2025, 5, 1)) is None


def test_partners_by_reason():
    validate_reason_codes()
    assert partners_for("R07").partners == ("sifa",)
    assert partners_for("R02").partners == ("renshe", "gongan")
    assert partners_for("R05").partners == ("canlian", "jiaoyu")
    assert partners_for("R05").assisting == ("weijian",)
    assert partners_for("R08").partners == ("gongan",)
    assert partners_for(None).partners == () and partners_for("R77").partners == ()


def test_any_state_transitions_cover_open_states():
    for state in OPEN_STATES - {"LOCATING"}:
        codes = [a.code for a in allowed_actions(state, facts(out_of_contact=True), W)]
        assert "T12" in codes, state
    assert "T12" not in [a.code for a in allowed_actions("ATTENDING", facts(out_of_contact=True), W)]


@pytest.mark.parametrize("profile", [W, G], ids=["weihui", "guizhou"])
def test_every_refusal_reads_in_chinese_words(profile):
    """Every refusal from every state, for every transition code, names states and actions by
    their labels: no state code (SUSPECTED) and no transition code (T8) reaches the message."""
    from cases.engine.workflow import STATES, TRANSITIONS
    codes = re.compile(r"\b(" + "|".join(STATES) + r")\b|\bT\d")
    f = facts(unexcused_days=1)
    refused = 0
    for state in STATES:
        for t in TRANSITIONS:
            try:
                apply(state, t.code, f, profile)
            except InvalidTransition as e:
                refused += 1
                assert not codes.search(e.message), e.message
                assert e.message.startswith(f"当前状态为“{STATES[state]}”，不能执行“{t.label}”：")
    assert refused > 200
