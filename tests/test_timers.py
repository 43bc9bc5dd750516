"""Every timer of the chain, per region profile (DOMAIN §3.3, §3.6): started by the transition or
event that opens it, due on the date worked out by hand below (working days with the 2025 国庆
arrangement: 10-01..10-08 off, Sun 09-28 and Sat 10-11 make-up working days), T−1 alert, breach
with its 问题清单 entry, and listed by ``/overdue``.

2025 around 国庆 (W = statutory working day):
  09-25 Thu W · 09-26 Fri W · 09-27 Sat - · 09-28 Sun W · 09-29 Mon W · 09-30 Tue W ·
  10-01 … 10-08 - · 10-09 Thu W · 10-10 Fri W · 10-11 Sat W · 10-12 Sun - · 10-13 Mon W …
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from cases.engine import casework as engine
from cases.engine import workflow
from cases.engine.models import Alert, AttendanceRecord, Deadline, Problem
from cases.engine.profiles import list_profiles, load_profile
from cases.engine.timers import PLAN_START_EVENTS, START_EVENTS, TIMER_RULES
from cases.store.models import Case, Document, Org, Pupil

D = dt.date
HN, GZ = "henan-weihui-2022", "guizhou-2019"


@pytest.fixture
def county(demo, app_session):
    return app_session.get(Org, demo.county_id)


def _profile(session, county, name):
    county.region_profile = name
    session.flush()


def _pupil(session) -> Pupil:
    return session.scalars(select(Pupil).where(Pupil.id.not_in(select(Case.pupil_id))).order_by(Pupil.id)).first()


def _deadline(session, case, timer) -> Deadline | None:
    return session.scalars(select(Deadline).where(Deadline.case_id == case.id, Deadline.timer == timer)
                           .order_by(Deadline.id.desc())).first()


def _absent(session, pupil, days):
    for day in days:
        session.add(AttendanceRecord(pupil_id=pupil.id, org_id=pupil.org_id, day=day, kind="unexcused"))
    session.flush()


def _attempt(session, case, day, method="visit", result="refused", **kw):
    return engine.record_attempt(session, case, {"date": day.isoformat(), "persons": "班主任、村干部",
                                                 "method": method, "result": result, **kw}, actor="专人")


def _alerts(session, deadline) -> list[str]:
    return [a.kind for a in session.scalars(select(Alert).where(Alert.deadline_id == deadline.id)
                                            .order_by(Alert.id))]


def _expect_cycle(session, county, case, timer, due, t_minus_1, *, breach_on=None):
    """The timer runs with ``due``: no alert before T−1, ``due_soon`` from T−1, a breach (alert, one
    问题清单 entry, listed overdue) the day after ``due`` (or on ``breach_on``), all only once."""
    d = _deadline(session, case, timer)
    assert d is not None, f"{timer} not started"
    assert (d.status, d.due_on) == ("open", due), (timer, d.status, d.due_on)
    engine.sweep(session, t_minus_1 - dt.timedelta(days=1))
    assert _alerts(session, d) == []
    engine.sweep(session, t_minus_1)
    assert _alerts(session, d) == ["due_soon"]
    breach_on = breach_on or due + dt.timedelta(days=1)
    engine.sweep(session, breach_on - dt.timedelta(days=1))
    assert d.status == "open"
    for _ in range(2):  # idempotent
        engine.sweep(session, breach_on)
    assert d.status == "breached" and _alerts(session, d) == ["due_soon", "breach"]
    problems = session.scalars(select(Problem).where(Problem.deadline_id == d.id)).all()
    assert len(problems) == 1 and problems[0].category == timer and problems[0].source == "timer_breach"
    listed = [(i["timer"], i["due_on"]) for i in engine.overdue(session, county, breach_on)]
    assert (timer, due) in listed
    return d


# ---- the vocabulary -------------------------------------------------------------------------------------

def test_every_start_event_is_produced_and_dated():
    """Every case start event has a date rule and is produced by a transition or an event recorder;
    every timer of both profiles is known to the engine and runs from a known event."""
    assert set(workflow.EVENT_DATES) == set(START_EVENTS)
    produced = {e for t in workflow.TRANSITIONS for e in t.starts}
    assert produced == set(START_EVENTS)
    for name in list_profiles():
        profile = load_profile(name)
        for key, timer in profile.timers.items():
            rule = TIMER_RULES[key]
            events = PLAN_START_EVENTS if rule.duty == "plan" else START_EVENTS
            assert timer.start_event in events, (name, key)
            if rule.duty != "plan":
                assert any(t.applies_to(profile) and timer.start_event in t.starts for t in workflow.TRANSITIONS), \
                    (name, key)


def test_timers_of_each_profile():
    assert set(load_profile(HN).timers) == {"contact_guardian", "verify_visit", "persuasion_window", "school_report",
                                            "township_notice", "return_deadline", "dropout_confirm", "observation",
                                            "relapse_window"}
    assert set(load_profile(GZ).timers) == {"contact_guardian", "school_report", "return_deadline", "dropout_confirm",
                                            "observation", "relapse_window", "handover_notify",
                                            "handover_county_check"}


# ---- 卫辉 ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [HN, GZ])
def test_contact_guardian_same_day(app_session, county, name):
    """T1 on Thu 09-25: contact the guardian the same day (calendar, 0 days): due 09-25, T−1 09-24."""
    _profile(app_session, county, name)
    case = engine.open_case(app_session, _pupil(app_session), opened_on=D(2025, 9, 25), actor="班主任")
    d = _deadline(app_session, case, "contact_guardian")
    assert (d.start_on, d.transition) == (D(2025, 9, 25), "T1")
    _expect_cycle(app_session, county, case, "contact_guardian", D(2025, 9, 25), D(2025, 9, 24))
    # A second case contacted in time is met by the record.
    other = engine.open_case(app_session, _pupil(app_session), opened_on=D(2025, 9, 25), actor="班主任")
    _attempt(app_session, other, D(2025, 9, 25), method="phone", result="not_met")
    assert _deadline(app_session, other, "contact_guardian").status == "met"


def _hn_to_suspected(session, pupil):
    """Absent Sun 09-28 (make-up day), 09-29, 09-30 (3 school days: T3 on 09-30), then 10-09, 10-10
    (5 school days: T4 on Fri 10-10)."""
    _absent(session, pupil, [D(2025, 9, 28), D(2025, 9, 29), D(2025, 9, 30)])
    case = engine.open_case(session, pupil, opened_on=D(2025, 9, 28), actor="班主任", source="attendance")
    engine.apply_action(session, case, "T3", actor="学校", occurred_at=D(2025, 9, 30))
    return case


def test_hn_verify_visit_next_working_day_across_the_holiday(app_session, county):
    """卫辉 "无故3日未到校…及时家访或与监护人联系核实": T3 on Tue 09-30, 1 working day [CP] -> Thu 10-09
    (10-01..10-08 are off); T−1 is the previous working day, 09-30."""
    case = _hn_to_suspected(app_session, _pupil(app_session))
    d = _deadline(app_session, case, "verify_visit")
    assert (d.start_on, d.transition, d.unit, d.length) == (D(2025, 9, 30), "T3", "working_day", 1)
    # Leaving VERIFY (T4 on 10-10, past due) without a visit record breaches it at once.
    _absent(app_session, case.pupil, [D(2025, 10, 9), D(2025, 10, 10)])
    engine.sweep(app_session, D(2025, 9, 29))
    assert _alerts(app_session, d) == []
    engine.sweep(app_session, D(2025, 9, 30))
    assert _alerts(app_session, d) == ["due_soon"]
    engine.sweep(app_session, D(2025, 10, 9))
    assert d.status == "open"
    engine.sweep(app_session, D(2025, 10, 10))
    assert d.status == "breached" and _alerts(app_session, d) == ["due_soon", "breach"]
    assert ("verify_visit", D(2025, 10, 9)) in [(i["timer"], i["due_on"])
                                                 for i in engine.overdue(app_session, county, D(2025, 10, 10))]
    assert app_session.scalars(select(Problem).where(Problem.deadline_id == d.id)).one().category == "verify_visit"


def test_hn_verify_visit_met_by_a_visit_in_time(app_session, county):
    case = _hn_to_suspected(app_session, _pupil(app_session))
    _attempt(app_session, case, D(2025, 10, 9), method="visit", result="not_met")
    assert _deadline(app_session, case, "verify_visit").status == "met"
    # A visit after leaving VERIFY but still within the window also counts.
    other = _hn_to_suspected(app_session, _pupil(app_session))
    _absent(app_session, other.pupil, [D(2025, 10, 9)])
    engine.apply_action(app_session, other, "T4", actor="学校", occurred_at=D(2025, 10, 9),
                        data={"facts": {"unexcused_days": 5}})
    assert _deadline(app_session, other, "verify_visit").status == "open"
    _attempt(app_session, other, D(2025, 10, 9))
    assert _deadline(app_session, other, "verify_visit").status == "met"


def _hn_suspected_on_1010(session, county):
    pupil = _pupil(session)
    case = _hn_to_suspected(session, pupil)
    _absent(session, pupil, [D(2025, 10, 9), D(2025, 10, 10)])
    engine.apply_action(session, case, "T4", actor="学校", occurred_at=D(2025, 10, 10))
    assert case.state == "SUSPECTED"
    return case


def test_hn_persuasion_window_ten_working_days(app_session, county):
    """T4 on Fri 10-10: 10 working days -> Sat 10-11 (make-up) is day 1, 10-13..10-17 days 2–6,
    10-20..10-23 days 7–10: due Thu 10-23; T−1 Wed 10-22; two attempts only: breached on 10-24."""
    case = _hn_suspected_on_1010(app_session, county)
    d = _deadline(app_session, case, "persuasion_window")
    assert (d.start_on, d.transition) == (D(2025, 10, 10), "T4")
    _attempt(app_session, case, D(2025, 10, 11))
    _attempt(app_session, case, D(2025, 10, 15))
    _expect_cycle(app_session, county, case, "persuasion_window", D(2025, 10, 23), D(2025, 10, 22))


def test_hn_school_report_three_days_after_the_window(app_session, county):
    """卫辉 报告单 "及时", default 3 calendar days [CP] after the window's last day 10-23: due Sun 10-26,
    T−1 10-25. The audit's failure: started at T4, it now reaches /overdue and the 问题清单."""
    case = _hn_suspected_on_1010(app_session, county)
    for day in (D(2025, 10, 11), D(2025, 10, 14), D(2025, 10, 17)):
        _attempt(app_session, case, day)
    d = _deadline(app_session, case, "school_report")
    assert (d.start_on, d.transition, d.actor) == (D(2025, 10, 23), "T4", "school")
    _expect_cycle(app_session, county, case, "school_report", D(2025, 10, 26), D(2025, 10, 25))
    timers = {i["timer"] for i in engine.overdue(app_session, county, D(2025, 10, 27)) if i["case_id"] == case.id}
    assert timers == {"contact_guardian", "verify_visit", "school_report"}  # the window itself was met


