"""Scan intake through the API and the job: 202 at once, per-page outcome, review queue with crops,
decisions recorded with who/when, apply to the case, unidentified pages, clear errors with nothing
half-stored, and a job killed mid-way that is retried without duplicates.

The document is the committed sample (tests/samples/scans: issued PDF, geometry, snapshot with the
QR id SCANTEST0001), inserted as an issued Document of a demo case, so no rendering is needed.
Unit tests here use a FakeOcrEngine; one slow test uses the real engines end to end.
"""

from __future__ import annotations

import datetime as dt
import io
import json

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from cases.returns.models import DocumentReturn, ReturnPage, ReviewItem
from cases.store.models import CaseEvent, Upload
from parsers.ocr import FakeOcrEngine, OcrText
from tests.conftest_scans import DOC_ID, SAMPLES

H: dict = {}  # the logged-in user (root) decides


def _blank_engine() -> FakeOcrEngine:
    return FakeOcrEngine(func=lambda crop: OcrText("", 0.0))


def _post(client, org_id, data: bytes, name: str):
    return client.post("/api/v1/scans", data={"org_id": str(org_id), "file": (io.BytesIO(data), name)},
                       headers=H, content_type="multipart/form-data")


def _tiff(*names: str) -> bytes:
    imgs = [Image.open(SAMPLES / n).convert("RGB") for n in names]
    buf = io.BytesIO()
    imgs[0].save(buf, format="TIFF", save_all=True, append_images=imgs[1:], compression="tiff_deflate")
    return buf.getvalue()


def _count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def test_upload_answers_202_with_job_and_pages_outcome(client, notice, app_session):
    data = _tiff("receipt_direct_flatbed200.jpg", "blank_page.png", "foreign_page.png")
    r = _post(client, notice["org_id"], data, "stack.tiff")
    assert r.status_code == 202, r.json
    job = client.get(r.json["links"]["job"]).json
    assert (job["status"], job["done"], job["total"]) == ("done", 3, 3)
    out = client.get(f"/api/v1/scans/{r.json['upload_id']}", headers=H).json
    statuses = [(p["index"], p["status"], p["document_id"], p["page_no"]) for p in out["pages"]]
    assert statuses == [(0, "read", DOC_ID, 5), (1, "blank", None, None), (2, "unidentified", None, None)]
    assert "不是本系统" in out["pages"][2]["reason"]
    fields = out["pages"][0]["fields"]
    # Ticks and marks are read from the image whatever the OCR says.
    assert fields["service_method"]["value"] == "direct"
    assert fields["recipient_signature"]["value"] is True
    assert fields["proxy_signature"]["value"] is False
    # Signatures and the service method wait for a person: nothing is applied yet.
    assert out["documents"][0]["status"] == "review"
    assert app_session.scalar(select(Upload.status).where(Upload.id == r.json["upload_id"])) == "parsed"


def test_review_queue_crop_decide_and_apply_service(client, notice, app_session):
    r = _post(client, notice["org_id"], (SAMPLES / "receipt_direct_flatbed200.jpg").read_bytes(), "r.jpg")
    items = client.get(f"/api/v1/review?org_id={notice['org_id']}", headers=H).json["items"]
    by_path = {it["field_path"]: it for it in items}
    # Printed values identical, ink for ink, to the issued PDF need no OCR and no person.
    assert not {"doc_number", "receipt_number", "issuer_name"} & set(by_path)
    assert by_path["recipient_signature"]["kind"] == "confirm"
    assert by_path["service_method"]["kind"] == "confirm" and by_path["service_method"]["proposed"] == "direct"
    assert by_path["service_time"]["kind"] == "invalid"  # ink found, nothing read
    crop = client.get(by_path["service_time"]["crop_url"], headers=H)
    assert crop.status_code == 200 and crop.mimetype == "image/png"
    assert Image.open(io.BytesIO(crop.data)).size[0] > 100
    # Decide everything: printed values and marks accepted, handwriting corrected by the person.
    corrections = {"service_time": "2025-09-29T10:30:00", "recipient_signed_on": "2025-09-29",
                   "service_place": "城关镇东关村三组18号"}
    for it in items:
        body = ({"action": "correct", "value": corrections[it["field_path"]]} if it["field_path"] in corrections
                else {"action": "accept"})
        d = client.post(f"/api/v1/review/{it['id']}", json=body, headers=H)
        assert d.status_code == 200, d.json
        assert d.json["decided_by"] == "root" and d.json["decided_at"]
    again = client.post(f"/api/v1/review/{items[0]['id']}", json={"action": "accept"}, headers=H)
    assert again.status_code == 409
    app_session.expire_all()
    ret = app_session.scalar(select(DocumentReturn).where(DocumentReturn.document_id == DOC_ID))
    assert (ret.complete, ret.status, ret.missing) == (True, "applied", [])
    events = app_session.scalars(select(CaseEvent).where(CaseEvent.case_id == notice["case_id"],
                                                         CaseEvent.kind == "service")).all()
    assert [e.data for e in events] == [{"document_id": DOC_ID, "served_on": "2025-09-29", "method": "direct",
                                         "complete": True}]
    assert client.get(f"/api/v1/returns?form=guardian_notice&issuer_id={notice['org_id']}",
                      headers=H).json["returned"] == 1
    # The same receipt scanned again with another date never overwrites the record: a discrepancy.
    r2 = _post(client, notice["org_id"], _tiff("receipt_direct_flatbed200.jpg"), "again.tiff")
    items2 = client.get(f"/api/v1/review?org_id={notice['org_id']}", headers=H).json["items"]
    for it in items2:
        body = ({"action": "correct", "value": "2025-09-30T08:00:00"} if it["field_path"] == "service_time"
                else {"action": "correct", "value": corrections[it["field_path"]]}
                if it["field_path"] in corrections else {"action": "accept"})
        client.post(f"/api/v1/review/{it['id']}", json=body, headers=H)
    app_session.expire_all()
    disc = app_session.scalars(select(ReviewItem).where(ReviewItem.upload_id == r2.json["upload_id"],
                                                        ReviewItem.kind == "discrepancy")).all()
    assert len(disc) == 1 and disc[0].recorded["value"]["served_on"] == "2025-09-29"
    assert app_session.scalar(select(func.count()).select_from(CaseEvent).where(
        CaseEvent.case_id == notice["case_id"], CaseEvent.kind == "service")) == 1
    assert r.status_code == 202


