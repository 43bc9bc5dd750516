"""The case engine in the database (cases/engine/casework.py): transitions and guards under both region
profiles, deadlines started and closed, sweep alerts and the 问题清单, closure with verified
evidence, relapse tagging, the 辍学认定 flag."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from cases.engine import casework as engine
from cases.engine.models import Alert, Deadline, Evidence, Problem
from cases.store.models import Case, CaseEvent, Document, Org, Pupil
from forms.errors import Conflict, InvalidTransition, ValidationFailed

D = dt.date


@pytest.fixture
def county(demo, app_session):
    return app_session.get(Org, demo.county_id)


def _pupil(session) -> Pupil:
    taken = select(Case.pupil_id)
    return session.scalars(select(Pupil).where(Pupil.id.not_in(taken)).order_by(Pupil.id)).first()


def _use_profile(session, county: Org, name: str) -> None:
    county.region_profile = name
    session.flush()


def _deadline(session, case, timer) -> Deadline:
    return session.scalars(select(Deadline).where(Deadline.case_id == case.id, Deadline.timer == timer)
                           .order_by(Deadline.id.desc())).first()


def _doc(session, case, variant="xianqi") -> Document:
    doc = Document(id=f"T{case.id:05d}{variant[:4]}", org_id=case.township_org_id, case_id=case.id,
                   form="guardian_notice", variant=variant, family="x", template_version="1", year=2025,
                   status="issued")
    session.add(doc)
    session.flush()
    return doc


def _suspected(session, *, opened=D(2025, 3, 3), suspect_on=D(2025, 3, 7), facts_days=(3, 5)) -> Case:
    case = engine.open_case(session, _pupil(session), opened_on=opened, actor="班主任", source="manual")
    engine.apply_action(session, case, "T3", actor="学校", data={"facts": {"unexcused_days": facts_days[0]}},
                        occurred_at=opened + dt.timedelta(days=2))
    engine.apply_action(session, case, "T4", actor="学校", data={"facts": {"unexcused_days": facts_days[1]}},
                        occurred_at=suspect_on)
    return case


def _attempt(session, case, day, **kw):
    return engine.record_attempt(session, case, {"date": day.isoformat(), "persons": "班主任、村干部",
                                                 "method": kw.pop("method", "visit"),
                                                 "result": kw.pop("result", "refused"), **kw}, actor="专人")


def test_open_case_starts_episode_with_t1_and_contact_timer(app_session, county):
    pupil = _pupil(app_session)
    case = engine.open_case(app_session, pupil, opened_on=D(2025, 3, 3), actor="班主任", source="manual",
                            reason_code="R01")
    assert case.state == "ABSENT" and case.episode == 1 and case.relapse is False
    assert case.number.startswith("2025-419901-") and case.profile == "henan-weihui-2022"
    ev = app_session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id)).one()
    assert (ev.kind, ev.transition, ev.from_state, ev.to_state) == ("transition", "T1", "ATTENDING", "ABSENT")
    d = _deadline(app_session, case, "contact_guardian")
    assert (d.status, d.start_on, d.due_on) == ("open", D(2025, 3, 3), D(2025, 3, 3))
    with pytest.raises(Conflict) as e:
        engine.open_case(app_session, pupil, opened_on=D(2025, 3, 4), actor="x")
    assert case.number in e.value.message


def test_invalid_transition_names_state_and_allowed_actions(app_session, county):
    case = engine.open_case(app_session, _pupil(app_session), opened_on=D(2025, 3, 3), actor="t")
    with pytest.raises(InvalidTransition) as e:
        engine.apply_action(app_session, case, "T8", actor="乡镇", occurred_at=D(2025, 3, 3))
    assert e.value.http_status == 409
    assert e.value.details["current_state"] == "ABSENT"
    assert e.value.message == ("当前状态为“无故缺勤”，不能执行“乡(镇)下达并送达返校通知书”：该操作只能在以下状态执行："
                               "已书面报告。当前可执行的操作：无")
    assert e.value.details["allowed_actions"] == [] and e.value.details["action"] == "T8"
    # With the verified legitimate reason T2 becomes the allowed action and is listed.
    with pytest.raises(InvalidTransition) as e:
        engine.apply_action(app_session, case, "T4", actor="学校", occurred_at=D(2025, 3, 3),
                            data={"facts": {"legitimate_reason_verified": True}})
    assert [a["code"] for a in e.value.details["allowed_actions"]] == ["T2"]
    assert case.state == "ABSENT"
    with pytest.raises(ValidationFailed) as e:
        engine.apply_action(app_session, case, "T2", actor="t", data={"facts": {"returned": True}})
    assert "facts.returned" in e.value.fields


def test_weihui_path_through_the_database(app_session, county):
    case = _suspected(app_session)
    assert case.state == "SUSPECTED"
    # Leaving ABSENT two days after the same-day contact duty without a contact record: breached.
    contact = _deadline(app_session, case, "contact_guardian")
    assert contact.status == "breached"
    assert app_session.scalar(select(func.count()).select_from(Problem)
                              .where(Problem.deadline_id == contact.id)) == 1
    window = _deadline(app_session, case, "persuasion_window")
    assert (window.start_on, window.due_on, window.status) == (D(2025, 3, 7), D(2025, 3, 21), "open")
    assert _deadline(app_session, case, "dropout_confirm").due_on == D(2025, 4, 8)

    for day in (D(2025, 3, 10), D(2025, 3, 12)):
        _attempt(app_session, case, day)
    check = engine.attempts_check(app_session, case, today=D(2025, 3, 13))
    assert (check["in_window"], check["required"], check["status"]) == (2, 3, "running")
    # T7 only after the window (10 working days) ran out.
    with pytest.raises(InvalidTransition) as e:
        engine.apply_action(app_session, case, "T7", actor="学校", occurred_at=D(2025, 3, 14))
    assert "2025年3月21日" in e.value.details["reason"]
    third = _attempt(app_session, case, D(2025, 3, 17), method="phone", result="not_met")
    assert third["number"] == 3
    assert engine.attempts_check(app_session, case, today=D(2025, 3, 18))["status"] == "met"
    t7 = engine.apply_action(app_session, case, "T7", actor="学校", occurred_at=D(2025, 3, 24))
    assert case.state == "REPORTED" and t7.warnings == ()
    assert _deadline(app_session, case, "persuasion_window").status == "met"
    notice = _deadline(app_session, case, "township_notice")
    assert (notice.status, notice.due_on) == ("waiting", None)
    engine.record_receipt(app_session, case, document_id=None, received_on=D(2025, 3, 25), actor="乡镇")
    assert (notice.status, notice.due_on) == ("open", D(2025, 3, 27))

    # An incomplete 回证 starts nothing and keeps the state.
    doc = _doc(app_session, case)
    engine.record_service(app_session, case, document_id=doc.id, served_on=D(2025, 3, 26), method="direct",
                          complete=False, actor="乡镇")
    assert case.state == "REPORTED" and _deadline(app_session, case, "return_deadline") is None
    engine.record_service(app_session, case, document_id=doc.id, served_on=D(2025, 3, 26), method="direct",
                          complete=True, actor="乡镇")
    assert case.state == "NOTICED"
    ret = app_session.scalars(select(Deadline).where(Deadline.case_id == case.id,
                                                     Deadline.timer == "return_deadline")).all()
    assert len(ret) == 1 and (ret[0].start_on, ret[0].due_on) == (D(2025, 3, 26), D(2025, 4, 2))
    assert _deadline(app_session, case, "township_notice").status == "met"

    engine.apply_action(app_session, case, "T9", actor="学校", occurred_at=D(2025, 3, 31),
                        data={"facts": {"returned_on": "2025-03-31"}})
    assert case.state == "RETURNED"
    assert _deadline(app_session, case, "return_deadline").status == "met"
    assert _deadline(app_session, case, "dropout_confirm").status == "cancelled"
    assert _deadline(app_session, case, "observation").due_on == D(2025, 4, 30)

    # 销号 C1: refused listing every missing item, then allowed with verified evidence.
    with pytest.raises(engine.ClosureRefused) as e:
        engine.close_case(app_session, case, "C1", actor="学校", occurred_at=D(2025, 5, 6))
    missing = e.value.details["missing"]
    assert len(missing) == 5 and any("一对一帮扶方案" in m for m in missing)
    assert e.value.http_status == 409
    items = [engine.attach_evidence(app_session, case, kind=k, actor="学校", value=v)
             for k, v in (("attendance_record", None), ("enrolment_record", None), ("placement_record", "chaban"),
                          ("teaching_plan", None), ("support_plan", None))]
    with pytest.raises(engine.ClosureRefused) as e:
        engine.close_case(app_session, case, "C1", actor="学校", occurred_at=D(2025, 5, 6))
    assert all("待人工核实" in m for m in e.value.details["missing"])
    for item in items:
        engine.verify_evidence(app_session, item, by="李核查")
    with pytest.raises(ValidationFailed):
        engine.verify_evidence(app_session, items[0], by="anonymous")
    with pytest.raises(InvalidTransition) as e:  # observation month not over yet
        engine.close_case(app_session, case, "C1", actor="学校", occurred_at=D(2025, 4, 15))
    assert "2025年4月30日" in e.value.details["reason"]
    t = engine.close_case(app_session, case, "C1", actor="学校", occurred_at=D(2025, 5, 6))
    assert (t.code, case.state, case.closure_reason) == ("T21", "CLOSED", "C1")
    assert not engine._open_deadlines(app_session, case)


def test_guizhou_path_home_visits_and_township_persuasion(app_session, county):
    _use_profile(app_session, county, "guizhou-2019")
    case = engine.open_case(app_session, _pupil(app_session), opened_on=D(2025, 3, 3), actor="t")
    assert case.profile == "guizhou-2019"
    # No day threshold for T3 in 贵州; 7 calendar days are not "more than a week".
    with pytest.raises(InvalidTransition):
        engine.apply_action(app_session, case, "T4", actor="学校", data={"facts": {"unexcused_days": 7}},
                            occurred_at=D(2025, 3, 9))
    engine.apply_action(app_session, case, "T4", actor="学校", data={"facts": {"unexcused_days": 8}},
                        occurred_at=D(2025, 3, 10))
    assert case.state == "SUSPECTED"
    assert _deadline(app_session, case, "persuasion_window") is None  # 贵州 has no window timer
    with pytest.raises(InvalidTransition) as e:
        engine.apply_action(app_session, case, "T7", actor="学校", occurred_at=D(2025, 3, 11))
    assert "不能执行“书面报告乡(镇)和教育部门”" in e.value.message and "T7" not in e.value.message
    assert "地区配置“贵州省控辍保学“三项工作制度”" in e.value.message and "不使用此步骤" in e.value.details["reason"]
    _attempt(app_session, case, D(2025, 3, 11))
    with pytest.raises(InvalidTransition) as e:
        engine.apply_action(app_session, case, "T7-GZ", actor="学校", occurred_at=D(2025, 3, 12))
    assert "家访1次" in e.value.details["reason"]
    _attempt(app_session, case, D(2025, 3, 12), method="group")
    engine.apply_action(app_session, case, "T7-GZ", actor="学校", occurred_at=D(2025, 3, 13))
    assert case.state == "REPORTED"
    doc = _doc(app_session, case, "dunfan")
    # Served before two township attempts: deadline runs, state kept (T10-GZ guard).
    engine.record_service(app_session, case, document_id=doc.id, served_on=D(2025, 3, 14), method="direct",
                          complete=True, actor="乡镇")
    assert case.state == "REPORTED"
    for day in (D(2025, 3, 14), D(2025, 3, 17)):
        _attempt(app_session, case, day, stage="township")
    with pytest.raises(InvalidTransition) as e:
        engine.apply_action(app_session, case, "T8", actor="乡镇", occurred_at=D(2025, 3, 18))
    assert "不使用此步骤" in e.value.details["reason"]
    t = engine.apply_action(app_session, case, "T10-GZ", actor="乡镇", occurred_at=D(2025, 3, 18))
    assert case.state == "NOTICED" and t.notice_variant == "dunfan"
    deadlines = app_session.scalars(select(Deadline).where(Deadline.case_id == case.id,
                                                           Deadline.timer == "return_deadline")).all()
    assert len(deadlines) == 1 and deadlines[0].due_on == D(2025, 3, 21)
    # Joint persuasion (T10) once the return deadline is missed; legal (T11) after 3 joint attempts with partners.
    with pytest.raises(InvalidTransition):
        engine.apply_action(app_session, case, "T10", actor="乡镇", occurred_at=D(2025, 3, 20))
    engine.apply_action(app_session, case, "T10", actor="乡镇", occurred_at=D(2025, 3, 24))
    assert case.state == "JOINT"
    assert _deadline(app_session, case, "return_deadline").status == "breached"
    for i, day in enumerate((D(2025, 3, 25), D(2025, 3, 27), D(2025, 3, 31))):
        _attempt(app_session, case, day, method="joint", partners=["gongan"] if i else [])
    with pytest.raises(InvalidTransition) as e:
        engine.apply_action(app_session, case, "T11", actor="司法", occurred_at=D(2025, 4, 1))
    assert "联合劝返2次" in e.value.details["reason"]
    _attempt(app_session, case, D(2025, 4, 1), method="joint", partners=["renshe"])
    engine.apply_action(app_session, case, "T11", actor="司法", occurred_at=D(2025, 4, 2))
    assert case.state == "LEGAL"


def test_sweep_alerts_breaches_problem_once_and_dropout_flag(app_session, county):
    case = _suspected(app_session)
    window = _deadline(app_session, case, "persuasion_window")
    assert window.due_on == D(2025, 3, 21)
    assert engine.sweep(app_session, D(2025, 3, 19))["due_soon"] == 0
    counts = engine.sweep(app_session, D(2025, 3, 20))  # T−1 (previous working day)
    assert counts["due_soon"] == 1 and window.alerted_t1_at is not None
    assert engine.sweep(app_session, D(2025, 3, 21))["due_soon"] == 0  # once only
    counts = engine.sweep(app_session, D(2025, 3, 24))
    assert counts["breached"] == 1 and window.status == "breached"
    engine.sweep(app_session, D(2025, 3, 25))
    alerts = app_session.scalars(select(Alert).where(Alert.deadline_id == window.id)).all()
    assert sorted(a.kind for a in alerts) == ["breach", "due_soon"]
    problems = app_session.scalars(select(Problem).where(Problem.deadline_id == window.id)).all()
    assert len(problems) == 1 and problems[0].source == "timer_breach"
    assert problems[0].org_id == case.org_id and problems[0].due_on == D(2025, 3, 27)
    over = engine.overdue(app_session, county, D(2025, 3, 25))
    row = next(r for r in over if r["timer"] == "persuasion_window")
    assert (row["case_number"], row["days_overdue"], row["due_on"]) == (case.number, 4, D(2025, 3, 21))
    # 辍学认定: strictly more than one month after entering SUSPECTED (3-07 -> 4-08).
    engine.sweep(app_session, D(2025, 4, 7))
    assert case.dropout_confirmed_on is None
    assert engine.sweep(app_session, D(2025, 4, 8))["dropout_confirmed"] == 1
    assert case.dropout_confirmed_on == D(2025, 4, 8) and case.state == "SUSPECTED"


def test_persuasion_window_met_in_sweep_when_enough_attempts(app_session, county):
    case = _suspected(app_session)
    for day in (D(2025, 3, 10), D(2025, 3, 11), D(2025, 3, 12)):
        _attempt(app_session, case, day)
    engine.sweep(app_session, D(2025, 3, 24))
    assert _deadline(app_session, case, "persuasion_window").status == "met"
    assert app_session.scalar(select(func.count()).select_from(Problem)
                              .where(Problem.category == "persuasion_window")) == 0


def test_relapse_same_case_and_new_episode(app_session, county):
    case = _suspected(app_session)
    engine.apply_action(app_session, case, "T6", actor="学校", occurred_at=D(2025, 3, 10),
                        data={"facts": {"returned_on": "2025-03-10"}})
    t = engine.apply_action(app_session, case, "T23", actor="班主任", occurred_at=D(2025, 3, 20),
                            data={"facts": {"unexcused_days": 1}})
    assert "relapse" in t.tags and case.relapse and case.state == "ABSENT"
    # The returned_on fact belonged to the previous episode: T6 now needs a new return date.
    assert engine.build_facts(app_session, case, D(2025, 3, 21)).returned_on is None
    engine.apply_action(app_session, case, "T2", actor="班主任", occurred_at=D(2025, 3, 21),
                        data={"facts": {"legitimate_reason_verified": True}})
    assert case.state == "ATTENDING"
    second = engine.open_case(app_session, case.pupil, opened_on=D(2025, 4, 1), actor="班主任")
    assert second.episode == 2 and second.relapse is True


def test_provisional_return_deadline_keeps_warning(app_session, county):
    case = _suspected(app_session, opened=D(2025, 3, 3))
    engine.apply_action(app_session, case, "T7", actor="学校", occurred_at=D(2025, 3, 24),
                        data={"facts": {"out_of_contact": True}})
    engine.record_receipt(app_session, case, document_id=None, received_on=D(2025, 3, 25), actor="乡镇")
    doc = _doc(app_session, case)
    # chinese-calendar knows no year after 2026: a 2027 service date gives a provisional due date.
    engine.record_service(app_session, case, document_id=doc.id, served_on=D(2027, 1, 4), method="post",
                          complete=True, actor="乡镇")
    d = _deadline(app_session, case, "return_deadline")
    assert d.provisional and "2027年" in d.warning and d.due_on == D(2027, 1, 11)


def test_closure_c7_from_any_open_state_and_evidence_event(app_session, county):
    case = engine.open_case(app_session, _pupil(app_session), opened_on=D(2025, 3, 3), actor="t")
    ev = engine.attach_evidence(app_session, case, kind="transfer_record", actor="学校")
    with pytest.raises(engine.ClosureRefused) as e:
        engine.close_case(app_session, case, "C7", actor="教育局", occurred_at=D(2025, 3, 4))
    assert "待人工核实" in e.value.message
    engine.verify_evidence(app_session, ev, by="王科长")
    t = engine.close_case(app_session, case, "C7", actor="教育局", occurred_at=D(2025, 3, 4))
    assert t.code == "T22" and case.state == "CLOSED" and case.closure_reason == "C7"
    kinds = [e.data.get("action") for e in app_session.scalars(
        select(CaseEvent).where(CaseEvent.case_id == case.id, CaseEvent.kind == "evidence"))]
    assert kinds == ["attached", "verified"]
    assert app_session.get(Evidence, ev.id).verified_by == "王科长"
    with pytest.raises(InvalidTransition) as e:
        engine.close_case(app_session, case, "C1", actor="x")
    assert e.value.message.startswith("当前状态为“已销号”，不能以“复学”销号；该销号类型只能在以下状态办理：")
    assert "CLOSED" not in e.value.message and "C1" not in e.value.message
    with pytest.raises(ValidationFailed) as e:
        engine.close_case(app_session, case, "C9", actor="x")
    assert e.value.message == ("未知的销号类型：应为“复学”、“延缓入学/休学（拒不复学）”、“身体原因（残疾评估）”、"
                               "“贫困家庭拒不复学”、“失踪或死亡”、“超龄”、“经核实非辍学”之一")


def test_attempt_validation_names_fields(app_session, county):
    case = engine.open_case(app_session, _pupil(app_session), opened_on=D(2025, 3, 3), actor="t")
    with pytest.raises(ValidationFailed) as e:
        engine.record_attempt(app_session, case, {"date": "2025-03-01", "method": "fax", "result": "refused",
                                                  "partners": ["nasa"]}, actor="x")
    assert set(e.value.fields) == {"date", "persons", "method", "partners"}
    assert "立案日期" in e.value.fields["date"]
    ok = _attempt(app_session, case, D(2025, 3, 3))
    assert ok["stage"] == "school" and ok["number"] == 1
    assert _deadline(app_session, case, "contact_guardian").status == "met"


def test_holiday_table_changes_deadlines(app_session, county):
    table = {"year": 2027, "source": "测试", "holidays": ["2027-01-01", "2027-01-04", "2027-01-05"],
             "workdays": ["2027-01-09"]}
    engine.load_holiday_table(app_session, table, actor="admin")
    tables = engine.holiday_tables(app_session)
    assert 2027 in tables.years()
    with pytest.raises(ValidationFailed) as e:
        engine.load_holiday_table(app_session, {"year": 2027, "holidays": ["2027-13-01"]}, actor="admin")
    assert "holidays" in e.value.fields
