"""Every returned file through one path (DOMAIN §5.6): a DOCX filled in Word, a digital PDF, a
flatbed scan, a phone photo, a fax, a multi-page stack of several documents.

1. **Store first** (Paperless-ngx's consumer): cheap checks refuse, before anything is written,
   an empty file, an unknown kind, an old .doc, a damaged header, an image too large to decode;
   then the original bytes (content-addressed, SHA-256) and the ``Upload`` row are committed,
   with uploader, time and source device.
2. **Read** by the parser the registry chooses (``parsers.registry``; one protocol, one
   ``FieldReading``): in the request for DOCX and digital PDF (fast), in a background job for
   scans and photos (OCR). Documents are looked up here (parsers never touch the database).
3. **Record** each unit read (a page; a DOCX or digital PDF whole) as a ``ReturnPage`` with a
   ``ReviewItem`` for every reading a person must decide, in one unit of work; a unit already
   recorded is skipped, so a worker killed mid-job loses nothing and a retried job creates no
   duplicates.
4. **Apply** each document returned in the file (``cases.returns.apply``) once no review item of
   it is open.

A file that cannot be read keeps its upload, marked failed with the reason, and the answer says
why; nothing of a case changes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cases.documents.issuing import get_org
from cases.returns.apply import READ_STATUSES, finish_document
from cases.returns.models import READ_JOB_KIND, ReturnPage, ReviewItem
from cases.returns.queries import upload_result
from cases.store import audit, jobs
from cases.store.models import Case, Document, Pupil, Upload
from cases.store.services import Services, registered
from cases.store.storage import clean_filename, fs_name, save_upload
from forms.errors import BaoxueError, Conflict, NotFound, UnknownDocument, UnsupportedInput, ValidationFailed
from forms.registry import get_spec
from parsers.base import DOCX_MIME, FieldReading, Issued, PageRead, ReadOptions, sniff
from parsers.images import probe_upload
from parsers.preflight import check_file
from parsers.registry import parser_for
from parsers.scan.parser import ScanParser

log = logging.getLogger(__name__)

JOB_KIND = READ_JOB_KIND
MIMES = {"docx": DOCX_MIME, "pdf": "application/pdf", "png": "image/png", "jpeg": "image/jpeg",
         "tiff": "image/tiff"}


# ---- looking documents up for the parsers --------------------------------------------------------------

class DocumentLookup:
    """``parsers.base.Lookup`` over the store: an issued (not void) document by its identity or
    its printed number, with what reading it needs."""

    def __init__(self, session: Session, services: Services, *, release: bool = False):
        self.session = session
        self.store = services.store
        # ``release``: end the read transaction after each lookup. The lookups of a job come
        # between seconds of OCR; a transaction held open through them would hold up SQLite.
        self.release = release

    def document(self, *, doc_id: str | None = None, form: str | None = None, variant: str | None = None,
                 doc_number: str | None = None) -> Document:
        """The ``Document`` named; UnknownDocument saying why not."""
        if doc_id:
            doc = self.session.get(Document, doc_id)
            if doc is None:
                raise UnknownDocument(f"文书标识 {doc_id} 不是本系统签发的文书")
            if form and (doc.form != form or (doc.variant or None) != (variant or None)):
                raise UnknownDocument("文书标识与登记的表单类型不符，可能被改动")
        elif doc_number:
            docs = self.session.scalars(select(Document).where(Document.number_text == doc_number)).all()
            if form:
                docs = [d for d in docs if d.form == form]
            if len(docs) != 1:
                raise UnknownDocument(f"文号“{doc_number}”对应多份文书，请人工指定" if docs
                                      else f"文号“{doc_number}”不是本系统签发的文书")
            doc = docs[0]
        else:
            raise UnsupportedInput("无法识别文书：没有二维码、文书属性或文号")
        if doc.status == "void":
            raise UnknownDocument(f"文书 {doc.number_text or doc.id} 已作废：{doc.void_reason or ''}")
        return doc

    def __call__(self, *, doc_id: str | None = None, form: str | None = None, variant: str | None = None,
                 doc_number: str | None = None) -> Issued:
        try:
            return self._issued(self.document(doc_id=doc_id, form=form, variant=variant, doc_number=doc_number))
        finally:
            if self.release:
                self.session.rollback()

    def _issued(self, doc: Document) -> Issued:
        spec = get_spec(doc.form)
        values = doc.cleaned(spec)
        people: list[str] = []
        if doc.case_id:
            case = self.session.get(Case, doc.case_id)
            pupil = self.session.get(Pupil, case.pupil_id) if case else None
            if pupil is not None:
                people += [pupil.name, *(g.name for g in pupil.guardians)]
        issued_on = values.get(spec.date_field)
        if not isinstance(issued_on, dt.date):
            issued_on = doc.created_at.date() if doc.created_at else None
        store, digest = self.store, doc.pdf_sha256
        pdf: Callable[[], bytes] | None = None
        if digest:
            def pdf() -> bytes:
                return store.read_bytes(store.relpath_for(digest, ".pdf"))
        return Issued(doc_id=doc.id, number=doc.number_text, spec=spec, variant=spec.variant(doc.variant),
                      values=values, pages=doc.pages or 0, geometry=doc.geometry, pdf=pdf, people=tuple(people),
                      issued_on=issued_on)


def read_options(services: Services) -> ReadOptions:
    """Reading settings from the services (tests and deployments may set the OCR engines and the
    review threshold in ``services.extra``)."""
    extra = services.extra or {}
    return ReadOptions(engine=extra.get("ocr_engine"), fallback=extra.get("ocr_fallback"),
                       use_default_fallback="ocr_fallback" not in extra,
                       threshold=float(extra.get("scan_threshold", 0.9)))


# ---- intake -------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _staged(services: Services, name: str, data: bytes) -> Iterator[Path]:
    """A private copy of the file under its own name (every message names the user's file)."""
    staging = services.output_dir / "staging" / uuid.uuid4().hex / fs_name(name)
    staging.parent.mkdir(parents=True, exist_ok=True)
    staging.write_bytes(data)
    try:
        yield staging
    finally:
        shutil.rmtree(staging.parent, ignore_errors=True)


def receive(session: Session, services: Services, *, filename: str, data: bytes, org_id: int, user: str,
            attach: bool = False, mime: str | None = None, source_device: str | None = None,
            background: bool | None = None) -> dict:
    """Take a returned file (module docstring): check, store, then read it now (DOCX, digital PDF)
    or queue it (scans and photos; always with ``background``).

    Answers {"upload_id", "status": "queued", "job_id"} for a queued file, else the upload's
    result (``cases.returns.queries.upload_result``). A file that is none of our forms is refused
    (UnsupportedInput, nothing stored) unless ``attach``: then it is kept as a plain attachment."""
    org = get_org(session, org_id)
    name, note = clean_filename(filename)
    if not data:
        raise ValidationFailed(f"文件“{name}”是空的", fields={"file": f"{name}：文件为空"})
    if len(data) > services.max_upload_bytes:
        raise ValidationFailed(f"文件“{name}”超过大小上限（{services.max_upload_bytes / 1048576:g} MB）",
                               fields={"file": f"{name}：{len(data)} 字节"}, limit="max_upload_bytes")
    with _staged(services, name, data) as path:
        kind = sniff(path)
        # Bounded checks before anything is parsed, stored or queued (parsers.preflight): a bomb,
        # a password, too many pages/frames/pixels are refused here, whatever ``attach`` says.
        facts = check_file(path, kind, name=name, limits=services.limits)
        try:
            if kind in ("png", "jpeg", "tiff", "pdf") or background:
                # header checks (damaged file, image too large); the scans endpoint takes only images
                probe_upload(data, name)
            parser = parser_for(path, mime)
        except UnsupportedInput:
            if not attach:
                raise
            return _noted(_attach(session, services, name=name, data=data, org=org, user=user, mime=mime,
                                  source_device=source_device), note)
    upload = save_upload(session, services.store, filename=name, data=data, org=org, user=user,
                         mime=MIMES.get(kind or "", mime), source_device=source_device,
                         max_bytes=services.max_upload_bytes)
    audit.record(session, who=user, org=org, action="return.upload", target=f"upload:{upload.id}",
                 after={"filename": name, "sha256": upload.sha256, "kind": kind})
    upload_id = upload.id
    if background or parser.background:
        job_id = jobs.submit(session, JOB_KIND, upload_id, total=facts.get("pages", 0), org_id=org.id)  # commits
        return _noted({"upload_id": upload_id, "job_id": job_id, "status": "queued", "filename": name,
                       "sha256": upload.sha256}, note)
    session.commit()
    try:
        process_upload(services, upload_id, user=user)
    except UnsupportedInput:
        if not attach:
            raise
        upload = session.get(Upload, upload_id)
        session.refresh(upload)
        upload.status, upload.error = "attached", None
        audit.record(session, who=user, org=org, action="upload.attach", target=f"upload:{upload.id}")
        session.commit()
        return _noted({"upload_id": upload_id, "status": "attached", "filename": name, "sha256": upload.sha256},
                      note)
    session.expire_all()
    return _noted(upload_result(session, upload_id), note)


def _noted(out: dict, note: str | None) -> dict:
    if note:
        out["filename_note"] = note
    return out


def _attach(session: Session, services: Services, *, name: str, data: bytes, org, user: str, mime: str | None,
            source_device: str | None) -> dict:
    upload = save_upload(session, services.store, filename=name, data=data, org=org, user=user, mime=mime,
                         source_device=source_device, max_bytes=services.max_upload_bytes)
    upload.status = "attached"
    audit.record(session, who=user, org=org, action="upload.attach", target=f"upload:{upload.id}")
    session.commit()
    return {"upload_id": upload.id, "status": "attached", "filename": name, "sha256": upload.sha256}


@jobs.worker_warmup("scan_reader")
def warm_scan_reader() -> dict[str, float]:
    """At worker start: the OCR engines, pinyin tables, digit references and QR decoder that reading
    a scan needs, with the reading settings of the registered services."""
    return ScanParser.warm_up(read_options(registered()))


@jobs.job_task(JOB_KIND)
def read_return(ctx: jobs.JobContext, upload_id: int) -> None:
    """Background job: read a stored returned file (safe to run again). A job that fails leaves
    the upload marked failed with the reason, so ``GET /uploads/<id>`` says so."""
    services = registered()
    try:
        process_upload(services, int(upload_id), job_id=ctx.job_id, progress=ctx.progress)
    except Exception as e:
        message = getattr(e, "message", None) or f"{type(e).__name__}: {e}"
        with services.session_factory() as session:
            upload = session.get(Upload, int(upload_id))
            if upload is not None and upload.status != "failed":
                upload.status, upload.error = "failed", f"读取任务失败：{message}"[:2000]
                session.commit()
        raise


def process_upload(services: Services, upload_id: int, *, job_id: str | None = None,
                   progress: Callable[..., None] | None = None, user: str | None = None) -> dict:
    """Read a stored upload unit by unit (idempotent: recorded units are skipped), then finish
    every document it holds. Returns {"pages": n, "read": k, "documents": [...]}. A file that
    cannot be read is marked failed with the reason, and the error raised."""
    factory = services.session_factory
    with factory() as session:
        upload = session.get(Upload, upload_id)
        if upload is None:
            raise NotFound(f"上传 {upload_id} 不存在")
        user = user or upload.uploaded_by or "system"
        data = services.store.read_bytes(upload.stored_path)
        name, mime, org_id = upload.original_filename, upload.mime, upload.org_id
        done = set(session.scalars(select(ReturnPage.page_index).where(ReturnPage.upload_id == upload_id)))
    total = 0
    with _staged(services, name, data) as path, factory() as lookup_session:
        try:
            parser = parser_for(path, mime)
            lookup = DocumentLookup(lookup_session, services, release=True)
            for unit in parser.read(path, secret=services.qr_keys, lookup=lookup, options=read_options(services),
                                    skip=done):
                total = max(total, unit.total)
                if progress and not done:
                    progress(0, total)
                with factory() as session:
                    record_page(session, services, unit, upload_id=upload_id, org_id=org_id, job_id=job_id)
                    try:
                        session.commit()
                    except IntegrityError:
                        # Another run of the same job recorded this unit meanwhile: keep its rows.
                        session.rollback()
                done.add(unit.index)
                if progress:
                    progress(len(done), total)
        except BaoxueError as e:
            _failed(factory, upload_id, e.message)
            e.details.setdefault("upload_id", upload_id)  # the stored file, kept with the reason
            raise
    with factory() as session:
        doc_ids = sorted({d for d in session.scalars(select(ReturnPage.document_id).where(
            ReturnPage.upload_id == upload_id, ReturnPage.status.in_(READ_STATUSES))) if d})
        for doc_id in doc_ids:
            finish_document(session, upload_id, doc_id, user=user)
        upload = session.get(Upload, upload_id)
        upload.status, upload.error = "parsed", None
        upload.document_id = doc_ids[0] if len(doc_ids) == 1 else upload.document_id
        session.commit()
        read = len(session.scalars(select(ReturnPage.id).where(ReturnPage.upload_id == upload_id,
                                                              ReturnPage.status.in_(READ_STATUSES))).all())
        pages = len(done)
    return {"pages": pages, "read": read, "documents": doc_ids}


def _failed(factory, upload_id: int, message: str) -> None:
    with factory() as session:
        upload = session.get(Upload, upload_id)
        upload.status, upload.error = "failed", message
        session.commit()


def review_kind(r: FieldReading) -> str:
    """The review item kind of a reading that needs a person."""
    if r.status == "mismatch":
        return "tamper"
    if r.status == "ambiguous":
        return "ambiguous"
    if r.status == "invalid":
        return "invalid"
    if r.confirm and r.status == "read":
        return "confirm"
    return "low_confidence"


def record_page(session: Session, services: Services, unit: PageRead, *, upload_id: int, org_id: int,
                job_id: str | None) -> ReturnPage:
    """One unit read: its ``ReturnPage`` row and a review item for every reading a person must
    decide (with the image region it was read from, when there is one). Flushed, not committed."""
    row = ReturnPage(upload_id=upload_id, job_id=job_id, page_index=unit.index, org_id=org_id,
                     status=unit.status, input_kind=unit.input_kind, method=unit.method or None,
                     rotation=unit.rotation, reason=unit.reason or None, page_no=unit.page_no,
                     document_id=unit.doc_id, warnings=list(unit.warnings), align_method=unit.align_method,
                     seconds=unit.seconds, readings={p: r.to_json() for p, r in unit.fields.items()})
    session.add(row)
    session.flush()
    if unit.status != "read":
        return row
    doc = session.get(Document, unit.doc_id)
    for path, r in unit.fields.items():
        if not r.needs_review:
            continue
        crop = services.store.put_bytes(unit.crops[path], ".png")[1] if path in unit.crops else None
        issued = r.to_json()["issued"]
        session.add(ReviewItem(page_id=row.id, upload_id=upload_id, document_id=doc.id, case_id=doc.case_id,
                               org_id=doc.org_id, field_path=path, kind=review_kind(r),
                               proposed={"value": r.to_json()["value"]},
                               recorded={"value": issued} if issued is not None else None,
                               text=r.text, confidence=float(r.confidence), crop_path=crop,
                               reason=r.reason or None))
    session.flush()
    return row


# ---- unidentified pages ------------------------------------------------------------------------------

def assign_page(session: Session, services: Services, page_id: int, *, document_id: str, page_no: int,
                user: str) -> ReturnPage:
    """A person says which document (and page) an unidentified page is: it is read like an
    identified one and its document finished."""
    row = session.get(ReturnPage, page_id)
    if row is None:
        raise NotFound(f"扫描页 {page_id} 不存在")
    if row.status != "unidentified" or row.input_kind != "scan":
        raise Conflict(f"扫描页 {page_id} 不是待指定的页面（{row.status}）")
    lookup = DocumentLookup(session, services)
    try:
        doc = lookup.document(doc_id=document_id)
    except UnknownDocument as e:
        raise NotFound(e.message, fields={"document_id": "不存在或已作废"}) from e
    if not doc.pages or not 1 <= int(page_no) <= doc.pages:
        raise ValidationFailed("页码超出范围", fields={"page_no": f"应为1-{doc.pages or 0}"})
    upload = session.get(Upload, row.upload_id)
    index, upload_id, org_id, job_id = row.page_index, row.upload_id, row.org_id, row.job_id
    with _staged(services, upload.original_filename, services.store.read_bytes(upload.stored_path)) as path:
        unit = ScanParser().read_assigned(path, index, doc_id=doc.id, page_no=int(page_no), lookup=lookup,
                                          options=read_options(services))
    session.delete(row)
    session.flush()
    new = record_page(session, services, unit, upload_id=upload_id, org_id=org_id, job_id=job_id)
    if new.status == "read":
        new.status = "assigned"
    audit.record(session, who=user, org=org_id, action="scan.assign", target=f"upload:{upload_id}",
                 after={"page_index": index, "document": doc.id, "page_no": int(page_no)})
    session.commit()
    if new.status == "assigned":
        finish_document(session, upload_id, doc.id, user=user)
    return new