def test_hn_school_report_met_by_t7_and_cancelled_by_return(app_session, county):
    case = _hn_suspected_on_1010(app_session, county)
    engine.apply_action(app_session, case, "T7", actor="学校", occurred_at=D(2025, 10, 24))
    assert _deadline(app_session, case, "school_report").status == "met"
    other = _hn_suspected_on_1010(app_session, county)
    engine.apply_action(app_session, other, "T6", actor="学校", occurred_at=D(2025, 10, 14),
                        data={"facts": {"returned_on": "2025-10-14"}})
    assert _deadline(app_session, other, "school_report").status == "cancelled"


def test_hn_township_notice_two_days_from_receipt(app_session, county):
    """T7 opens the notice timer, waiting for the township's receipt; received Tue 09-30 -> 2 calendar
    days [Q2] -> Thu 10-02 (a holiday: calendar days do not move); T−1 10-01."""
    case = _hn_suspected_on_1010(app_session, county)
    engine.apply_action(app_session, case, "T7", actor="学校", occurred_at=D(2025, 10, 24),
                        data={"facts": {"out_of_contact": True}})
    d = _deadline(app_session, case, "township_notice")
    assert (d.status, d.due_on, d.transition) == ("waiting", None, "T7")
    engine.record_receipt(app_session, case, document_id=None, received_on=D(2025, 10, 24), actor="乡镇")
    _expect_cycle(app_session, county, case, "township_notice", D(2025, 10, 26), D(2025, 10, 25))


