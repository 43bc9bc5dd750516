"""Issue 15 item 7: the scan outcome says per field why it was accepted or went to review, shows the
reading job's state and a failed job's reason; ``GET /documents/<id>/geometry`` gives integrators
every field box, label, printed character box and tick box per page."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image
from sqlalchemy import select

from cases.returns import intake
from cases.store import jobs
from cases.store.models import Case, Document, Job, Upload
from tests.conftest_scans import DOC_ID, SAMPLES


def _post(client, org_id, path: Path):
    img = Image.open(path).convert("RGB")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return client.post("/api/v1/scans", data={"org_id": str(org_id), "file": (io.BytesIO(buf.getvalue()), path.name)},
                       content_type="multipart/form-data")


def test_each_field_says_why_it_was_accepted_or_went_to_review(client, notice):
    r = _post(client, notice["org_id"], SAMPLES / "receipt_direct_flatbed200.jpg")
    assert r.status_code == 202, r.json
    out = client.get(r.json["links"]["scan"]).json
    assert out["status"] == "parsed" and out["error"] is None
    assert out["job"]["id"] == r.json["job_id"]
    assert (out["job"]["status"], out["job"]["done"], out["job"]["total"], out["job"]["error"]) == ("done", 1, 1, None)
    page = out["pages"][0]
    assert (page["status"], page["document_id"], page["page_no"]) == ("read", DOC_ID, 5)
    f = page["fields"]
    # a printed value compared with the issued PDF: accepted, and it says how
    assert f["doc_number"]["decision"] == "accepted"
    assert f["doc_number"]["value"] == f["doc_number"]["issued"] == "城政限返〔2025〕12号"
    assert "一致" in f["doc_number"]["reason"]
    # a blank handwritten field
    assert (f["witness_name"]["decision"], f["witness_name"]["reason"]) == ("accepted", "未填写（空白）")
    # an absent mark, accepted with its confidence in words
    assert f["witness_signature"]["value"] is False
    assert f["witness_signature"]["reason"] == "判断为没有签名或印章（置信度 1.00）"
    # the service method: always confirmed by a person, linked to its open review item
    sm = f["service_method"]
    assert (sm["value"], sm["decision"], sm["reason"]) == ("direct", "review", "送达方式须人工确认")
    assert sm["review_item"]["kind"] == "confirm" and sm["review_item"]["status"] == "open"
    # handwriting the (blank) recogniser could not read: to review as invalid, with the reason
    sp = f["service_place"]
    assert (sp["decision"], sp["review_item"]["kind"], sp["reason"]) == ("review", "invalid", "有笔迹但未能识别")
    review = {f[k]["review_item"]["id"] for k in f if f[k]["review_item"]}
    assert len(review) == page["open_review_items"] == 6
    # every field has a non-empty reason whatever its decision
    assert all(v["reason"] for v in f.values())
    # deciding an item shows in the outcome
    assert client.post(f"/api/v1/review/{sm['review_item']['id']}", json={"action": "accept"}).status_code == 200
    again = client.get(r.json["links"]["scan"]).json["pages"][0]["fields"]["service_method"]
    assert again["review_item"]["status"] == "accepted"


def test_a_failed_job_is_visible_with_its_reason(client, notice, monkeypatch):
    def broken(*_a, **_k):
        raise RuntimeError("tesseract 超时（60 秒）")

    monkeypatch.setattr(intake, "process_upload", broken)
    r = _post(client, notice["org_id"], SAMPLES / "receipt_direct_flatbed200.jpg")
    assert r.status_code == 202
    out = client.get(r.json["links"]["scan"]).json
    assert out["status"] == "failed"
    assert out["error"] == "读取任务失败：RuntimeError: tesseract 超时（60 秒）"
    assert out["job"]["status"] == "failed" and "tesseract 超时" in out["job"]["error"]
    assert out["pages"] == []


def test_a_job_the_reaper_gave_up_on_fails_the_outcome_even_if_the_upload_says_stored(
        client, notice, app_session, monkeypatch):
    monkeypatch.setattr(jobs, "_enqueue", lambda *a, **k: None)  # the worker never gets it
    r = _post(client, notice["org_id"], SAMPLES / "receipt_direct_flatbed200.jpg")
    out = client.get(r.json["links"]["scan"]).json
    assert (out["status"], out["job"]["status"], out["error"]) == ("stored", "queued", None)
    job = app_session.get(Job, r.json["job_id"])
    job.status, job.attempts, job.error = "failed", 3, jobs.gave_up_message(3)
    app_session.commit()
    assert app_session.get(Upload, r.json["upload_id"]).status == "stored"
    out = client.get(r.json["links"]["scan"]).json
    assert out["status"] == "failed"
    assert out["error"] == jobs.gave_up_message(3) and out["job"]["attempts"] == 3


def test_geometry_of_the_sample_notice(client, notice):
    g = client.get(f"/api/v1/documents/{DOC_ID}/geometry").json
    assert (g["form"], g["variant"], g["units"], g["origin"]) == ("guardian_notice", "xianqi", "pt", "top-left")
    assert [p["page"] for p in g["pages"]] == [1, 2, 3, 4, 5]
    receipt = g["pages"][4]
    assert (receipt["part"], receipt["part_name"]) == ("receipt", "送达回证")
    assert receipt["size"] == [595.3, 841.89] and receipt["qr"] == [504.6, 22.68, 561.29, 79.37]
    sm = receipt["fields"]["service_method"]
    assert sm["label"] == "送达方式" and sm["kind"] == "choice" and sm["filled"] == "hand" and sm["confirm"] is True
    assert sm["bbox"] == [141.7, 290.55, 521.6, 310.45] and sm["label_bbox"] == [79.4, 290.55, 141.7, 310.45]
    assert [t["choice"] for t in sm["tick_boxes"]] == ["direct", "left", "proxy", "post", "electronic"]
    for t in sm["tick_boxes"]:  # each box inside the field's cell, left to right
        x0, y0, x1, y1 = t["bbox"]
        assert 141.7 <= x0 < x1 <= 521.6 and 290.55 <= y0 < y1 <= 310.45 and 5 < x1 - x0 < 12
    xs = [t["bbox"][0] for t in sm["tick_boxes"]]
    assert xs == sorted(xs)
    name = g["pages"][0]["fields"]["approver_name"]
    assert (name["label"], name["kind"], name["max_length"]) == ("审批人", "name", 20)


def test_geometry_gives_the_printed_character_boxes(client, app_session, demo):
    from tests.samples.scans import make_scans as mk

    pdf, geo, issued = mk.issue("guardian_notice", "xianqi", doc_id="GEOMETRY0001",
                                overrides=mk.NOTICE_DATA_OVERRIDES)
    case = app_session.scalars(select(Case).order_by(Case.id)).first()
    store = client.application.extensions["baoxue"].store
    digest, _ = store.put_bytes(pdf, ".pdf")
    app_session.add(Document(id="GEOMETRY0001", org_id=case.org_id, case_id=case.id, form="guardian_notice",
                             variant="xianqi", family="guardian_notice:限返", template_version="2026.1", year=2025,
                             seq=13, number_text=issued["doc_number"], status="issued", data=issued,
                             pdf_sha256=digest, pages=len(geo["pages"]), geometry=geo))
    app_session.commit()
    g = client.get("/api/v1/documents/GEOMETRY0001/geometry").json
    assert g["boxes_from_pdf"] is True
    receipt = next(p for p in g["pages"] if p["part"] == "receipt")
    signed = receipt["fields"]["recipient_signed_on"]
    assert signed["label"] == "签收日期" and signed["kind"] == "date"
    assert signed["box_pattern"] == "□□□□年□□月□□日" and signed["box_groups"] == [4, 2, 2]
    boxes = signed["char_boxes"]
    assert len(boxes) == 8
    x0, y0, x1, y1 = signed["bbox"]
    for b in boxes:  # each box inside the cell, roughly square
        assert x0 <= b[0] < b[2] <= x1 and y0 <= b[1] < b[3] <= y1
        assert 0.6 < (b[2] - b[0]) / (b[3] - b[1]) < 1.6
    # 年 sits between the 4th and 5th box: that gap is wider than the gaps inside a group
    gaps = [boxes[i + 1][0] - boxes[i][2] for i in range(7)]
    assert gaps[3] > 2 * gaps[0] and gaps[5] > 2 * gaps[4]


def test_geometry_of_unknown_or_unrendered_document(client, notice, app_session):
    r = client.get("/api/v1/documents/NOSUCHDOC/geometry")
    assert r.status_code == 404 and "不存在" in r.json["message"]
    doc = app_session.get(Document, DOC_ID)
    doc.geometry = None
    app_session.commit()
    r = client.get(f"/api/v1/documents/{DOC_ID}/geometry")
    assert r.status_code == 404 and "没有版面记录" in r.json["message"]


def test_geometry_is_scoped(app, notice, make_user, demo):
    from cases.store.models import Org
    from tests.conftest import client_for

    s = app.extensions["baoxue"].session_factory()
    other = s.scalars(select(Org).where(Org.kind == "school", Org.id != notice["org_id"])).first()
    s.close()
    _uid, token = make_user("other.school", ["school_clerk"], org_id=other.id)
    r = client_for(app, token).get(f"/api/v1/documents/{DOC_ID}/geometry")
    assert r.status_code in (403, 404)
