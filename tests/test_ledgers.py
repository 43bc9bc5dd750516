"""Ledgers against a small hand-computed fixture (DOMAIN §6): as-of rows, scopes, aggregates, the
quarterly 统计表, snapshots (hash, verify, 更正, frozen) and the XLSX export."""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from cases.ledgers import ledger as ledgers
from cases.ledgers.models import LedgerSnapshot
from cases.store.models import AuditLog, Case, CaseEvent, Document, Guardian, Org, Pupil, SchoolClass
from forms.errors import NotFound, ValidationFailed
from forms.validators import synthetic_id_number

CST = dt.timezone(dt.timedelta(hours=8))


def at(day: str, hour: int = 10) -> dt.datetime:
    d = dt.date.fromisoformat(day)
    return dt.datetime(d.year, d.month, d.day, hour, tzinfo=CST)


@dataclass
class Small:
    county: Org
    t1: Org
    t2: Org
    v1: Org
    v2: Org
    s1: Org
    s2: Org
    cases: dict[str, Case]
    pupils: dict[str, Pupil]


def build_small(session, county_code: str = "532822") -> Small:
    """Two townships, two villages, a primary (S1) and a junior (S2) school, six pupils, five cases.

    Case timelines (China time, 2025):
      c1 p1 (S1 g3, 户籍 V1): ABSENT 09-05, SUSPECTED 09-10, attempts 09-11/09-13 (school) 09-16
         (township), REPORTED 09-20, 限期返校 notice 09-22 served 09-23, RETURNED 10-10 (插班),
         CLOSED 11-20 (T21 → C1).
      c2 p3 (S2 g8, V1): ABSENT 09-08, SUSPECTED 09-15, JOINT 10-20, 3 joint attempts 10-21..23,
         责令复学 notice 11-05.
      c3 p4 (S2 g8, V2, G01): ABSENT 10-02, SUSPECTED 10-12, LOCATING 12-01.
      c4 p5 (S2 g8, born 2008, G01 + 学籍): SUSPECTED 09-01, dropout confirmed 10-05.
      c5 p6 (S1 g1, age 6, no 学籍号): ABSENT 09-03.
    """
    def org(kind, name, parent, code=None):
        o = Org(kind=kind, name=name, parent_id=parent.id if parent else None, code=code)
        session.add(o)
        session.flush()
        return o

    prov = org("province", "云南省", None, "530000")
    pref = org("prefecture", "西双版纳州", prov, "532800")
    county = org("county", "勐海县", pref, county_code)
    t1 = org("township", "勐海镇", county, county_code + "100000")
    t2 = org("township", "勐遮镇", county, county_code + "101000")
    v1 = org("village", "曼短村", t1, county_code + "100201")
    v2 = org("village", "曼恩村", t2, county_code + "101201")
    s1 = org("school", "勐海镇中心小学", t1, "2153280001")
    s2 = org("school", "勐遮镇中学", t2, "2153280002")
    k1 = SchoolClass(org_id=s1.id, grade=3, name="三年级(1)班", school_year=2025)
    k0 = SchoolClass(org_id=s1.id, grade=1, name="一年级(1)班", school_year=2025)
    k8 = SchoolClass(org_id=s2.id, grade=8, name="八年级(2)班", school_year=2025)
    session.add_all([k1, k0, k8])
    session.flush()
    spec = {  # key: (school, class, hukou village, birth, sex, poverty, groups, xueji?)
        "p1": (s1, k1, v1, dt.date(2016, 5, 1), "男", None, [], True),
        "p2": (s1, k1, v2, dt.date(2016, 7, 9), "女", "jdlk", ["G01"], True),
        "p3": (s2, k8, v1, dt.date(2011, 4, 2), "男", None, ["G02"], True),
        "p4": (s2, k8, v2, dt.date(2011, 8, 30), "女", None, ["G01", "G03"], True),
        "p5": (s2, k8, v2, dt.date(2008, 6, 1), "男", "tph", [], True),
        "p6": (s1, k0, v1, dt.date(2019, 3, 1), "女", None, [], False),
    }
    pupils = {}
    for i, (key, (school, klass, village, birth, sex, poverty, groups, has_xueji)) in enumerate(spec.items(), 1):
        idn = synthetic_id_number("410721", birth, 2 * i + (1 if sex == "男" else 0))
        p = Pupil(org_id=school.id, class_id=klass.id, name=f"学生{key}", sex=sex, birth_date=birth,
                  id_number=idn, xueji_no="G" + idn if has_xueji else None, hukou_org_id=village.id,
                  hukou_text=f"{village.name}{i}组", address=f"{village.name}{i}号", poverty_category=poverty,
                  special_groups=groups)
        session.add(p)
        session.flush()
        session.add(Guardian(pupil_id=p.id, org_id=school.id, name=f"家长{key}", relation="母",
                             phone="13900000000"))
        pupils[key] = p
    cases = {}

    def new_case(key, pupil, school, township, reason, opened, **kw):
        c = Case(number=f"2025-{county_code}-{len(cases) + 1:05d}", pupil_id=pupil.id, org_id=school.id,
                 township_org_id=township.id, state="ABSENT", reason_code=reason,
                 opened_on=dt.date.fromisoformat(opened), **kw)
        session.add(c)
        session.flush()
        cases[key] = c
        return c

    def state(c, day, to, transition, **data):
        session.add(CaseEvent(case_id=c.id, org_id=c.org_id, kind="transition", to_state=to,
                              transition=transition, occurred_at=at(day), data=data))
        c.state = to

    def attempt(c, day, stage, result):
        session.add(CaseEvent(case_id=c.id, org_id=c.org_id, kind="attempt", occurred_at=at(day, 15),
                              data={"date": day, "stage": stage, "result": result, "method": "visit"}))

    def notice(c, doc_id, variant, number, day):
        session.add(Document(id=doc_id, org_id=c.township_org_id, case_id=c.id, form="guardian_notice",
                             variant=variant, family=f"guardian_notice:{variant}", template_version="2026.1",
                             year=2025, seq=int(number[-2:-1]), number_text=number, status="issued",
                             created_at=at(day, 9)))

    c1 = new_case("c1", pupils["p1"], s1, t1, "R01", "2025-09-05")
    state(c1, "2025-09-05", "ABSENT", "T1")
    state(c1, "2025-09-10", "SUSPECTED", "T4")
    attempt(c1, "2025-09-11", "school", "refused")
    attempt(c1, "2025-09-13", "school", "not_met")
    attempt(c1, "2025-09-16", "township", "refused")
    state(c1, "2025-09-20", "REPORTED", "T7")
    notice(c1, "DOCC1NOTICE1", "xianqi", "勐海镇政限返〔2025〕1号", "2025-09-22")
    session.add(CaseEvent(case_id=c1.id, org_id=t1.id, kind="service", occurred_at=at("2025-09-23"),
                          data={"document_id": "DOCC1NOTICE1", "served_on": "2025-09-23", "method": "direct",
                                "complete": True}))
    state(c1, "2025-10-10", "RETURNED", "T9", placement="chaban")
    state(c1, "2025-11-20", "CLOSED", "T21")
    c2 = new_case("c2", pupils["p3"], s2, t2, "R02", "2025-09-08")
    state(c2, "2025-09-08", "ABSENT", "T1")
    state(c2, "2025-09-15", "SUSPECTED", "T4")
    state(c2, "2025-10-20", "JOINT", "T10")
    for d in ("2025-10-21", "2025-10-22", "2025-10-23"):
        attempt(c2, d, "joint", "refused")
    notice(c2, "DOCC2ZELING1", "zeling", "勐遮镇政责复〔2025〕1号", "2025-11-05")
    c3 = new_case("c3", pupils["p4"], s2, t2, "R08", "2025-10-02")
    state(c3, "2025-10-02", "ABSENT", "T1")
    state(c3, "2025-10-12", "SUSPECTED", "T4")
    state(c3, "2025-12-01", "LOCATING", "T12")
    c4 = new_case("c4", pupils["p5"], s2, t2, "R06", "2025-09-01",
                  dropout_confirmed_on=dt.date(2025, 10, 5))
    state(c4, "2025-09-01", "SUSPECTED", "T4")
    c5 = new_case("c5", pupils["p6"], s1, t1, "R01", "2025-09-03")
    state(c5, "2025-09-03", "ABSENT", "T1")
    session.commit()
    return Small(county, t1, t2, v1, v2, s1, s2, cases, pupils)


