"""Returned DOCX and digital PDF files (DOMAIN §5.6): identified, read field by field and compared
with what was issued; the original bytes and every row are written in one unit of work only after
parsing succeeded (Paperless-ngx's consumer). Images and image-only PDFs go to the scan intake
(``cases.returns.scans``)."""

from __future__ import annotations

import logging
import shutil
import uuid
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from cases.documents.issuing import document_json, get_org
from cases.returns.scans import start_scan
from cases.store import audit
from cases.store.models import AuditLog, CaseEvent, Document, ParsedResult, Upload, to_json, utcnow
from cases.store.services import Services
from cases.store.storage import save_upload
from forms.errors import BaoxueError, UnknownDocument, UnsupportedInput, ValidationFailed
from forms.registry import get_spec

log = logging.getLogger(__name__)


def _find_document(session: Session, parsed) -> Document:
    if parsed.identity is not None:
        doc = session.get(Document, parsed.identity.doc_id)
        if doc is None:
            raise UnknownDocument(f"文书标识 {parsed.identity.doc_id} 不是本系统签发的文书")
        if doc.form != parsed.identity.form or (doc.variant or None) != (parsed.identity.variant or None):
            raise UnknownDocument("文书标识与登记的表单类型不符，可能被改动")
        return doc
    if parsed.doc_number:
        docs = session.scalars(select(Document).where(Document.number_text == parsed.doc_number)).all()
        if parsed.form:
            docs = [d for d in docs if d.form == parsed.form]
        if len(docs) == 1:
            return docs[0]
        if len(docs) > 1:
            raise UnknownDocument(f"文号“{parsed.doc_number}”对应多份文书，请人工指定")
        raise UnknownDocument(f"文号“{parsed.doc_number}”不是本系统签发的文书")
    raise UnsupportedInput("无法识别文书：没有二维码、文书属性或文号")


def ingest_upload(session: Session, services: Services, *, filename: str, data: bytes, org_id: int,
                  user: str = "system", attach: bool = False, mime: str | None = None,
                  source_device: str | None = None) -> dict:
    """Read a returned DOCX/PDF back: identify it, read every field, compare with what was issued.

    Returns a summary dict (upload, document, values, changes, flags). A file that is none of our
    forms raises UnsupportedInput (422) unless ``attach`` is set, in which case it is kept as a
    plain attachment. Nothing is written unless the whole unit succeeds."""
    from parsers.compare import compare
    from parsers.registry import parse_file

    org = get_org(session, org_id)
    name = Path(str(filename or "upload").replace("\\", "/")).name or "upload"
    if not data:
        raise ValidationFailed(f"文件“{name}”是空的", fields={"file": f"{name}：文件为空"})
    # The staging copy keeps the original name so every error message names the user's file.
    staging = services.output_dir / "staging" / uuid.uuid4().hex / name
    staging.parent.mkdir(parents=True, exist_ok=True)
    staging.write_bytes(data)
    try:
        try:
            parsed = parse_file(staging, secret=services.qr_secret, mime=mime)
        except UnsupportedInput as e:
            if e.details.get("kind") in ("pdf", "png", "jpeg", "tiff") and not attach:
                # An image-only PDF or an image: the scan pipeline reads it in a background job.
                queued = start_scan(session, services, filename=name, data=data, org_id=org.id, user=user,
                                    source_device=source_device)
                return {**queued, "status": "queued", "filename": name}
            if not attach:
                raise
            upload = save_upload(session, services.store, filename=name, data=data, org=org, user=user,
                                 mime=mime, source_device=source_device,
                                 max_bytes=services.max_upload_bytes)
            upload.status = "attached"
            audit.record(session, who=user, org=org, action="upload.attach", target=f"upload:{upload.id}")
            session.commit()
            return {"upload_id": upload.id, "status": "attached", "filename": name, "sha256": upload.sha256}
        doc = _find_document(session, parsed)
        spec = get_spec(doc.form)
        var = spec.variant(doc.variant)
        changes = compare(spec, var, doc.cleaned(spec), parsed)
        upload = save_upload(session, services.store, filename=name, data=data, org=org, user=user,
                             mime=mime, source_device=source_device, max_bytes=services.max_upload_bytes)
        upload.status = "parsed"
        upload.document_id = doc.id
        # a printed value changed or cleared is a flag (possible tampering); hand-filled values are not
        flags = {p: c for p, c in changes.items() if c.flagged}
        result = ParsedResult(upload_id=upload.id, document_id=doc.id,
                              values=to_json(parsed.values),
                              readings={p: _reading_json(r) for p, r in parsed.fields.items()},
                              changes={p: _change_json(c) for p, c in changes.items()},
                              status="review" if flags or parsed.errors else "pending")
        session.add(result)
        session.flush()
        audit.record(session, who=user, org=org, action="upload.parse", target=f"document:{doc.id}",
                     after={"upload": upload.id, "changed": sorted(flags)})
        if doc.case_id:
            session.add(CaseEvent(case_id=doc.case_id, org_id=org.id, kind="document_returned",
                                  actor=user, occurred_at=utcnow(),
                                  data={"document": doc.id, "upload": upload.id, "changed": sorted(flags)}))
        session.commit()
        return {
            "upload_id": upload.id, "status": "parsed", "filename": name, "sha256": upload.sha256,
            "document": {"id": doc.id, "form": doc.form, "variant": doc.variant, "number": doc.number_text},
            "input_kind": parsed.input_kind, "parsed_result_id": result.id, "review": result.status == "review",
            "values": to_json(parsed.values),
            "changes": {p: _change_json(c) for p, c in changes.items() if c.status != "unchanged"},
            "flags": sorted(flags), "errors": dict(parsed.errors), "warnings": list(parsed.warnings),
        }
    except BaoxueError:
        session.rollback()
        raise
    finally:
        shutil.rmtree(staging.parent, ignore_errors=True)


def _reading_json(r) -> dict:
    return {"value": to_json({"v": r.value})["v"], "raw_text": r.raw_text, "confidence": r.confidence,
            "source": r.source}


def _change_json(c) -> dict:
    return {"status": c.status, "flagged": c.flagged, "issued": to_json({"v": c.issued})["v"],
            "returned": to_json({"v": c.returned})["v"]}


def document_history(session: Session, doc: Document) -> dict:
    """What happened to a document: issue, voids and every returned file with what it changed."""
    uploads = session.scalars(select(Upload).where(Upload.document_id == doc.id).order_by(Upload.id)).all()
    results = {r.upload_id: r for r in session.scalars(
        select(ParsedResult).where(ParsedResult.document_id == doc.id))}
    log_rows = session.scalars(select(AuditLog).where(AuditLog.target == f"document:{doc.id}")
                               .order_by(AuditLog.id)).all()
    return {
        "document": document_json(doc),
        "events": [{"at": a.at.isoformat(), "who": a.who, "action": a.action, "after": a.after}
                   for a in log_rows],
        "returns": [{"upload_id": u.id, "filename": u.original_filename, "sha256": u.sha256,
                     "uploaded_at": u.uploaded_at.isoformat(), "uploaded_by": u.uploaded_by,
                     "status": u.status,
                     "changes": {p: c for p, c in (results[u.id].changes if u.id in results else {}).items()
                                 if c["status"] != "unchanged"},
                     "review": results[u.id].status == "review" if u.id in results else None}
                    for u in uploads],
    }


def cleanup_staging(services: Services) -> None:
    shutil.rmtree(services.output_dir / "staging", ignore_errors=True)
