"""A scan of an issued 报告单 whose choices were printed ticked at issue (性别, 与学生关系, 现去向,
辍学原因, 报送单位, 是否建档立卡 as ☑/☐ from the case record) reads those fields as issued: the
ticks printed by the service are print, not a box left empty, so nothing goes to review as “勾选与
签发时印刷的不一致” (before: six such items on every page 1, shown as “印制内容被改动”)."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from PIL import Image
from sqlalchemy import select

from cases.store.models import Case

pytestmark = pytest.mark.slow


def _report(client, case_id: int) -> dict:
    days = [(dt.date.today() - dt.timedelta(days=d)).isoformat() for d in (15, 12, 9)]
    attempts = [{"date": days[0], "persons": "班主任", "method": "visit", "result": "refused"},
                {"date": days[1], "persons": "班主任、村干部", "method": "visit", "result": "refused"},
                {"date": days[2], "persons": "专人", "method": "phone", "result": "not_met"}]
    r = client.post(f"/api/v1/cases/{case_id}/documents", json={
        "form": "dropout_report", "data": {"school_opinion": "建议乡镇组织联合劝返", "filler_name": "王芳",
                                           "absent_days": 14, "whereabouts": "home", "attempts": attempts}})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def test_printed_ticks_of_a_scanned_report_read_as_issued(client, demo, app_session):
    from parsers.images import render_pdf

    case = app_session.scalars(select(Case).where(Case.state == "JOINT")).first()
    doc = _report(client, case.id)
    pdf = client.get(doc["links"]["pdf"]).data
    buf = io.BytesIO()
    Image.fromarray(render_pdf(pdf, dpi=150, pages=[1])[0]).convert("L").save(buf, format="PNG")
    r = client.post("/api/v1/uploads", data={"org_id": str(case.org_id), "file": (io.BytesIO(buf.getvalue()),
                                                                                   "报告单第1页.png")},
                    content_type="multipart/form-data")
    assert r.status_code in (200, 201, 202), r.get_json()
    items = client.get(f"/api/v1/review?document_id={doc['id']}&limit=500").get_json()["items"]
    tick_fields = {"student_sex", "guardian_relation", "whereabouts", "reason", "send_to", "poverty_category"}
    flagged = [(it["field_path"], it["reason"]) for it in items if it["field_path"] in tick_fields]
    assert flagged == []
    history = client.get(f"/api/v1/documents/{doc['id']}/history").get_json()
    changes = history["returns"][-1]["changes"]
    assert not tick_fields & set(changes), changes
