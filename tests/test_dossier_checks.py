"""Closed-loop consistency checks (cases/dossier/checks.py, DOMAIN §8.3): a fixture with one
deliberate gap per rule, each on its own case, found per case (the case API) and per jurisdiction
(JSON and XLSX) naming the case and the rule; a case without gaps has no finding. Inspector
sampling: a draw per township with a stored seed, reproduced from it."""

from __future__ import annotations

import datetime as dt
import io
import re

import openpyxl
import pytest
from sqlalchemy import select

from cases.dossier.checks import RULES
from cases.engine import casework as engine
from cases.ledgers.models import LedgerSnapshot
from cases.returns.models import DocumentReturn
from cases.store.models import AuditLog, Case, CaseEvent, Document, Org
from cases.store.storage import save_upload
from forms.validators import mask_id, synthetic_id_number
from tests.conftest import client_for
from tests.dossier_case import free_pupil, png_bytes

TODAY = dt.date.today()
OTHER_ID = synthetic_id_number("410721", dt.date(2012, 5, 4), 17)  # another child's ID number


def D(n: int) -> dt.date:
    return TODAY - dt.timedelta(days=n)


@pytest.fixture
def county(demo, app_session):
    return app_session.get(Org, demo.county_id)


def _open(s, days_ago=30):
    return engine.open_case(s, free_pupil(s), opened_on=D(days_ago), actor="班主任", source="manual", reason_code="R01")


def _reported(s):
    case = _open(s, 40)
    engine.apply_action(s, case, "T3", actor="学校", data={"facts": {"unexcused_days": 3}}, occurred_at=D(38))
    engine.apply_action(s, case, "T4", actor="学校", data={"facts": {"unexcused_days": 5}}, occurred_at=D(36))
    for n in (35, 33, 31):
        engine.record_attempt(s, case, {"date": D(n).isoformat(), "persons": "班主任", "method": "visit",
                                        "result": "refused", "stage": "school"}, actor="专人")
    engine.apply_action(s, case, "T7", actor="学校", occurred_at=D(18))
    return case


def _doc(s, case, form="guardian_notice", variant="xianqi", data=None, n=[0]):  # noqa: B006
    n[0] += 1
    doc = Document(id=f"CHK{n[0]:04d}{case.id:03d}", org_id=case.township_org_id, case_id=case.id, form=form,
                   variant=variant, family="chk", template_version="1", year=TODAY.year, status="issued",
                   data=data or {})
    s.add(doc)
    s.flush()
    return doc


def _snapshot(s, org_id, kind, as_of, rows):
    snap = LedgerSnapshot(org_id=org_id, kind=kind, as_of=as_of, filed_by="测试", content_sha256="0" * 64,
                          row_count=len(rows), rows=rows, totals={})
    s.add(snap)
    s.flush()
    return snap


@pytest.fixture
def gaps(app_session, services, county):
    """{rule: case} — one case per rule with exactly that gap, and a clean case under "clean"."""
    s = app_session
    out = {}
    # a clean case: opened, contacted the same day
    clean = _open(s)
    engine.record_attempt(s, clean, {"date": D(30).isoformat(), "persons": "班主任", "method": "phone",
                                     "result": "refused"}, actor="班主任")
    out["clean"] = clean
    # closed (imported as closed) without any evidence
    c = _open(s)
    s.add(CaseEvent(case_id=c.id, org_id=c.org_id, kind="transition", from_state="ABSENT", to_state="CLOSED",
                    transition="T22", actor="导入", occurred_at=engine._at(D(5)), data={"outcome": "C7"}))
    c.state, c.closure_reason = "CLOSED", "C7"
    out["closure_without_evidence"] = c
    # a persuasion record dated before the case was detected (legacy import)
    c = _open(s)
    s.add(CaseEvent(case_id=c.id, org_id=c.org_id, kind="attempt", actor="导入", occurred_at=engine._at(D(35)),
                    data={"date": D(35).isoformat(), "persons": "班主任", "method": "visit", "result": "refused",
                          "stage": "school"}))
    out["attempt_before_detection"] = c
    # the notice served the day before the township signed for the 报告单
    c = _reported(s)
    notice = _doc(s, c)
    engine.record_receipt(s, c, document_id=None, received_on=D(15), actor="乡镇")
    engine.record_service(s, c, document_id=notice.id, served_on=D(16), method="direct", complete=False, actor="乡镇")
    out["notice_before_receipt"] = c
    # service recorded as complete while the returned 回证 is incomplete
    c = _reported(s)
    notice = _doc(s, c)
    engine.record_receipt(s, c, document_id=None, received_on=D(17), actor="乡镇")
    engine.record_service(s, c, document_id=notice.id, served_on=D(16), method="direct", complete=True, actor="乡镇")
    up = save_upload(s, services.store, filename="回证.png", data=png_bytes(), org=c.township_org_id, user="测试",
                     mime="image/png")
    s.add(DocumentReturn(document_id=notice.id, upload_id=up.id, form=notice.form, input_kind="scan", values={},
                         complete=False, missing=["送达日期"], status="incomplete", org_id=notice.org_id))
    out["deadline_from_incomplete_return"] = c
    # a 报告单 carrying another child's ID number
    c = _open(s)
    other = OTHER_ID
    _doc(s, c, form="dropout_report", variant=None, data={"student_id_number": other})
    out["id_number_mismatch"] = c
    # a 报告单 carrying a 学籍号 that is not the pupil's
    c = _open(s)
    c.pupil.xueji_no = c.pupil.xueji_no or "G" + synthetic_id_number("410721", dt.date(2013, 3, 9), 21)
    _doc(s, c, form="dropout_report", variant=None, data={"student_xueji_no": "G" + other})
    out["xueji_no_mismatch"] = c
    # the ledgers of one day (school and township, filed after all these cases were recorded) list
    # every case alike, except: one case left out of both, one whose state differs between them
    missing, differing = _open(s), _open(s)
    out["missing_from_snapshot"], out["school_township_ledger_mismatch"] = missing, differing
    s.flush()
    rows = [{"case_id": c.id, "state_code": c.state, "opened_on": c.opened_on.isoformat(), "reason": "学习困难",
             "closed_on": None, "attempts": 0} for c in out.values() if c is not missing]
    schools = {c.org_id for c in out.values()} | {c.township_org_id for c in out.values()}
    for org_id in sorted(schools):
        kind = "township" if org_id in {c.township_org_id for c in out.values()} else "school"
        _snapshot(s, org_id, kind, D(15), [dict(r, state_code="VERIFY") if kind == "township" and
                                           r["case_id"] == differing.id else r for r in rows])
    s.commit()
    return out


