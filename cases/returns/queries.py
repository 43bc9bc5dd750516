"""What became of returned files, the same for every kind: the outcome of an upload (units read,
documents returned), the unidentified pages, "N of M returned", a document's history."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cases.documents.issuing import document_json
from cases.returns.apply import best_readings, missing_pages
from cases.returns.models import READ_JOB_KIND, DocumentReturn, ReturnPage, ReviewItem
from cases.store.models import AuditLog, Document, Job, Org, Upload
from forms.errors import NotFound
from forms.spec import Kind
from forms.validators import mask_id


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
    if reading.get("status") == "match":  # read as issued (a tick printed at issue, seen unchanged)
        return None
    if reading.get("origin") in ("hand", "tick", "mark") and reading.get("value") not in (None, "", [], False):
        return {"status": "filled_in", "flagged": False, "issued": reading.get("issued"),
                "returned": reading.get("value")}
    return None


_MASKED_KINDS = frozenset({Kind.ID_NUMBER.value, Kind.XUEJI_NO.value})


def _masked(reading: Mapping[str, Any], value: Any) -> Any:
    """A value of a reading as an answer shows it: an ID number or 学籍号 (G + the ID number)
    masked, as everywhere (DOMAIN §8.4; the full number is read through the pupil's unmask, with
    its reason logged)."""
    if reading.get("kind") in _MASKED_KINDS and isinstance(value, str) and value:
        return mask_id(value)
    return value


def _shown_change(reading: Mapping[str, Any]) -> dict | None:
    change = change_of(reading)  # computed on the full values: a changed middle digit still counts
    if change is not None:
        change = {**change, "issued": _masked(reading, change["issued"]),
                  "returned": _masked(reading, change["returned"])}
    return change


def _open_counts(session: Session, upload_id: int, column) -> dict:
    return dict(session.execute(select(column, func.count()).where(
        ReviewItem.upload_id == upload_id, ReviewItem.status == "open").group_by(column)).all())


# Why a field was accepted without a person, by its reading's status (issue 15 item 7).
_ACCEPTED_WHY = {
    "match": "印制内容与签发值一致",
    "unchecked": "印制的长文本不逐字核对，以签发值为准",
    "blank": "未填写（空白）",
}
# Why it went to review, when the reader gave no reason of its own.
_REVIEW_WHY = {
    "mismatch": "印制内容与签发值不一致，可能被改动",
    "invalid": "识别结果未通过校验",
    "ambiguous": "无法判断勾选或笔迹",
    "low": "识别把握不足",
    "blank": "应有内容但未识别到",
}


def field_reason(reading: Mapping[str, Any]) -> str:
    """Why a field of a returned unit went to review or was accepted, in words for a person: the
    reader's own reason when it gave one, else one made from the reading's status and confidence."""
    own = (reading.get("reason") or "").strip()
    conf = float(reading.get("confidence") or 0.0)
    status = reading.get("status") or ""
    if reading.get("needs_review"):
        if own:
            return own
        if reading.get("confirm"):
            return "须人工确认"
        why = _REVIEW_WHY.get(status, "须人工确认")
        return f"{why}（置信度 {conf:.2f}）" if status in ("low", "read") else why
    if own:
        return own
    if status in _ACCEPTED_WHY:
        return _ACCEPTED_WHY[status]
    if reading.get("origin") == "mark":
        seen = "有" if reading.get("value") else "没有"
        return f"判断为{seen}签名或印章（置信度 {conf:.2f}）"
    if reading.get("origin") == "tick":
        ticked = "未勾选任何选项" if reading.get("value") in (None, "", []) else "勾选明确"
        return f"{ticked}（置信度 {conf:.2f}）"
    return f"识别可信（置信度 {conf:.2f}），校验通过"


def upload_job(session: Session, upload: Upload) -> Job | None:
    """The latest reading job of an upload (None: read in the request, or never queued)."""
    rows = session.scalars(select(Job).where(Job.kind == READ_JOB_KIND, Job.org_id == upload.org_id,
                                             Job.created_at >= upload.uploaded_at - dt.timedelta(minutes=5))
                           .order_by(Job.created_at.desc())).all()
    return next((j for j in rows if list(j.payload or [])[:1] == [upload.id]), None)


def _job_json(job: Job | None) -> dict | None:
    if job is None:
        return None
    return {"id": job.id, "status": job.status, "done": job.done, "total": job.total, "attempts": job.attempts,
            "error": job.error, "updated_at": job.updated_at.isoformat() if job.updated_at else None}


def _field_json(r: Mapping[str, Any], item: ReviewItem | None) -> dict:
    return {"kind": r.get("kind"), "value": _masked(r, r.get("value")), "confidence": r.get("confidence"),
            "status": r.get("status"),
            "needs_review": r.get("needs_review"), "origin": r.get("origin"), "text": _masked(r, r.get("text")),
            "issued": _masked(r, r.get("issued")), "decision": "review" if r.get("needs_review") else "accepted",
            "reason": field_reason(r),
            "review_item": ({"id": item.id, "kind": item.kind, "status": item.status}
                            if item is not None else None)}


def upload_outcome(session: Session, upload_id: int) -> dict:
    """Per-unit outcome of a returned file (every kind; GET /scans/<id> and /uploads/<id>): each
    page (or the whole DOCX/PDF) with its document, status, reason and fields (each with why it
    was accepted or went to review), each document returned in it with its completeness and
    status, and the reading job's state. A job that failed (also one the reaper gave up on) makes
    the outcome ``failed`` with the job's reason, whatever the upload row still says."""
    upload = session.get(Upload, upload_id)
    if upload is None:
        raise NotFound(f"上传 {upload_id} 不存在")
    pages = session.scalars(select(ReturnPage).where(ReturnPage.upload_id == upload_id)
                            .order_by(ReturnPage.page_index)).all()
    rets = session.scalars(select(DocumentReturn).where(DocumentReturn.upload_id == upload_id)
                           .order_by(DocumentReturn.id)).all()
    items = {(it.page_id, it.field_path): it for it in session.scalars(
        select(ReviewItem).where(ReviewItem.upload_id == upload_id).order_by(ReviewItem.id))}
    open_by_page = _open_counts(session, upload_id, ReviewItem.page_id)
    open_by_doc = _open_counts(session, upload_id, ReviewItem.document_id)
    job = upload_job(session, upload)
    status, error = upload.status, upload.error
    if job is not None and job.status == "failed" and status != "failed":
        status, error = "failed", job.error or "读取任务失败"
    return {
        "upload_id": upload.id, "filename": upload.original_filename, "sha256": upload.sha256,
        "status": status, "error": error, "org_id": upload.org_id, "job": _job_json(job),
        "pages": [{"id": p.id, "index": p.page_index, "status": p.status, "input_kind": p.input_kind,
                   "document_id": p.document_id, "page_no": p.page_no, "method": p.method, "rotation": p.rotation,
                   "reason": p.reason, "warnings": list(p.warnings or []), "align": p.align_method,
                   "seconds": p.seconds, "open_review_items": open_by_page.get(p.id, 0),
                   "fields": {k: _field_json(r, items.get((p.id, k))) for k, r in (p.readings or {}).items()}}
                  for p in pages],
        "documents": [{"document_id": r.document_id, "form": r.form, "input_kind": r.input_kind,
                       "complete": r.complete, "missing": r.missing, "status": r.status,
                       "pages_expected": r.pages_expected, "pages_received": r.pages_received,
                       "pages_missing": missing_pages(r),
                       "open_review_items": open_by_doc.get(r.document_id, 0)} for r in rets],
    }


