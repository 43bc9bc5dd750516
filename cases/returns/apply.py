"""A returned document applied to its case, the same for every kind of return (DOMAIN §5.6).

A document's values are the best reading of each field among the units of the upload that hold
it, with every decided review item applied (accepted: the proposed value; corrected: the
person's value; rejected: no value; a printed value is never replaced). Once no review item of
the document is open, the returned copy is recorded (``DocumentReturn``: complete per §5.6 item
4 or what is missing) and applied: a complete 送达回证 records the service (the return deadline
starts); a returned 交接表 records each row's 报到 tick. A value that conflicts with the record
never overwrites it: it becomes a ``discrepancy`` review item.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cases.engine.casework import record_service
from cases.handover.plans import record_row_tick
from cases.returns.models import DocumentReturn, ReturnPage, ReviewItem
from cases.store import audit
from cases.store.models import Case, CaseEvent, Document, utcnow
from forms.errors import NotFound, ValidationFailed
from forms.registry import get_spec
from forms.spec import Kind, clean_value

log = logging.getLogger(__name__)

READ_STATUSES = ("read", "assigned")


def best_readings(session: Session, upload_id: int, doc_id: str) -> dict[str, tuple[ReturnPage, dict]]:
    """Per field path, the unit of this upload it was best read on and that reading (JSON): a
    field printed on several pages keeps the reading that needs no person, most confident first."""
    best: dict[str, tuple[ReturnPage, dict]] = {}
    pages = session.scalars(select(ReturnPage).where(ReturnPage.upload_id == upload_id,
                                                   ReturnPage.document_id == doc_id,
                                                   ReturnPage.status.in_(READ_STATUSES))
                            .order_by(ReturnPage.page_index)).all()
    for p in pages:
        for path, r in (p.readings or {}).items():
            cur = best.get(path)
            if cur is None or (cur[1]["needs_review"], -cur[1]["confidence"]) > (r["needs_review"], -r["confidence"]):
                best[path] = (p, r)
    return best


def document_values(session: Session, upload_id: int, doc_id: str) -> dict[str, Any]:
    """Field path -> value read from this upload, with every decided review item applied
    (accepted: the proposed value; corrected: the person's value; rejected: no value)."""
    values = {path: r["value"] for path, (_p, r) in best_readings(session, upload_id, doc_id).items()}
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


def raw_value(f, value: Any) -> Any:
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
            out[path] = clean_value(f, raw_value(f, value), required=False, errors={}, path=path, stage="returned")
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
    """How many review items of the document in this upload wait for a person."""
    return int(session.scalar(select(func.count()).select_from(ReviewItem).where(
        ReviewItem.upload_id == upload_id, ReviewItem.document_id == doc_id, ReviewItem.status == "open")) or 0)


def finish_document(session: Session, upload_id: int, doc_id: str, *, user: str) -> DocumentReturn:
    """Record (once) the returned copy of ``doc_id`` in this upload and apply it when no review
    item is open. Idempotent."""
    doc = session.get(Document, doc_id)
    ret = session.scalar(select(DocumentReturn).where(DocumentReturn.document_id == doc_id,
                                                      DocumentReturn.upload_id == upload_id))
    if ret is None:
        kind = session.scalar(select(ReturnPage.input_kind).where(ReturnPage.upload_id == upload_id,
                                                                  ReturnPage.document_id == doc_id).limit(1))
        ret = DocumentReturn(document_id=doc_id, upload_id=upload_id, form=doc.form, org_id=doc.org_id,
                             input_kind=kind, status="review")
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
                                                          "source": ret.input_kind}))


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
        page = session.scalar(select(ReturnPage).where(ReturnPage.upload_id == ret.upload_id,
                                                     ReturnPage.document_id == doc.id))
        accepted = session.scalar(select(ReviewItem).where(
            ReviewItem.upload_id == ret.upload_id, ReviewItem.document_id == doc.id,
            ReviewItem.kind == "discrepancy", ReviewItem.status.in_(("accepted", "corrected"))))
        if accepted is None:
            exists = session.scalar(select(ReviewItem).where(
                ReviewItem.page_id == page.id, ReviewItem.field_path == "service_time",
                ReviewItem.kind == "discrepancy"))
            if exists is None:
                session.add(ReviewItem(
                    page_id=page.id, upload_id=ret.upload_id, document_id=doc.id, case_id=case.id,
                    org_id=doc.org_id, field_path="service_time", kind="discrepancy",
                    proposed={"value": {"served_on": served_on.isoformat(), "method": method}},
                    recorded={"value": {"served_on": old.get("served_on"), "method": old.get("method")}},
                    confidence=0.0, reason="扫描件的送达日期/方式与案卷记录不一致：不自动覆盖，请核对"))
            ret.status = "review"
            return False
    record_service(session, case, document_id=doc.id, served_on=served_on, method=method, complete=True,
                   actor=user)
    return True


def _apply_handover(session: Session, doc: Document, values: Mapping, *, user: str) -> None:
    """Each row's 报到 tick (and date / whereabouts) goes to the handover engine."""
    import re

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


