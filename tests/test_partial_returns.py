"""A return is complete only when every page the form returns has come back (DOMAIN §5.6): a scan
of page 1 alone of a 2-page 报告单 is partial (shown “已收回第1页，共2页，缺第2页”, nothing applied
to the case, not counted as returned); the upload that brings page 2 later completes it and the
case effect fires once. Readings are stored as a parser writes them, on a real database."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import select

from cases.returns.apply import expected_pages, finish_document
from cases.returns.models import ReturnPage, ReviewItem
from cases.returns.queries import document_history, returned_count, upload_outcome
from cases.store.models import Case, CaseEvent, Document, Upload
from forms.registry import get_spec
from web.messages import return_pages

REPORT_ID = "PARTIALREPT1"
USER = "township-reviewer"
SIGNED = {"teacher_signature": True, "principal_signature": True, "school_seal": True}
_n = itertools.count(1)


def _reading(value) -> dict:
    return {"value": value, "confidence": 0.99, "needs_review": False, "status": "ok", "origin": "hand"}


def _scanned(session, doc: Document, pages: dict[int, dict]) -> int:
    """An upload of scanned pages of ``doc`` (page number -> values read on it); the upload id."""
    n = next(_n)
    up = Upload(sha256=f"{n:064x}", original_filename=f"scan-{n}.png", size=1, stored_path=f"x/{n}",
                org_id=doc.org_id, status="parsed")
    session.add(up)
    session.flush()
    for i, (page_no, values) in enumerate(sorted(pages.items())):
        session.add(ReturnPage(upload_id=up.id, page_index=i, document_id=doc.id, page_no=page_no, status="read",
                               method="qr", input_kind="scan", org_id=up.org_id,
                               readings={p: _reading(v) for p, v in values.items()}))
    session.commit()
    return up.id


def _receipts(session, case_id: int) -> list[dict]:
    return [e.data for e in session.scalars(select(CaseEvent).where(
        CaseEvent.case_id == case_id, CaseEvent.kind == "receipt").order_by(CaseEvent.id))]


@pytest.fixture
def report(app, app_session, demo):
    """A 2-page 报告单 issued by the school of a demo case (its page record as kept at render)."""
    case = app_session.scalars(select(Case).order_by(Case.id)).first()
    app_session.add(Document(id=REPORT_ID, org_id=case.pupil.org_id, case_id=case.id, form="dropout_report",
                             family="dropout_report:辍报", template_version="2026.1", year=2025, seq=7,
                             number_text="辍报〔2025〕7号", status="issued", data={}, pages=2,
                             geometry={"pages": [{"page": 1, "part": "main"}, {"page": 2, "part": "main"}]}))
    app_session.commit()
    return app_session.get(Document, REPORT_ID)


PAGE_1 = {"township_receiver": "赵敏"}
PAGE_2 = {**SIGNED, "township_received_on": "2025-09-22", "education_received_on": "2025-09-23"}


def test_page_one_alone_is_partial_and_the_later_page_two_completes_it_once(app_session, report):
    s = app_session
    first = _scanned(s, report, {1: PAGE_1})
    ret = finish_document(s, first, REPORT_ID, user=USER)
    assert (ret.status, ret.complete) == ("partial", False)
    assert (ret.pages_expected, ret.pages_received) == ([1, 2], [1])
    assert return_pages(ret.pages_received, ret.pages_expected) == "已收回第1页，共2页，缺第2页"
    assert _receipts(s, report.case_id) == []
    count = returned_count(s, form="dropout_report", issuer_id=report.org_id)
    assert (count["returned"], REPORT_ID in count["documents"]) == (0, False)
    [doc_out] = upload_outcome(s, first)["documents"]
    assert (doc_out["complete"], doc_out["status"], doc_out["pages_missing"]) == (False, "partial", [2])

    second = _scanned(s, report, {2: PAGE_2})
    ret2 = finish_document(s, second, REPORT_ID, user=USER)
    assert (ret2.status, ret2.complete, ret2.missing) == ("applied", True, [])
    assert (ret2.pages_expected, ret2.pages_received) == ([1, 2], [1, 2])
    assert ret2.values["township_receiver"] == "赵敏"  # page 1's values kept
    assert return_pages(ret2.pages_received, ret2.pages_expected) == "已收回全部2页"
    expected = [{"document_id": REPORT_ID, "received_on": "2025-09-22", "by": "township"},
                {"document_id": REPORT_ID, "received_on": "2025-09-23", "by": "education"}]
    assert _receipts(s, report.case_id) == expected
    hist = {r["upload_id"]: r for r in document_history(s, report)["returns"]}
    assert (hist[first]["pages_missing"], hist[second]["pages_missing"]) == ([2], [])
    # finishing again (a retried job), or the first upload again (now whole), fires nothing more
    finish_document(s, second, REPORT_ID, user=USER)
    assert finish_document(s, first, REPORT_ID, user=USER).status == "applied"
    assert _receipts(s, report.case_id) == expected
    count = returned_count(s, form="dropout_report", issuer_id=report.org_id)
    assert (count["returned"], REPORT_ID in count["documents"]) == (1, True)


def test_both_pages_in_one_scan_are_complete(app_session, report):
    s = app_session
    ret = finish_document(s, _scanned(s, report, {1: PAGE_1, 2: PAGE_2}), REPORT_ID, user=USER)
    assert (ret.status, ret.complete, ret.pages_received) == ("applied", True, [1, 2])
    assert len(_receipts(s, report.case_id)) == 2


def test_page_two_waits_while_page_one_is_open_in_review(app_session, report):
    s = app_session
    first = _scanned(s, report, {1: PAGE_1})
    page = s.scalar(select(ReturnPage).where(ReturnPage.upload_id == first))
    s.add(ReviewItem(page_id=page.id, upload_id=first, document_id=REPORT_ID, case_id=report.case_id,
                     org_id=report.org_id, field_path="township_receiver", kind="low_confidence",
                     proposed={"value": "赵敏"}, confidence=0.4))
    s.commit()
    assert finish_document(s, first, REPORT_ID, user=USER).status == "review"
    ret2 = finish_document(s, _scanned(s, report, {2: PAGE_2}), REPORT_ID, user=USER)
    assert (ret2.status, ret2.complete) == ("review", True)  # all pages back, but a person decides first
    assert _receipts(s, report.case_id) == []


def test_the_pages_a_form_returns_come_from_its_spec():
    notice = get_spec("guardian_notice")
    doc = Document(form="guardian_notice", geometry={"pages": [
        {"page": 1, "part": "stub"}, {"page": 2, "part": "original"}, {"page": 3, "part": "receipt"}]})
    assert expected_pages(notice, doc) == [3]  # only the 送达回证 comes back
    report = Document(form="dropout_report", geometry={"pages": [{"page": 1, "part": "main"},
                                                                {"page": 2, "part": "main"}]})
    assert expected_pages(get_spec("dropout_report"), report) == [1, 2]
    assert expected_pages(notice, Document(form="guardian_notice")) is None  # no page record: not known


def test_pages_text():
    assert return_pages([1], [1, 2]) == "已收回第1页，共2页，缺第2页"
    assert return_pages([], [1, 2, 3]) == "尚未收回任何一页，共3页，缺第1页、第2页、第3页"
    assert return_pages([2], [1, 2, 3]) == "已收回第2页，共3页，缺第1页、第3页"
    assert return_pages([3], [3]) == ""
    assert return_pages(None, [1, 2]) == ""


def test_the_pages_show_a_partial_return(app_session, report, client):
    s = app_session
    first = _scanned(s, report, {1: PAGE_1})
    finish_document(s, first, REPORT_ID, user=USER)
    page = client.get(f"/documents/{REPORT_ID}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "部分收回，未应用到案件" in text and "已收回第1页，共2页，缺第2页" in text
    progress = client.get(f"/uploads/{first}/progress").get_data(as_text=True)
    assert "已收回第1页，共2页，缺第2页" in progress and "已完整收回" not in progress
    listed = client.get("/documents?form=dropout_report").get_data(as_text=True)
    assert "部分收回" in listed
    finish_document(s, _scanned(s, report, {2: PAGE_2}), REPORT_ID, user=USER)
    text = client.get(f"/documents/{REPORT_ID}").get_data(as_text=True)
    assert "已应用到案件" in text
    assert "部分收回" not in client.get("/documents?form=dropout_report").get_data(as_text=True)