def _notice(session, case, variant):
    doc = Document(id=f"N{case.id:05d}", org_id=case.township_org_id, case_id=case.id, form="guardian_notice",
                   variant=variant, family="x", template_version="1", year=2025, status="issued")
    session.add(doc)
    session.flush()
    return doc


def _reported(session, county, profile):
    _profile(session, county, profile)
    case = engine.open_case(session, _pupil(session), opened_on=D(2025, 9, 1), actor="班主任")
    engine.apply_action(session, case, "T4", actor="学校", occurred_at=D(2025, 9, 10),
                        data={"facts": {"unexcused_days": 8}})
    if profile == HN:
        engine.apply_action(session, case, "T7", actor="学校", occurred_at=D(2025, 9, 11),
                            data={"facts": {"out_of_contact": True}})
        engine.record_receipt(session, case, document_id=None, received_on=D(2025, 9, 25), actor="乡镇")
    else:
        _attempt(session, case, D(2025, 9, 11))
        _attempt(session, case, D(2025, 9, 12))
        engine.apply_action(session, case, "T7-GZ", actor="学校", occurred_at=D(2025, 9, 13))
        for day in (D(2025, 9, 16), D(2025, 9, 18)):
            _attempt(session, case, day, stage="township")
    return case


@pytest.mark.parametrize("name, variant", [(HN, "xianqi"), (GZ, "dunfan")])
def test_return_deadline_five_working_days_from_service(app_session, county, name, variant):
    """Served Fri 09-26: 5 working days -> Sun 09-28 (make-up) 1, 09-29 2, 09-30 3, 10-09 4, 10-10 5:
    due Fri 10-10; T−1 is the previous working day, Thu 10-09."""
    case = _reported(app_session, county, name)
    doc = _notice(app_session, case, variant)
    engine.record_service(app_session, case, document_id=doc.id, served_on=D(2025, 9, 26), method="direct",
                          complete=True, actor="乡镇")
    assert case.state == "NOTICED"
    d = _deadline(app_session, case, "return_deadline")
    assert (d.start_on, d.unit, d.length) == (D(2025, 9, 26), "working_day", 5)
    _expect_cycle(app_session, county, case, "return_deadline", D(2025, 10, 10), D(2025, 10, 9))