@pytest.fixture
def small(session):
    return build_small(session)


def numbers(page) -> list[str]:
    return [r["entry_no"] for r in page.rows]


def test_as_of_rows_follow_valid_time(session, small):
    c = small.cases
    sep = ledgers.ledger_page(session, ledgers.make_scope(session, "county", small.county.id, dt.date(2025, 9, 30)))
    assert sep.total == 4 and numbers(sep) == sorted(c[k].number for k in ("c1", "c2", "c4", "c5"))
    row = {r["entry_no"]: r for r in sep.rows}[c["c1"].number]
    assert row["state"] == "已书面报告" and row["state_since"] == "2025-09-20"
    assert (row["attempts"], row["attempts_school"], row["attempts_township"]) == (3, 2, 1)
    assert row["last_attempt_on"] == "2025-09-16" and row["last_attempt_result"] == "拒绝"
    assert row["notice"].endswith(" 勐海镇政限返〔2025〕1号") and row["notice"].startswith("限期返校")
    assert row["notice_served_on"] == "2025-09-23"
    assert "*" in row["id_number"] and row["id_number"] != small.pupils["p1"].id_number
    assert row["band"] == "小学" and row["grade"] == 3 and row["guardian"] == "家长p1(母)"
    # a day earlier the notice was not yet served; on 09-21 it was not issued
    day21 = ledgers.ledger_page(session, ledgers.make_scope(session, "county", small.county.id,
                                                            dt.date(2025, 9, 21)))
    assert {r["entry_no"]: r for r in day21.rows}[c["c1"].number]["notice"] is None
    dec = ledgers.ledger_page(session, ledgers.make_scope(session, "county", small.county.id, dt.date(2025, 12, 31)))
    assert dec.total == 5
    closed = {r["entry_no"]: r for r in dec.rows}[c["c1"].number]
    assert closed["closed_on"] == "2025-11-20" and closed["closure_basis"] == "复学"
    c4 = {r["entry_no"]: r for r in dec.rows}[c["c4"].number]
    assert c4["category"] == "辍学" and c4["dropout_date"] == "2025-10-05"
    # pagination
    page = ledgers.ledger_page(session, ledgers.make_scope(session, "county", small.county.id,
                                                           dt.date(2025, 12, 31)), limit=2, offset=2)
    assert page.total == 5 and numbers(page) == numbers(dec)[2:4]


