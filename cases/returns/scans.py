"""Scan intake use cases (DOMAIN §5.6): take a scan upload, read it page by page in a background
job, queue what a person must decide, and apply complete returned forms to the case.

Storage order (Paperless-ngx's consumer): cheap header checks first (a wrong kind, a damaged
header or a 20000x20000 image is refused before anything is stored), then the original bytes and
the ``Upload`` row, then the ``Job`` row, all committed before the caller is answered with the job
id. The job reads the stored bytes; each page's ``ScanPage`` and ``ReviewItem`` rows are committed
together, and a page already recorded is skipped, so a worker killed mid-job loses nothing and a
retried job creates no duplicates (unique (upload, page) and (page, field, kind) keys back this).

Apply (after every review item of a returned document is decided, or at once when none is open):
a complete 送达回证 calls ``cases.engine.casework.record_service`` (service date -> return deadline); a
returned 交接表 calls ``cases.handover.plans.record_row_tick`` per ticked row; a signed 责任书 (and any
other form complete per §5.6) is marked returned (``DocumentReturn`` + audit), counted by
``returned_count``. A value that conflicts with the record never overwrites it: it becomes a
``discrepancy`` review item.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cases.returns.models import DocumentReturn, ReviewItem, ScanPage
from cases.store import audit, jobs
from cases.store.models import Case, CaseEvent, Document, Org, Pupil, Upload, utcnow
from cases.store.services import registered
from cases.store.storage import save_upload
from forms.errors import BaoxueError, Conflict, MissingTool, NotFound, ValidationFailed
from forms.registry import get_spec
from forms.spec import Kind, clean_value

log = logging.getLogger(__name__)

JOB_KIND = "scan_ingest"
SCAN_MIMES = {"png": "image/png", "jpeg": "image/jpeg", "tiff": "image/tiff", "pdf": "application/pdf"}


# ---- engines ---------------------------------------------------------------------------------------

def _engines(services) -> tuple[Any, Any]:
    """(primary, fallback) OCR engines: ``services.extra["ocr_engine"]``/``["ocr_fallback"]``
    when set (tests inject a FakeOcrEngine), else RapidOCR with Tesseract as the fallback."""
    from parsers.ocr import get_engine

    extra = services.extra or {}
    engine = extra.get("ocr_engine") or get_engine("rapidocr")
    if "ocr_fallback" in extra:
        return engine, extra["ocr_fallback"]
    try:
        return engine, get_engine("tesseract")
    except MissingTool as e:
        log.warning("no fallback OCR engine: %s", e.message)
        return engine, None


# ---- intake -------------------------------------------------------------------------------------------

def start_scan(session: Session, services, *, filename: str, data: bytes, org_id: int, user: str,
               source_device: str | None = None) -> dict:
    """Check, store and queue a scan upload; return {"job_id", "upload_id"} (the caller answers 202).

    Refused before anything is stored: not PNG/JPEG/TIFF/PDF, a damaged header, an image too
    large to decode. The bytes and the Upload and Job rows are committed before returning."""
    from parsers.images import probe_upload

    org = session.get(Org, int(org_id))
    if org is None:
        raise NotFound(f"机构 {org_id} 不存在", fields={"org_id": "不存在"})
    name = (str(filename or "scan").replace("\\", "/").rsplit("/", 1)[-1]) or "scan"
    if not data:
        raise ValidationFailed(f"文件“{name}”是空的", fields={"file": f"{name}：文件为空"})
    kind = probe_upload(data, name)
    upload = save_upload(session, services.store, filename=name, data=data, org=org, user=user,
                         mime=SCAN_MIMES[kind], source_device=source_device,
                         max_bytes=services.max_upload_bytes)
    audit.record(session, who=user, org=org, action="scan.upload", target=f"upload:{upload.id}",
                 after={"filename": name, "sha256": upload.sha256})
    upload_id = upload.id
    job_id = jobs.submit(session, JOB_KIND, upload_id, total=0, org_id=org.id)  # commits upload + job
    return {"job_id": job_id, "upload_id": upload_id}


@jobs.job_task(JOB_KIND)
def scan_ingest(ctx: jobs.JobContext, upload_id: int) -> None:
    """Background job: read every page of a stored scan upload (safe to run again). A job that
    fails leaves the upload marked failed with the reason, so ``GET /scans/<id>`` says so."""
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


def process_upload(services, upload_id: int, *, job_id: str | None = None,
                   progress: Callable[..., None] | None = None, user: str | None = None) -> dict:
    """Read a stored scan upload page by page (idempotent: recorded pages are skipped), then
    finish every document it holds. Returns {"pages": n, "read": k, "documents": [...]}.
    Raises the loader's error (damaged file, too large...) after marking the upload failed."""
    from parsers.images import load_pages
    from parsers.scan import split_all

    factory = services.session_factory
    with factory() as session:
        upload = session.get(Upload, upload_id)
        if upload is None:
            raise NotFound(f"上传 {upload_id} 不存在")
        user = user or upload.uploaded_by or "system"
        data = services.store.read_bytes(upload.stored_path)
        try:
            # several pages photographed in one image are cut apart: each is its own page
            pages = split_all(load_pages(data, filename=upload.original_filename))
        except BaoxueError as e:
            upload.status, upload.error = "failed", e.message
            session.commit()
            raise
        done = set(session.scalars(select(ScanPage.page_index).where(ScanPage.upload_id == upload_id)))
        org_id = upload.org_id
    if progress:
        progress(len(done), len(pages))
    engine, fallback = _engines(services)
    cache: dict[str, Any] = {}
    for page in pages:
        if page.index in done:
            continue
        with factory() as session:
            try:
                _process_page(session, services, page, upload_id=upload_id, org_id=org_id, job_id=job_id,
                              engine=engine, fallback=fallback, cache=cache)
            except BaoxueError as e:
                # A tool that failed on this page (tried again where it timed out): the page is
                # recorded as failed with the reason, the other pages are still read.
                session.rollback()
                log.warning("scan upload %s page %d failed: %s", upload_id, page.index, e.message)
                session.add(ScanPage(upload_id=upload_id, job_id=job_id, page_index=page.index, org_id=org_id,
                                     status="failed", reason=f"读取失败：{e.message}"[:2000], readings={}))
            try:
                session.commit()
            except IntegrityError:
                # Another run of the same job recorded this page meanwhile: keep its rows.
                session.rollback()
        done.add(page.index)
        if progress:
            progress(len(done), len(pages))
    with factory() as session:
        doc_ids = sorted({d for d in session.scalars(select(ScanPage.document_id).where(
            ScanPage.upload_id == upload_id, ScanPage.status == "read")) if d})
        for doc_id in doc_ids:
            finish_document(session, services, upload_id, doc_id, user=user)
        upload = session.get(Upload, upload_id)
        upload.status = "parsed"
        upload.document_id = doc_ids[0] if len(doc_ids) == 1 else upload.document_id
        session.commit()
        read = session.scalar(select(func.count()).select_from(ScanPage).where(
            ScanPage.upload_id == upload_id, ScanPage.status == "read"))
    return {"pages": len(pages), "read": int(read or 0), "documents": doc_ids}


