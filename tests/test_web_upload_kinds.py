"""Web upload of every supported file type answers a page, never a 500 or JSON: the same filled
送达回证 as a DOCX, a PDF, a scan, a phone photo and a mixed TIFF stack, and files that are refused
(a text file, an empty file, a damaged PNG) — each named with its reason. Uses the real readers."""

from __future__ import annotations

import io
import re

import pytest

from tests.test_returns import notice, returned_file  # noqa: F401  (``notice`` is a fixture)

pytestmark = pytest.mark.slow
HTML = {"Accept": "text/html"}


def _post(client, org_id, files):
    return client.post("/upload", data={"org_id": str(org_id), "file": [(io.BytesIO(d), n) for n, d in files]},
                       content_type="multipart/form-data", headers=HTML)


@pytest.mark.parametrize("kind", ["docx", "pdf", "scan_png", "photo", "mixed_tiff"])
def test_every_supported_kind_gives_a_result_page(client, notice, kind):  # noqa: F811
    name, data = returned_file(kind)
    r = _post(client, notice["org_id"], [(name, data)])
    assert r.status_code == 200 and r.mimetype == "text/html", re.sub(r"<[^>]+>", " ", r.get_data(as_text=True))[-800:]
    html = r.get_data(as_text=True)
    upload_id = int(re.search(r'id="upload-(\d+)"', html).group(1))
    page = client.get(f"/uploads/{upload_id}", headers=HTML)
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "每页读出的内容" in text and "城政限返〔2025〕12号" in text and "送达地点" in text
    assert not re.search(r">\s*(None|True|False)\s*<", text)
    frag = client.get(f"/uploads/{upload_id}/progress", headers=HTML).get_data(as_text=True)
    assert "已识别" in frag and "项待复核" in frag


def test_refused_files_are_named_with_the_reason_beside_the_others(client, notice):  # noqa: F811
    png = returned_file("scan_png")[1]
    r = _post(client, notice["org_id"], [("说明.txt", "不是表单".encode()), ("空.png", b""),
                                         ("坏.png", png[:400]), ("回证.png", png)])
    assert r.status_code == 200 and r.mimetype == "text/html"
    text = r.get_data(as_text=True)
    assert text.count("未能接收") == 3
    assert "说明.txt" in text and "空.png" in text and "是空的" in text and "坏.png" in text
    assert 'id="upload-' in text  # the good file went on
    assert "{" not in re.sub(r"<script.*?</script>|hx-headers='[^']*'", "", text, flags=re.S)  # no JSON


def test_only_refused_files_answer_422_with_a_page(client, notice):  # noqa: F811
    r = _post(client, notice["org_id"], [("说明.txt", b"hello")])
    assert r.status_code == 422 and r.mimetype == "text/html" and "说明.txt" in r.get_data(as_text=True)
    r = client.post("/upload", data={"org_id": str(notice["org_id"])}, headers=HTML)
    assert r.status_code == 422 and "请选择要上传的文件" in r.get_data(as_text=True)


def test_an_unidentified_page_is_shown_and_assigned_to_a_document_found_by_its_number(client, notice,  # noqa: F811
                                                                                      app_session):
    from sqlalchemy import select

    from cases.returns.models import ReturnPage

    name, data = returned_file("mixed_tiff")
    _post(client, notice["org_id"], [(name, data)])
    pages = app_session.scalars(select(ReturnPage).where(ReturnPage.status == "unidentified")).all()
    assert pages, "the foreign page of the stack is unidentified"
    text = client.get("/review/unidentified?q=城政限返", headers=HTML).get_data(as_text=True)
    assert "未识别的页" in text and "城政限返〔2025〕12号" in text and f"/review/pages/{pages[0].id}.png" in text
    img = client.get(f"/review/pages/{pages[0].id}.png")
    assert img.status_code == 200 and img.data.startswith(b"\x89PNG")
    r = client.post(f"/review/pages/{pages[0].id}/assign", data={"document_id": "", "page_no": "1"}, headers=HTML)
    assert r.status_code == 422 and "请选择文书并填写页码" in r.get_data(as_text=True)


def test_review_decisions_through_htmx_answer_the_next_item(client, notice, app_session):  # noqa: F811
    from sqlalchemy import select

    from cases.returns.models import ReviewItem

    name, data = returned_file("scan_png")
    _post(client, notice["org_id"], [(name, data)])
    items = app_session.scalars(select(ReviewItem).where(ReviewItem.status == "open").order_by(ReviewItem.id)).all()
    assert len(items) >= 2
    hx = {**HTML, "HX-Request": "true"}
    page = client.get("/review", headers=HTML).get_data(as_text=True)
    assert f'/review/{items[0].id}"' in page and f'>{len(items)}</b>' in page
    place = next((it for it in items if it.field_path == "service_place"), None)
    target = place or items[0]
    value = "东河镇杏林村6号" if place else None
    r = client.post(f"/review/{target.id}", data={"action": "correct", "value": value or ""}, headers=hx)
    assert r.status_code == 200
    frag = r.get_data(as_text=True)
    assert frag.lstrip().startswith('<div id="review-item"') and "<html" not in frag  # a fragment, no reload
    assert "已改正" in frag and f">{len(items) - 1}</b>" in frag
    app_session.expire_all()
    decided = app_session.get(ReviewItem, target.id)
    assert decided.status == "corrected" and decided.decision["action"] == "correct"
    if place:
        assert decided.decision["value"] == value
    # a decided item cannot be decided again: the answer names why, as a fragment
    r = client.post(f"/review/{target.id}", data={"action": "accept"}, headers=hx)
    text = r.get_data(as_text=True)
    assert r.status_code == 409 and "该项已由" in text and "已更正" in text and "corrected" not in text


def test_damaged_files_are_refused_in_chinese_only(client, notice):  # noqa: F811
    """A damaged DOCX, PDF, PNG and TIFF are named with the reason in Chinese; the library's own
    (English) text stays out of the page (the API keeps it as ``details.cause``)."""
    from tests.conftest_browser import english_words

    docx = returned_file("docx")[1]
    pdf = returned_file("pdf")[1]
    tiff = returned_file("mixed_tiff")[1]
    png = returned_file("scan_png")[1]
    files = [("坏.docx", docx[: len(docx) // 2]), ("坏.pdf", pdf[:300]), ("坏.png", png[:400]),
             ("坏.tiff", tiff[:500])]
    r = _post(client, notice["org_id"], files)
    assert r.status_code == 422 and r.mimetype == "text/html"
    html = r.get_data(as_text=True)
    body = re.sub(r"<script.*?</script>|<style.*?</style>|<[^>]+>", " ", html, flags=re.S)
    assert body.count("未能接收") == 4 and "已损坏" in body
    assert english_words(body, {"root"}) == [], body  # root: the test account in the header
    api = client.post("/api/v1/uploads", data={"org_id": str(notice["org_id"]),
                                               "file": (io.BytesIO(docx[: len(docx) // 2]), "坏.docx")},
                      content_type="multipart/form-data")
    assert api.status_code == 422
    body = api.get_json()
    assert body["message"] == "文件“坏.docx”：压缩包已损坏，无法读取" and body["details"]["cause"]
