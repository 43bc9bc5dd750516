"""整班移交 end to end on the demo county: plan -> roster -> 交接表 (docx) -> registrations (by ID,
by 学籍号, one by name + birth date pending) -> ticks on the returned table -> close the window ->
exact non-arrival cases at the right school and township, notification dates, county report."""

from __future__ import annotations

import datetime as dt
import io

import openpyxl
import pytest
from sqlalchemy import select

from cases.handover import plans as ho
from cases.handover.models import HandoverRow, Registration
from cases.store.models import Case, CaseEvent, Document, Job, Org, Pupil, SchoolClass
from forms import validators as v
from forms.errors import Conflict, NotFound, ValidationFailed

YEAR = 2027
TERM_START = dt.date(2027, 9, 1)
WINDOW_END = dt.date(2027, 9, 3)


def _org(session, name: str) -> Org:
    return session.scalar(select(Org).where(Org.name == name))


def _grade6(session, school: Org) -> SchoolClass:
    return session.scalar(select(SchoolClass).where(SchoolClass.org_id == school.id, SchoolClass.grade == 6))


def _pupils(session, klass: SchoolClass) -> list[Pupil]:
    return list(session.scalars(select(Pupil).where(Pupil.class_id == klass.id).order_by(Pupil.id)))


@pytest.fixture
def world(demo, app_session):
    s = app_session
    orgs = {n: _org(s, n) for n in ("青禾县", "东河镇", "西岭乡", "南坪镇", "东河镇中心小学", "东河镇柳湾小学",
                                     "西岭乡中心小学", "南坪镇中心小学", "东河镇初级中学", "西岭乡初级中学")}
    classes = {n: _grade6(s, orgs[n]) for n in ("东河镇中心小学", "东河镇柳湾小学", "西岭乡中心小学",
                                                  "南坪镇中心小学")}
    dh, xl = orgs["东河镇初级中学"].id, orgs["西岭乡初级中学"]
    entries = [
        {"class_id": classes["东河镇中心小学"].id, "receiving_school_id": dh},
        {"class_id": classes["东河镇柳湾小学"].id, "receiving_school_id": dh},
        {"school_code": orgs["西岭乡中心小学"].code, "class_name": classes["西岭乡中心小学"].name,
         "receiving_school_code": xl.code},
        {"class_id": classes["南坪镇中心小学"].id, "receiving_school_id": xl.id},
    ]
    plan = ho.import_plan(s, county_id=orgs["青禾县"].id, year=YEAR, term_start=TERM_START, window_end=WINDOW_END,
                          entries=entries, actor="县教育局")
    s.commit()
    return {"s": s, "orgs": orgs, "classes": classes, "plan": plan}


def _csv(rows: list[list[str]]) -> bytes:
    head = ["学校标识码", "班级", "姓名", "性别", "出生日期", "身份证号", "全国学籍号", "户籍地", "现居住地", "监护人",
            "关系", "联系电话", "特殊群体"]
    out = io.StringIO()
    import csv

    w = csv.writer(out)
    w.writerow(head)
    w.writerows(rows)
    return out.getvalue().encode("utf-8-sig")


def test_plan_import_checks_every_entry(world):
    s, orgs, classes = world["s"], world["orgs"], world["classes"]
    plan = world["plan"]
    assert [len(e.rows) for e in plan.entries] == [10, 10, 10, 10]
    assert [r.row_index for r in plan.entries[0].rows] == list(range(1, 11))
    grade5 = s.scalar(select(SchoolClass).where(SchoolClass.org_id == orgs["东河镇中心小学"].id,
                                                SchoolClass.grade == 5))
    with pytest.raises(ValidationFailed) as e:
        ho.import_plan(s, county_id=orgs["青禾县"].id, year=YEAR, window_end=WINDOW_END, actor="x", entries=[
            {"class_id": grade5.id, "receiving_school_id": orgs["东河镇初级中学"].id},
            {"class_id": classes["东河镇中心小学"].id, "receiving_school_id": orgs["东河镇中心小学"].id},
            {"school_code": "2999999999", "class_name": "六年级(2)班", "receiving_school_id": 99999},
        ])
    assert set(e.value.fields) == {"entries[0].class_id", "entries[1].receiving_school_id",
                                   "entries[2].school_code", "entries[2].receiving_school_id"}
    with pytest.raises(ValidationFailed) as e:
        ho.import_plan(s, county_id=orgs["青禾县"].id, year=YEAR, actor="x", entries=[])
    assert "window_end" in e.value.fields