def _context(session: Session, services, doc: Document, cache: dict):
    """The ReadContext of a document (tick boxes from its stored PDF, people of its case)."""
    from parsers.scan import ReadContext, ReferencePages, tick_boxes_from_pdf

    if doc.id in cache:
        return cache[doc.id]
    if not doc.geometry or not doc.pdf_sha256:
        raise NotFound(f"文书 {doc.number_text or doc.id} 没有打印版面记录（未生成 PDF），无法读取扫描件")
    spec = get_spec(doc.form)
    var = spec.variant(doc.variant)
    issued = doc.cleaned(spec)
    pdf = services.store.read_bytes(services.store.relpath_for(doc.pdf_sha256, ".pdf"))
    people: list[str] = []
    if doc.case_id:
        case = session.get(Case, doc.case_id)
        pupil = session.get(Pupil, case.pupil_id) if case else None
        if pupil is not None:
            people += [pupil.name] + [g.name for g in pupil.guardians]
    for name, value in issued.items():
        if isinstance(value, str) and name.endswith("_name") and spec.field(name).kind == Kind.NAME:
            people.append(value)
    issued_on = issued.get("issue_date") or (doc.created_at.date() if doc.created_at else None)
    ctx = ReadContext(spec, var, doc.geometry, issued, tick_boxes_from_pdf(pdf, doc.geometry),
                      people=tuple(dict.fromkeys(p for p in people if p)), issued_on=issued_on,
                      today=dt.date.today(), threshold=float((services.extra or {}).get("scan_threshold", 0.9)),
                      # Rendered lazily, once per page, kept with the context for the whole upload.
                      reference=ReferencePages(pdf))
    cache[doc.id] = ctx
    return ctx


