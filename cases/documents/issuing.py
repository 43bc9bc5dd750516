"""Issuing a document: validate, number, render (DOCX, PDF with QR, field geometry) and store it.
Called by web/ and by jobs; no Flask here.

A document number is reserved in its own short transaction before rendering (rendering holds no
database lock). If rendering then fails, nothing reached paper: the document row is removed and
its numbers given back (``numbering.release_number``), so a failed request consumes no number and
the series stays gapless; the failure is written to the audit log. While LibreOffice is
unavailable (``forms.converter_health``), or every renderer of a web process is busy and its
bounded queue full (``render_pool``), a request is refused with 503 before any number is reserved.
A web process renders in its renderer processes, so that its threads answering reads never wait
behind rendering.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cases.documents import render_pool
from cases.documents.prefill import complete_data, options_for_profile
from cases.store import audit
from cases.store.models import Case, CaseEvent, Document, Org, from_json, to_json, utcnow
from cases.store.numbering import family_key, number_document, number_series_fields, release_number
from cases.store.services import Services
from forms import identity as ident
from forms.converter_health import BREAKER
from forms.errors import BaoxueError, Conflict, MissingTool, NotFound, RenderFailed, ToolFailed, ValidationFailed
from forms.registry import get_spec
from forms.spec import FormSpec, Variant

log = logging.getLogger(__name__)


def get_org(session: Session, org_id: int | None, what: str = "org_id") -> Org:
    """The organisation ``org_id``; ValidationFailed when missing, NotFound when unknown (``what``
    names the input field in the error)."""
    if org_id is None:
        raise ValidationFailed("缺少机构", fields={what: "必填"})
    org = session.get(Org, int(org_id))
    if org is None:
        raise NotFound(f"机构 {org_id} 不存在", fields={what: "不存在"})
    return org


def profile_name(session: Session, org: Org, services: Services) -> str:
    """The region profile of the county above ``org`` (DOMAIN Appendix A: chosen per county)."""
    node: Org | None = org
    while node is not None:
        if node.region_profile:
            return node.region_profile
        node = session.get(Org, node.parent_id) if node.parent_id else None
    return services.default_profile


def form_options(session: Session, org: Org, services: Services) -> dict:
    """Profile-dependent validation options for specs (e.g. the minimum number of attempts)."""
    return options_for_profile(profile_name(session, org, services))


# ---- issuing documents ------------------------------------------------------------------------------

def issue_document(session: Session, services: Services, *, form: str, variant: str | None,
                   issuer_id: int, data: Mapping[str, Any], case_id: int | None = None,
                   user: str = "system", want_pdf: bool = True, issued_on: dt.date | None = None,
                   request_key: str | None = None) -> Document:
    """Validate, number, render and store one document; return its issued ``Document`` row.

    ``request_key`` makes the call idempotent: when a document was already issued under that key
    (a batch item run again after its worker died) it is returned as it is, with its number.

    Invalid input raises ValidationFailed before anything is written; while LibreOffice is
    unavailable ConverterUnavailable (503) is raised before any number is reserved. The number is
    reserved and the row committed (status ``rendering``) before rendering; a render failure
    removes the row and gives the number back (module docstring)."""
    if request_key is not None:
        done = session.scalar(select(Document).where(Document.request_key == request_key))
        if done is not None and done.status == "issued":
            log.info("request %s already issued as %s", request_key, done.id)
            return done
    spec = get_spec(form)
    var = spec.variant(variant)
    issuer = get_org(session, issuer_id, "issuer_id")
    case = None
    if case_id is not None:
        case = session.get(Case, int(case_id))
        if case is None:
            raise NotFound(f"案件 {case_id} 不存在", fields={"case_id": "不存在"})
    issued_on = issued_on or dt.date.today()
    profile = profile_name(session, issuer, services)
    full = complete_data(spec, var, dict(data), profile=profile, issued_on=issued_on, issuer=issuer)
    cleaned = spec.validate(full, var, options=form_options(session, issuer, services))

    BREAKER.check()  # LibreOffice known to be down: 503 now, no number reserved (the DOCX needs its layout too)
    with render_pool.slot():  # every renderer busy and the queue full: 503 now, no number reserved
        return _issue(session, services, spec=spec, var=var, issuer=issuer, case=case, cleaned=cleaned,
                      issued_on=issued_on, user=user, want_pdf=want_pdf, request_key=request_key)


def _issue(session: Session, services: Services, *, spec: FormSpec, var: Variant | None, issuer: Org,
           case: Case | None, cleaned: dict, issued_on: dt.date, user: str, want_pdf: bool,
           request_key: str | None) -> Document:
    """Reserve the number, render (in the renderer pool when this process has one), store."""
    release_stale_renders(session, issuer=issuer, family=family_key(spec.code, spec.abbr(var)), year=issued_on.year)

    doc = Document(id=ident.new_doc_id(), org_id=issuer.id, case_id=case.id if case else None,
                   form=spec.code, variant=var.code if var else None,
                   family=family_key(spec.code, spec.abbr(var)), template_version=spec.version,
                   year=issued_on.year, status="rendering", created_by=user, request_key=request_key)
    session.add(doc)
    number = number_document(session, doc, issuer=issuer, abbr=spec.abbr(var))
    taken = [(doc.family, doc.seq)]
    cleaned[spec.number_field] = number
    cleaned.update(number_series_fields(session, spec, doc, issuer=issuer, taken=taken))
    doc.data = to_json(cleaned)
    session.commit()  # the number is reserved; given back below if rendering fails

    identity = ident.Identity(doc.id, spec.code, doc.variant, spec.version)
    try:
        date = f"{issued_on.year}年{issued_on.month}月{issued_on.day}日"
        files = render_pool.render(render_pool.RenderSettings.of(services), spec, var, cleaned, identity,
                                   want_pdf=want_pdf, doc_extra={"number": number, "id": doc.id, "date": date})
        doc.docx_sha256, _ = services.store.put_bytes(files.docx, ".docx")
        if files.pdf is not None:
            doc.pdf_sha256, _ = services.store.put_bytes(files.pdf, ".pdf")
            doc.pages, doc.geometry = files.pages, files.geometry
    except BaoxueError as e:
        # LibreOffice down or dying (not a document it cannot open): count it towards the breaker
        converter = isinstance(e, (ToolFailed, MissingTool)) and not getattr(e, "fatal", False)
        if converter:
            BREAKER.failed(e.message)
        _give_back(session, doc, taken, issuer=issuer, reason=e.message, who=user)
        if converter:
            raise BREAKER.unavailable() from e
        raise RenderFailed(f"文书生成失败（未占用文号）：{e.message}", form=spec.code) from e
    BREAKER.succeeded()
    doc.status = "issued"
    audit.record(session, who=user, org=issuer, action="document.issue", target=f"document:{doc.id}",
                 after={"number": number, "form": spec.code, "variant": doc.variant})
    _audit_full_prints(session, spec, doc, cleaned, who=user, action="document.print_full_id")
    if case is not None:
        session.add(CaseEvent(case_id=case.id, org_id=issuer.id, kind="document", actor=user,
                              occurred_at=utcnow(), data={"document": doc.id, "form": spec.code,
                                                          "variant": doc.variant, "number": number}))
    session.commit()
    log.info("issued %s %s as %s", spec.code, doc.variant or "", doc.id)
    return doc


STALE_RENDER = dt.timedelta(minutes=30)


def release_stale_renders(session: Session, *, issuer: Org, family: str, year: int,
                          older_than: dt.timedelta = STALE_RENDER) -> int:
    """Documents of this series left ``rendering`` by a process that died mid-render (a render
    takes seconds; its converter gives up within minutes): nothing reached paper, so their numbers
    are given back before the next one is reserved. Returns how many."""
    cutoff = utcnow() - older_than
    stale = session.scalars(select(Document).where(
        Document.org_id == issuer.id, Document.family == family, Document.year == year,
        Document.status == "rendering", Document.created_at < cutoff)).all()
    for doc in stale:
        taken = [(doc.family, doc.seq)] if doc.seq is not None else []
        spec = get_spec(doc.form)
        for f in spec.fields:
            text = (doc.data or {}).get(f.name) if f.series else None
            m = re.search(r"〕(\d+)号$", str(text or ""))
            if m:
                taken.append((family_key(spec.code, f.series), int(m.group(1))))
        _give_back(session, doc, taken, issuer=issuer, reason="生成过程中断（进程退出），未出具", who="system")
    return len(stale)


def _give_back(session: Session, doc: Document, taken: list[tuple[str, int]], *, issuer: Org, reason: str,
               who: str) -> None:
    """Rendering failed: nothing reached paper. Remove the document row and give its numbers back
    in one transaction; the audit log keeps what happened."""
    doc_id, number, form, variant, year = doc.id, doc.number_text, doc.form, doc.variant, doc.year
    session.rollback()
    row = session.get(Document, doc_id)
    if row is not None:
        session.delete(row)
        session.flush()
    for family, seq in reversed(taken):
        release_number(session, org=issuer, family=family, year=year, seq=seq)
    audit.record(session, who=who, org=issuer, action="document.render_failed", target=f"document:{doc_id}",
                 after={"form": form, "variant": variant, "released_number": number, "reason": reason[:300]})
    session.commit()
    log.warning("rendering %s failed, number %s given back: %s", doc_id, number, reason)


def _audit_full_prints(session: Session, spec, doc: Document, data: Mapping[str, Any], *, who: str,
                       action: str) -> None:
    """An audit entry for a document that prints a number in full (``Field.full_print_when``,
    DOMAIN §8.4): which fields, for which recipient rule. The number itself is not written."""
    fields = spec.full_prints(data)
    if fields:
        rules = {name: [f"{k}={data.get(k)}" for k, _vals in spec.field(name).full_print_when] for name in fields}
        audit.record(session, who=who, org=doc.org_id, action=action, target=f"document:{doc.id}",
                     after={"fields": fields, "rule": rules, "number": doc.number_text, "form": spec.code})


def document_file(services: Services, doc: Document, kind: str, *, session: Session | None = None,
                  who: str = "system") -> bytes:
    """The stored DOCX or PDF. A file that prints a number in full is a new print of it: with a
    ``session``, the download is written to the audit log (the caller commits)."""
    digest = doc.pdf_sha256 if kind == "pdf" else doc.docx_sha256
    if doc.status != "issued" or not digest:
        raise NotFound(f"文书 {doc.id} 没有{kind.upper()}文件", document=doc.id)
    data = services.store.read_bytes(services.store.relpath_for(digest, f".{kind}"))
    if session is not None:
        spec = get_spec(doc.form)
        _audit_full_prints(session, spec, doc, from_json(spec, doc.data or {}), who=who,
                           action=f"document.download_full_id.{kind}")
    return data


def get_document(session: Session, doc_id: str) -> Document:
    doc = session.get(Document, doc_id)
    if doc is None:
        raise NotFound(f"文书 {doc_id} 不存在", document=doc_id)
    return doc


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