def test_default_window_end_is_third_school_day():
    assert ho.default_window_end(dt.date(2026, 9, 1)) == dt.date(2026, 9, 3)  # Tue -> Thu
    assert ho.default_window_end(dt.date(2026, 8, 28)) == dt.date(2026, 9, 1)  # Fri -> Tue


def test_roster_import_keeps_good_rows_and_reports_bad_ones(world):
    s, orgs, classes, plan = world["s"], world["orgs"], world["classes"], world["plan"]
    code = orgs["东河镇中心小学"].code
    klass = classes["东河镇中心小学"].name
    new_id = v.synthetic_id_number("410721", dt.date(2014, 3, 5), 17)  # odd: male
    existing = _pupils(s, classes["东河镇中心小学"])[0]
    bad_id = new_id[:-1] + ("0" if new_id[-1] != "0" else "1")
    data = _csv([
        [code, klass, "赵新生", "男", "2014-03-05", new_id, "G" + new_id, "青禾县西岭乡上庄村3组", "", "赵大山", "父",
         "13912345678", "G02"],
        [code, klass, existing.name, existing.sex, "", existing.id_number, existing.xueji_no,
         "青禾县西岭乡槐树岭村", "东河镇东河村5号", "钱红", "母", "13700001111", ""],
        [code, klass, "孙错号", "男", "", bad_id, "G" + bad_id, "东河村", "", "孙一", "父", "13800001111", ""],
        [code, klass, "李电话", "男", "2014-03-05", new_id, "G" + new_id, "东河村", "", "李一", "父", "12345", ""],
        [code, "六年级(9)班", "周外班", "女", "", "", "", "东河村", "", "周一", "母", "13800001111", ""],
    ])
    result = ho.import_roster(s, plan, filename="roster.csv", data=data, actor="中心校")
    s.commit()
    assert (result.created, result.updated) == (1, 1)
    errors = {e["row"]: e["errors"] for e in result.errors}
    assert set(errors) == {4, 5, 6}
    assert "id_number" in errors[4] and "xueji_no" in errors[4]
    assert set(errors[5]) == {"guardian_phone", "id_number"}  # bad phone, and a duplicate of row 2
    assert "class_name" in errors[6] and "id_number" in errors[6]
    new = s.scalar(select(Pupil).where(Pupil.id_number == new_id))
    assert (new.class_id, new.org_id, new.birth_date) == (classes["东河镇中心小学"].id, orgs["东河镇中心小学"].id,
                                                          dt.date(2014, 3, 5))
    assert s.get(Org, new.hukou_org_id).name == "上庄村" and new.special_groups == ["G02"]
    assert [(g.name, g.relation, g.phone) for g in new.guardians] == [("赵大山", "父", "13912345678")]
    s.refresh(existing)
    assert s.get(Org, existing.hukou_org_id).name == "槐树岭村"
    assert any(g.name == "钱红" and g.phone == "13700001111" for g in existing.guardians)
    entry = plan.entries[0]
    s.refresh(entry)
    assert len(entry.rows) == 11 and entry.rows[-1].pupil_id == new.id and entry.rows[-1].row_index == 11


def test_roster_missing_columns_refused(world):
    with pytest.raises(ValidationFailed) as e:
        ho.import_roster(world["s"], world["plan"], filename="r.csv", data="姓名,性别\n张三,男\n".encode(),
                         actor="x")
    assert "身份证号" in e.value.message


def test_roster_xlsx(world):
    s, orgs, classes, plan = world["s"], world["orgs"], world["classes"], world["plan"]
    new_id = v.synthetic_id_number("410721", dt.date(2014, 6, 1), 20)
    book = openpyxl.Workbook()
    sh = book.active
    sh.append(["学校标识码", "班级", "姓名", "性别", "出生日期", "身份证号", "全国学籍号", "户籍地", "监护人",
               "关系", "联系电话"])
    sh.append([orgs["南坪镇中心小学"].code, classes["南坪镇中心小学"].name, "钱小花", "女", dt.datetime(2014, 6, 1),
               new_id, "G" + new_id, "南坪镇枣园村", "钱大", "父", 13811112222])
    buf = io.BytesIO()
    book.save(buf)
    result = ho.import_roster(s, plan, filename="roster.xlsx", data=buf.getvalue(), actor="x")
    assert (result.created, result.updated, result.errors) == (1, 0, ())
    assert s.scalar(select(Pupil).where(Pupil.id_number == new_id)).guardians[0].phone == "13811112222"


