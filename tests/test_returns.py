"""One returns pipeline: every kind of return of the same filled 送达回证 — a DOCX filled in Word,
that DOCX re-saved by LibreOffice, the PDF exported from it, a flatbed scan (PNG), a phone photo
(JPEG) and a mixed multi-page TIFF — is stored, read, queued for review and applied the same way,
and sets the same service date and return deadline on the case. A printed value changed on any
kind of return lands in the review queue as possible tampering.

The notice is rendered once per module with the real renderer (templates, warm LibreOffice, QR
stamper, geometry recorder) and inserted as an issued document of a demo case in each test's
fresh database. Scans and photos are read with the real OCR engines, so these tests are slow.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from cases.demo import typed_receipt
from cases.engine.models import Deadline
from cases.returns.models import DocumentReturn, ReturnPage, ReviewItem
from cases.store.models import Case, CaseEvent, Document, Upload, to_json
from tests._render_helpers import SECRET, TEMPLATES, libreoffice_resave, to_pdf
from tests.samples.scans import make_scans as mk

pytestmark = pytest.mark.slow

DOC_ID = "RETURNTEST01"
SAMPLES = Path(__file__).parent / "samples" / "scans"
REVIEWER = "township-reviewer"
SERVED = dt.date(2025, 9, 29)
# The filled 回证: served directly on the guardian at home on 29 September 2025, 10:30.
TYPED = {"送达地点": "城关镇东关村三组18号", "送达时间": "2025年9月29日10时30分",
         "送达方式": "☑直接送达 ☐留置送达 ☐委托送达 ☐邮寄送达 ☐电子送达", "受送达人签名(捺印)": "王建国",
         "签收日期": "2025年9月29日", "送达人签名(一)": "李丽华"}
HAND = {"service_place": "城关镇东关村三组18号", "service_time": "2025年9月29日10时30分"}
BOXED = {"recipient_signed_on": "20250929"}
TICKS = {"service_method": [0]}
SIGNED = ["recipient_signature", "server_signature_1"]
KINDS = ("docx", "docx_resaved", "pdf", "scan_png", "photo", "mixed_tiff")
SCANNED = ("scan_png", "photo", "mixed_tiff")


@functools.cache
def issued() -> dict:
    """The notice as issued: DOCX, stamped PDF, geometry, cleaned snapshot, the 回证 page."""
    from forms import geometry, render, stamp
    from forms import identity as ident
    from forms.registry import get_spec
    from parsers.scan import tick_boxes_from_pdf
    from tests.samples_data import sample_input

    spec = get_spec("guardian_notice")
    var = spec.variant("xianqi")
    data = sample_input("guardian_notice", "xianqi", hand=False)
    data["issue_date"] = dt.date(2025, 9, 26)
    cleaned = spec.validate(data, var)
    identity = ident.Identity(DOC_ID, spec.code, var.code, spec.version)
    word = render.render_docx(spec, var, cleaned, identity, templates_dir=TEMPLATES, extra={"doc": {
        "number": cleaned["doc_number"], "id": DOC_ID, "date": "2025年9月26日"}})
    pdf, pages = stamp.stamp_pdf(to_pdf([word])[0], identity, SECRET)
    geo = geometry.record_geometry(pdf, spec, var)
    receipt = next(i + 1 for i, p in enumerate(geo["pages"]) if "service_time" in p["fields"])
    return {"docx": word, "pdf": pdf, "pages": pages, "geometry": geo, "data": to_json(cleaned),
            "receipt_page": receipt, "ticks": tick_boxes_from_pdf(pdf, geo)}


@functools.cache
def filled_docx(changed: bool = False) -> bytes:
    values = dict(TYPED)
    if changed:  # the printed number of the notice served, altered by hand in Word
        values["送达文书文号"] = issued()["data"]["doc_number"].replace("12号", "13号")
    return typed_receipt(issued()["docx"], values)


@functools.cache
def receipt_scan(changed: bool = False) -> np.ndarray:
    """The 回证 page printed, filled in by hand (ballpoint, ticks, boxed date, signatures) and
    scanned flatbed at 200 dpi; ``changed``: one printed digit of the notice number altered."""
    doc = issued()
    no = doc["receipt_page"]
    page_geo = doc["geometry"]["pages"][no - 1]
    pixels = mk.fill(mk.rasterise(doc["pdf"], no, 200), page_geo, 200, hand=HAND, ticks=TICKS,
                     tick_boxes=doc["ticks"][no], boxed=BOXED, signatures=SIGNED)
    if changed:
        pixels = mk.tamper_last_char(pixels, page_geo["fields"]["doc_number"]["bbox"], 200.0, "8")
    return mk.rotate(pixels, 1.0)


def _tiff(frames: list[np.ndarray]) -> bytes:
    imgs = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    imgs[0].save(buf, format="TIFF", save_all=True, append_images=imgs[1:], compression="tiff_deflate",
                 dpi=(200, 200))
    return buf.getvalue()


def returned_file(kind: str, *, changed: bool = False) -> tuple[str, bytes]:
    """(file name, bytes) of the filled 回证 returned as ``kind``."""
    if kind == "docx":
        return "回证.docx", filled_docx(changed)
    if kind == "docx_resaved":
        return "回证-另存.docx", libreoffice_resave([filled_docx(changed)])[0]
    if kind == "pdf":
        return "回证.pdf", to_pdf([filled_docx(changed)])[0]
    page = receipt_scan(changed)
    if kind == "scan_png":
        return "回证.png", mk.encode(page, "PNG", 200)
    if kind == "photo":
        return "IMG_0412.jpg", mk.encode(mk.photo(page, strength=0.03), "JPEG", None, quality=85)
    assert kind == "mixed_tiff"
    foreign = np.asarray(Image.open(SAMPLES / "foreign_page.png").convert("RGB"))
    blank = np.asarray(Image.open(SAMPLES / "blank_page.png").convert("RGB"))
    upside_down = np.ascontiguousarray(np.rot90(page, 2))
    return "一摞.tif", _tiff([foreign, upside_down, blank])


@pytest.fixture
def notice(app, app_session, services, demo):
    """The notice issued to the guardian of a demo case (files in the store, geometry recorded)."""
    doc = issued()
    case = app_session.scalars(select(Case).order_by(Case.id)).first()
    pdf_digest, _ = services.store.put_bytes(doc["pdf"], ".pdf")
    docx_digest, _ = services.store.put_bytes(doc["docx"], ".docx")
    app_session.add(Document(id=DOC_ID, org_id=case.org_id, case_id=case.id, form="guardian_notice",
                             variant="xianqi", family="guardian_notice:限返", template_version="2026.1", year=2025,
                             seq=12, number_text=doc["data"]["doc_number"], status="issued", data=doc["data"],
                             pdf_sha256=pdf_digest, docx_sha256=docx_digest, pages=doc["pages"],
                             geometry=doc["geometry"]))
    app_session.commit()
    return {"case_id": case.id, "org_id": case.org_id, "township_id": case.township_org_id}


@pytest.fixture
def client(app, make_user, notice):
    """The township's staff member who uploads returned copies and decides the review items."""
    from tests.conftest import client_for

    return client_for(app, make_user(REVIEWER, ["township"], org_id=notice["township_id"])[1])