def test_counting_scope_by_age(session, small):
    dec = ledgers.ledger_page(session, ledgers.make_scope(session, "county", small.county.id, dt.date(2025, 12, 31)))
    rows = {r["entry_no"]: r for r in dec.rows}
    over16 = rows[small.cases["c4"].number]
    assert over16["age"] == 17 and over16["counted"] is True  # G01 on the 学籍 platform
    six = rows[small.cases["c5"].number]
    assert six["age"] == 6 and six["counted"] is False  # never registered
    assert rows[small.cases["c2"].number]["counted"] is True


def test_scopes_village_school_township_g01(session, small):
    d = dt.date(2025, 12, 31)
    c = small.cases

    def nums(kind, org):
        return set(numbers(ledgers.ledger_page(session, ledgers.make_scope(session, kind, org.id, d))))

    assert nums("village", small.v1) == {c["c1"].number, c["c2"].number, c["c5"].number}
    assert nums("village", small.v2) == {c["c3"].number, c["c4"].number}
    assert nums("school", small.s2) == {c["c2"].number, c["c3"].number, c["c4"].number}
    assert nums("township", small.t1) == {c["c1"].number, c["c5"].number}
    assert nums("g01", small.county) == {c["c3"].number, c["c4"].number}
    with pytest.raises(ValidationFailed):
        ledgers.make_scope(session, "county", small.t1.id, d)
    with pytest.raises(NotFound):
        ledgers.make_scope(session, "district", small.county.id, d)


def test_aggregate_by_band_and_child(session, small):
    agg = ledgers.aggregate(session, ledgers.make_scope(session, "county", small.county.id, dt.date(2025, 12, 31)))
    assert agg.enrolled == {"primary": 3, "junior": 3}
    assert agg.states == {"primary": {"ABSENT": 1}, "junior": {"JOINT": 1, "LOCATING": 1, "SUSPECTED": 1}}
    assert agg.counted_out_of_school == {"junior": 3}
    assert agg.g01_out_of_school == 2
    kids = {c["name"]: c for c in agg.children}
    assert kids["勐海镇"] == {"org_id": small.t1.id, "name": "勐海镇", "enrolled": 3, "open_cases": 1,
                            "out_of_school": 0}
    assert kids["勐遮镇"]["open_cases"] == 3 and kids["勐遮镇"]["out_of_school"] == 3
    sep = ledgers.aggregate(session, ledgers.make_scope(session, "county", small.county.id, dt.date(2025, 9, 30)))
    assert sep.states == {"primary": {"REPORTED": 1, "ABSENT": 1}, "junior": {"SUSPECTED": 2}}