# ---- 贵州 ---------------------------------------------------------------------------------------------

def test_gz_school_report_three_days_after_the_second_failed_visit(app_session, county):
    """贵州 "两次家访仍未返校…3日内报告": T4 on Mon 09-29 opens the timer, waiting; the first failed visit
    (09-29) starts nothing, a phone call does not count, the second failed visit on Tue 09-30 starts it:
    3 calendar days -> Fri 10-03 (in the holiday); T−1 10-02; breached on 10-04."""
    _profile(app_session, county, GZ)
    pupil = _pupil(app_session)
    _absent(app_session, pupil, [D(2025, 9, 22) + dt.timedelta(days=i) for i in range(8)])
    case = engine.open_case(app_session, pupil, opened_on=D(2025, 9, 22), actor="班主任", source="attendance")
    engine.apply_action(app_session, case, "T4", actor="学校", occurred_at=D(2025, 9, 29))
    d = _deadline(app_session, case, "school_report")
    assert (d.status, d.due_on, d.transition) == ("waiting", None, "T4")
    _attempt(app_session, case, D(2025, 9, 29))
    _attempt(app_session, case, D(2025, 9, 29), method="phone")
    assert d.status == "waiting"
    _attempt(app_session, case, D(2025, 9, 30), method="group")
    assert d.start_on == D(2025, 9, 30)
    _expect_cycle(app_session, county, case, "school_report", D(2025, 10, 3), D(2025, 10, 2))
    # Taking T7-GZ afterwards does not undo the breach.
    engine.apply_action(app_session, case, "T7-GZ", actor="学校", occurred_at=D(2025, 10, 9))
    assert d.status == "breached"


def test_gz_school_report_visits_before_suspicion_count_from_t4(app_session, county):
    _profile(app_session, county, GZ)
    case = engine.open_case(app_session, _pupil(app_session), opened_on=D(2025, 9, 22), actor="班主任")
    _attempt(app_session, case, D(2025, 9, 23))
    _attempt(app_session, case, D(2025, 9, 25))
    engine.apply_action(app_session, case, "T4", actor="学校", occurred_at=D(2025, 9, 30),
                        data={"facts": {"unexcused_days": 8}})
    d = _deadline(app_session, case, "school_report")
    assert (d.start_on, d.due_on) == (D(2025, 9, 30), D(2025, 10, 3))
    engine.apply_action(app_session, case, "T7-GZ", actor="学校", occurred_at=D(2025, 10, 2))
    assert d.status == "met"


