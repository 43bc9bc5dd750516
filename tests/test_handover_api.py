"""整班移交 over HTTP: plan (JSON and CSV), roster upload, 交接表 job, registrations, confirmation,
whereabouts, closing the window and the county report (JSON and XLSX), with scoping."""

from __future__ import annotations

import datetime as dt
import io

import openpyxl
from sqlalchemy import select

from cases.store.models import Case, Org, Pupil, SchoolClass
from forms import validators as v

B = "/api/v1"


def _ids(s):
    orgs = {o.name: o for o in s.scalars(select(Org))}
    cls = {n: s.scalar(select(SchoolClass).where(SchoolClass.org_id == orgs[n].id, SchoolClass.grade == 6))
           for n in ("东河镇中心小学", "东河镇柳湾小学", "南坪镇中心小学")}
    return orgs, cls


def _plan(client, orgs, cls):
    r = client.post(f"{B}/handover/plans", json={
        "county_id": orgs["青禾县"].id, "year": 2027, "term_start": "2027-09-01",
        "entries": [{"class_id": cls["东河镇中心小学"].id, "receiving_school_id": orgs["东河镇初级中学"].id},
                    {"class_id": cls["南坪镇中心小学"].id, "receiving_school_code": orgs["西岭乡初级中学"].code}]})
    assert r.status_code == 201, r.json
    return r.json


def test_handover_over_http(client, demo, app_session):
    s = app_session
    orgs, cls = _ids(s)
    plan = _plan(client, orgs, cls)
    assert plan["window_end"] == "2027-09-03"  # Q13 default: 3rd school day of term
    assert [(e["sending_school"], e["receiving_school"], e["rows"]) for e in plan["entries"]] == [
        ("东河镇中心小学", "东河镇初级中学", 10), ("南坪镇中心小学", "西岭乡初级中学", 10)]
    pid = plan["id"]

    # roster: one good new pupil, one bad row
    new_id = v.synthetic_id_number("410721", dt.date(2014, 2, 2), 8)
    csv_text = ("学校标识码,班级,姓名,性别,身份证号,全国学籍号,户籍地,监护人,关系,联系电话\n"
                f"{orgs['东河镇中心小学'].code},{cls['东河镇中心小学'].name},周小宇,女,{new_id},G{new_id},"
                "青禾县南坪镇后沟村,周大,父,13900002222\n"
                f"{orgs['东河镇中心小学'].code},{cls['东河镇中心小学'].name},吴某,男,123,G123,东河村,吴大,父,139\n")
    r = client.post(f"{B}/handover/plans/{pid}/roster",
                    data={"file": (io.BytesIO(csv_text.encode("utf-8")), "roster.csv")},
                    content_type="multipart/form-data")
    assert r.status_code == 200, r.json
    assert (r.json["created"], r.json["updated"], r.json["rejected"]) == (1, 0, 1)
    assert r.json["errors"][0]["row"] == 3
    assert set(r.json["errors"][0]["errors"]) >= {"id_number", "guardian_phone"}

    # 交接表 job (docx): each entry gets its document
    r = client.post(f"{B}/handover/plans/{pid}/render", json={"format": "docx"})
    assert r.status_code == 202 and r.json["status"] == "done", r.json
    assert client.get(r.json["result_url"]).status_code == 200
    plan = client.get(f"{B}/handover/plans/{pid}").json
    assert all(e["document_id"] for e in plan["entries"]) and plan["entries"][0]["rows"] == 11

    rows = client.get(f"{B}/handover/plans/{pid}/rows").json["items"]
    assert len(rows) == 21 and "id_number" not in rows[0]
    pupils = {p.id: p for p in s.scalars(select(Pupil))}
    dh_rows = [r for r in rows if r["entry_id"] == plan["entries"][0]["id"]]
    np_rows = [r for r in rows if r["entry_id"] == plan["entries"][1]["id"]]
    dh, xl = orgs["东河镇初级中学"].id, orgs["西岭乡初级中学"].id
    for row in dh_rows[:9]:
        r = client.post(f"{B}/handover/registrations", json={
            "receiving_school_id": dh, "id_number": pupils[row["pupil_id"]].id_number, "registered_on": "2027-09-01"})
        assert r.status_code == 201 and r.json["status"] == "matched" and r.json["row"]["registered"] is True
    for row in np_rows[:9]:
        r = client.post(f"{B}/handover/registrations", json={
            "receiving_school_id": xl, "xueji_no": pupils[row["pupil_id"]].xueji_no, "registered_on": "2027-09-02"})
        assert r.json["row"]["match_method"] == "xueji_no"
    last = pupils[np_rows[9]["pupil_id"]]
    r = client.post(f"{B}/handover/registrations", json={
        "receiving_school_id": xl, "name": last.name, "birth_date": last.birth_date.isoformat(),
        "registered_on": "2027-09-02"})
    assert r.status_code == 201 and r.json["status"] == "pending"
    reg_id = r.json["registration"]["id"]
    r = client.post(f"{B}/handover/registrations", json={"receiving_school_id": dh, "registered_on": "2027-09-02"})
    assert r.status_code == 422 and "id_number" in r.json["fields"]

    # closing: too early, then blocked by the pending match, then done
    r = client.post(f"{B}/handover/plans/{pid}/close-window", json={"today": "2027-09-03"})
    assert r.status_code == 409
    r = client.post(f"{B}/handover/plans/{pid}/close-window", json={"today": "2027-09-04"})
    assert r.status_code == 409 and f"registrations[{reg_id}]" in r.json["fields"]
    r = client.post(f"{B}/handover/registrations/{reg_id}/confirm", json={"accept": True})
    assert r.status_code == 200 and r.json["status"] == "matched"
    # the roster's new pupil moved away with a transfer certificate: no case for her
    moved_row = dh_rows[10]
    assert pupils[moved_row["pupil_id"]].id_number == new_id
    r = client.post(f"{B}/handover/rows/{moved_row['id']}/whereabouts",
                    json={"whereabouts": "transfer_out", "proof": "学籍转接证明 2027-31"})
    assert r.status_code == 200 and r.json["whereabouts"] == "transfer_out"
    r = client.post(f"{B}/handover/rows/{moved_row['id']}/whereabouts", json={"whereabouts": "abroad"})
    assert r.status_code == 422

    r = client.post(f"{B}/handover/plans/{pid}/close-window", json={"today": "2027-09-05"})
    assert r.status_code == 200, r.json
    out = r.json
    assert out["notify_due"] == "2027-09-06" and out["notifications_overdue"] is False
    assert [c["pupil_id"] for c in out["cases"]] == [dh_rows[9]["pupil_id"]]
    case = s.get(Case, out["cases"][0]["case_id"])
    assert case.state == "ABSENT" and case.org_id == dh and s.get(Org, case.township_org_id).name == "东河镇"
    assert [x["pupil_id"] for x in out["legitimate"]] == [moved_row["pupil_id"]]
    assert [n["sending_school"] for n in out["notifications"]] == ["东河镇中心小学"]
    assert client.post(f"{B}/handover/plans/{pid}/close-window", json={"today": "2027-09-05"}).status_code == 409

    rep = client.get(f"{B}/handover/plans/{pid}/report?as_of=2027-09-10").json
    assert rep["totals"]["expected"] == 21 and rep["totals"]["arrived"] == 19 and rep["totals"]["open_cases"] == 1
    assert rep["totals"]["not_arrived_by_whereabouts"]["transfer_out"] == 1
    assert rep["totals"]["not_arrived_by_whereabouts"]["unknown"] == 1
    assert rep["check_due"] == "2027-09-16"
    r = client.get(f"{B}/handover/plans/{pid}/report?format=xlsx&as_of=2027-09-10")
    assert r.status_code == 200 and r.mimetype.endswith("spreadsheetml.sheet")
    sheet = openpyxl.load_workbook(io.BytesIO(r.data))["整班移交核查"]
    assert [c.value for c in sheet[sheet.max_row]][:5] == ["合计", None, 21, 19, 2]
    assert "青禾县2027年" in sheet["A1"].value