def _run_job(s, job_id):
    s.expire_all()
    job = s.get(Job, job_id)
    assert job.status == "done", job.error
    return job


def test_end_to_end(world, services):
    s, orgs, classes, plan = world["s"], world["orgs"], world["classes"], world["plan"]
    county = orgs["青禾县"]
    donghe, liuwan, xiling, nanping = (_pupils(s, classes[n]) for n in ("东河镇中心小学", "东河镇柳湾小学",
                                                                        "西岭乡中心小学", "南坪镇中心小学"))
    # the sending school knows one pupil moved: 户籍 now in 西岭乡 (case township follows the 户籍)
    moved = donghe[9]
    moved.hukou_org_id = _org(s, "上庄村").id
    s.commit()

    # 交接表: one per class, docx only (fast); each linked to its entry, rows in 序号 order
    job_id = ho.start_plan_render(s, services, plan, fmt="docx", data={"handover_date": "2027-07-10"}, user="县教育局")
    _run_job(s, job_id)
    docs = [s.get(Document, e.document_id) for e in plan.entries]
    assert all(d is not None and d.form == "handover" and d.status == "issued" for d in docs)
    assert docs[0].number_text.startswith("青教移交〔")
    assert [r["id_number"] for r in docs[0].data["pupils"]] == [p.id_number for p in donghe]
    assert docs[0].data["handover_year"] == YEAR and docs[0].data["to_school"] == "东河镇初级中学"

    # registrations at 东河镇初级中学: 东河中心 by ID except 4 pupils, 柳湾 by 学籍号 except 1
    dh_school, xl_school = orgs["东河镇初级中学"], orgs["西岭乡初级中学"]
    day = dt.date(2027, 9, 1)
    for p in donghe[:6]:
        row = ho.record_registration(s, receiving_school=dh_school, id_number=p.id_number, registered_on=day,
                                     source="api", actor="初中注册员")
        assert isinstance(row, HandoverRow) and row.match_method == "id_number" and row.registered
    for p in liuwan[:9]:
        row = ho.record_registration(s, receiving_school=dh_school, xueji_no=p.xueji_no, registered_on=day,
                                     actor="初中注册员")
        assert row.match_method == "xueji_no"
    # one by name + birth date only: pending until a person confirms
    pend = ho.record_registration(s, receiving_school=dh_school, name=donghe[6].name,
                                  birth_date=donghe[6].birth_date, registered_on=day, actor="初中注册员")
    assert isinstance(pend, Registration) and pend.status == "pending"
    assert s.get(HandoverRow, pend.candidate_row_id).pupil_id == donghe[6].id
    # a stranger (transfer-in) and a 东河 pupil who registered at 西岭 instead
    stranger = v.synthetic_id_number("410721", dt.date(2014, 1, 9), 41)
    unexp = ho.record_registration(s, receiving_school=dh_school, id_number=stranger, registered_on=day,
                                   actor="初中注册员")
    assert unexp.status == "unexpected" and unexp.pupil_id is None
    elsewhere = ho.record_registration(s, receiving_school=xl_school, id_number=donghe[7].id_number,
                                       registered_on=day, actor="西岭初中")
    assert elsewhere.status == "unexpected" and elsewhere.pupil_id == donghe[7].id
    # 西岭 class: all but two registered through ticks on the returned 交接表
    xl_doc = plan.entries[2].document_id
    for i in range(1, 9):
        ho.record_row_tick(s, handover_document_id=xl_doc, row=i, registered=True, registered_on=day,
                           whereabouts=None, actor="扫描")
    ho.record_row_tick(s, handover_document_id=xl_doc, row=9, registered=False, registered_on=None,
                       whereabouts="transfer_out", proof="学籍转接证明 豫A2027-118", actor="扫描")
    ho.record_row_tick(s, handover_document_id=xl_doc, row=10, registered=False, registered_on=None,
                       whereabouts="transfer_out", actor="扫描")  # no proof yet: still a case
    # 南坪 class: all registered at 西岭 except the last two
    for p in nanping[:8]:
        ho.record_registration(s, receiving_school=xl_school, id_number=p.id_number, registered_on=day, actor="x")
    s.commit()
    with pytest.raises(NotFound):
        ho.record_row_tick(s, handover_document_id=xl_doc, row=11, registered=True, registered_on=day,
                           whereabouts=None, actor="扫描")

    # the window: not before it ends, not while a match waits for confirmation
    with pytest.raises(Conflict):
        ho.close_registration_window(s, plan, today=WINDOW_END, actor="初中")
    with pytest.raises(Conflict) as e:
        ho.close_registration_window(s, plan, today=WINDOW_END + dt.timedelta(days=1), actor="初中")
    assert "待人工确认" in e.value.message
    ho.confirm_registration(s, pend.id, accept=True, actor="初中教务")
    assert s.get(HandoverRow, pend.candidate_row_id).match_method == "name_birth"

    before = set(s.scalars(select(Case.id)))
    closed_on = WINDOW_END + dt.timedelta(days=2)
    result = ho.close_registration_window(s, plan, today=closed_on, actor="初中")
    s.commit()
    assert result.notify_due == dt.date(2027, 9, 6) and result.notifications_overdue is False
    # expected non-arrivals with cases: 东河中心 [8] (no news) and [9] (moved 户籍), 柳湾 [9],
    # 西岭 row 10 (转外地 without proof), 南坪 [8], [9]
    expected = {donghe[8].id: ("东河镇初级中学", "东河镇"), donghe[9].id: ("东河镇初级中学", "西岭乡"),
                liuwan[9].id: ("东河镇初级中学", "东河镇"), xiling[9].id: ("西岭乡初级中学", "西岭乡"),
                nanping[8].id: ("西岭乡初级中学", "南坪镇"), nanping[9].id: ("西岭乡初级中学", "南坪镇")}
    existing_open = {c.pupil_id for c in s.scalars(select(Case).where(Case.id.in_(before)))}
    assert {c["pupil_id"] for c in result.cases} == set(expected)
    for c in result.cases:
        case = s.get(Case, c["case_id"])
        assert (s.get(Org, case.org_id).name, s.get(Org, case.township_org_id).name) == expected[case.pupil_id]
        if case.pupil_id not in existing_open:
            assert c["new"] and case.state == "ABSENT" and case.opened_on == closed_on
            kinds = [ev.kind for ev in s.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id))]
            assert "registration" in kinds
            t1 = s.scalar(select(CaseEvent).where(CaseEvent.case_id == case.id, CaseEvent.transition == "T1"))
            assert t1 is not None and t1.to_state == "ABSENT" and t1.org_id == case.org_id
            from cases.engine.models import Deadline

            assert all(d.org_id == case.org_id
                       for d in s.scalars(select(Deadline).where(Deadline.case_id == case.id)))
    assert {x["pupil_id"] for x in result.legitimate} == {donghe[7].id, xiling[8].id}
    rows = {r.pupil_id: r for e in plan.entries for r in e.rows}
    assert rows[donghe[7].id].whereabouts == "county_other"
    assert rows[donghe[8].id].whereabouts == "unknown"
    assert all(rows[pid].notified_on == closed_on for pid in [*expected, donghe[7].id, xiling[8].id])
    assert rows[donghe[0].id].notified_on is None
    notified = {n["sending_school"]: len(n["pupils"]) for n in result.notifications}
    assert notified == {"东河镇中心小学": 3, "东河镇柳湾小学": 1, "西岭乡中心小学": 2, "南坪镇中心小学": 2}
    assert [u["id"] for u in result.unexpected] == [unexp.id, elsewhere.id]
    with pytest.raises(Conflict):
        ho.close_registration_window(s, plan, today=closed_on, actor="初中")

    # a late tick for a pupil with a case: the registration event lands on the case
    late_case = rows[nanping[9].id].case_id
    ho.record_row_tick(s, handover_document_id=plan.entries[3].document_id, row=rows[nanping[9].id].row_index,
                       registered=True, registered_on=dt.date(2027, 9, 10), whereabouts=None, actor="扫描")
    s.commit()
    ev = s.scalars(select(CaseEvent).where(CaseEvent.case_id == late_case, CaseEvent.kind == "registration")
                   .order_by(CaseEvent.id)).all()[-1]
    assert ev.data == {"handover_document_id": plan.entries[3].document_id, "row": 10, "registered": True,
                       "registered_on": "2027-09-10", "whereabouts": None}

    # the county's 15-day check
    rep = ho.county_check_report(s, county, plan, as_of=dt.date(2027, 9, 12))
    assert rep["check_due"] == "2027-09-16" and rep["check_overdue"] is False
    pairs = {(p["sending_school"], p["receiving_school"]): p for p in rep["pairs"]}
    dh = pairs[("东河镇中心小学", "东河镇初级中学")]
    assert (dh["expected"], dh["arrived"], dh["not_arrived"], dh["open_cases"]) == (10, 7, 3, 2 + 0)
    assert dh["not_arrived_by_whereabouts"]["unknown"] == 2 and dh["not_arrived_by_whereabouts"]["county_other"] == 1
    np_ = pairs[("南坪镇中心小学", "西岭乡初级中学")]
    assert (np_["expected"], np_["arrived"], np_["not_arrived"], np_["open_cases"]) == (10, 9, 1, 2)
    xl = pairs[("西岭乡中心小学", "西岭乡初级中学")]
    assert xl["not_arrived_by_whereabouts"]["transfer_out"] == 2 and xl["open_cases"] == 1
    assert rep["totals"] == {"expected": 40, "arrived": 33, "not_arrived": 7, "open_cases": 6,
                             "overdue_notifications": 0,
                             "not_arrived_by_whereabouts": {"transfer_out": 2, "county_other": 1, "migrated": 0,
                                                            "unknown": 4, "suspected": 0, "unrecorded": 0}}
    assert [u["name"] for u in rep["unexpected"]] == [None, None] and rep["pending"] == []
    # the report does not disclose full ID numbers
    assert stranger not in str(rep)
    book = openpyxl.load_workbook(io.BytesIO(ho.report_xlsx(rep)))
    sheet = book["整班移交核查"]
    assert [c.value for c in sheet[3]][:5] == ["移交学校", "接收学校", "应到人数", "实到人数", "未到人数"]
    assert [c.value for c in sheet[sheet.max_row]][:5] == ["合计", None, 40, 33, 7]
    assert book["计划外报到"].max_row == 3