def test_gz_dropout_confirm_from_the_day_the_week_was_exceeded(app_session, county):
    """贵州 辍学认定 runs from the day "超过1个星期" was reached: absent from Mon 09-22 (calendar days),
    the 8th day is 09-29; T4 taken later (10-09) still counts from 09-29: more than 1 month ->
    10-30 (period 09-30..10-29). A period: no alert; the flag is set by the sweep."""
    _profile(app_session, county, GZ)
    pupil = _pupil(app_session)
    _absent(app_session, pupil, [D(2025, 9, 22) + dt.timedelta(days=i) for i in range(18)])
    case = engine.open_case(app_session, pupil, opened_on=D(2025, 9, 22), actor="班主任", source="attendance")
    engine.apply_action(app_session, case, "T4", actor="学校", occurred_at=D(2025, 10, 9))
    d = _deadline(app_session, case, "dropout_confirm")
    assert (d.start_on, d.due_on, d.alerting) == (D(2025, 9, 29), D(2025, 10, 30), False)
    engine.sweep(app_session, D(2025, 10, 29))
    assert _alerts(app_session, d) == []
    engine.sweep(app_session, D(2025, 10, 31))
    assert d.status == "elapsed" and _alerts(app_session, d) == []


def test_hn_dropout_confirm_from_entering_suspected(app_session, county):
    """卫辉: from entering SUSPECTED (10-10) -> 11-11; the 辍学认定 flag is set on the sweep of 11-11."""
    case = _hn_suspected_on_1010(app_session, county)
    d = _deadline(app_session, case, "dropout_confirm")
    assert (d.start_on, d.due_on) == (D(2025, 10, 10), D(2025, 11, 11))
    engine.sweep(app_session, D(2025, 11, 10))
    assert case.dropout_confirmed_on is None
    engine.sweep(app_session, D(2025, 11, 11))
    assert case.dropout_confirmed_on == D(2025, 11, 11)


@pytest.mark.parametrize("name", [HN, GZ])
def test_observation_and_relapse_windows_from_return(app_session, county, name):
    """Returned Fri 01-31: observation 1 month -> 02-28 (民法典 §202: no 31st, month end);
    relapse watch 365 calendar days -> 2026-01-31. Periods: they elapse, no alerts."""
    _profile(app_session, county, name)
    case = engine.open_case(app_session, _pupil(app_session), opened_on=D(2025, 1, 13), actor="班主任")
    engine.apply_action(app_session, case, "T4", actor="学校", occurred_at=D(2025, 1, 22),
                        data={"facts": {"unexcused_days": 8}})
    engine.apply_action(app_session, case, "T6", actor="学校", occurred_at=D(2025, 1, 31),
                        data={"facts": {"returned_on": "2025-01-31"}})
    obs, watch = _deadline(app_session, case, "observation"), _deadline(app_session, case, "relapse_window")
    assert (obs.start_on, obs.due_on, obs.alerting, obs.transition) == (D(2025, 1, 31), D(2025, 2, 28), False, "T6")
    assert (watch.due_on, watch.alerting) == (D(2026, 1, 31), False)
    engine.sweep(app_session, D(2025, 3, 1))
    assert obs.status == "elapsed" and _alerts(app_session, obs) == []
    assert _deadline(app_session, case, "dropout_confirm").status == "cancelled"


def test_audit_case_that_never_reports_shows_every_duty(client, app_session, county):
    """The audit's case: 卫辉, suspected, nobody records anything: /overdue and /problems show the
    guardian contact, the verification visit, the window and the 报告单."""
    case = _hn_suspected_on_1010(app_session, county)
    engine.sweep(app_session, D(2025, 10, 27))
    app_session.commit()
    res = client.get(f"/api/v1/overdue?org_id={county.id}&today=2025-10-27")
    timers = {i["timer"]: i["due_on"] for i in res.json["items"] if i["case_id"] == case.id}
    assert timers == {"contact_guardian": "2025-09-28", "verify_visit": "2025-10-09",
                      "persuasion_window": "2025-10-23", "school_report": "2025-10-26"}
    res = client.get(f"/api/v1/problems?org_id={county.id}")
    assert {p["category"] for p in res.json["items"] if p["case_id"] == case.id} == set(timers)