def test_quarterly_figures_by_hand(session, small):
    q3 = ledgers.quarterly_figures(session, small.county.id, 2025, 3)
    s, o = q3.tables["screening"], q3.tables["outcomes"]
    assert (q3.start, q3.end) == (dt.date(2025, 7, 1), dt.date(2025, 9, 30))
    assert s["primary"] == {"enrolled": 3, "suspected_found": 1, "found_returned": 0, "found_persuading": 1,
                            "found_joint": 0, "persuaded_3plus": 1, "lost_contact": 0, "legal_docs": 0}
    assert s["junior"]["suspected_found"] == 2 and s["junior"]["found_persuading"] == 2
    assert s["total"]["suspected_found"] == 3
    assert q3.tables["reasons"]["junior"]["r02"] == 1 and q3.tables["reasons"]["junior"]["r06"] == 1
    assert q3.tables["reasons"]["primary"]["r01"] == 1
    assert q3.tables["closures"]["junior"]["g01"] == 1 and q3.tables["closures"]["junior"]["left_behind"] == 1
    assert o["total"]["returned"] == 0
    q4 = ledgers.quarterly_figures(session, small.county.id, 2025, 4)
    s, o, cl = q4.tables["screening"], q4.tables["outcomes"], q4.tables["closures"]
    assert s["junior"]["suspected_found"] == 1 and s["junior"]["lost_contact"] == 1
    assert s["junior"]["legal_docs"] == 1 and s["primary"]["legal_docs"] == 0
    assert o["primary"]["returned"] == 1 and o["primary"]["chaban"] == 1
    assert o["primary"]["closed"] == 1 and cl["primary"]["c1"] == 1
    assert cl["junior"]["g01"] == 1 and cl["junior"]["disabled"] == 1
    # the figures are valid input for the form (合计 = 小学 + 初中, parts within wholes)
    from forms.registry import get_spec

    cleaned = get_spec("quarterly_stats").validate(q4.form_data(filler_name="李明", checker_name="王芳",
                                                                unit_head="张强", fill_date="2026-01-05"))
    assert cleaned["screening"][2]["suspected_found"] == 1
    wb = load_workbook(io.BytesIO(ledgers.quarterly_xlsx(q4)))
    values = [c for r in wb.active.iter_rows(values_only=True) for c in r if c is not None]
    assert "本期排查疑似辍学人数" in values and "复学：插班" in values


def test_snapshot_hash_verify_and_correction(session, small):
    snap = ledgers.file_snapshot(session, "county", small.county.id, dt.date(2025, 9, 30), user="审核员")
    session.commit()
    assert snap.row_count == 4 and len(snap.content_sha256) == 64
    assert snap.content_sha256 == ledgers.content_hash(snap.rows)
    # a back-dated attempt recorded after filing: valid time inside, record time after
    c2 = small.cases["c2"]
    session.add(CaseEvent(case_id=c2.id, org_id=c2.org_id, kind="attempt", occurred_at=at("2025-09-20"),
                          recorded_at=snap.filed_at + dt.timedelta(microseconds=1),
                          data={"stage": "school", "result": "refused"}))
    session.commit()
    check = ledgers.verify_snapshot(session, snap)
    assert check.ok and check.rerun_sha256 == snap.content_sha256 and check.changed == []
    fresh = ledgers.ledger_page(session, ledgers.make_scope(session, "county", small.county.id,
                                                            dt.date(2025, 9, 30)))
    assert {r["entry_no"]: r for r in fresh.rows}[c2.number]["attempts"] == 1
    fix = ledgers.file_correction(session, snap, reason="补录9月20日家访记录", user="审核员")
    session.commit()
    assert fix.corrects_id == snap.id and fix.status == "correction"
    assert fix.changes == {"added": [], "removed": [], "changed": [c2.number]}
    assert fix.content_sha256 != snap.content_sha256
    # the original is frozen
    snap.row_count = 99
    with pytest.raises(PermissionError):
        session.flush()
    session.rollback()
    assert session.get(LedgerSnapshot, snap.id).row_count == 4
    actions = session.scalars(select(AuditLog.action).where(AuditLog.target == f"ledger_snapshot:{snap.id}")).all()
    assert actions == ["ledger.file", "ledger.correct"]
    with pytest.raises(ValidationFailed):
        ledgers.file_correction(session, snap, reason=" ", user="x")