def _upload(client, org_id: int, kind: str, *, changed: bool = False):
    name, data = returned_file(kind, changed=changed)
    r = client.post("/api/v1/uploads", data={"org_id": str(org_id), "file": (io.BytesIO(data), name)},
                    content_type="multipart/form-data")
    assert r.status_code in (201, 202), r.json
    if r.status_code == 202:
        assert client.get(r.json["links"]["job"]).json["status"] == "done"
    return r


def _count(session, model, *where) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where))


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_of_filled_receipt_sets_the_same_service_and_deadline(client, notice, app_session, kind):
    r = _upload(client, notice["org_id"], kind)
    upload_id = r.json["upload_id"]
    stored = app_session.get(Upload, upload_id)
    assert stored.sha256 and stored.original_filename == returned_file(kind)[0]
    # Nothing reaches the case before a person confirms the service date, method and signatures.
    assert _count(app_session, CaseEvent, CaseEvent.kind == "service") == 0
    items = client.get(f"/api/v1/review?org_id={notice['org_id']}").json["items"]
    by_path = {it["field_path"]: it for it in items}
    assert {"service_time", "service_method", "recipient_signature"} <= set(by_path), sorted(by_path)
    # Everything is a plain confirmation, except that the boxed 签收日期 (printed-font digits sitting
    # on the boxes' edges) may be sent as doubtful when the per-box digit readers do not vouch for
    # a box: then its reason names the box, and the value proposed is still the one written.
    doubtful = {it["field_path"]: it for it in items if it["kind"] != "confirm"}
    assert set(doubtful) <= {"recipient_signed_on"}, [(it["field_path"], it["kind"], it["reason"]) for it in items]
    for it in doubtful.values():
        assert it["kind"] == "low_confidence" and re.search(r"第[\d、]+个数字", it["reason"]), it
        assert it["proposed"] == "2025-09-29", it
    assert by_path["service_method"]["proposed"] == "direct"
    assert by_path["service_time"]["proposed"] == "2025-09-29T10:30:00"
    for it in items:
        d = client.post(f"/api/v1/review/{it['id']}", json={"action": "accept"})
        assert d.status_code == 200 and d.json["decided_by"] == REVIEWER
    app_session.expire_all()
    ret = app_session.scalar(select(DocumentReturn).where(DocumentReturn.document_id == DOC_ID))
    assert (ret.status, ret.complete, ret.missing, ret.input_kind) == (
        "applied", True, [], "scan" if kind in SCANNED else kind.split("_")[0])
    [event] = app_session.scalars(select(CaseEvent).where(CaseEvent.case_id == notice["case_id"],
                                                          CaseEvent.kind == "service")).all()
    assert event.data == {"document_id": DOC_ID, "served_on": SERVED.isoformat(), "method": "direct",
                          "complete": True}
    deadline = app_session.scalars(select(Deadline).where(Deadline.case_id == notice["case_id"],
                                                          Deadline.timer == "return_deadline")).one()
    # 5 working days from Monday 29 September 2025 across the National Day holiday (1–8 October;
    # Saturday 11 October a make-up working day): 30 Sep, 9, 10, 11, 13 October.
    assert (deadline.start_on, deadline.due_on) == (SERVED, dt.date(2025, 10, 13))
    # The returned copy counts, and the document's history shows it like any other.
    assert client.get(f"/api/v1/returns?form=guardian_notice&issuer_id={notice['org_id']}").json["returned"] == 1
    history = client.get(f"/api/v1/documents/{DOC_ID}/history").json
    assert [(x["upload_id"], x["status"], x["complete"]) for x in history["returns"]] == [(upload_id, "applied", True)]