def test_one_gap_per_rule_found_per_case_naming_case_and_rule(app, client, gaps):
    assert set(gaps) - {"clean"} == set(RULES)
    for rule, case in gaps.items():
        r = client.get(f"/api/v1/cases/{case.id}/checks")
        assert r.status_code == 200
        body = r.get_json()
        found = {f["rule"] for f in body["findings"]}
        assert found == (set() if rule == "clean" else {rule}), (rule, body["findings"])
        for f in body["findings"]:
            assert f["case_id"] == case.id and f["case_number"] == case.number and f["rule_label"] == RULES[rule]
    msg = client.get(f"/api/v1/cases/{gaps['notice_before_receipt'].id}/checks").get_json()["findings"][0]["message"]
    assert D(16).isoformat() in msg and D(15).isoformat() in msg
    # numbers are shown masked (first 6, last 4) with the positions that differ, never in full
    for rule, wrong in (("id_number_mismatch", OTHER_ID), ("xueji_no_mismatch", "G" + OTHER_ID)):
        case = gaps[rule]
        [f] = client.get(f"/api/v1/cases/{case.id}/checks").get_json()["findings"]
        right = case.pupil.id_number if rule == "id_number_mismatch" else case.pupil.xueji_no
        assert mask_id(wrong) in f["message"] and mask_id(right) in f["message"], f["message"]
        assert wrong not in f["message"] and right not in f["message"]
        assert re.search(r"第 [\d、]+…? 位不同", f["message"]), f["message"]


def test_jurisdiction_report_json_and_xlsx(app, client, gaps, county, make_user, app_session):
    r = client.get(f"/api/v1/checks?org_id={county.id}")
    assert r.status_code == 200
    body = r.get_json()
    pairs = {(f["case_id"], f["rule"]) for f in body["findings"]}
    for rule, case in gaps.items():
        if rule != "clean":
            assert (case.id, rule) in pairs
    assert not any(f["case_id"] == gaps["clean"].id for f in body["findings"])
    assert {x["rule"]: x["count"] for x in body["by_rule"]}["school_township_ledger_mismatch"] >= 1
    r = client.get(f"/api/v1/checks?org_id={county.id}&format=xlsx")
    assert r.status_code == 200
    ws = openpyxl.load_workbook(io.BytesIO(r.data))["闭环核查"]
    rows = list(ws.iter_rows(min_row=3, values_only=True))
    assert len(rows) == body["total"]
    assert (gaps["attempt_before_detection"].number, "attempt_before_detection") in {(x[0], x[2]) for x in rows}
    assert (gaps["xueji_no_mismatch"].number, "xueji_no_mismatch") in {(x[0], x[2]) for x in rows}
    assert not any(OTHER_ID in str(cell) for x in rows for cell in x)  # masked in the XLSX too
    # a township sees only its own cases' findings; a teacher may not read the report
    township = gaps["clean"].township_org_id
    r = client.get(f"/api/v1/checks?org_id={township}")
    mine = set(app_session.scalars(select(Case.id).where(Case.township_org_id == township)))
    assert r.get_json()["findings"] and all(f["case_id"] in mine for f in r.get_json()["findings"])
    _, teacher = make_user("t9", ["teacher"], org_id=gaps["clean"].org_id)
    assert client_for(app, teacher).get(f"/api/v1/checks?org_id={county.id}").status_code == 403