def _resolve(session: Session, identity) -> tuple[Document | None, str]:
    """The Document a page identity names, or (None, reason)."""
    if identity.doc_id:
        doc = session.get(Document, identity.doc_id)
        if doc is None and identity.method == "ocr_doc_id":
            # read off the print, not a verified code: a misread character is likelier than a stranger
            return None, (f"二维码不可读，印刷的文书标识读作 {identity.doc_id}，系统中没有这份文书（可能有字符读错），"
                          "请人工指定")
        if doc is None:
            return None, f"文书标识 {identity.doc_id} 不是本系统签发的文书（其他文件的页面）"
        if identity.form and (doc.form != identity.form or (doc.variant or None) != (identity.variant or None)):
            return None, "二维码中的表单类型与登记的文书不符，可能被改动"
    else:
        docs = session.scalars(select(Document).where(Document.number_text == identity.doc_number)).all()
        if len(docs) != 1:
            return None, (f"文号“{identity.doc_number}”对应多份文书，请人工指定" if docs
                          else f"文号“{identity.doc_number}”不是本系统签发的文书")
        doc = docs[0]
    if identity.pages and doc.pages and identity.pages != doc.pages:
        return None, (f"页脚读作共{identity.pages}页，文书 {doc.number_text or doc.id} 共{doc.pages}页：识别有误，"
                      "请人工指定")
    if doc.status == "void":
        return None, f"文书 {doc.number_text or doc.id} 已作废：{doc.void_reason or ''}"
    return doc, ""


def _process_page(session: Session, services, page, *, upload_id: int, org_id: int, job_id: str | None,
                  engine, fallback, cache: dict, identity=None, user: str | None = None) -> ScanPage:
    """Identify (unless ``identity`` is given), read and record one page with its review items."""
    from parsers.align import AlignmentFailed
    from parsers.scan import identify_page, read_page

    if identity is None:
        identity = identify_page(page, secret=services.qr_secret, engine=engine)
    # The row joins the session only once the page is read: a pending row would be flushed by the
    # first query and hold SQLite's write lock through seconds of OCR, stalling every other writer
    # (the web service, the job's own lease heartbeat).
    row = ScanPage(upload_id=upload_id, job_id=job_id, page_index=page.index, org_id=org_id,
                   status=identity.status if identity.status != "identified" else "read",
                   method=identity.method or None, rotation=identity.rotation, reason=identity.reason or None,
                   page_no=identity.page_no or None, readings={})

    def record() -> ScanPage:
        session.add(row)
        session.flush()
        return row

    if identity.status != "identified":
        return record()
    doc, why = _resolve(session, identity)
    if doc is None:
        row.status, row.reason = "unidentified", why
        return record()
    row.document_id = doc.id
    if not identity.page_no:
        row.status = "unidentified"
        row.reason = f"识别出文号“{doc.number_text}”，但不知道是第几页，请人工指定"
        return record()
    try:
        ctx = _context(session, services, doc, cache)
        reading = read_page(page, identity, ctx, engine=engine, fallback=fallback)
    except AlignmentFailed as e:
        row.status, row.reason = "failed", e.message
        return record()
    except NotFound as e:
        row.status, row.reason = "failed", e.message
        return record()
    row.align_method, row.seconds = reading.align_method, round(reading.seconds, 3)
    row.readings = {p: r.to_json() for p, r in reading.readings.items()}
    record()
    for path, r in reading.readings.items():
        if not r.needs_review:
            continue
        _, crop_rel = services.store.put_bytes(_png(reading.crops[path]), ".png")
        session.add(ReviewItem(scan_page_id=row.id, upload_id=upload_id, document_id=doc.id,
                               case_id=doc.case_id, org_id=doc.org_id, field_path=path,
                               kind=_review_kind(r), proposed={"value": r.value},
                               recorded={"value": r.issued} if r.issued is not None else None,
                               text=r.text, confidence=float(r.confidence), crop_path=crop_rel,
                               reason=r.reason or None))
    session.flush()
    return row