@pytest.mark.parametrize("kind", KINDS)
def test_a_changed_printed_value_lands_in_the_review_queue_from_every_kind(client, notice, app_session, kind):
    r = _upload(client, notice["org_id"], kind, changed=True)
    items = client.get(f"/api/v1/review?org_id={notice['org_id']}").json["items"]
    tamper = [it for it in items if it["kind"] == "tamper"]
    assert [it["field_path"] for it in tamper] == ["doc_number"], [(i["field_path"], i["kind"]) for i in items]
    # The printed value is never replaced by what was read: the issued number stays proposed, and
    # the person sees what the returned copy says.
    number = issued()["data"]["doc_number"]
    assert tamper[0]["proposed"] == number
    if kind in SCANNED:  # its last character (号) inked over as 8
        assert tamper[0]["text"] != number and "可能被改动" in tamper[0]["reason"]
    else:
        assert number.replace("12号", "13号") in tamper[0]["reason"]
    out = client.get(f"/api/v1/uploads/{r.json['upload_id']}").json
    assert out["documents"][0]["status"] == "review" and out["documents"][0]["open_review_items"] >= 1
    # Even with everything else confirmed, the case waits for the person who looks at the change.
    for it in items:
        if it["kind"] != "tamper":
            client.post(f"/api/v1/review/{it['id']}", json={"action": "accept"})
    app_session.expire_all()
    assert _count(app_session, CaseEvent, CaseEvent.kind == "service") == 0
    assert _count(app_session, ReviewItem, ReviewItem.status == "open") == 1
    pages = app_session.scalars(select(ReturnPage).where(ReturnPage.upload_id == r.json["upload_id"])).all()
    assert any(p.document_id == DOC_ID and p.status == "read" for p in pages)


def test_history_and_upload_outcome_name_the_kind(client, notice, app_session):
    first = _upload(client, notice["org_id"], "docx")
    second = _upload(client, notice["org_id"], "scan_png")
    history = client.get(f"/api/v1/documents/{DOC_ID}/history").json
    assert [(x["upload_id"], x["input_kind"]) for x in history["returns"]] == [
        (first.json["upload_id"], "docx"), (second.json["upload_id"], "scan")]
    out = client.get(f"/api/v1/uploads/{first.json['upload_id']}").json
    assert [(p["index"], p["input_kind"], p["method"], p["document_id"]) for p in out["pages"]] == [
        (0, "docx", "metadata", DOC_ID)]  # a DOCX carries its identity in its properties, not a QR code
    assert json.loads(json.dumps(out))["documents"][0]["input_kind"] == "docx"