def test_numbers_differing_between_documents_without_a_record(app_session, county):
    """A pupil with no ID number and no 学籍号 on record: two documents that disagree on them are
    found (masked, positions named); documents that agree are not; a returned copy whose number
    differs from the issued one is found."""
    from cases.dossier.casefile import load_case_file
    from cases.dossier.checks import run_checks

    s = app_session
    c = _open(s)
    c.pupil.id_number, c.pupil.xueji_no = None, None
    first = synthetic_id_number("410721", dt.date(2012, 5, 4), 31)
    _doc(s, c, form="dropout_report", variant=None, data={"student_id_number": first,
                                                          "student_xueji_no": "G" + first})
    _doc(s, c, form="guardian_notice", data={"student_id_number": first})
    s.commit()
    assert run_checks(s, load_case_file(s, c)) == []
    second = synthetic_id_number("410721", dt.date(2012, 5, 4), 33)
    _doc(s, c, form="dropout_report", variant=None, data={"student_id_number": second,
                                                          "student_xueji_no": "G" + second})
    s.commit()
    found = run_checks(s, load_case_file(s, c))
    assert sorted(f.rule for f in found) == ["id_number_mismatch", "xueji_no_mismatch"]
    for f in found:
        held = second if f.rule == "id_number_mismatch" else "G" + second
        assert f.case_id == c.id and "学生没有登记" in f.message and mask_id(held) in f.message
        assert first not in f.message and second not in f.message
        assert ("第 17、18 位不同" if f.rule == "id_number_mismatch" else "第 18、19 位不同") in f.message


def test_sampling_reproducible_from_its_seed_and_audited(app, client, demo, county, app_session):
    r = client.post("/api/v1/samples", json={"org_id": county.id, "per_township": 2, "seed": "督查-2026-1"})
    assert r.status_code == 201, r.get_json()
    first = r.get_json()
    assert first["seed"] == "督查-2026-1" and first["per_township"] == 2
    townships = {t["township_id"]: t for t in first["townships"]}
    assert len(townships) == 3
    for t in townships.values():
        assert len(t["drawn"]) == min(2, t["population"])
        assert set(t["drawn"]) <= set(t["population_ids"])
    # the same seed over the same population draws the same cases; another seed may not
    again = client.post("/api/v1/samples", json={"org_id": county.id, "per_township": 2,
                                                 "seed": "督查-2026-1"}).get_json()
    assert [t["drawn"] for t in again["townships"]] == [t["drawn"] for t in first["townships"]]
    r = client.get(f"/api/v1/samples/{first['id']}/reproduce")
    rep = r.get_json()
    assert rep["same_draw"] is True and rep["same_population"] is True
    assert rep["drawn"] == {str(k): v["drawn"] for k, v in townships.items()}
    # without a seed one is made and stored
    r = client.post("/api/v1/samples", json={"org_id": county.id, "per_township": 1}).get_json()
    assert len(r["seed"]) >= 16
    assert client.get(f"/api/v1/samples/{r['id']}").get_json()["seed"] == r["seed"]
    audit = app_session.scalars(select(AuditLog).where(AuditLog.action == "inspection.sample")).all()
    assert len(audit) == 3 and audit[0].after["seed"] == "督查-2026-1"
    bad = client.post("/api/v1/samples", json={"org_id": county.id, "per_township": 0})
    assert bad.status_code == 422 and "per_township" in bad.get_json()["fields"]


def test_dossier_batch_of_a_sample_is_a_zip_job(app, client, demo, county, app_session):
    import json
    import zipfile

    sample = client.post("/api/v1/samples", json={"org_id": county.id, "per_township": 1, "seed": "zip"}).get_json()
    r = client.post("/api/v1/dossiers/batch", json={"sample_id": sample["id"]})
    assert r.status_code == 202, r.get_json()
    job = client.get(f"/api/v1/jobs/{r.get_json()['id']}").get_json()
    drawn = [c["id"] for t in sample["townships"] for c in t["cases"]]
    assert job["status"] == "done" and job["done"] == job["total"] == len(drawn), job
    z = zipfile.ZipFile(io.BytesIO(client.get(job["result_url"]).data))
    index = json.loads(z.read("index.json"))
    assert [d["case_id"] for d in index["dossiers"]] == drawn
    for d in index["dossiers"]:
        assert z.read(d["file"])[:5] == b"%PDF-"
    bad = client.post("/api/v1/dossiers/batch", json={})
    assert bad.status_code == 422