def _png(pixels) -> bytes:
    from parsers.scan import png_bytes

    return png_bytes(pixels)


def _review_kind(r) -> str:
    if r.status == "mismatch":
        return "tamper"
    if r.status == "ambiguous":
        return "ambiguous"
    if r.status == "invalid":
        return "invalid"
    if r.confirm and r.status == "read":
        return "confirm"
    return "low_confidence"


# ---- documents: completeness and apply -------------------------------------------------------------------

def _best_readings(session: Session, upload_id: int, doc_id: str) -> dict[str, tuple[ScanPage, dict]]:
    best: dict[str, tuple[ScanPage, dict]] = {}
    pages = session.scalars(select(ScanPage).where(ScanPage.upload_id == upload_id,
                                                   ScanPage.document_id == doc_id,
                                                   ScanPage.status.in_(("read", "assigned")))
                            .order_by(ScanPage.page_index)).all()
    for p in pages:
        for path, r in (p.readings or {}).items():
            cur = best.get(path)
            if cur is None or (cur[1]["needs_review"], -cur[1]["confidence"]) > (r["needs_review"], -r["confidence"]):
                best[path] = (p, r)
    return best


def document_values(session: Session, upload_id: int, doc_id: str) -> dict[str, Any]:
    """Field path -> value read from this upload, with every decided review item applied
    (accepted: the proposed value; corrected: the person's value; rejected: no value)."""
    values = {path: r["value"] for path, (_p, r) in _best_readings(session, upload_id, doc_id).items()}
    items = session.scalars(select(ReviewItem).where(ReviewItem.upload_id == upload_id,
                                                     ReviewItem.document_id == doc_id,
                                                     ReviewItem.status != "open")
                            .order_by(ReviewItem.decided_at, ReviewItem.id)).all()
    for it in items:
        if it.kind == "tamper":
            continue  # a printed value is never replaced by what was read
        if it.status == "accepted":
            values[it.field_path] = (it.proposed or {}).get("value")
        elif it.status == "corrected":
            values[it.field_path] = (it.decision or {}).get("value")
        elif it.status == "rejected":
            values[it.field_path] = None
    return values


def _raw(f, value: Any) -> Any:
    """Stored readings keep datetimes as ISO strings; the spec's parser wants written forms."""
    if f.kind == Kind.DATETIME and isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    return value


def _cleaned(spec, values: Mapping[str, Any]) -> dict[str, Any]:
    """Spec-cleaned values of the top-level fields read (invalid ones left out)."""
    out = {}
    for path, value in values.items():
        if "[" in path:
            continue
        try:
            f = spec.field(path)
            out[path] = clean_value(f, _raw(f, value), required=False, errors={}, path=path, stage="returned")
        except (KeyError, ValueError):
            continue
    return out


def completeness(spec, values: Mapping[str, Any]) -> tuple[bool, list[str]]:
    """DOMAIN §5.6 item 4: whether a returned form counts as evidence, and what is missing.
    The 回证 follows ``guardian_notice.receipt_complete``; other forms need every signature and
    seal zone that was on the returned pages present."""
    cleaned = _cleaned(spec, values)
    if spec.code == "guardian_notice" and any(p in values for p in ("service_method", "recipient_signature")):
        from forms.specs.guardian_notice import receipt_complete

        return receipt_complete(cleaned)
    missing = [p for p in values if "[" not in p and spec.field(p).kind in (Kind.SIGNATURE, Kind.SEAL)
               and not cleaned.get(p)]
    return (not missing, sorted(missing))


