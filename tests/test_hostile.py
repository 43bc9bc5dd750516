"""The hostile-input corpus (``tests/hostile/make.py``) uploaded through the API by a logged-in school
clerk (issue 14 item 7): each file gets its expected answer or outcome, a refused file leaves
nothing behind (no upload row, no job, no stored or staged file), a bomb is refused in under 2 s of
CPU with the process growing less than 100 MB, and a forged or transplanted QR code changes
nothing of the case. Runs on SQLite and (``-m db``) PostgreSQL."""

from __future__ import annotations

import functools
import io
import json
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cases.returns.models import DocumentReturn, ReturnPage, ReviewItem
from cases.store.models import Document, Job, Upload
from tests.conftest import client_for
from tests.conftest_scans import DOC_ID
from tests.hostile import make

MIB = 1024 * 1024

# name -> (HTTP status, error code, the limit named in details / text in the message)
REFUSED = {
    "zip_bomb.docx": (422, "limit_exceeded", "zip_xml_bytes"),
    "side_member_bomb.docx": (422, "limit_exceeded", "zip_member_bytes"),
    "lying_header.docx": (422, "unreadable_document", "Bad CRC-32"),
    "xxe.docx": (422, "limit_exceeded", "xml_dtd"),
    "billion_laughs.docx": (422, "limit_exceeded", "xml_dtd"),
    "many_members.docx": (422, "limit_exceeded", "zip_members"),
    "truncated.pdf": (422, "unreadable_document", "已损坏"),
    "encrypted.pdf": (422, "unreadable_document", "密码"),
    "owner_encrypted.pdf": (422, "unsupported_input", "已加密"),
    "pages_5000.pdf": (422, "limit_exceeded", "pages"),
    "stream_bomb.pdf": (422, "limit_exceeded", "pdf_stream_bytes"),
    "huge_30000.png": (422, "image_too_large", "pixels"),
    "huge_header_20000.jpg": (422, "image_too_large", "pixels"),
    "frames_2000.tif": (422, "limit_exceeded", "pages"),
}
BOMBS = {"zip_bomb.docx", "side_member_bomb.docx", "lying_header.docx", "billion_laughs.docx", "stream_bomb.pdf",
         "huge_30000.png", "huge_header_20000.jpg", "frames_2000.tif", "pages_5000.pdf", "many_members.docx"}


@functools.cache
def corpus(name: str) -> bytes:
    return make.CORPUS[name]()


@pytest.fixture
def clerk(app, make_user, notice):
    _uid, token = make_user("clerk", ["school_clerk"], org_id=notice["org_id"])
    return client_for(app, token)


def _state(session, services) -> dict:
    session.expire_all()
    count = {m.__name__: session.scalar(select(func.count()).select_from(m))
             for m in (Upload, Job, ReturnPage, ReviewItem, DocumentReturn)}
    root = services.store.root
    count["files"] = sum(1 for p in (root / "objects").rglob("*") if p.is_file()) if (root / "objects").exists() else 0
    staging = root / "staging"
    count["staged"] = sum(1 for _ in staging.iterdir()) if staging.exists() else 0
    work = services.output_dir / "staging"
    count["work"] = sum(1 for _ in work.iterdir()) if work.exists() else 0
    return count


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(field)


def _upload(client, org_id, name, data, **form):
    return client.post("/api/v1/uploads", data={"org_id": str(org_id), "file": (io.BytesIO(data), name), **form},
                       content_type="multipart/form-data")


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_hostile_file_is_refused_naming_the_limit_and_nothing_is_kept(clerk, app_session, services, notice, name):
    status, code, named = REFUSED[name]
    data = corpus(name)
    before = _state(app_session, services)
    try:  # the peak RSS is reset so that VmHWM measures this request alone (Linux clear_refs)
        Path("/proc/self/clear_refs").write_text("5")
        resettable = True
    except OSError:
        resettable = False
    rss0 = _rss_kb("VmRSS")
    cpu0, wall0 = time.process_time(), time.monotonic()
    r = _upload(clerk, notice["org_id"], name, data)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    grown_mb = (_rss_kb("VmHWM") - rss0) / 1024 if resettable else (_rss_kb("VmRSS") - rss0) / 1024
    body = r.get_json()
    print(f"\n{name}: {len(data):,} bytes -> {r.status_code} {body['error']}, {cpu:.2f} s CPU, {wall:.2f} s wall, "
          f"peak +{grown_mb:.0f} MB")
    assert (r.status_code, body["error"]) == (status, code), body
    assert name in body["message"]
    assert named in json.dumps(body, ensure_ascii=False), body
    if code in ("limit_exceeded", "image_too_large"):
        assert body["details"]["limit"] == named and body["fields"]["file"].startswith(name)
    assert _state(app_session, services) == before  # no row, no job, no stored or staged file
    if name in BOMBS:
        assert cpu < 2.0, f"{name}: {cpu:.2f} s CPU ({wall:.2f} s wall)"
        assert grown_mb < 100, f"{name}: grew {grown_mb:.0f} MB"


@pytest.mark.parametrize("name,note", [("x" * 3000 + ".docx", "截断"), ("名\u202e\x01称.docx", "控制字符")])
def test_long_and_odd_file_names_are_kept_safely(clerk, app_session, services, notice, name, note):
    r = _upload(clerk, notice["org_id"], name, make.plain_docx(), attach="1")
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body["status"] == "attached" and note in body["filename_note"]
    upload = app_session.get(Upload, body["upload_id"])
    assert upload.original_filename == body["filename"] and len(upload.original_filename) <= 1024
    assert services.store.exists(upload.stored_path)


def _scan(client, org_id, name):
    r = client.post("/api/v1/scans", data={"org_id": str(org_id), "file": (io.BytesIO(corpus(name)), name)},
                    content_type="multipart/form-data")
    assert r.status_code == 202, r.get_json()
    return r.get_json()


def _case_untouched(app_session, notice) -> None:
    app_session.expire_all()
    doc = app_session.get(Document, DOC_ID)
    assert doc.status == "issued"
    returns = app_session.scalars(select(DocumentReturn).where(DocumentReturn.document_id == DOC_ID)).all()
    assert all(r.status != "applied" for r in returns if hasattr(r, "status"))


def test_forged_qr_is_not_accepted(clerk, app_session, services, notice):
    out = _scan(clerk, notice["org_id"], "forged_qr.png")
    pages = app_session.scalars(select(ReturnPage).where(ReturnPage.upload_id == out["upload_id"])).all()
    assert [(p.status, p.document_id) for p in pages] == [("unidentified", None)]
    assert "校验" in pages[0].reason
    assert app_session.scalar(select(func.count()).select_from(ReviewItem)) == 0
    _case_untouched(app_session, notice)


def test_qr_copied_onto_another_documents_page_is_not_taken_for_that_page(clerk, app_session, services, notice):
    out = _scan(clerk, notice["org_id"], "copied_qr.png")
    app_session.expire_all()
    pages = app_session.scalars(select(ReturnPage).where(ReturnPage.upload_id == out["upload_id"])).all()
    assert len(pages) == 1
    page = pages[0]
    items = app_session.scalars(select(ReviewItem).where(ReviewItem.upload_id == out["upload_id"])).all()
    # Either the page is not accepted as the 回证 at all, or what is printed on it does not match
    # what was issued and a person must look at it: never read as a clean returned 回证.
    assert page.status != "read" or any(i.kind == "tamper" for i in items), (page.status, page.reason,
                                                                             [i.kind for i in items])
    _case_untouched(app_session, notice)