def test_plan_from_csv_and_scope(client, demo, app_session):
    orgs, cls = _ids(app_session)
    text = ("学校标识码,班级,接收学校标识码\n"
            f"{orgs['东河镇柳湾小学'].code},{cls['东河镇柳湾小学'].name},{orgs['东河镇初级中学'].code}\n")
    r = client.post(f"{B}/handover/plans", data={
        "file": (io.BytesIO(text.encode("utf-8")), "plan.csv"), "county_id": str(orgs["青禾县"].id),
        "year": "2027", "window_end": "2027-09-04"}, content_type="multipart/form-data")
    assert r.status_code == 201, r.json
    assert r.json["window_end"] == "2027-09-04" and r.json["entries"][0]["rows"] == 10
    pid = r.json["id"]
    # a school cannot see the county's plan, nor register pupils for another school
    school = {"X-Baoxue-Org": str(orgs["东河镇中心小学"].id)}
    assert client.get(f"{B}/handover/plans/{pid}", headers=school).status_code == 403
    r = client.post(f"{B}/handover/registrations", headers=school, json={
        "receiving_school_id": orgs["东河镇初级中学"].id, "id_number": "x", "registered_on": "2027-09-01"})
    assert r.status_code == 403
    # bad plan input names the entry
    r = client.post(f"{B}/handover/plans", json={"county_id": orgs["青禾县"].id, "year": 2027,
                                                  "window_end": "2027-09-03",
                                                  "entries": [{"class_id": 999999, "receiving_school_id": 1}]})
    assert r.status_code == 422 and "entries[0].class_id" in r.json["fields"]
    assert client.get(f"{B}/handover/plans/99999").status_code == 404

