"""Case engine API (web/api_engine.py): actions (409 naming the state), attempts with the window
check, evidence + verify + close (refusal lists what is missing), referrals, overdue, problems,
holiday tables, scoping."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from cases.engine import casework as engine
from cases.store.models import Case, Org, Pupil
from tests.conftest import client_for

D = dt.date


def _case(session) -> Case:
    pupil = session.scalars(select(Pupil).where(Pupil.id.not_in(select(Case.pupil_id))).order_by(Pupil.id)).first()
    case = engine.open_case(session, pupil, opened_on=D(2025, 3, 3), actor="t", reason_code="R02")
    session.commit()
    return case


def test_actions_attempts_close_and_lists(app, client, app_session, demo, make_user):
    case = _case(app_session)
    res = client.get(f"/api/v1/cases/{case.id}/actions")
    assert res.status_code == 200 and res.json["state"] == "ABSENT"
    assert res.json["allowed"] == [] and {b["code"] for b in res.json["blocked"]} >= {"T2", "T3", "T4"}
    assert res.json["deadlines"][0]["timer"] == "contact_guardian"

    res = client.post(f"/api/v1/cases/{case.id}/actions", json={"code": "T8"})
    assert res.status_code == 409 and res.json["error"] == "invalid_transition"
    assert res.json["details"]["current_state"] == "ABSENT" and "allowed_actions" in res.json["details"]

    res = client.post(f"/api/v1/cases/{case.id}/actions", json={"code": "T4", "occurred_on": "2025-03-07",
                                                               "data": {"facts": {"unexcused_days": 5}}})
    assert res.status_code == 201 and res.json["state"] == "SUSPECTED"
    assert {t["name"] for t in res.json["transition"]["timers"]} == {"persuasion_window", "dropout_confirm",
                                                                     "school_report"}

    body = {"date": "2025-03-10", "persons": "专人、班主任", "method": "visit", "result": "refused",
            "place": "家中", "met": "父亲", "statements": "外出打工", "next_step": "再访"}
    res = client.post(f"/api/v1/cases/{case.id}/attempts", json=body)
    assert res.status_code == 201 and res.json["attempt"]["number"] == 1
    assert res.json["check"]["required"] == 3 and res.json["check"]["in_window"] == 1
    assert res.json["check"]["window_due"] == "2025-03-21"
    assert res.json["check"]["partners_for_reason"] == ["renshe", "gongan"]
    res = client.post(f"/api/v1/cases/{case.id}/attempts", json={**body, "method": "fax"})
    assert res.status_code == 422 and "method" in res.json["fields"]
    assert len(client.get(f"/api/v1/cases/{case.id}/attempts").json["attempts"]) == 1

    res = client.post(f"/api/v1/cases/{case.id}/close", json={"outcome": "C7"})
    assert res.status_code == 409 and res.json["error"] == "closure_refused"
    assert "证明材料不全" in res.json["message"]
    ev = client.post(f"/api/v1/cases/{case.id}/evidence", json={"kind": "study_elsewhere_proof"}).json
    res = client.post(f"/api/v1/cases/{case.id}/close", json={"outcome": "C7"})
    assert res.status_code == 409 and "待人工核实" in res.json["message"]
    _uid, token = make_user("wang.hecha", ["county_bureau"], demo.county_id)
    res = client_for(app, token).post(f"/api/v1/evidence/{ev['id']}/verify")
    assert res.status_code == 200 and res.json["verified_by"] == "wang.hecha"  # the logged-in person

    res = client.post(f"/api/v1/cases/{case.id}/referrals",
                      json={"to_department": "renshe", "reason": "外出务工，请协查用工单位", "sent_on": "2025-03-12"})
    assert res.status_code == 201 and res.json["to_department"] == "renshe"
    assert client.post(f"/api/v1/cases/{case.id}/referrals", json={"to_department": "x"}).status_code == 422

    county = demo.county_id
    over = client.get(f"/api/v1/overdue?org_id={county}&today=2025-03-25").json
    assert {i["timer"] for i in over["items"]} >= {"persuasion_window"}
    row = next(i for i in over["items"] if i["timer"] == "persuasion_window")
    assert row["days_overdue"] == 4 and row["case_number"] == case.number and row["pupil_name"]

    assert client.post("/api/v1/admin/sweep", json={"today": "2025-03-25"}).status_code == 200
    problems = client.get(f"/api/v1/problems?org_id={county}").json["items"]
    assert any(p["category"] == "persuasion_window" and p["source"] == "timer_breach" for p in problems)

    res = client.post(f"/api/v1/cases/{case.id}/close", json={"outcome": "C7", "occurred_on": "2025-03-26"})
    assert res.status_code == 200 and res.json["state"] == "CLOSED" and res.json["closure_reason"] == "C7"


def test_scope_and_holidays(client, app_session, demo):
    case = _case(app_session)
    other = app_session.scalars(select(Org).where(Org.kind == "township", Org.id != case.township_org_id)).first()
    res = client.get(f"/api/v1/cases/{case.id}/actions", headers={"X-Baoxue-Org": str(other.id)})
    assert res.status_code == 403
    res = client.get(f"/api/v1/overdue?org_id={demo.county_id}", headers={"X-Baoxue-Org": str(other.id)})
    assert res.status_code == 403
    table = {"year": 2028, "source": "测试", "holidays": ["2028-01-01"], "workdays": []}
    assert client.post("/api/v1/admin/holidays", json=table,
                       headers={"X-Baoxue-Org": str(other.id)}).status_code == 403
    res = client.post("/api/v1/admin/holidays", json=table)
    assert res.status_code == 201 and res.json["year"] == 2028
    res = client.post("/api/v1/admin/holidays", json={"year": 2028, "holidays": "2028-01-01"})
    assert res.status_code == 422 and "holidays" in res.json["fields"]


def test_post_cases_opens_only_in_the_initial_state_through_open_case(client, app_session, demo):
    """POST /cases is the engine's open_case (T1 into ABSENT, contact timer started); any other
    requested state is refused naming the field, and nothing is written."""
    from cases.engine.models import Deadline
    from cases.store.models import CaseEvent

    pupil = app_session.scalars(select(Pupil).where(Pupil.id.not_in(select(Case.pupil_id))).order_by(Pupil.id)).first()
    before = app_session.scalar(select(func.count()).select_from(Case))
    for state in ("CLOSED", "SUSPECTED", "JOINT", "nonsense"):
        res = client.post("/api/v1/cases", json={"pupil_id": pupil.id, "state": state, "opened_on": "2026-03-02"})
        assert res.status_code == 422, (state, res.json)
        assert set(res.json["fields"]) == {"state"} and "ABSENT" in res.json["fields"]["state"]
    app_session.expire_all()
    assert app_session.scalar(select(func.count()).select_from(Case)) == before

    res = client.post("/api/v1/cases", json={"pupil_id": pupil.id, "opened_on": "2026-03-02", "reason_code": "R01"})
    assert res.status_code == 201, res.json
    out = res.json
    assert out["state"] == "ABSENT" and out["pupil_id"] == pupil.id and out["org_id"] == pupil.org_id
    case = app_session.get(Case, out["id"])
    assert case.opened_on == D(2026, 3, 2) and case.reason_code == "R01" and case.episode == 1
    events = app_session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id)).all()
    assert [(e.kind, e.transition, e.from_state, e.to_state) for e in events] == [
        ("transition", "T1", "ATTENDING", "ABSENT")]
    timers = app_session.scalars(select(Deadline).where(Deadline.case_id == case.id)).all()
    assert [t.timer for t in timers] == ["contact_guardian"] and timers[0].due_on == D(2026, 3, 2)

    again = client.post("/api/v1/cases", json={"pupil_id": pupil.id, "state": "ABSENT"})
    assert again.status_code == 409 and case.number in again.json["message"]