def test_correction_is_validated(client, notice):
    _post(client, notice["org_id"], (SAMPLES / "receipt_direct_flatbed200.jpg").read_bytes(), "r.jpg")
    items = client.get("/api/v1/review", headers=H).json["items"]
    item = next(it for it in items if it["field_path"] == "recipient_signed_on")
    r = client.post(f"/api/v1/review/{item['id']}", json={"action": "correct", "value": "2025-13-45"}, headers=H)
    assert r.status_code == 422
    assert client.get("/api/v1/review?status=open", headers=H).json["items"][0]["status"] == "open"


@pytest.mark.parametrize("name,data,status,code", [
    ("notes.txt", b"hello, not an image", 422, "unsupported_image_format"),
    ("broken.png", (SAMPLES / "blank_page.png").read_bytes()[:300], 422, "corrupt_image"),
    ("empty.png", b"", 422, "validation_failed"),
])
def test_bad_files_refused_before_anything_is_stored(client, notice, app_session, name, data, status, code):
    r = _post(client, notice["org_id"], data, name)
    assert r.status_code == status, r.json
    assert r.json["error"] == code
    assert _count(app_session, Upload) == 0
    assert _count(app_session, ReturnPage) == 0


def test_huge_image_refused_from_its_header(client, notice, app_session):
    buf = io.BytesIO()
    Image.new("1", (20000, 20000), 1).save(buf, format="PNG")  # a few KB, 400 MP
    r = _post(client, notice["org_id"], buf.getvalue(), "huge.png")
    assert r.status_code == 422 and r.json["error"] == "image_too_large"
    assert "400000000 pixels" in r.json["message"] and "huge.png" in r.json["message"]
    assert _count(app_session, Upload) == 0