def open_items(session: Session, upload_id: int, doc_id: str) -> int:
    return int(session.scalar(select(func.count()).select_from(ReviewItem).where(
        ReviewItem.upload_id == upload_id, ReviewItem.document_id == doc_id, ReviewItem.status == "open")) or 0)


def finish_document(session: Session, services, upload_id: int, doc_id: str, *, user: str) -> DocumentReturn:
    """Record (once) the returned copy of ``doc_id`` in this upload and apply it when no review
    item is open. Idempotent."""
    doc = session.get(Document, doc_id)
    ret = session.scalar(select(DocumentReturn).where(DocumentReturn.document_id == doc_id,
                                                      DocumentReturn.upload_id == upload_id))
    if ret is None:
        ret = DocumentReturn(document_id=doc_id, upload_id=upload_id, form=doc.form, org_id=doc.org_id,
                             status="review")
        session.add(ret)
        session.flush()
    if ret.status != "applied":
        _try_apply(session, doc, ret, user=user)
    session.commit()
    return ret


def _try_apply(session: Session, doc: Document, ret: DocumentReturn, *, user: str) -> None:
    spec = get_spec(doc.form)
    values = document_values(session, ret.upload_id, doc.id)
    ret.values = values
    ret.complete, ret.missing = completeness(spec, values)
    if open_items(session, ret.upload_id, doc.id):
        ret.status = "review"
        return
    if doc.form == "guardian_notice" and "service_method" in values:
        if not _apply_receipt(session, doc, ret, values, user=user):
            return
    elif doc.form == "handover":
        _apply_handover(session, doc, values, user=user)
    ret.status = "applied" if ret.complete else "incomplete"
    ret.applied_at = utcnow()
    audit.record(session, who=user, org=doc.org_id, action="document.returned", target=f"document:{doc.id}",
                 after={"upload": ret.upload_id, "complete": ret.complete, "missing": ret.missing})
    if doc.case_id:
        session.add(CaseEvent(case_id=doc.case_id, org_id=doc.org_id, kind="document_returned", actor=user,
                              occurred_at=utcnow(), data={"document": doc.id, "upload": ret.upload_id,
                                                          "complete": ret.complete, "missing": ret.missing,
                                                          "source": "scan"}))


def _apply_receipt(session: Session, doc: Document, ret: DocumentReturn, values: Mapping, *, user: str) -> bool:
    """A complete 回证 records the service (return deadline starts). A service already on record
    with another date or method is never overwritten: a discrepancy item goes to review instead.
    Returns False when the document waits for a person."""
    if not ret.complete or not doc.case_id:
        return True
    cleaned = _cleaned(get_spec(doc.form), values)
    served = cleaned.get("service_time")
    served_on = served.date() if isinstance(served, dt.datetime) else served
    method = cleaned.get("service_method")
    case = session.get(Case, doc.case_id)
    previous = [e for e in session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id,
                                                                   CaseEvent.kind == "service"))
                if (e.data or {}).get("document_id") == doc.id]
    if previous:
        old = previous[-1].data
        if old.get("served_on") == served_on.isoformat() and old.get("method") == method:
            return True  # the same service, already on record
        page = session.scalar(select(ScanPage).where(ScanPage.upload_id == ret.upload_id,
                                                     ScanPage.document_id == doc.id))
        accepted = session.scalar(select(ReviewItem).where(
            ReviewItem.upload_id == ret.upload_id, ReviewItem.document_id == doc.id,
            ReviewItem.kind == "discrepancy", ReviewItem.status.in_(("accepted", "corrected"))))
        if accepted is None:
            exists = session.scalar(select(ReviewItem).where(
                ReviewItem.scan_page_id == page.id, ReviewItem.field_path == "service_time",
                ReviewItem.kind == "discrepancy"))
            if exists is None:
                session.add(ReviewItem(
                    scan_page_id=page.id, upload_id=ret.upload_id, document_id=doc.id, case_id=case.id,
                    org_id=doc.org_id, field_path="service_time", kind="discrepancy",
                    proposed={"value": {"served_on": served_on.isoformat(), "method": method}},
                    recorded={"value": {"served_on": old.get("served_on"), "method": old.get("method")}},
                    confidence=0.0, reason="扫描件的送达日期/方式与案卷记录不一致：不自动覆盖，请核对"))
            ret.status = "review"
            return False
    from cases.engine.casework import record_service

    record_service(session, case, document_id=doc.id, served_on=served_on, method=method, complete=True,
                   actor=user)
    return True


