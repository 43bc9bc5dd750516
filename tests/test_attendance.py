"""Attendance import (cases/engine/attendance.py and POST /attendance/import): thresholds open and advance
cases, legitimate reasons close the episode, relapse, bad rows reported by row number."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from openpyxl import Workbook
from sqlalchemy import select

from cases.engine import casework as engine
from cases.engine.attendance import import_attendance
from cases.engine.models import AttendanceRecord
from cases.store.models import Case, Org, Pupil

D = dt.date
HEAD = "日期,学籍号,姓名,类型,备注\n"
# 2025-03-03 is a Monday; 03-08/09 a weekend.
WEEK = [D(2025, 3, 3), D(2025, 3, 4), D(2025, 3, 5), D(2025, 3, 6), D(2025, 3, 7), D(2025, 3, 10)]


@pytest.fixture
def school(demo, app_session):
    return app_session.scalars(select(Org).where(Org.kind == "school").order_by(Org.id)).first()


def _pupils(session, school, n=2) -> list[Pupil]:
    taken = select(Case.pupil_id)
    return list(session.scalars(select(Pupil).where(Pupil.org_id == school.id, Pupil.id.not_in(taken))
                                .order_by(Pupil.id).limit(n)))


def _csv(rows) -> bytes:
    return (HEAD + "".join(",".join(r) + "\n" for r in rows)).encode("utf-8")


def test_thresholds_open_and_advance_with_bad_rows_kept_apart(app_session, school):
    a, b = _pupils(app_session, school)
    rows = [(d.isoformat(), a.xueji_no, a.name, "无故缺勤", "") for d in WEEK[:5]]
    rows += [
        ("2025-03-03", b.id_number, b.name, "病假", "发烧"),      # row 7: legitimate, no case
        ("2025-03-32", a.xueji_no, a.name, "无故缺勤", ""),        # row 8: bad date
        ("2025-03-04", "G000", "无名", "无故缺勤", ""),            # row 9: unknown pupil
        ("2025-03-04", b.xueji_no, "张冒名", "无故缺勤", ""),      # row 10: name mismatch
        ("2025-03-05", b.xueji_no, b.name, "旷课", ""),            # row 11: bad type
        ("2025-03-03", a.xueji_no, a.name, "无故缺勤", ""),        # row 12: duplicate of row 2
    ]
    result = import_attendance(app_session, org=school, filename="kq.csv", data=_csv(rows), actor="教务",
                               today=D(2025, 3, 20))
    assert result.rows == 11 and result.accepted == 6
    bad = {r["row"]: r["reason"] for r in result.bad_rows}
    assert sorted(bad) == [8, 9, 10, 11, 12]
    assert "日期" in bad[8] and "没有" in bad[9] and "姓名" in bad[10] and "类型" in bad[11]
    assert "第2行" in bad[12]
    case = app_session.scalars(select(Case).where(Case.pupil_id == a.id)).one()
    assert case.state == "SUSPECTED" and case.opened_on == D(2025, 3, 3)
    steps = [(x["date"], tuple(x["transitions"])) for x in result.cases_advanced]
    assert steps == [(D(2025, 3, 5), ("T3",)), (D(2025, 3, 7), ("T4",))]
    assert [c["case_number"] for c in result.cases_opened] == [case.number]
    assert app_session.scalars(select(Case).where(Case.pupil_id == b.id)).first() is None
    assert app_session.scalar(select(AttendanceRecord.kind).where(AttendanceRecord.pupil_id == b.id)) == "sick"


def test_weekend_does_not_break_a_run_and_present_day_does(app_session, school):
    (a,) = _pupils(app_session, school, 1)
    recs = [(d, "unexcused") for d in (D(2025, 3, 6), D(2025, 3, 7), D(2025, 3, 10))]
    assert engine.absence_runs(recs, "school_day") == [(D(2025, 3, 6), D(2025, 3, 10), 3)]
    assert engine.absence_runs(recs, "calendar_day") == [(D(2025, 3, 6), D(2025, 3, 10), 5)]
    gap = [(D(2025, 3, 3), "unexcused"), (D(2025, 3, 5), "unexcused")]
    assert [r[2] for r in engine.absence_runs(gap, "school_day")] == [1, 1]
    legit = [(D(2025, 3, 3), "unexcused"), (D(2025, 3, 4), "sick"), (D(2025, 3, 5), "unexcused")]
    assert len(engine.absence_runs(legit, "school_day")) == 2


def test_legitimate_reason_closes_absent_episode_and_relapse_is_tagged(app_session, school):
    (a,) = _pupils(app_session, school, 1)
    first = _csv([("2025-03-03", a.xueji_no, a.name, "无故缺勤", ""),
                  ("2025-03-04", a.xueji_no, a.name, "事假", "家长补假条")])
    r1 = import_attendance(app_session, org=school, filename="a.csv", data=first, actor="t", today=D(2025, 3, 20))
    assert len(r1.cases_opened) == 1 and len(r1.episodes_closed) == 1
    case = app_session.get(Case, r1.cases_opened[0]["case_id"])
    assert case.state == "ATTENDING"
    # A returned case relapses through T23 on the next unexcused day.
    case2 = engine.open_case(app_session, a, opened_on=D(2025, 3, 10), actor="t")
    engine.apply_action(app_session, case2, "T3", actor="t", data={"facts": {"unexcused_days": 3}},
                        occurred_at=D(2025, 3, 12))
    engine.apply_action(app_session, case2, "T4", actor="t", data={"facts": {"unexcused_days": 5}},
                        occurred_at=D(2025, 3, 14))
    engine.apply_action(app_session, case2, "T6", actor="t", data={"facts": {"returned_on": "2025-03-17"}},
                        occurred_at=D(2025, 3, 17))
    r2 = import_attendance(app_session, org=school, filename="b.csv", today=D(2025, 3, 30), actor="t",
                           data=_csv([("2025-03-24", a.xueji_no, a.name, "无故缺勤", "")]))
    assert r2.cases_advanced[0]["transitions"] == ["T23"]
    assert case2.state == "ABSENT" and case2.relapse is True


def test_xlsx_and_guizhou_calendar_days(app_session, school):
    county = app_session.scalars(select(Org).where(Org.kind == "county")).first()
    county.region_profile = "guizhou-2019"
    app_session.flush()
    (a,) = _pupils(app_session, school, 1)
    wb = Workbook()
    ws = wb.active
    ws.append(["日期", "身份证号", "姓名", "类型", "备注"])
    for d in WEEK:  # Mon 3-03 .. Mon 3-10: 8 calendar days, more than a week
        ws.append([dt.datetime(d.year, d.month, d.day), a.id_number, a.name, "无故缺勤", None])
    buf = io.BytesIO()
    wb.save(buf)
    result = import_attendance(app_session, org=school, filename="kq.xlsx", data=buf.getvalue(), actor="t",
                               today=D(2025, 3, 20))
    assert result.accepted == 6 and not result.bad_rows
    case = app_session.scalars(select(Case).where(Case.pupil_id == a.id)).one()
    assert case.profile == "guizhou-2019" and case.state == "SUSPECTED"
    assert result.cases_advanced[-1]["transitions"] == ["T4"]
    assert result.cases_advanced[-1]["date"] == D(2025, 3, 10)


def test_import_api_reports_rows(client, app_session, school):
    (a,) = _pupils(app_session, school, 1)
    data = _csv([("2025-03-03", a.xueji_no, a.name, "无故缺勤", ""), ("bad", a.xueji_no, a.name, "无故缺勤", "")])
    res = client.post("/api/v1/attendance/import", data={"org_id": str(school.id),
                                                          "file": (io.BytesIO(data), "kq.csv")},
                      content_type="multipart/form-data")
    assert res.status_code == 201, res.json
    assert res.json["accepted"] == 1 and res.json["bad_rows"][0]["row"] == 3
    assert res.json["cases_opened"][0]["opened_on"] == "2025-03-03"
    res = client.post("/api/v1/attendance/import", data={"org_id": str(school.id),
                                                          "file": (io.BytesIO(b"a,b\n1,2\n"), "kq.csv")},
                      content_type="multipart/form-data")
    assert res.status_code == 422 and "缺少列" in res.json["message"]
