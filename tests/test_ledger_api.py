"""Ledger, indicator and quarterly-report endpoints (web/api_ledgers.py) on the small fixture."""

from __future__ import annotations

import io

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from cases.store.models import AuditLog
from tests.test_ledgers import build_small

B = "/api/v1"


@pytest.fixture
def small(app, app_session):
    built = build_small(app_session)
    built.county.doc_prefix = "海政"  # the issuer of the 统计表 needs its 发文机关代字
    app_session.commit()
    return built


def test_ledger_json_paginated_with_aggregate(client, small):
    r = client.get(f"{B}/ledgers/county?org_id={small.county.id}&as_of=2025-12-31&limit=2")
    assert r.status_code == 200
    body = r.get_json()
    assert body["total"] == 5 and len(body["items"]) == 2 and body["title"] == "县级台账"
    assert body["columns"][0] == {"key": "entry_no", "heading": "台账编号"}
    assert body["aggregate"]["enrolled"] == {"primary": 3, "junior": 3}
    assert all("*" in item["id_number"] for item in body["items"])
    r = client.get(f"{B}/ledgers/county?org_id={small.county.id}&as_of=2025-12-31&limit=2&offset=4")
    assert len(r.get_json()["items"]) == 1 and r.get_json()["aggregate"] is None
    r = client.get(f"{B}/ledgers/village?org_id={small.v2.id}&as_of=2025-12-31")
    assert r.get_json()["total"] == 2


def test_ledger_errors(client, small):
    assert client.get(f"{B}/ledgers/county").status_code == 422
    r = client.get(f"{B}/ledgers/county?org_id={small.t1.id}")
    assert r.status_code == 422 and "org_id" in r.get_json()["fields"]
    assert client.get(f"{B}/ledgers/nope?org_id={small.county.id}").status_code == 404
    r = client.get(f"{B}/ledgers/county?org_id={small.county.id}&as_of=2025-13-01")
    assert r.status_code == 422 and "as_of" in r.get_json()["fields"]
    # outside the caller's jurisdiction
    r = client.get(f"{B}/ledgers/township?org_id={small.t2.id}", headers={"X-Baoxue-Org": str(small.t1.id)})
    assert r.status_code == 403


def test_ledger_xlsx_and_unmask_logged(client, small, app_session):
    r = client.get(f"{B}/ledgers/school?org_id={small.s2.id}&as_of=2025-12-31&format=xlsx")
    assert r.status_code == 200 and r.mimetype.endswith("spreadsheetml.sheet")
    rows = list(load_workbook(io.BytesIO(r.data)).active.iter_rows(values_only=True))
    assert rows[1][:4] == ("台账编号", "姓名", "性别", "身份证号") and len(rows) == 2 + 3
    r = client.get(f"{B}/ledgers/school?org_id={small.s2.id}&as_of=2025-12-31&unmask=1")
    assert r.status_code == 422 and "reason" in r.get_json()["fields"]  # unmasking needs a reason
    r = client.get(f"{B}/ledgers/school?org_id={small.s2.id}&as_of=2025-12-31&unmask=1&reason=核对户籍")
    ids = {i["id_number"] for i in r.get_json()["items"]}
    assert small.pupils["p3"].id_number in ids
    app_session.expire_all()
    entries = app_session.scalars(select(AuditLog).where(AuditLog.who == "root").order_by(AuditLog.seq)).all()
    assert [e.action for e in entries] == ["ledger.export", "unmask"]
    assert entries[0].after["records"] == 3 and entries[0].after["format"] == "xlsx"
    assert entries[1].after == {"reason": "核对户籍", "records": 3}


def test_snapshot_file_get_verify_and_correct(client, small):
    r = client.post(f"{B}/ledgers/county/snapshots", json={"org_id": small.county.id, "as_of": "2025-09-30"})
    assert r.status_code == 201
    snap = r.get_json()
    assert snap["row_count"] == 4 and len(snap["sha256"]) == 64 and snap["filed_by"] == "root"
    r = client.get(f"{B}/ledgers/snapshots/{snap['id']}?verify=1")
    body = r.get_json()
    assert len(body["rows"]) == 4 and body["verification"]["ok"] is True
    assert body["verification"]["rerun_sha256"] == snap["sha256"]
    r = client.post(f"{B}/ledgers/snapshots/{snap['id']}/corrections", json={"reason": ""})
    assert r.status_code == 422
    r = client.post(f"{B}/ledgers/snapshots/{snap['id']}/corrections", json={"reason": "复核无变化"})
    assert r.status_code == 201
    fix = r.get_json()
    assert fix["corrects_id"] == snap["id"] and fix["sha256"] == snap["sha256"]
    assert fix["changes"] == {"added": [], "removed": [], "changed": []}
    assert client.get(f"{B}/ledgers/snapshots/999999").status_code == 404
    r = client.post(f"{B}/ledgers/county/snapshots", json={"org_id": small.county.id, "as_of": "2999-01-01"})
    assert r.status_code == 422


def test_indicators_endpoint(client, small):
    r = client.get(f"{B}/indicators?org_id={small.county.id}&year=2025&reference=2025-12-31")
    assert r.status_code == 200
    items = {i["code"]: i for i in r.get_json()["items"]}
    z = items["g01_dropouts"]  # 勐海 (532822): 建档立卡 zero target; p4 and p5 out of school
    assert z["numerator"] == 2 and z["target"] == {"op": "=", "value": 0.0, "source": "[S4]"}
    assert z["passed"] is False
    assert items["primary_dropout_rate"]["target"]["op"] == "≤"
    assert client.get(f"{B}/indicators?org_id={small.county.id}&year=25").status_code == 422


def test_quarterly_report_json_xlsx_and_render(client, small):
    r = client.get(f"{B}/reports/quarterly?org_id={small.county.id}&year=2025&quarter=4")
    assert r.status_code == 200
    t = r.get_json()["tables"]
    assert t["screening"]["junior"]["lost_contact"] == 1 and t["outcomes"]["primary"]["chaban"] == 1
    r = client.get(f"{B}/reports/quarterly?org_id={small.county.id}&year=2025&quarter=4&format=xlsx")
    assert r.status_code == 200
    cells = [c for row in load_workbook(io.BytesIO(r.data)).active.iter_rows(values_only=True) for c in row]
    assert "学期汇总控辍保学排查整改工作情况统计表" in cells
    assert client.get(f"{B}/reports/quarterly?org_id={small.county.id}&year=2025&quarter=5").status_code == 422
    r = client.post(f"{B}/reports/quarterly/render", json={
        "org_id": small.county.id, "year": 2025, "quarter": 4, "format": "docx",
        "data": {"filler_name": "李明", "checker_name": "王芳", "unit_head": "张强", "fill_date": "2026-01-05"}})
    assert r.status_code == 201, r.get_json()
    doc = r.get_json()
    assert doc["form"] == "quarterly_stats" and doc["status"] == "issued" and "控统" in doc["number"]
    stored = client.get(f"{B}/documents/{doc['id']}").get_json()["data"]
    assert stored["screening"][1]["lost_contact"] == 1 and stored["unit_name"] == "勐海县"
    r = client.post(f"{B}/reports/quarterly/render", json={"org_id": small.county.id, "year": 2025, "quarter": 4,
                                                           "format": "docx", "data": {}})
    assert r.status_code == 422 and "filler_name" in r.get_json()["fields"]