def test_tampered_snapshot_content_is_detected(session, small):
    snap = ledgers.file_snapshot(session, "school", small.s2.id, dt.date(2025, 12, 31), user="u")
    session.commit()
    table = LedgerSnapshot.__table__
    rows = [dict(r) for r in snap.rows]
    rows[0]["state"] = "已复学"
    with session.bind.begin() as conn:  # behind the model's back, as a tamperer would
        conn.execute(table.update().where(table.c.id == snap.id).values(rows=rows))
    session.expire_all()
    check = ledgers.verify_snapshot(session, session.get(LedgerSnapshot, snap.id))
    assert not check.ok and not check.stored_matches_content and check.changed == [rows[0]["entry_no"]]


def test_xlsx_headings_masking_and_audit(session, small):
    scope = ledgers.make_scope(session, "county", small.county.id, dt.date(2025, 12, 31))
    data = ledgers.ledger_xlsx(session, scope, user="导出人")
    session.commit()
    ws = load_workbook(io.BytesIO(data)).active
    rows = list(ws.iter_rows(values_only=True))
    assert "勐海县县级台账" in rows[0][0]
    assert list(rows[1]) == [h for _k, h in ledgers.ROW_COLUMNS]
    assert len(rows) == 2 + 5
    ids = [r[3] for r in rows[2:]]
    assert all("*" in x for x in ids)
    full = ledgers.ledger_xlsx(session, scope, unmask=True, user="导出人")
    session.commit()
    ws = load_workbook(io.BytesIO(full)).active
    assert small.pupils["p1"].id_number in [r[3] for r in ws.iter_rows(min_row=3, values_only=True)]
    log = session.scalars(select(AuditLog).where(AuditLog.who == "导出人").order_by(AuditLog.seq)).all()
    assert [e.action for e in log] == ["ledger.export", "ledger.export"]
    assert [e.after["records"] for e in log] == [5, 5] and "unmasked" not in log[0].after
    assert log[1].after["unmasked"] is True


def test_reporting_calendar_dates():
    assert ledgers.snapshot_dates(2025, 2) == (dt.date(2025, 2, 15), dt.date(2025, 2, 28))
    assert ledgers.snapshot_dates(2024, 12) == (dt.date(2024, 12, 15), dt.date(2024, 12, 31))
    assert ledgers.quarter_period(2025, 4) == (dt.date(2025, 10, 1), dt.date(2025, 12, 31))
    assert ledgers.age_on(dt.date(2008, 6, 1), dt.date(2025, 5, 31)) == 16
    assert ledgers.age_on(dt.date(2008, 6, 1), dt.date(2025, 6, 1)) == 17
    with pytest.raises(ValidationFailed):
        ledgers.quarter_period(2025, 5)


def test_rows_in_small_chunks_equal_one_chunk(session, small):
    """Several chunks (on PostgreSQL fetched ahead on a helper thread, with a server-side cursor)
    give the same rows in the same order as one chunk, and the session stays usable after."""
    scope = ledgers.make_scope(session, "county", small.county.id, dt.date(2025, 12, 31))
    q = ledgers._ledger_select(scope, ledgers._ledger_state(session, scope)).order_by(Case.number)
    one = list(ledgers.iter_rows(session, scope, q, chunk=1000))
    assert len(one) == 5
    assert list(ledgers.iter_rows(session, scope, q, chunk=2)) == one
    early = ledgers.iter_rows(session, scope, q, chunk=2)
    assert next(early) == one[0]
    early.close()  # stopped after one row: the helper is joined, the connection free again
    assert ledgers.ledger_page(session, scope, limit=2, offset=1).rows == one[1:3]


def test_ahead_keeps_order_raises_and_stops():
    import threading

    assert list(ledgers._ahead(iter(range(50)), depth=2)) == list(range(50))

    def failing():
        yield 1
        raise ValueError("第2块读取失败")

    got = ledgers._ahead(failing())
    assert next(got) == 1
    with pytest.raises(ValueError, match="第2块"):
        next(got)

    closed = threading.Event()

    def endless():
        try:
            n = 0
            while True:
                n += 1
                yield n
        finally:
            closed.set()

    gen = ledgers._ahead(endless(), depth=1)
    assert [next(gen), next(gen)] == [1, 2]
    gen.close()
    assert closed.is_set()  # the producer was stopped and its source closed before close() returned
    assert not [t for t in threading.enumerate() if t.name == "ledger-rows"]
