"""Use cases that tie the store to the forms and parsers: issue a document, take a returned file
back, batch renders. Called by web/ and by jobs; no Flask here.

Storage order (Paperless-ngx's consumer): a returned file is parsed from a staging copy; the
original bytes and every row are written in one unit of work only after parsing succeeded, and
only then is the upload acknowledged. A document number is reserved in its own short transaction
before rendering; if rendering then fails the document is marked 作废 with the reason, so a number
is never lost silently nor reused.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cases import audit
from cases.models import Case, CaseEvent, Document, Org, ParsedResult, Upload, to_json, utcnow
from cases.numbering import family_key, number_document, number_series_fields, void_number
from cases.storage import Store, save_upload
from forms import identity as ident
from forms.errors import (
    BaoxueError,
    Conflict,
    NotFound,
    RenderFailed,
    UnknownDocument,
    UnsupportedInput,
    ValidationFailed,
)
from forms.registry import get_spec
from forms.spec import FormSpec, Variant

log = logging.getLogger(__name__)


@dataclass
class Services:
    """What the use cases need from the running app: store, secrets, fonts, converter settings."""

    session_factory: sessionmaker[Session]
    store: Store
    output_dir: Path
    qr_secret: str
    fonts: tuple[str, ...] = ("FandolFang", "FandolSong", "Noto Serif CJK SC", "Noto Sans CJK SC")
    pdf_workers: int = 1
    pdf_timeout: float = 120
    max_upload_bytes: int = 64 * 1024 * 1024
    default_profile: str = "henan-weihui-2022"
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], session_factory) -> Services:
        out = Path(config["OUTPUT_DIR"])
        return cls(session_factory=session_factory, store=Store(out / "store"), output_dir=out,
                   qr_secret=config["QR_HMAC_SECRET"], fonts=tuple(config[k] for k in (
                       "FONT_BODY", "FONT_TITLE", "FONT_TABLE", "FONT_HEADING")),
                   pdf_workers=int(config["PDF_WORKERS"]), pdf_timeout=float(config["PDF_TIMEOUT"]),
                   max_upload_bytes=int(config["MAX_UPLOAD_BYTES"]),
                   default_profile=config["DEFAULT_REGION_PROFILE"])


def _get_org(session: Session, org_id: int | None, what: str = "org_id") -> Org:
    if org_id is None:
        raise ValidationFailed("缺少机构", fields={what: "必填"})
    org = session.get(Org, int(org_id))
    if org is None:
        raise NotFound(f"机构 {org_id} 不存在", fields={what: "不存在"})
    return org


def _profile_name(session: Session, org: Org, services: Services) -> str:
    """The region profile of the county above ``org`` (DOMAIN Appendix A: chosen per county)."""
    node: Org | None = org
    while node is not None:
        if node.region_profile:
            return node.region_profile
        node = session.get(Org, node.parent_id) if node.parent_id else None
    return services.default_profile


def form_options(session: Session, org: Org, services: Services) -> dict:
    """Profile-dependent validation options for specs (e.g. the minimum number of attempts)."""
    from cases.prefill import options_for_profile

    return options_for_profile(_profile_name(session, org, services))


# ---- issuing documents ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rendered:
    docx: bytes
    pdf: bytes | None
    pages: int | None
    geometry: dict | None


def render_files(services: Services, spec: FormSpec, variant: Variant | None, cleaned: dict,
                 identity: ident.Identity, *, doc_extra: dict, want_pdf: bool = True) -> Rendered:
    """DOCX, then (optionally) PDF through the warm converter, QR on every page, field geometry."""
    from forms import render

    docx = render.render_docx(spec, variant, cleaned, identity, extra={"doc": doc_extra},
                              fonts=services.fonts)
    if not want_pdf:
        return Rendered(docx, None, None, None)
    from forms import geometry, pdf, stamp

    raw_pdf = pdf.get_converter(services.pdf_workers, services.pdf_timeout).convert(docx)
    stamped, pages = stamp.stamp_pdf(raw_pdf, identity, services.qr_secret)
    geo = geometry.record_geometry(stamped, spec, variant)
    return Rendered(docx, stamped, pages, geo)


def issue_document(session: Session, services: Services, *, form: str, variant: str | None,
                   issuer_id: int, data: Mapping[str, Any], case_id: int | None = None,
                   user: str = "system", want_pdf: bool = True, issued_on: dt.date | None = None
                   ) -> Document:
    """Validate, number, render and store one document; return its issued ``Document`` row.

    Invalid input raises ValidationFailed before anything is written. The number is reserved and
    the row committed (status ``rendering``) before rendering; a render failure voids it."""
    spec = get_spec(form)
    var = spec.variant(variant)
    issuer = _get_org(session, issuer_id, "issuer_id")
    case = None
    if case_id is not None:
        case = session.get(Case, int(case_id))
        if case is None:
            raise NotFound(f"案件 {case_id} 不存在", fields={"case_id": "不存在"})
    issued_on = issued_on or dt.date.today()
    from cases.prefill import complete_data

    profile = _profile_name(session, issuer, services)
    full = complete_data(spec, var, dict(data), profile=profile, issued_on=issued_on, issuer=issuer)
    cleaned = spec.validate(full, var, options=form_options(session, issuer, services))

    doc = Document(id=ident.new_doc_id(), org_id=issuer.id, case_id=case.id if case else None,
                   form=spec.code, variant=var.code if var else None,
                   family=family_key(spec.code, spec.abbr(var)), template_version=spec.version,
                   year=issued_on.year, status="rendering", created_by=user)
    session.add(doc)
    number = number_document(session, doc, issuer=issuer, abbr=spec.abbr(var))
    cleaned[spec.number_field] = number
    cleaned.update(number_series_fields(session, spec, doc, issuer=issuer))
    doc.data = to_json(cleaned)
    session.commit()  # the number is now taken, whatever happens next

    identity = ident.Identity(doc.id, spec.code, doc.variant, spec.version)
    try:
        files = render_files(services, spec, var, cleaned, identity, want_pdf=want_pdf,
                             doc_extra={"number": number, "id": doc.id,
                                        "date": f"{issued_on.year}年{issued_on.month}月{issued_on.day}日"})
        doc.docx_sha256, _ = services.store.put_bytes(files.docx, ".docx")
        if files.pdf is not None:
            doc.pdf_sha256, _ = services.store.put_bytes(files.pdf, ".pdf")
            doc.pages, doc.geometry = files.pages, files.geometry
    except BaoxueError as e:
        session.rollback()
        void_number(session, doc, reason=f"生成失败：{e.message}", who=user)
        session.commit()
        raise RenderFailed(f"文书生成失败（文号{number}已作废）：{e.message}", document=doc.id) from e
    doc.status = "issued"
    audit.record(session, who=user, org=issuer, action="document.issue", target=f"document:{doc.id}",
                 after={"number": number, "form": spec.code, "variant": doc.variant})
    if case is not None:
        session.add(CaseEvent(case_id=case.id, org_id=issuer.id, kind="document", actor=user,
                              occurred_at=utcnow(), data={"document": doc.id, "form": spec.code,
                                                          "variant": doc.variant, "number": number}))
    session.commit()
    log.info("issued %s %s as %s", spec.code, doc.variant or "", doc.id)
    return doc


def document_file(services: Services, doc: Document, kind: str) -> bytes:
    digest = doc.pdf_sha256 if kind == "pdf" else doc.docx_sha256
    if doc.status != "issued" or not digest:
        raise NotFound(f"文书 {doc.id} 没有{kind.upper()}文件", document=doc.id)
    return services.store.read_bytes(services.store.relpath_for(digest, f".{kind}"))


def get_document(session: Session, doc_id: str) -> Document:
    doc = session.get(Document, doc_id)
    if doc is None:
        raise NotFound(f"文书 {doc_id} 不存在", document=doc_id)
    return doc


# ---- returned files -----------------------------------------------------------------------------------

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

    org = _get_org(session, org_id)
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
                from cases.scans import start_scan

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
    from cases.models import AuditLog

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


def document_json(doc: Document) -> dict:
    return {"id": doc.id, "form": doc.form, "variant": doc.variant, "number": doc.number_text,
            "status": doc.status, "void_reason": doc.void_reason, "issuer_id": doc.org_id,
            "case_id": doc.case_id, "template_version": doc.template_version, "pages": doc.pages,
            "docx_sha256": doc.docx_sha256, "pdf_sha256": doc.pdf_sha256,
            "created_at": doc.created_at.isoformat() if doc.created_at else None,
            "created_by": doc.created_by}


def ensure_not_void(doc: Document) -> None:
    if doc.status == "void":
        raise Conflict(f"文书 {doc.number_text or doc.id} 已作废：{doc.void_reason}", document=doc.id)


def cleanup_staging(services: Services) -> None:
    shutil.rmtree(services.output_dir / "staging", ignore_errors=True)
