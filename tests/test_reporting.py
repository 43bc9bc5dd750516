"""The reporting calendar (cases/ledgers/reporting.py, DOMAIN §6.3): due dates per unit and period
from the profile, the "not filed" list per jurisdiction, reminders (T−1, due, overdue; once each),
snapshots filed only for a defined as-of date (others 422; corrections stay 更正 entries)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from cases.engine.profiles import load_profile
from cases.ledgers import ledger as ledgers
from cases.ledgers import reporting
from cases.ledgers.models import LedgerSnapshot, ReportReminder
from cases.store.models import Org

D = dt.date
B = "/api/v1"


class Tree:
    pass


def build(session) -> Tree:
    """A prefecture with a 贵州 county (two townships) and a 卫辉-profile county (one township)."""
    t = Tree()

    def org(kind, name, parent, profile=None):
        o = Org(kind=kind, name=name, parent_id=parent.id if parent else None, region_profile=profile)
        session.add(o)
        session.flush()
        return o

    t.prov = org("province", "演示省", None)
    t.pref = org("prefecture", "演示州", t.prov)
    t.gz = org("county", "甲县", t.pref, "guizhou-2019")
    t.a = org("township", "甲一镇", t.gz)
    t.b = org("township", "甲二乡", t.gz)
    t.hn = org("county", "乙县", t.pref, "henan-weihui-2022")
    t.c = org("township", "乙一镇", t.hn)
    session.commit()
    return t


@pytest.fixture
def tree(app_session):
    return build(app_session)


def test_profiles_define_the_schedule():
    gz, hn = load_profile("guizhou-2019"), load_profile("henan-weihui-2022")
    assert [(r.due_day, r.as_of) for r in gz.reporting.township_schedule] == [(17, "day_15"),
                                                                              (2, "previous_month_end")]
    assert [(r.due_day, r.as_of) for r in gz.reporting.prefecture_report] == [(18, "day_15"),
                                                                              (3, "previous_month_end")]
    assert hn.reporting.township_report is None and hn.reporting.township_schedule == ()
    assert hn.reporting.prefecture_report == ()


def test_due_dates_per_unit_and_period(app_session, tree):
    found = reporting.duties(app_session, tree.prov, D(2025, 10, 1), D(2025, 10, 31))
    got = [(d.org_name, d.kind, d.as_of, d.due_on) for d in found]
    assert got == [
        ("甲一镇", "township", D(2025, 9, 30), D(2025, 10, 2)),
        ("甲二乡", "township", D(2025, 9, 30), D(2025, 10, 2)),
        ("演示州", "prefecture", D(2025, 9, 30), D(2025, 10, 3)),
        ("甲一镇", "township", D(2025, 10, 15), D(2025, 10, 17)),
        ("甲二乡", "township", D(2025, 10, 15), D(2025, 10, 17)),
        ("演示州", "prefecture", D(2025, 10, 15), D(2025, 10, 18)),
    ]
    # the 卫辉 profile sets no township report: 乙一镇 owes nothing; February's month-end cut
    assert reporting.duties(app_session, tree.hn, D(2025, 1, 1), D(2025, 12, 31)) == []
    march = reporting.duties(app_session, tree.a, D(2024, 3, 1), D(2024, 3, 5))
    assert [(d.as_of, d.due_on) for d in march] == [(D(2024, 2, 29), D(2024, 3, 2))]


def test_not_filed_list_and_filed_late(app_session, tree):
    # 甲一镇 filed its report as of 10-15 on time (16th, China time); 甲二乡 did not
    app_session.add(LedgerSnapshot(org_id=tree.a.id, kind="township", as_of=D(2025, 10, 15),
                                   filed_at=dt.datetime(2025, 10, 16, 2, 0, tzinfo=dt.UTC),
                                   filed_by="甲一镇", status="filed", content_sha256="0" * 64, row_count=0,
                                   rows=[], totals={}))
    app_session.commit()
    rows = reporting.not_filed(app_session, tree.gz, D(2025, 10, 18))
    assert [(r["org_name"], r["as_of"], r["due_on"], r["status"]) for r in rows if r["as_of"] >= "2025-10-01"] == [
        ("甲二乡", "2025-10-15", "2025-10-17", "overdue")]
    cal = {(r["org_name"], r["as_of"]): r for r in reporting.calendar(app_session, tree.gz, D(2025, 10, 16),
                                                                      D(2025, 10, 31), D(2025, 10, 18))}
    assert cal[("甲一镇", "2025-10-15")]["status"] == "filed" and cal[("甲一镇", "2025-10-15")]["snapshot_id"]
    assert cal[("甲二乡", "2025-10-15")]["status"] == "overdue"
    # before the as-of date a report is not yet owed; on it, it is due
    assert reporting.not_filed(app_session, tree.gz, D(2025, 10, 14))[-1]["as_of"] == "2025-09-30"
    assert {r["status"] for r in reporting.not_filed(app_session, tree.b, D(2025, 10, 15))
            if r["as_of"] == "2025-10-15"} == {"due"}
    # a late filing leaves the list and shows as filed_late
    app_session.add(LedgerSnapshot(org_id=tree.b.id, kind="township", as_of=D(2025, 10, 15),
                                   filed_at=dt.datetime(2025, 10, 19, 2, 0, tzinfo=dt.UTC),
                                   filed_by="甲二乡", status="filed", content_sha256="0" * 64, row_count=0,
                                   rows=[], totals={}))
    app_session.commit()
    assert not [r for r in reporting.not_filed(app_session, tree.gz, D(2025, 10, 20)) if r["as_of"] == "2025-10-15"]
    cal = reporting.calendar(app_session, tree.b, D(2025, 10, 17), D(2025, 10, 17), D(2025, 10, 20))
    assert [r["status"] for r in cal] == ["filed_late"]


def test_reminders_t_minus_1_due_and_overdue_once_each(app_session, tree):
    # the first run catches up: the September reports nobody filed are overdue (once each)
    made = reporting.remind(app_session, D(2025, 10, 15))
    assert sorted((r.as_of, r.stage) for r in made) == [(D(2025, 9, 15), "overdue")] * 3 + [
        (D(2025, 9, 30), "overdue")] * 3
    made = reporting.remind(app_session, D(2025, 10, 16))  # T−1 of the townships' 17th
    assert sorted((r.org_id, r.stage, r.due_on) for r in made) == [
        (tree.a.id, "due_soon", D(2025, 10, 17)), (tree.b.id, "due_soon", D(2025, 10, 17))]
    assert made[0].message.endswith("应于10月17日报送县政府和县教育部门（明日截止）")
    assert "乡镇半月报" in made[0].message and "截至10月15日" in made[0].message
    assert reporting.remind(app_session, D(2025, 10, 16)) == []  # idempotent
    made = reporting.remind(app_session, D(2025, 10, 17))
    assert {(r.org_id, r.stage) for r in made} == {(tree.a.id, "due_today"), (tree.b.id, "due_today"),
                                                   (tree.pref.id, "due_soon")}
    app_session.add(LedgerSnapshot(org_id=tree.a.id, kind="township", as_of=D(2025, 10, 15),
                                   filed_at=dt.datetime(2025, 10, 17, 8, 0, tzinfo=dt.UTC),
                                   filed_by="甲一镇", status="filed", content_sha256="0" * 64, row_count=0,
                                   rows=[], totals={}))
    made = reporting.remind(app_session, D(2025, 10, 18))
    assert {(r.org_id, r.stage) for r in made} == {(tree.b.id, "overdue"), (tree.pref.id, "due_today")}
    overdue = next(r for r in made if r.stage == "overdue")
    assert overdue.message == ("甲二乡乡镇半月报（乡级台账）（截至10月15日）应于10月17日报送县政府和县教育部门，"
                               "至今未报送")
    reporting.remind(app_session, D(2025, 10, 19))
    assert app_session.scalar(select(func.count()).select_from(ReportReminder).where(
        ReportReminder.org_id == tree.b.id, ReportReminder.as_of == D(2025, 10, 15))) == 3


def test_snapshots_only_for_a_defined_as_of_date(client, app_session, tree):
    r = client.post(f"{B}/ledgers/township/snapshots", json={"org_id": tree.a.id, "as_of": "2025-10-14"})
    assert r.status_code == 422 and set(r.get_json()["fields"]) == {"as_of"}
    assert "2025-09-30" in r.get_json()["fields"]["as_of"] and "2025-10-15" in r.get_json()["fields"]["as_of"]
    r = client.post(f"{B}/ledgers/township/snapshots", json={"org_id": tree.a.id})
    assert r.status_code == 422 and "必填" in r.get_json()["fields"]["as_of"]
    assert app_session.scalar(select(func.count()).select_from(LedgerSnapshot)) == 0
    r = client.post(f"{B}/ledgers/township/snapshots", json={"org_id": tree.a.id, "as_of": "2025-10-15"})
    assert r.status_code == 201 and r.get_json()["as_of"] == "2025-10-15"
    first = r.get_json()["id"]
    r = client.post(f"{B}/ledgers/township/snapshots", json={"org_id": tree.a.id, "as_of": "2024-02-29"})
    assert r.status_code == 201
    # a correction is a 更正 entry of the same as-of date, not a new filing
    r = client.post(f"{B}/ledgers/snapshots/{first}/corrections", json={"reason": "补录一名学生"})
    assert r.status_code == 201 and r.get_json()["status"] == "correction" and r.get_json()["as_of"] == "2025-10-15"
    with pytest.raises(Exception) as e:
        ledgers.file_snapshot(app_session, "township", tree.a.id, D(2025, 10, 31) - dt.timedelta(days=1), user="x")
    assert e.value.fields == {"as_of": e.value.fields["as_of"]} and "2025-10-31" in e.value.fields["as_of"]


def test_calendar_and_not_filed_routes(client, app_session, tree, make_user):
    r = client.get(f"{B}/reports/calendar?org_id={tree.gz.id}&from=2025-11-01&to=2025-11-30&today=2025-11-20")
    assert r.status_code == 200
    items = r.get_json()["items"]
    assert [(i["org_name"], i["as_of"], i["due_on"], i["status"]) for i in items] == [
        ("甲一镇", "2025-10-31", "2025-11-02", "overdue"), ("甲二乡", "2025-10-31", "2025-11-02", "overdue"),
        ("甲一镇", "2025-11-15", "2025-11-17", "overdue"), ("甲二乡", "2025-11-15", "2025-11-17", "overdue")]
    r = client.get(f"{B}/reports/not-filed?org_id={tree.a.id}&today=2025-11-20")
    body = r.get_json()
    assert body["total"] == len(body["items"]) >= 2
    assert {(i["org_name"], i["as_of"]) for i in body["items"]} >= {("甲一镇", "2025-10-31"), ("甲一镇", "2025-11-15")}
    assert {i["org_name"] for i in body["items"]} == {"甲一镇"}
    # a township official sees their own township only
    _, token = make_user("b.official", ["township"], org_id=tree.b.id)
    from tests.conftest import client_for

    c = client_for(client.application, token)
    assert c.get(f"{B}/reports/not-filed?org_id={tree.a.id}").status_code == 403
    assert c.get(f"{B}/reports/not-filed?org_id={tree.b.id}&today=2025-11-20").status_code == 200
    reporting.remind(app_session, D(2025, 11, 16))
    app_session.commit()
    rem = c.get(f"{B}/reports/reminders?org_id={tree.b.id}").get_json()["items"]
    assert [(x["stage"], x["as_of"], x["due_on"]) for x in rem] == [
        ("due_soon", "2025-11-15", "2025-11-17"), ("overdue", "2025-10-31", "2025-11-02"),
        ("overdue", "2025-10-15", "2025-10-17")]
    r = client.get(f"{B}/reports/calendar?org_id={tree.gz.id}&from=2025-11-30&to=2025-11-01")
    assert r.status_code == 422 and "to" in r.get_json()["fields"]