def _apply_handover(session: Session, doc: Document, values: Mapping, *, user: str) -> None:
    """Each row's 报到 tick (and date / whereabouts) goes to the handover engine."""
    import re

    from cases.handover.plans import record_row_tick

    rows: dict[int, dict] = {}
    for path, value in values.items():
        m = re.match(r"^pupils\[(\d+)\]\.(registered|registered_on|whereabouts)$", path)
        if m:
            rows.setdefault(int(m.group(1)), {})[m.group(2)] = value
    for i, row in sorted(rows.items()):
        if row.get("registered") is None and not row.get("whereabouts"):
            continue
        on = row.get("registered_on")
        try:
            record_row_tick(session, handover_document_id=doc.id, row=i + 1, registered=row.get("registered"),
                            registered_on=dt.date.fromisoformat(on) if isinstance(on, str) else on,
                            whereabouts=row.get("whereabouts"), actor=user)
        except (NotFound, ValidationFailed) as e:
            log.warning("handover %s row %d not recorded: %s", doc.id, i + 1, e.message)


# ---- review queue ---------------------------------------------------------------------------------

def decide(session: Session, services, item_id: int, *, action: str, value: Any = None, user: str) -> ReviewItem:
    """Accept or correct (or reject) a review item; records who and when, then applies the
    document when it was the last open item. A decided item cannot be decided again."""
    item = session.get(ReviewItem, item_id)
    if item is None:
        raise NotFound(f"复核项 {item_id} 不存在")
    if item.status != "open":
        raise Conflict(f"复核项 {item_id} 已由 {item.decided_by} 处理（{item.status}）")
    if action not in ("accept", "correct", "reject"):
        raise ValidationFailed("复核动作无效", fields={"action": "可选：accept、correct、reject"})
    if action == "correct":
        value = _check_correction(item, value)
    item.status = {"accept": "accepted", "correct": "corrected", "reject": "rejected"}[action]
    item.decided_by, item.decided_at = user, utcnow()
    item.decision = {"action": action, "value": value if action == "correct" else (item.proposed or {}).get("value")}
    audit.record(session, who=user, org=item.org_id, action=f"review.{action}", target=f"review:{item.id}",
                 before={"proposed": item.proposed}, after=item.decision)
    session.flush()
    finish_document(session, services, item.upload_id, item.document_id, user=user)
    return item


def _check_correction(item: ReviewItem, value: Any) -> Any:
    """A person's value, cleaned through the field's spec (JSON-safe); a discrepancy takes any."""
    from cases.store.models import to_json
    from parsers.scan import resolve_field

    if item.kind == "discrepancy" or value is None:
        return value
    form = Session.object_session(item).get(Document, item.document_id).form
    try:
        f = resolve_field(get_spec(form), item.field_path)[0]
        cleaned = clean_value(f, _raw(f, value), required=False, errors={}, path=item.field_path,
                              stage="returned")
    except ValueError as e:
        raise ValidationFailed("更正的值无效", fields={"value": str(e)}) from e
    return to_json({"v": cleaned})["v"]


def list_review(session: Session, org: Org | None, *, status: str = "open", limit: int = 100,
                offset: int = 0) -> list[ReviewItem]:
    """Review items in ``org``'s subtree (all when None), oldest first."""
    stmt = select(ReviewItem).order_by(ReviewItem.id).limit(limit).offset(offset)
    if status != "all":
        stmt = stmt.where(ReviewItem.status == status)
    if org is not None:
        stmt = stmt.where(ReviewItem.in_scope(org))
    return list(session.scalars(stmt))


# ---- unidentified pages ------------------------------------------------------------------------------

def list_unidentified(session: Session, org: Org | None) -> list[ScanPage]:
    stmt = select(ScanPage).where(ScanPage.status == "unidentified").order_by(ScanPage.id)
    if org is not None:
        stmt = stmt.where(ScanPage.in_scope(org))
    return list(session.scalars(stmt))


