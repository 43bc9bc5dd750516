"""What became of returned files, the same for every kind: the outcome of an upload (units read,
documents returned), the unidentified pages, "N of M returned", a document's history."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cases.documents.issuing import document_json
from cases.returns.apply import best_readings
from cases.returns.models import DocumentReturn, ReturnPage, ReviewItem
from cases.store.models import AuditLog, Document, Org, Upload
from forms.errors import NotFound


def list_unidentified(session: Session, org: Org | None) -> list[ReturnPage]:
    """Pages no document could be found for (oldest first), in ``org``'s subtree (all when None)."""
    stmt = select(ReturnPage).where(ReturnPage.status == "unidentified").order_by(ReturnPage.id)
    if org is not None:
        stmt = stmt.where(ReturnPage.in_scope(org))
    return list(session.scalars(stmt))


def change_of(reading: Mapping[str, Any]) -> dict | None:
    """How a field of a returned copy relates to the issued one, from its stored reading: a
    changed or cleared printed value (flagged: possible tampering), a value filled in, or None."""
    if reading.get("status") == "mismatch":
        text = (reading.get("text") or "").strip()
        return {"status": "changed" if text else "cleared", "flagged": True, "issued": reading.get("issued"),
                "returned": text or None}
    if reading.get("origin") in ("hand", "tick", "mark") and reading.get("value") not in (None, "", [], False):
        return {"status": "filled_in", "flagged": False, "issued": reading.get("issued"),
                "returned": reading.get("value")}
    return None


def _open_counts(session: Session, upload_id: int, column) -> dict:
    return dict(session.execute(select(column, func.count()).where(
        ReviewItem.upload_id == upload_id, ReviewItem.status == "open").group_by(column)).all())


def upload_outcome(session: Session, upload_id: int) -> dict:
    """Per-unit outcome of a returned file (every kind; GET /scans/<id> and /uploads/<id>): each
    page (or the whole DOCX/PDF) with its document, status, reason and fields, and each document
    returned in it with its completeness and status."""
    upload = session.get(Upload, upload_id)
    if upload is None:
        raise NotFound(f"上传 {upload_id} 不存在")
    pages = session.scalars(select(ReturnPage).where(ReturnPage.upload_id == upload_id)
                            .order_by(ReturnPage.page_index)).all()
    rets = session.scalars(select(DocumentReturn).where(DocumentReturn.upload_id == upload_id)
                           .order_by(DocumentReturn.id)).all()
    open_by_page = _open_counts(session, upload_id, ReviewItem.page_id)
    open_by_doc = _open_counts(session, upload_id, ReviewItem.document_id)
    return {
        "upload_id": upload.id, "filename": upload.original_filename, "sha256": upload.sha256,
        "status": upload.status, "error": upload.error, "org_id": upload.org_id,
        "pages": [{"id": p.id, "index": p.page_index, "status": p.status, "input_kind": p.input_kind,
                   "document_id": p.document_id, "page_no": p.page_no, "method": p.method, "rotation": p.rotation,
                   "reason": p.reason, "warnings": list(p.warnings or []), "align": p.align_method,
                   "seconds": p.seconds, "open_review_items": open_by_page.get(p.id, 0),
                   "fields": {k: {"value": r["value"], "confidence": r["confidence"], "status": r["status"],
                                  "needs_review": r["needs_review"], "reason": r.get("reason", "")}
                              for k, r in (p.readings or {}).items()}}
                  for p in pages],
        "documents": [{"document_id": r.document_id, "form": r.form, "input_kind": r.input_kind,
                       "complete": r.complete, "missing": r.missing, "status": r.status,
                       "open_review_items": open_by_doc.get(r.document_id, 0)} for r in rets],
    }


def document_summary(session: Session, upload_id: int, doc: Document) -> dict:
    """What one upload says of one document: values read, changes against the issue, flagged
    (changed print), invalid values, warnings, and whether a person must still decide."""
    best = best_readings(session, upload_id, doc.id)
    changes = {p: c for p, (_page, r) in best.items() if (c := change_of(r)) is not None}
    warnings: list[str] = []
    for page, _r in best.values():
        warnings += [w for w in (page.warnings or []) if w not in warnings]
    open_items = session.scalar(select(func.count()).select_from(ReviewItem).where(
        ReviewItem.upload_id == upload_id, ReviewItem.document_id == doc.id, ReviewItem.status == "open"))
    return {
        "document": {"id": doc.id, "form": doc.form, "variant": doc.variant, "number": doc.number_text},
        "values": {p: r["value"] for p, (_page, r) in best.items()},
        "changes": changes,
        "flags": sorted(p for p, c in changes.items() if c["flagged"]),
        "errors": {p: r.get("reason") or "无效" for p, (_page, r) in best.items() if r["status"] == "invalid"},
        "warnings": warnings,
        "review": bool(open_items),
    }


def upload_result(session: Session, upload_id: int) -> dict:
    """The answer to an upload read in the request: its outcome, and for a file holding one
    document (a DOCX or digital PDF) that document's summary at the top level."""
    out = upload_outcome(session, upload_id)
    docs = [d["document_id"] for d in out["documents"]]
    kinds = {p["input_kind"] for p in out["pages"]}
    out["input_kind"] = kinds.pop() if len(kinds) == 1 else "mixed"
    if len(docs) == 1:
        out.update(document_summary(session, upload_id, session.get(Document, docs[0])))
    return out


def returned_count(session: Session, *, form: str, issuer_id: int, year: int | None = None,
                   variant: str | None = None) -> dict:
    """"N of M returned" for a batch: issued documents of ``form`` (and variant, year) by the issuer,
    and how many came back complete, whatever the kind of return."""
    stmt = select(Document.id).where(Document.form == form, Document.org_id == issuer_id,
                                     Document.status == "issued")
    if year is not None:
        stmt = stmt.where(Document.year == year)
    if variant is not None:
        stmt = stmt.where(Document.variant == variant)
    ids = list(session.scalars(stmt))
    returned = set(session.scalars(select(DocumentReturn.document_id).where(
        DocumentReturn.document_id.in_(ids), DocumentReturn.complete.is_(True),
        DocumentReturn.status == "applied"))) if ids else set()
    return {"returned": len(returned), "total": len(ids), "documents": sorted(returned)}


def document_history(session: Session, doc: Document) -> dict:
    """What happened to a document: issue, voids, and every returned copy of any kind with what
    it changed, whether it is complete and whether a person must still decide."""
    rets = session.scalars(select(DocumentReturn).where(DocumentReturn.document_id == doc.id)
                           .order_by(DocumentReturn.id)).all()
    uploads = {u.id: u for u in session.scalars(select(Upload).where(
        Upload.id.in_([r.upload_id for r in rets])))} if rets else {}
    log_rows = session.scalars(select(AuditLog).where(AuditLog.target == f"document:{doc.id}")
                               .order_by(AuditLog.id)).all()
    returns = []
    for r in rets:
        u = uploads[r.upload_id]
        summary = document_summary(session, r.upload_id, doc)
        returns.append({"upload_id": u.id, "filename": u.original_filename, "sha256": u.sha256,
                        "uploaded_at": u.uploaded_at.isoformat(), "uploaded_by": u.uploaded_by,
                        "input_kind": r.input_kind, "status": r.status, "complete": r.complete,
                        "missing": list(r.missing or []), "changes": summary["changes"],
                        "flags": summary["flags"], "review": summary["review"]})
    return {
        "document": document_json(doc),
        "events": [{"at": a.at.isoformat(), "who": a.who, "action": a.action, "after": a.after}
                   for a in log_rows],
        "returns": returns,
    }