def document_summary(session: Session, upload_id: int, doc: Document) -> dict:
    """What one upload says of one document: values read, changes against the issue, flagged
    (changed print), invalid values, warnings, and whether a person must still decide."""
    best = best_readings(session, upload_id, doc.id)
    changes = {p: c for p, (_page, r) in best.items() if (c := _shown_change(r)) is not None}
    warnings: list[str] = []
    for page, _r in best.values():
        warnings += [w for w in (page.warnings or []) if w not in warnings]
    open_items = session.scalar(select(func.count()).select_from(ReviewItem).where(
        ReviewItem.upload_id == upload_id, ReviewItem.document_id == doc.id, ReviewItem.status == "open"))
    return {
        "document": {"id": doc.id, "form": doc.form, "variant": doc.variant, "number": doc.number_text},
        "values": {p: _masked(r, r["value"]) for p, (_page, r) in best.items()},
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
                        "missing": list(r.missing or []), "pages_expected": r.pages_expected,
                        "pages_received": r.pages_received, "pages_missing": missing_pages(r),
                        "changes": summary["changes"],
                        "flags": summary["flags"], "review": summary["review"]})
    return {
        "document": document_json(doc),
        "events": [{"at": a.at.isoformat(), "who": a.who, "action": a.action, "after": a.after}
                   for a in log_rows],
        "returns": returns,
    }