def assign_page(session: Session, services, page_id: int, *, document_id: str, page_no: int, user: str) -> ScanPage:
    """A person says which document (and page) an unidentified page is: it is read like an
    identified one (upright as scanned) and its document finished."""
    from parsers.images import load_pages
    from parsers.scan import PageIdentity, split_all

    row = session.get(ScanPage, page_id)
    if row is None:
        raise NotFound(f"扫描页 {page_id} 不存在")
    if row.status != "unidentified":
        raise Conflict(f"扫描页 {page_id} 不是待指定的页面（{row.status}）")
    doc = session.get(Document, document_id)
    if doc is None:
        raise NotFound(f"文书 {document_id} 不存在", fields={"document_id": "不存在"})
    if not doc.pages or not 1 <= int(page_no) <= doc.pages:
        raise ValidationFailed("页码超出范围", fields={"page_no": f"应为1-{doc.pages or 0}"})
    upload = session.get(Upload, row.upload_id)
    pages = split_all(load_pages(services.store.read_bytes(upload.stored_path), filename=upload.original_filename))
    page = pages[row.page_index]
    from parsers.qr import find_codes

    hits = find_codes(page)
    identity = PageIdentity(page.index, "identified", doc.id, doc.form, doc.variant, int(page_no), doc.pages or 0,
                            "manual", rotation=hits[0].rotation if hits else 0)
    engine, fallback = _engines(services)
    index, upload_id, org_id, job_id = row.page_index, row.upload_id, row.org_id, row.job_id
    session.delete(row)
    session.flush()
    new = _process_page(session, services, page, upload_id=upload_id, org_id=org_id, job_id=job_id,
                        engine=engine, fallback=fallback, cache={}, identity=identity)
    assert new.page_index == index
    if new.status == "read":
        new.status = "assigned"
    audit.record(session, who=user, org=org_id, action="scan.assign", target=f"upload:{upload_id}",
                 after={"page_index": index, "document": doc.id, "page_no": int(page_no)})
    session.commit()
    if new.status == "assigned":
        finish_document(session, services, upload_id, doc.id, user=user)
    return new


# ---- queries ---------------------------------------------------------------------------------------

def upload_outcome(session: Session, upload_id: int) -> dict:
    """Per-page outcome of a scan upload (for GET /scans/<id>)."""
    upload = session.get(Upload, upload_id)
    if upload is None:
        raise NotFound(f"上传 {upload_id} 不存在")
    pages = session.scalars(select(ScanPage).where(ScanPage.upload_id == upload_id)
                            .order_by(ScanPage.page_index)).all()
    rets = session.scalars(select(DocumentReturn).where(DocumentReturn.upload_id == upload_id)).all()
    open_by_page = dict(session.execute(select(ReviewItem.scan_page_id, func.count()).where(
        ReviewItem.upload_id == upload_id, ReviewItem.status == "open").group_by(ReviewItem.scan_page_id)).all())
    return {
        "upload_id": upload.id, "filename": upload.original_filename, "sha256": upload.sha256,
        "status": upload.status, "error": upload.error, "org_id": upload.org_id,
        "pages": [{"id": p.id, "index": p.page_index, "status": p.status, "document_id": p.document_id,
                   "page_no": p.page_no, "method": p.method, "rotation": p.rotation, "reason": p.reason,
                   "align": p.align_method, "seconds": p.seconds, "open_review_items": open_by_page.get(p.id, 0),
                   "fields": {k: {"value": r["value"], "confidence": r["confidence"], "status": r["status"],
                                  "needs_review": r["needs_review"]} for k, r in (p.readings or {}).items()}}
                  for p in pages],
        "documents": [{"document_id": r.document_id, "form": r.form, "complete": r.complete,
                       "missing": r.missing, "status": r.status} for r in rets],
    }


def returned_count(session: Session, *, form: str, issuer_id: int, year: int | None = None,
                   variant: str | None = None) -> dict:
    """"N of M returned" for a batch: issued documents of ``form`` (and variant, year) by the issuer,
    and how many came back complete."""
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