def test_late_close_flags_overdue_notifications(world):
    s, orgs, plan = world["s"], world["orgs"], world["plan"]
    late = WINDOW_END + dt.timedelta(days=5)
    result = ho.close_registration_window(s, plan, today=late, actor="初中")
    assert result.notifications_overdue and len(result.cases) == 40
    assert all(n["overdue"] for n in result.notifications)
    rep = ho.county_check_report(s, orgs["青禾县"], plan, as_of=late)
    assert rep["totals"]["overdue_notifications"] == 40 and rep["totals"]["not_arrived_by_whereabouts"]["unknown"] == 40
    new = [s.get(Case, c["case_id"]) for c in result.cases if c["new"]]
    assert {s.get(Org, c.org_id).name for c in new} == {"东河镇初级中学", "西岭乡初级中学"}
    # a pupil who already had an open case (demo data) is linked to it, not given a second one
    plan_pupils = {r.pupil_id for e in plan.entries for r in e.rows}
    demo_open = {c.pupil_id for c in s.scalars(select(Case).where(Case.pupil_id.in_(plan_pupils),
                                                                   Case.opened_on < late))}
    assert {c["pupil_id"] for c in result.cases if not c["new"]} == demo_open
    assert len(new) == 40 - len(demo_open)


def test_registration_input_checks(world):
    s, orgs = world["s"], world["orgs"]
    with pytest.raises(ValidationFailed) as e:
        ho.record_registration(s, receiving_school=orgs["东河镇初级中学"], registered_on=dt.date(2027, 9, 1),
                               actor="x")
    assert "id_number" in e.value.fields
    with pytest.raises(ValidationFailed) as e:
        ho.record_registration(s, receiving_school=orgs["东河镇初级中学"], id_number="410721201401010000",
                               registered_on=dt.date(2027, 9, 1), actor="x")
    assert "id_number" in e.value.fields
    p = _pupils(s, world["classes"]["东河镇中心小学"])[0]
    pend = ho.record_registration(s, receiving_school=orgs["东河镇初级中学"], name=p.name, birth_date=p.birth_date,
                                  registered_on=dt.date(2027, 9, 1), actor="x")
    reg = ho.confirm_registration(s, pend.id, accept=False, actor="x")
    assert reg.status == "unexpected"
    with pytest.raises(Conflict):
        ho.confirm_registration(s, pend.id, accept=True, actor="x")
