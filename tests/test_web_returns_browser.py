"""Real Chromium: returned copies and the review queue (issue 11 items 4–5). A township clerk
uploads a scan of a filled 送达回证 (the project's synthetic sample, read by the real OCR), follows
its progress, sees per page what was read, clears the review queue with the keyboard only (the
next item arrives without reloading the page), and the case then shows the service date and the
return deadline. A file that is none of our forms gets a readable refusal naming it."""

from __future__ import annotations

import re
import time

import pytest
from sqlalchemy import select

from cases.returns.models import ReviewItem
from cases.store.models import Case, Document, Org
from tests.test_returns import DOC_ID

pytestmark = pytest.mark.slow
FILE_EXTENSIONS = {"png", "txt"}  # the names of the files uploaded


@pytest.fixture(scope="module")
def notice(live_server):
    """The 限期返校通知书 of tests/test_returns.py, issued for a case of 东河镇 in the live database."""
    from tests.test_returns import issued

    doc = issued()
    services = live_server.app.extensions["baoxue"]
    s = live_server.session()
    try:
        township = s.scalar(select(Org).where(Org.kind == "township", Org.name == "东河镇"))
        case = s.scalar(select(Case).where(Case.township_org_id == township.id, Case.state == "SUSPECTED"))
        pdf_digest, _ = services.store.put_bytes(doc["pdf"], ".pdf")
        docx_digest, _ = services.store.put_bytes(doc["docx"], ".docx")
        s.add(Document(id=DOC_ID, org_id=case.org_id, case_id=case.id, form="guardian_notice", variant="xianqi",
                       family="guardian_notice:限返", template_version="2026.1", year=2025, seq=12,
                       number_text=doc["data"]["doc_number"], status="issued", data=doc["data"],
                       pdf_sha256=pdf_digest, docx_sha256=docx_digest, pages=doc["pages"], geometry=doc["geometry"]))
        s.commit()
        return {"case_id": case.id, "township_id": township.id, "number": doc["data"]["doc_number"]}
    finally:
        s.close()


def _scan(tmp_path) -> str:
    from tests.test_returns import returned_file

    name, data = returned_file("scan_png")
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_township_clerk_uploads_a_receipt_scan_and_clears_the_review_queue_by_keyboard(web, live_server, notice,
                                                                                        tmp_path):
    page = web.login("demo.township")
    web.visit(page, "/upload", "upload-form")
    page.select_option("#org_id", str(notice["township_id"]))
    bad = tmp_path / "说明.txt"
    bad.write_text("不是表单", encoding="utf-8")
    page.set_input_files("#file", [_scan(tmp_path), str(bad)])
    page.click("#upload-button")
    # per file: the refusal with its name and reason; the scan read with its progress, then per page
    page.wait_for_selector("text=未能接收", timeout=60_000)
    page.wait_for_selector(".upload-row .result", timeout=180_000)
    text = web.check(page, "upload-done", allow=FILE_EXTENSIONS)
    assert "说明.txt" in text and "未能接收" in text
    assert notice["number"] in text and "限期返校通知书" in text and "项待复核" in text
    page.click("text=查看每页读出的内容")
    page.wait_for_load_state()
    text = web.check(page, "upload-pages", allow=FILE_EXTENSIONS)
    assert "每页读出的内容" in text and "送达地点" in text and "待复核" in text
    # the review queue, by keyboard only
    page.goto(web.url("/review"))
    text = web.check(page, "review-first")
    remaining = int(page.inner_text("#remaining"))
    assert remaining >= 1 and "签发时的值" in text and "识别的值" in text
    crops = []  # per item of the scan: the crop of the page shown beside the values
    page.evaluate("window.__marker = 'same page'")  # survives only if the page is not reloaded
    started = time.monotonic()
    decided = 0
    corrected = None
    while page.locator("#remaining").count():
        before = page.inner_text("#review-item")
        if notice["number"] in before:
            crops.append(page.locator("#review-item img").count())
        if page.inner_text("#field-label") == "送达方式" and corrected is None and notice["number"] in before:
            # a choice field corrected by keyboard: C focuses the list, arrows choose, Enter sends
            assert page.input_value("#value") == "direct"
            page.keyboard.press("c")
            assert page.evaluate("document.activeElement.id") == "value"
            for _ in range(3):
                page.keyboard.press("ArrowDown")
            corrected = page.input_value("#value")
            assert corrected == "post"
            page.keyboard.press("Enter")
        else:
            page.keyboard.press("a")
        page.wait_for_function("b => !document.querySelector('#review-item') || "
                               "document.querySelector('#review-item').innerText !== b", arg=before)
        page.wait_for_function("!document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')")
        decided += 1
        if decided == 1:
            web.check(page, "review-after-first")
        assert decided <= remaining + 1
    per_minute = decided / max(time.monotonic() - started, 1e-3) * 60
    assert page.evaluate("window.__marker") == "same page"
    assert crops and crops[0] >= 1, crops
    text = web.check(page, "review-empty")
    assert "没有待复核的项目" in text and decided == remaining
    print(f"review by keyboard: {decided} items in {time.monotonic() - started:.1f} s = {per_minute:.0f}/min")
    assert per_minute >= 6, f"{per_minute:.1f} decisions per minute"
    s = live_server.session()
    try:
        items = s.scalars(select(ReviewItem).where(ReviewItem.document_id == DOC_ID)).all()
        assert items and all(it.decided_by == "demo.township" for it in items)
        method = [it for it in items if it.field_path == "service_method"]
        assert corrected == "post"
        assert [(it.status, (it.decision or {}).get("value")) for it in method] == [("corrected", "post")]
        assert all(it.status == "accepted" for it in items if it.field_path != "service_method")
    finally:
        s.close()
    # the case shows the service date and the return deadline
    text = web.visit(page, f"/cases/{notice['case_id']}", "case-served")
    assert re.search(r"通知书送达日期：\s*2025年9月29日", text), text[:1500]
    assert "邮寄送达" in text  # the corrected method
    assert "限期返校" in text and "2025年10月" in text