def test_job_killed_mid_way_then_retried_creates_no_duplicates(client, notice, app_session, services, monkeypatch):
    from cases.returns import intake

    data = _tiff("receipt_direct_flatbed200.jpg", "stub_photo.jpg", "foreign_page.png")
    real = intake.record_page
    calls = {"n": 0}

    def dying(session, services_, unit, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("worker killed")  # not an Exception: like a SIGKILL'd worker
        return real(session, services_, unit, **kw)

    monkeypatch.setattr(intake, "record_page", dying)
    r = _post(client, notice["org_id"], data, "stack.tiff")  # Huey logs "did not finish"
    assert r.status_code == 202
    job = client.get(r.json["links"]["job"]).json
    assert job["status"] == "running" and job["done"] == 1 and job["total"] == 3
    upload = app_session.scalars(select(Upload)).one()  # stored before the job ran
    assert services.store.exists(upload.stored_path)
    assert _count(app_session, ReturnPage) == 1
    items_before = _count(app_session, ReviewItem)
    assert items_before > 0
    monkeypatch.setattr(intake, "record_page", real)
    result = intake.process_upload(services, upload.id)
    assert result["pages"] == 3
    app_session.expire_all()
    assert _count(app_session, ReturnPage) == 3
    first = app_session.scalars(select(ReviewItem).where(ReviewItem.page_id == app_session.scalar(
        select(ReturnPage.id).where(ReturnPage.page_index == 0)))).all()
    assert len(first) == items_before  # page 0 not read twice
    # A second full retry changes nothing.
    n_items = _count(app_session, ReviewItem)
    intake.process_upload(services, upload.id)
    app_session.expire_all()
    assert (_count(app_session, ReturnPage), _count(app_session, ReviewItem)) == (3, n_items)
    assert _count(app_session, DocumentReturn) == 1


def test_unidentified_page_listed_and_assigned(client, notice, app_session):
    # A receipt with its QR code cut off, so nothing identifies it.
    img = np.asarray(Image.open(SAMPLES / "receipt_direct_flatbed200.jpg").convert("RGB")).copy()
    img[:330, 1150:] = 255
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", dpi=(200, 200))
    r = _post(client, notice["org_id"], buf.getvalue(), "noqr.png")
    assert r.status_code == 202
    pages = client.get("/api/v1/scans/unidentified", headers=H).json["items"]
    assert len(pages) == 1 and "二维码" in pages[0]["reason"]
    a = client.post(pages[0]["assign_url"], json={"document_id": DOC_ID, "page_no": 5}, headers=H)
    assert a.status_code == 200, a.json
    assert (a.json["status"], a.json["document_id"], a.json["page_no"]) == ("assigned", DOC_ID, 5)
    assert client.get("/api/v1/scans/unidentified", headers=H).json["items"] == []
    row = app_session.get(ReturnPage, a.json["id"])
    assert row.readings["service_method"]["value"] == "direct"


@pytest.mark.slow
def test_real_engines_end_to_end(client, notice, services, app_session):
    services.extra.pop("ocr_engine")
    services.extra.pop("ocr_fallback")
    r = _post(client, notice["org_id"], (SAMPLES / "receipt_direct_flatbed200.jpg").read_bytes(), "r.jpg")
    out = client.get(f"/api/v1/scans/{r.json['upload_id']}", headers=H).json
    fields = out["pages"][0]["fields"]
    assert fields["service_time"]["value"] == "2025-09-29T10:30:00"
    assert fields["recipient_signed_on"]["value"] == "2025-09-29"
    assert fields["doc_number"]["status"] == "match"
    items = client.get("/api/v1/review", headers=H).json["items"]
    # Only what DOMAIN §5.6 3(b) makes a person confirm: signatures, service date, time and method.
    assert sorted(it["field_path"] for it in items) == ["recipient_signature", "recipient_signed_on",
                                                        "server_signature_1", "service_method", "service_time"]
    for it in items:
        client.post(f"/api/v1/review/{it['id']}", json={"action": "accept"}, headers=H)
    app_session.expire_all()
    ev = app_session.scalars(select(CaseEvent).where(CaseEvent.kind == "service")).one()
    assert ev.data["served_on"] == "2025-09-29" and ev.data["method"] == "direct"
    assert dt.date.fromisoformat(ev.data["served_on"]) >= dt.date(2025, 9, 26)


def test_uploads_endpoint_routes_images_to_the_scan_pipeline(client, notice, app_session):
    data = (SAMPLES / "receipt_direct_flatbed200.jpg").read_bytes()
    r = client.post("/api/v1/uploads", data={"org_id": str(notice["org_id"]), "file": (io.BytesIO(data), "r.jpg")},
                    headers=H, content_type="multipart/form-data")
    assert r.status_code == 202, r.json
    assert r.json["status"] == "queued" and r.json["job_id"]
    assert client.get(f"/api/v1/jobs/{r.json['job_id']}").json["status"] == "done"
    pages = app_session.scalars(select(ReturnPage)).all()
    assert [(p.status, p.document_id) for p in pages] == [("read", DOC_ID)]


def test_printed_value_changed_by_one_character_goes_to_review_as_tamper(client, notice, app_session):
    from parsers.scan import ReferencePages
    from tests.samples.scans.make_scans import tamper_last_char

    gray = ReferencePages((SAMPLES / "issued.pdf").read_bytes()).page(5)
    geo = json.loads((SAMPLES / "geometry.json").read_text(encoding="utf-8"))
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    forged = tamper_last_char(rgb, geo["pages"][4]["fields"]["doc_number"]["bbox"], 200.0, "3")
    buf = io.BytesIO()
    Image.fromarray(forged).save(buf, format="PNG", dpi=(200, 200))
    r = _post(client, notice["org_id"], buf.getvalue(), "forged.png")
    assert r.status_code == 202, r.json
    items = client.get(f"/api/v1/review?org_id={notice['org_id']}", headers=H).json["items"]
    by_path = {it["field_path"]: it for it in items}
    assert by_path["doc_number"]["kind"] == "tamper"
    # The untouched printed values on the same page still match the issued PDF.
    assert not {"receipt_number", "issuer_name"} & set(by_path)


def test_worker_warmup_loads_the_configured_reader_once(notice, services):
    """The worker's warm-up (cases.returns.intake) loads the engines the reading settings name and
    runs one recognition on each, and loads the pinyin tables and digit references, before any job."""
    import sys

    from cases.returns.intake import warm_scan_reader
    from cases.store import jobs

    engine = FakeOcrEngine(func=lambda crop: OcrText("2026", 0.9))
    services.extra["ocr_engine"] = engine
    took = jobs.warm_up(["scan_reader"])
    assert list(took) == ["scan_reader"]
    assert len(engine.calls) == 1 and engine.calls[0].shape == (40, 160, 3)
    assert int((engine.calls[0] < 128).sum()) > 100  # a written line, not a blank image
    parts = warm_scan_reader()
    assert set(parts) == {"engines", "ocr fake", "pinyin", "digits", "qr"}
    assert "pypinyin" in sys.modules and len(engine.calls) == 2
