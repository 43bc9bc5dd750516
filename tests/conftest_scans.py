"""Scan test fixtures (a pytest plugin, see tests/conftest.py): the committed sample notice
(tests/samples/scans: the issued PDF, its geometry and data, QR id ``SCANTEST0001``) stored as an
issued 限期返校通知书 of the first demo case, so that scan tests need no rendering.

* ``notice``: the sample in the app's database, OCR reading nothing (a test may set its own engine);
  answers ``{"case_id", "org_id", "doc_id"}``. A module that needs another notice defines its own.
* ``add_issued_notice(session, store)``: the same for a session and store of one's own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from cases.store.models import Case, Document

SAMPLES = Path(__file__).parent / "samples" / "scans"
DOC_ID = "SCANTEST0001"


def add_issued_notice(session, store) -> Case:
    """Store the sample's PDF in ``store`` and its Document in ``session`` (committed); answers the
    case it was issued in."""
    case = session.scalars(select(Case).order_by(Case.id)).first()
    digest, _ = store.put_bytes((SAMPLES / "issued.pdf").read_bytes(), ".pdf")
    issued = json.loads((SAMPLES / "issued.json").read_text(encoding="utf-8"))
    session.add(Document(id=DOC_ID, org_id=case.org_id, case_id=case.id, form="guardian_notice", variant="xianqi",
                         family="guardian_notice:限返", template_version="2026.1", year=2025, seq=12,
                         number_text=issued["doc_number"], status="issued", data=issued, pdf_sha256=digest, pages=5,
                         geometry=json.loads((SAMPLES / "geometry.json").read_text(encoding="utf-8"))))
    session.commit()
    return case


@pytest.fixture
def notice(app, app_session, services, demo):
    """The sample notice in the app's database; OCR reads nothing (a test may set its own engine)."""
    from parsers.ocr import FakeOcrEngine, OcrText  # cv2 and numpy: only where a scan test runs

    services.extra["ocr_engine"] = FakeOcrEngine(func=lambda crop: OcrText("", 0.0))
    services.extra["ocr_fallback"] = None
    case = add_issued_notice(app_session, services.store)
    return {"case_id": case.id, "org_id": case.org_id, "doc_id": DOC_ID}
